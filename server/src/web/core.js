// The dashboard's core, shared by every page module: the API client (session cookie and
// CSRF token), the router, translations, time formatting in a venue's zone, and small DOM
// helpers. Served with a strict Content-Security-Policy (no inline script or style): data
// from the server is only ever set as text (textContent, createElement, setAttribute),
// never parsed as HTML.

export const $ = (sel, root = document) => root.querySelector(sel);
export const $$ = (sel, root = document) => [...root.querySelectorAll(sel)];

// ---- session ----------------------------------------------------------------------------

/** The logged-in user: {name, roles, csrf_token}, or null. */
export const session = {user: null};

export function hasRole(...roles) {
  const mine = session.user ? session.user.roles : [];
  return roles.some(r => mine.includes(r));
}

/** An API error with the server's code, message and field. */
export class ApiError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(e.message || `HTTP ${status}`);
    this.status = status;
    this.code = e.code || String(status);
    this.field = e.field || null;
  }
}

let onLoggedOut = () => {};
export function setLoggedOutHandler(f) { onLoggedOut = f; }

/** Calls `/api/v1{path}`; state changes carry the CSRF token. Returns the Response. */
export async function apiRaw(path, init = {}) {
  const headers = {...(init.headers || {})};
  const method = (init.method || 'GET').toUpperCase();
  if (method !== 'GET' && method !== 'HEAD' && session.user) headers['X-CSRF-Token'] = session.user.csrf_token;
  const resp = await fetch(`/api/v1${path}`, {...init, headers, credentials: 'same-origin'});
  if (resp.status === 401 && session.user) onLoggedOut(t('session ended'));
  return resp;
}

/** Calls the API and returns its JSON body; a 4xx or 5xx throws an ApiError. */
export async function api(path, init = {}) {
  const resp = await apiRaw(path, init);
  const text = await resp.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch (_) { body = text; }
  if (!resp.ok) throw new ApiError(resp.status, body);
  return body;
}

/** POST/PUT JSON. */
export function send(method, path, value) {
  return api(path, {method, headers: {'Content-Type': 'application/json'}, body: value === undefined ? undefined : JSON.stringify(value)});
}

