// The operator's dashboard. Served with a strict Content-Security-Policy (no inline script
// or style). Data from the server is only ever set as text (textContent, createElement):
// nothing is parsed as HTML. The session is an HttpOnly cookie the script cannot read;
// state changes carry the session's CSRF token, kept in memory only.
'use strict';

const $ = sel => document.querySelector(sel);
let csrf = null;
let timer = null;
let venuesAt = 0;

/** An element with text and attributes; children appended in order. */
function el(tag, text, attrs = {}) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'className') e.className = v; else e.setAttribute(k, String(v));
  }
  return e;
}

/** Replaces the rows of a table body. */
function fill(tbody, rows) {
  tbody.replaceChildren(...rows);
}

function row(cells) {
  const tr = el('tr');
  for (const c of cells) tr.append(c instanceof Node ? c : el('td', c));
  return tr;
}

async function api(path, init = {}) {
  const headers = {...(init.headers || {})};
  const method = (init.method || 'GET').toUpperCase();
  if (method !== 'GET' && method !== 'HEAD' && csrf) headers['X-CSRF-Token'] = csrf;
  const resp = await fetch(`/api/v1${path}`, {...init, headers, credentials: 'same-origin'});
  if (resp.status === 401) showLogin('your session has ended; log in again');
  return resp;
}

function showLogin(message) {
  csrf = null;
  if (timer) { clearTimeout(timer); timer = null; }
  $('#app').hidden = true;
  $('#login').hidden = false;
  $('#login-said').textContent = message || '';
}

function showApp(session) {
  csrf = session.csrf_token;
  $('#user').textContent = `logged in as ${session.name} (${session.roles.join(', ')})`;
  $('#login').hidden = true;
  $('#app').hidden = false;
  venuesAt = 0;
  loop();
}

async function say(resp) {
  const body = await resp.json().catch(() => ({}));
  $('#said').textContent = resp.ok
    ? `done: ${body.emergency.id}, ${body.screens.length} screen(s)`
    : `refused: ${body.error ? body.error.message : resp.status}`;
  load();
}

async function endEmergency(id) {
  say(await api(`/emergencies/${encodeURIComponent(id)}/end`, {method: 'POST'}));
}

async function load() {
  const resp = await api('/emergencies');
  if (!resp.ok) {
    if (resp.status !== 401) $('#said').textContent = `refused: ${resp.status}`;
    return false;
  }
  const list = await resp.json();
  const active = list.filter(r => r.active);
  fill($('#emergencies tbody'), active.length ? active.map(r => {
    const open = Date.parse(r.end) - Date.parse(r.start) > 50 * 365 * 864e5;
    const end = el('button', 'End', {type: 'button'});
    end.dataset.end = r.id;
    end.addEventListener('click', () => endEmergency(r.id));
    const cell = el('td');
    cell.append(end);
    return row([r.id, r.name, r.creatives.join(', '), JSON.stringify(r.target), r.start, open ? 'open' : r.end, cell]);
  }) : [row([el('td', 'none active', {colspan: 7})])]);

  if (Date.now() - venuesAt > 30000) {
    venuesAt = Date.now();
    const v = await (await api('/reports/venues?format=json')).json().catch(() => null);
    if (Array.isArray(v)) fill($('#venues tbody'), v.map(r => row([
      r.venue_id, r.venue_type,
      el('td', r.planned, {className: 'n'}),
      el('td', r.delivered, {className: 'n'}),
      el('td', `${Number(r.compliance_pct).toFixed(1)} %`, {className: `n ${r.delivered === r.planned ? 'ok' : 'bad'}`}),
    ])));
  }

  const f = await (await api('/fleet?limit=1000')).json().catch(() => ({}));
  fill($('#fleet tbody'), (f.items || []).map(r => {
    const s = r.status || {};
    return row([
      r.screen_id,
      el('td', r.state, {className: r.state === 'online' ? 'ok' : 'bad'}),
      `${s.schedule_version ?? ''} / ${r.published_version ?? ''}`,
      s.media_ready ? 'ready' : 'fetching',
      el('td', s.outbox_backlog ?? '', {className: 'n'}),
      el('td', s.last_seq ?? '', {className: 'n'}),
    ]);
  }));
  return true;
}

async function loop() {
  try { await load(); } finally { if (csrf) timer = setTimeout(loop, 5000); }
}

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
    $('#login-said').textContent = `refused: ${body.error ? body.error.message : resp.status}`;
    return;
  }
  showApp(body);
});

$('#logout').addEventListener('click', async () => {
  await api('/session', {method: 'DELETE'});
  showLogin('logged out');
});

$('#start').addEventListener('submit', async ev => {
  ev.preventDefault();
  const f = new FormData(ev.target);
  let target;
  try { target = JSON.parse(f.get('target') || '{}'); } catch (e) { $('#said').textContent = `target is not JSON: ${e.message}`; return; }
  const req = {id: f.get('id'), name: f.get('name'), creatives: f.get('creatives').split(',').map(s => s.trim()).filter(Boolean), target};
  if (f.get('until')) req.until = f.get('until');
  say(await api('/emergencies', {method: 'POST', headers: {'Content-Type': 'application/json'}, body: JSON.stringify(req)}));
});

(async () => {
  const resp = await fetch('/api/v1/session', {credentials: 'same-origin'});
  if (resp.ok) showApp(await resp.json()); else showLogin('');
})();
