// Boots the dashboard: the login form, the menu of the pages the user's roles may open,
// the language switch, and the router. Pages live in their own modules and register
// themselves with core.js.
import {$, el, session, setLang, lang, addStrings, pages, route, setLoggedOutHandler, zones} from './core.js';
import './campaigns.js';
import './creatives.js';
import './operator.js';
import './auditor.js';

const t = addStrings({
  en: {'session ended': 'your session has ended; log in again', 'logged out': 'logged out', refused: 'refused',
    'nothing here': 'Nothing here for your roles', 'logged in as': 'logged in as {name} ({roles})', 'Log out': 'Log out',
    'Log in': 'Log in', Name: 'Name', Password: 'Password', 'Skip to content': 'Skip to content', lang: '中文'},
  zh: {'session ended': '会话已结束，请重新登录', 'logged out': '已退出', refused: '被拒绝',
    'nothing here': '没有与您的角色相关的页面', 'logged in as': '{name}（{roles}）', 'Log out': '退出',
    'Log in': '登录', Name: '用户名', Password: '密码', 'Skip to content': '跳到正文', lang: 'English',
    'wrong name or password': '用户名或密码错误'},
});

/** Texts of the static page in the current language. */
function translateShell() {
  $('#lang').textContent = t('lang');
  $('#lang').setAttribute('aria-label', lang.current === 'zh' ? 'Switch to English' : '切换到中文');
  $('#logout').textContent = t('Log out');
  $('.skip').textContent = t('Skip to content');
  $('#login legend').textContent = t('Log in');
  $('#login button').textContent = t('Log in');
  const spans = document.querySelectorAll('#login .field > span');
  spans[0].textContent = t('Name');
  spans[1].textContent = t('Password');
}

function menu() {
  const nav = $('#nav');
  nav.replaceChildren(...pages().filter(p => p.menu && p.roles.some(r => session.user.roles.includes(r)))
    .map(p => el('a', {href: `#/${p.path}`, dataset: {path: p.path}, text: t(p.title)})));
}

/** A navigation: the page of the new address. */
const onHash = () => route();

function showLogin(message) {
  session.user = null;
  window.removeEventListener('hashchange', onHash);
  $('#main').replaceChildren();
  $('#app').hidden = true;
  $('#login-page').hidden = false;
  $('#login-said').textContent = message || '';
}

async function showApp(user) {
  session.user = user;
  if (user.timezone) zones.default = user.timezone;
  $('#user').textContent = t('logged in as', {name: user.name, roles: user.roles.join(', ')});
  $('#login-page').hidden = true;
  $('#app').hidden = false;
  menu();
  window.addEventListener('hashchange', onHash);
  await route(true);
}

setLoggedOutHandler(showLogin);

$('#login').addEventListener('submit', async ev => {
  ev.preventDefault();
  const f = new FormData(ev.target);
  const resp = await fetch('/api/v1/session', {
    method: 'POST',
    credentials: 'same-origin',
    headers: {'Content-Type': 'application/json'},
    body: JSON.stringify({name: f.get('name'), password: f.get('password')}),
  });
  const body = await resp.json().catch(() => ({}));
  ev.target.elements.password.value = '';
  if (!resp.ok) {
    $('#login-said').textContent = `${t('refused')}: ${body.error ? t(body.error.message) : resp.status}`;
    return;
  }
  showApp(body);
});

$('#logout').addEventListener('click', async () => {
  await fetch('/api/v1/session', {method: 'DELETE', credentials: 'same-origin', headers: {'X-CSRF-Token': session.user ? session.user.csrf_token : ''}});
  showLogin(t('logged out'));
});

$('#lang').addEventListener('click', () => {
  setLang(lang.current === 'zh' ? 'en' : 'zh');
  translateShell();
  if (session.user) { $('#user').textContent = t('logged in as', {name: session.user.name, roles: session.user.roles.join(', ')}); menu(); route(true); }
});

setLang(lang.current);
translateShell();
(async () => {
  const resp = await fetch('/api/v1/session', {credentials: 'same-origin'});
  if (resp.ok) showApp(await resp.json()); else showLogin('');
})();