/** Every item of a paginated list (`{items, next}`), following cursors. */
export async function all(path) {
  const out = [];
  let cursor = null;
  const sep = path.includes('?') ? '&' : '?';
  do {
    const page = await api(`${path}${sep}limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    out.push(...page.items);
    cursor = page.next;
  } while (cursor);
  return out;
}

/** Query string from an object, skipping empty values. */
export function qs(params) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') p.set(k, v);
  const s = p.toString();
  return s ? `?${s}` : '';
}

// ---- translations -----------------------------------------------------------------------

const strings = {en: {}, zh: {}};
export const lang = {current: localStorage.getItem('signage.lang') || (navigator.language.startsWith('zh') ? 'zh' : 'en')};

/** Adds a module's translations: {en: {key: text}, zh: {key: text}}, and returns the
 * module's own `t`, which looks in this table first (modules may use the same key for
 * different texts) and then in every module's. A key missing in a language falls back to
 * English, then to the key itself. `{name}` placeholders are filled. */
export function addStrings(table) {
  for (const l of Object.keys(table)) {
    const shared = strings[l] = strings[l] || {};
    for (const [k, v] of Object.entries(table[l])) if (!(k in shared)) shared[k] = v;
  }
  return (key, vars = {}) => fill((table[lang.current] || {})[key] ?? (table.en || {})[key] ?? lookup(key), vars);
}

function lookup(key) {
  return (strings[lang.current] || {})[key] ?? strings.en[key] ?? key;
}

function fill(s, vars) {
  return String(s).replace(/\{(\w+)\}/g, (m, k) => (k in vars ? String(vars[k]) : m));
}

/** A text in the current language from every module's translations. */
export function t(key, vars = {}) {
  return fill(lookup(key), vars);
}

export function setLang(l) {
  lang.current = l;
  localStorage.setItem('signage.lang', l);
  document.documentElement.lang = l === 'zh' ? 'zh-CN' : 'en';
}

/** An entity's display name: Chinese where it exists and the page is in Chinese, English
 * (`name_en`) otherwise, the id when it has no name. */
export function nameOf(entity) {
  if (!entity) return '';
  const zh = entity.name || entity.title;
  const en = entity.name_en || entity.title_en;
  if (lang.current === 'zh') return zh || en || entity.id;
  return en || zh || entity.id;
}

// ---- time -------------------------------------------------------------------------------

/** The zone most of the catalogue's venues keep, set at login from the session. */
export const zones = {default: 'Asia/Shanghai'};

/** `iso` in `zone` as "2023-12-20 09:00 (Asia/Shanghai)"; `withZone` false drops the
 * name. */
export function fmtTime(iso, zone = zones.default, withZone = true) {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  const f = new Intl.DateTimeFormat('sv-SE', {timeZone: zone, year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', hourCycle: 'h23'});
  return withZone ? `${f.format(d)} (${zone})` : f.format(d);
}

/** An RFC 3339 instant for a local `datetime-local` value in `zone`. */
export function zonedToIso(local, zone = zones.default) {
  if (!local) return null;
  const guess = new Date(`${local}:00Z`);
  // The zone's offset at that instant, from how it renders the guess.
  const parts = new Intl.DateTimeFormat('en-US', {timeZone: zone, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit'}).formatToParts(guess);
  const get = type => Number(parts.find(p => p.type === type).value);
  const asUtc = Date.UTC(get('year'), get('month') - 1, get('day'), get('hour'), get('minute'), get('second'));
  return new Date(guess.getTime() - (asUtc - guess.getTime())).toISOString();
}

/** The `datetime-local` value of `iso` in `zone`. */
export function isoToZoned(iso, zone = zones.default) {
  return fmtTime(iso, zone, false).replace(' ', 'T');
}

// ---- DOM ------------------------------------------------------------------------------

/** An element with text and attributes; `className`, `on<Event>` handlers and `dataset`
 * are recognised; children appended in order. Never parses HTML. */
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'className') e.className = v;
    else if (k === 'text') e.textContent = String(v);
    else if (k === 'dataset') Object.assign(e.dataset, v);
    else if (k.startsWith('on') && typeof v === 'function') e.addEventListener(k.slice(2).toLowerCase(), v);
    else if (v === true) e.setAttribute(k, '');
    else e.setAttribute(k, String(v));
  }
  for (const c of children.flat()) if (c !== undefined && c !== null && c !== false) e.append(c instanceof Node ? c : String(c));
  return e;
}

const SVG = 'http://www.w3.org/2000/svg';
/** An SVG element (attributes as in `el`). */
export function svg(tag, attrs = {}, ...children) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null) continue;
    if (k === 'text') e.textContent = String(v);
    else if (k.startsWith('on') && typeof v === 'function') e.addEventListener(k.slice(2).toLowerCase(), v);
    else e.setAttribute(k, String(v));
  }
  for (const c of children.flat()) if (c) e.append(c);
  return e;
}

/** A table: `headers` are strings (translated) or {text, className}; `rows` are arrays of
 * cells (a Node, or text). */
export function table(headers, rows, attrs = {}) {
  const head = el('thead', {}, el('tr', {}, headers.map(h => el('th', {scope: 'col', className: h.className, text: typeof h === 'string' ? t(h) : h.text}))));
  const body = el('tbody', {}, rows.map(r => r instanceof Node ? r : el('tr', {}, r.map(c => (c instanceof Node && c.tagName === 'TD') ? c : el('td', {}, c)))));
  return el('table', attrs, head, body);
}

/** A numeric cell. */
export const num = (v, extra = '') => el('td', {className: `n ${extra}`.trim(), text: v ?? ''});

/** A status line (role=status) that says what happened. */
export function statusLine(id) {
  return el('p', {id, role: 'status', className: 'said', 'aria-live': 'polite'});
}

/** Writes an outcome to a status line: an Error as "refused: message". */
export function say(line, what) {
  if (!line) return;
  if (what instanceof Error) {
    line.textContent = `${t('refused')}: ${what.message}`;
    line.className = 'said bad';
  } else {
    line.textContent = what;
    line.className = 'said ok';
  }
}

/** A labelled form control. */
export function field(label, control) {
  return el('label', {className: 'field'}, el('span', {text: label}), control);
}

// ---- router -----------------------------------------------------------------------------

const routes = [];

/** Registers a page: `path` like "campaigns/:id"; `roles` who see it in the menu (and may
 * open it); `menu` whether the menu lists it; `home` the role whose first page it is;
 * `render(main, params, query)` fills the page and may return a cleanup function. */
export function register(page) {
  routes.push(page);
}

export function pages() { return routes; }

let cleanup = null;

/** Shows the page for the current `#/path`. A second call for the address already shown
 * (or being shown) does nothing unless `force` (a new login, another language): a login's
 * redirect and a navigation can both announce one address, and rendering it twice would
 * replace a page under the user's hands. */
export async function route(force = false) {
  if (!force && location.hash === routed) return;
  routed = location.hash;
  if (typeof cleanup === 'function') { try { cleanup(); } catch (_) { /* page gone */ } }
  cleanup = null;
  const main = $('#main');
  const path = decodeURIComponent(location.hash.replace(/^#\/?/, '')).split('?')[0];
  const query = new URLSearchParams(location.hash.split('?')[1] || '');
  const allowed = routes.filter(r => hasRole(...r.roles));
  let found = null;
  for (const r of allowed) {
    const names = [];
    const re = new RegExp(`^${r.path.replace(/:(\w+)/g, (_, n) => { names.push(n); return '([^/]+)'; })}$`);
    const m = path.match(re);
    if (m) { found = {r, params: Object.fromEntries(names.map((n, i) => [n, m[i + 1]]))}; break; }
  }
  if (!found) {
    const home = homePage(allowed);
    if (home && path !== home.path) { location.hash = `#/${home.path}`; return; }
    main.replaceChildren(el('h1', {text: t('nothing here')}));
    return;
  }
  for (const a of $$('#nav a')) a.toggleAttribute('aria-current', a.dataset.path === found.r.path.split('/')[0]);
  // Each render fills its own view: one still awaiting the server when the next page
  // starts (a quick click, a language switch) fills a view no longer shown, and its
  // timers are stopped as soon as it returns.
  const generation = ++shown;
  const view = el('div', {className: 'view'});
  main.replaceChildren(view);
  document.title = `${t(found.r.title)} · signage`;
  try {
    const done = await found.r.render(view, found.params, query);
    if (generation === shown) cleanup = done;
    else if (typeof done === 'function') done();
  } catch (e) {
    view.append(el('p', {className: 'said bad', role: 'alert', text: `${t('refused')}: ${e.message}`}));
  }
}

let shown = 0;
let routed = null;

/** Where a user lands: the home page of their first role in this order, else the first
 * page of the menu. */
const HOME_ORDER = ['operator', 'approver', 'staff', 'auditor'];
function homePage(allowed) {
  for (const role of HOME_ORDER) {
    const page = hasRole(role) && allowed.find(r => r.home === role);
    if (page) return page;
  }
  return allowed.find(r => r.menu);
}

export function go(path) {
  location.hash = `#/${path}`;
}

/** Repeats `f` every `ms` while the page stays; returns the cleanup. */
export function every(ms, f) {
  let timer = null;
  let live = true;
  const tick = async () => {
    try { await f(); } catch (_) { /* shown by f */ }
    if (live) timer = setTimeout(tick, ms);
  };
  tick();
  return () => { live = false; clearTimeout(timer); };
}
