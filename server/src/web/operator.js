// The operator's pages: the fleet (filtered and paged on the server: a city has 11,000
// screens), the map of venues coloured by their screens' worst state, emergencies (start,
// confirm, end, history), and the dark-screen alerts raised above every page. Data from
// the server is only ever set as text.
import {$, el, svg, api, send, qs, register, every, addStrings, nameOf, fmtTime, zonedToIso,
  statusLine, say, field, hasRole, session, go, lang, zones} from './core.js';

const DISTRICTS = {
  dongcheng: ['Dongcheng', '东城区'], xicheng: ['Xicheng', '西城区'], chaoyang: ['Chaoyang', '朝阳区'],
  haidian: ['Haidian', '海淀区'], fengtai: ['Fengtai', '丰台区'], shijingshan: ['Shijingshan', '石景山区'],
  mentougou: ['Mentougou', '门头沟区'], fangshan: ['Fangshan', '房山区'], tongzhou: ['Tongzhou', '通州区'],
  shunyi: ['Shunyi', '顺义区'], changping: ['Changping', '昌平区'], daxing: ['Daxing', '大兴区'],
  huairou: ['Huairou', '怀柔区'], pinggu: ['Pinggu', '平谷区'], miyun: ['Miyun', '密云区'], yanqing: ['Yanqing', '延庆区'],
};

const t = addStrings({
  en: {Fleet: 'Fleet', Map: 'Map', Emergencies: 'Emergencies', online: 'online', offline: 'offline', unknown: 'unknown',
    district: 'District', 'venue type': 'Venue type', status: 'Status', search: 'Search screen or venue', any: 'any',
    'no district': '(no district)', Filter: 'Filter', Previous: 'Previous', Next: 'Next', Screen: 'Screen', Venue: 'Venue',
    State: 'State', Venues: 'Venues', 'Last seen': 'Last seen', Schedule: 'Schedule applied / published', Media: 'Media', Runway: 'Runway',
    Backlog: 'Backlog', Clock: 'Clock', Notes: 'Notes', behind: 'behind', ready: 'ready', fetching: 'fetching',
    synced: 'synced', 'not synced': 'not synced', never: 'never', loading: 'loading…',
    'fleet count': 'screens {from}–{to} of {total} matching ({fleet} in service)',
    'fleet none': 'no screen matches these filters ({fleet} in service)',
    'dark for': 'dark {minutes} min', 'dark title': '{n} screen(s) dark for {minutes} minutes or more',
    'dark item': '{screen} at {venue} ({district}): {state} for {minutes} min, last heard {seen}',
    'dark more': 'and {n} more', 'silent': 'silent', 'Venues by state': 'Venues by state',
    'map legend': 'Legend', 'map none': 'no venue has coordinates', 'States by district': 'Screens by district',
    screens: 'Screens', dark: 'Dark', 'map hint': 'Each circle is a venue, coloured by its screens’ worst state; focus one for its name and states, Enter opens its screens.',
    'venue states': '{name} ({district}): {online} online, {offline} offline, {unknown} unknown',
    'worst offline': 'some screen offline', 'worst unknown': 'some screen never reported', 'worst online': 'all screens online',
    'Start an emergency': 'Start an emergency (plays from each targeted screen’s next slot)', Id: 'Id', Name: 'Name',
    Creatives: 'Creatives', 'Target districts': 'Target districts', 'Target venue types': 'Target venue types',
    'target hint': 'Nothing ticked targets every screen.', 'Ends at': 'Ends at ({zone}, optional)', Start: 'Start',
    'two person': 'A second operator must confirm before it plays.', Active: 'Active and pending', History: 'History',
    Target: 'Target', Started: 'Started', Ends: 'Ends', 'Started by': 'Started by', 'Confirmed by': 'Confirmed by',
    'Ended by': 'Ended by', Ended: 'Ended', open: 'open', End: 'End', Confirm: 'Confirm', 'every screen': 'every screen',
    'none active': 'none active or pending', 'no history': 'no emergency has ended yet', pending: 'waiting for a second operator until {until}',
    active: 'playing', 'started ok': 'started {id} on {n} screen(s)', 'pending ok': '{id} waits for a second operator’s confirmation',
    'ended ok': 'ended {id} on {n} screen(s)', 'confirmed ok': 'confirmed {id}: playing on {n} screen(s)', 'pick creative': 'pick at least one creative',
    'End emergency': 'End {name}', 'Confirm emergency': 'Confirm {name}'},
  zh: {Fleet: '设备', Map: '地图', Emergencies: '紧急插播', online: '在线', offline: '离线', unknown: '未知',
    district: '区', 'venue type': '场所类型', status: '状态', search: '搜索屏幕或场所', any: '全部', 'no district': '（无区）',
    Filter: '筛选', Previous: '上一页', Next: '下一页', Screen: '屏幕', Venue: '场所', Venues: '场所数', State: '状态', 'Last seen': '最后上报',
    Schedule: '排期（已应用 / 已发布）', Media: '素材', Runway: '离线续航', Backlog: '待回传', Clock: '时钟', Notes: '备注',
    behind: '落后', ready: '就绪', fetching: '下载中', synced: '已同步', 'not synced': '未同步', never: '从未',
    loading: '加载中…', 'fleet count': '第 {from}–{to} 台，共 {total} 台符合（在用 {fleet} 台）',
    'fleet none': '没有符合筛选条件的屏幕（在用 {fleet} 台）', 'dark for': '黑屏 {minutes} 分钟',
    'dark title': '{n} 台屏幕黑屏超过 {minutes} 分钟', 'dark item': '{screen}，{venue}（{district}）：{state} {minutes} 分钟，最后上报 {seen}',
    'dark more': '另有 {n} 台', silent: '无上报', 'Venues by state': '场所状态', 'map legend': '图例', 'map none': '没有带坐标的场所',
    'States by district': '各区屏幕', screens: '屏幕', dark: '黑屏', 'map hint': '每个圆点是一个场所，颜色为其屏幕的最差状态；聚焦可查看名称和状态，回车打开其屏幕。',
    'venue states': '{name}（{district}）：在线 {online}，离线 {offline}，未知 {unknown}',
    'worst offline': '有屏幕离线', 'worst unknown': '有屏幕从未上报', 'worst online': '全部在线',
    'Start an emergency': '发起紧急插播（各目标屏幕从下一时段开始播放）', Id: '编号', Name: '名称', Creatives: '素材',
    'Target districts': '目标区', 'Target venue types': '目标场所类型', 'target hint': '不勾选即覆盖所有屏幕。',
    'Ends at': '结束时间（{zone}，可选）', Start: '发起', 'two person': '需另一名操作员确认后才会播放。', Active: '进行中与待确认',
    History: '历史', Target: '目标', Started: '开始', Ends: '结束', 'Started by': '发起人', 'Confirmed by': '确认人',
    'Ended by': '结束人', Ended: '结束于', open: '未定', End: '结束', Confirm: '确认', 'every screen': '所有屏幕',
    'none active': '没有进行中或待确认的插播', 'no history': '尚无已结束的插播', pending: '等待另一名操作员确认（截至 {until}）',
    active: '播放中', 'started ok': '已发起 {id}，{n} 台屏幕', 'pending ok': '{id} 等待另一名操作员确认',
    'ended ok': '已结束 {id}，{n} 台屏幕', 'confirmed ok': '已确认 {id}：{n} 台屏幕播放中', 'pick creative': '请至少选择一个素材',
    'End emergency': '结束 {name}', 'Confirm emergency': '确认 {name}'},
});

/** A district's display name. */
export function districtName(d) {
  if (!d) return t('no district');
  const known = DISTRICTS[d];
  return known ? known[lang.current === 'zh' ? 1 : 0] : d;
}

const venueOf = r => nameOf({id: r.venue_id, name: r.venue_name, name_en: r.venue_name_en});
const stateCell = (state, extra) => el('td', {className: `state state-${state}`}, el('span', {className: 'dot', 'aria-hidden': 'true'}), t(state), extra ? ` · ${extra}` : '');

// ---- alerts -----------------------------------------------------------------------------

/** The fleet page's filters, kept across visits (and set by the alerts and the map). */
const filters = {district: '', venue_type: '', status: '', q: ''};

function showScreens(q) {
  Object.assign(filters, {district: '', venue_type: '', status: '', q});
  if (location.hash === '#/fleet') window.dispatchEvent(new HashChangeEvent('hashchange')); else go('fleet');
}

async function refreshAlerts() {
  const box = $('#alerts');
  if (!box) return;
  if (!session.user || !hasRole('operator') || $('#app').hidden) { box.replaceChildren(); return; }
  let s;
  try { s = await api('/fleet/summary'); } catch (_) { return; }
  if (!s.dark.length) { box.replaceChildren(); return; }
  const items = s.dark.slice(0, 5).map(d => el('li', {className: 'dark-alert', dataset: {screen: d.screen_id}},
    el('a', {href: '#/fleet', onclick: ev => { ev.preventDefault(); showScreens(d.screen_id); }, text: t('dark item', {
      screen: d.screen_id, venue: nameOf({id: d.venue_id, name: d.venue_name, name_en: d.venue_name_en}),
      district: districtName(d.district), state: t(d.state === 'online' ? 'silent' : d.state), minutes: d.minutes,
      seen: fmtTime(d.last_seen)})})));
  if (s.overall.dark > items.length) items.push(el('li', {text: t('dark more', {n: s.overall.dark - items.length})}));
  // A named region (not role=alert: it is redrawn every 30 s); the count is announced
  // politely when it changes.
  const title = t('dark title', {n: s.overall.dark, minutes: s.dark_after_minutes});
  const known = box.querySelector('#dark-title');
  const heading = known && known.textContent === title ? known : el('strong', {id: 'dark-title', 'aria-live': 'polite', text: title});
  box.replaceChildren(el('section', {className: 'dark-alerts', 'aria-labelledby': 'dark-title'}, heading, el('ul', {}, items)));
}

// Refreshed every 30 s, and as soon as the app shows (after a login).
setInterval(refreshAlerts, 30000);
new MutationObserver(refreshAlerts).observe($('#app'), {attributes: true, attributeFilter: ['hidden']});
window.addEventListener('hashchange', refreshAlerts);

// ---- fleet ------------------------------------------------------------------------------

function fleetRow(r) {
  const schedule = el('td', {className: r.behind ? 'warn' : ''},
    `${r.applied_version ?? '–'} / ${r.published_version ?? '–'}`, r.behind ? ` · ${t('behind')}` : '');
  const notes = r.status && Array.isArray(r.status.notes) ? r.status.notes.join('; ') : '';
  return el('tr', {dataset: {screen: r.screen_id, state: r.state}},
    el('th', {scope: 'row', text: r.screen_id}),
    el('td', {}, venueOf(r), el('span', {className: 'sub', text: r.venue_type})),
    el('td', {text: districtName(r.district)}),
    stateCell(r.state, r.dark_minutes != null ? t('dark for', {minutes: r.dark_minutes}) : ''),
    el('td', {text: r.last_seen ? fmtTime(r.last_seen, r.timezone || zones.default) : t('never')}),
    schedule,
    el('td', {className: r.media_ready === false ? 'warn' : '', text: r.media_ready == null ? '–' : t(r.media_ready ? 'ready' : 'fetching')}),
    el('td', {className: 'n', text: r.runway_hours == null ? '–' : `${Number(r.runway_hours).toFixed(0)} h`}),
    el('td', {className: 'n', text: r.backlog ?? '–'}),
    el('td', {className: r.clock_synced === false ? 'warn' : '', text: r.clock_synced == null ? '–' : t(r.clock_synced ? 'synced' : 'not synced')}),
    el('td', {className: 'notes', text: notes}));
}

function fleet(main) {
  const select = (name, label) => field(label, el('select', {name}, el('option', {value: '', text: t('any')})));
  const form = el('form', {id: 'fleet-filter', role: 'search'},
    select('district', t('district')), select('venue_type', t('venue type')),
    field(t('status'), el('select', {name: 'status'}, el('option', {value: '', text: t('any')}),
      ['online', 'offline', 'unknown'].map(s => el('option', {value: s, text: t(s)})))),
    field(t('search'), el('input', {name: 'q', type: 'search', size: 24, autocomplete: 'off'})),
    el('button', {className: 'primary', text: t('Filter')}));
  const count = el('p', {id: 'fleet-count', role: 'status', 'aria-live': 'polite', text: t('loading')});
  const headers = ['Screen', 'Venue', 'district', 'State', 'Last seen', 'Schedule', 'Media', 'Runway', 'Backlog', 'Clock', 'Notes'];
  const tbl = el('table', {id: 'fleet', className: 'fleet'},
    el('caption', {className: 'visually-hidden', text: t('Fleet')}),
    el('thead', {}, el('tr', {}, headers.map(h => el('th', {scope: 'col', text: t(h)})))),
    el('tbody', {}, el('tr', {}, el('td', {colspan: headers.length, text: t('loading')}))));
  const prev = el('button', {id: 'fleet-prev', type: 'button', text: t('Previous'), disabled: true});
  const next = el('button', {id: 'fleet-next', type: 'button', text: t('Next'), disabled: true});
  const err = statusLine('fleet-said');
  main.append(el('h1', {text: t('Fleet')}), form, count, err, el('div', {className: 'scroll', tabindex: 0, role: 'region', 'aria-label': t('Fleet')}, tbl), el('nav', {className: 'pager', 'aria-label': t('Fleet')}, prev, ' ', next));

  for (const k of Object.keys(filters)) form.elements[k].value = filters[k];
  let cursors = [null];
  let at = 0;
  let filled = false;
  let seq = 0;

  async function load() {
    const mine = ++seq;
    let page;
    try {
      page = await api(`/fleet${qs({...filters, limit: 100, cursor: cursors[at]})}`);
    } catch (e) {
      if (mine === seq) { say(err, e); if (e.field && form.elements[e.field]) form.elements[e.field].setAttribute('aria-invalid', 'true'); }
      return;
    }
    if (mine !== seq) return;
    err.textContent = '';
    for (const c of form.elements) c.removeAttribute('aria-invalid');
    if (!filled) {
      filled = true;
      const fill = (name, values, label) => {
        const s = form.elements[name];
        s.append(...values.map(v => el('option', {value: v, text: label(v)})));
        s.value = filters[name];
      };
      fill('district', page.districts, districtName);
      fill('venue_type', page.venue_types, v => v);
    }
    tbl.tBodies[0].replaceChildren(...(page.items.length ? page.items.map(fleetRow)
      : [el('tr', {}, el('td', {colspan: headers.length, text: t('fleet none', {fleet: page.fleet})}))]));
    const from = at * 100 + 1;
    count.textContent = page.items.length
      ? t('fleet count', {from, to: from + page.items.length - 1, total: page.total, fleet: page.fleet})
      : t('fleet none', {fleet: page.fleet});
    cursors = cursors.slice(0, at + 1);
    if (page.next) cursors.push(page.next);
    prev.disabled = at === 0;
    next.disabled = !page.next;
  }

  const apply = () => {
    for (const k of Object.keys(filters)) filters[k] = form.elements[k].value.trim();
    cursors = [null];
    at = 0;
    count.textContent = t('loading');
    load();
  };
  form.addEventListener('submit', ev => { ev.preventDefault(); apply(); });
  for (const name of ['district', 'venue_type', 'status']) form.elements[name].addEventListener('change', apply);
  let typing = null;
  form.elements.q.addEventListener('input', () => { clearTimeout(typing); typing = setTimeout(apply, 300); });
  prev.addEventListener('click', () => { if (at > 0) { at -= 1; load(); } });
  next.addEventListener('click', () => { if (cursors[at + 1] !== undefined) { at += 1; load(); } });
  const stop = every(15000, load);
  return () => { stop(); clearTimeout(typing); };
}

// ---- map --------------------------------------------------------------------------------

/** The convex hull of points [x, y] (Andrew's monotone chain). */
function hull(points) {
  const p = [...points].sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  if (p.length < 3) return p;
  const cross = (o, a, b) => (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]);
  const half = list => {
    const out = [];
    for (const q of list) {
      while (out.length >= 2 && cross(out[out.length - 2], out[out.length - 1], q) <= 0) out.pop();
      out.push(q);
    }
    out.pop();
    return out;
  };
  return [...half(p), ...half([...p].reverse())];
}

const WORST = {offline: 'worst offline', unknown: 'worst unknown', online: 'worst online'};

async function map(main) {
  const detail = el('p', {id: 'map-detail', role: 'status', 'aria-live': 'polite', text: t('map hint')});
  const holder = el('div', {className: 'map-holder'}, el('p', {text: t('loading')}));
  const byDistrict = el('div', {id: 'map-districts'});
  main.append(el('h1', {id: 'map-title', text: t('Map')}), detail, el('div', {className: 'map-layout'}, holder, byDistrict));

  let last = null;
  async function load() {
    const venues = await api('/fleet/venues');
    // Unchanged: leave the drawing (and the keyboard focus in it) alone.
    const now = JSON.stringify(venues);
    if (now === last) return;
    last = now;
    const focused = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.venue : null;
    const placed = venues.filter(v => v.lat != null && v.lon != null);
    const W = 1000;
    const H = 640;
    const pad = 24;
    let drawing;
    if (!placed.length) {
      drawing = el('p', {text: t('map none')});
    } else {
      const lats = placed.map(v => v.lat);
      const lons = placed.map(v => v.lon);
      const [minLat, maxLat, minLon, maxLon] = [Math.min(...lats), Math.max(...lats), Math.min(...lons), Math.max(...lons)];
      const kx = Math.cos(((minLat + maxLat) / 2) * Math.PI / 180);
      const spanX = Math.max((maxLon - minLon) * kx, 1e-6);
      const spanY = Math.max(maxLat - minLat, 1e-6);
      const s = Math.min((W - 2 * pad) / spanX, (H - 2 * pad) / spanY);
      const ox = (W - spanX * s) / 2;
      const oy = (H - spanY * s) / 2;
      const xy = v => [ox + (v.lon - minLon) * kx * s, oy + (maxLat - v.lat) * s];
      const groups = {};
      for (const v of placed) (groups[v.district || ''] = groups[v.district || ''] || []).push(xy(v));
      const outlines = Object.entries(groups).filter(([, pts]) => pts.length >= 3).map(([d, pts]) => {
        const h = hull(pts);
        const cx = h.reduce((a, q) => a + q[0], 0) / h.length;
        const cy = h.reduce((a, q) => a + q[1], 0) / h.length;
        return svg('g', {class: 'district', 'aria-hidden': 'true'},
          svg('polygon', {points: h.map(q => `${q[0].toFixed(1)},${q[1].toFixed(1)}`).join(' ')}),
          svg('text', {x: cx.toFixed(1), y: cy.toFixed(1), text: districtName(d)}));
      });
      const r = placed.length > 2000 ? 3 : placed.length > 500 ? 5 : 9;
      const order = {online: 0, unknown: 1, offline: 2};
      const circles = [...placed].sort((a, b) => order[a.worst] - order[b.worst]).map(v => {
        const [x, y] = xy(v);
        const label = t('venue states', {name: nameOf(v), district: districtName(v.district), ...v.counts});
        const show = () => { detail.textContent = label; };
        const open = () => showScreens(v.id);
        return svg('circle', {class: `venue state-${v.worst}`, cx: x.toFixed(1), cy: y.toFixed(1), r, tabindex: 0, role: 'button',
          'aria-label': label, 'data-venue': v.id, onfocus: show, onmouseenter: show, onclick: open,
          onkeydown: ev => { if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); open(); } }},
        svg('title', {text: label}));
      });
      drawing = svg('svg', {id: 'map', viewBox: `0 0 ${W} ${H}`, role: 'group', 'aria-labelledby': 'map-title'},
        svg('g', {class: 'outlines'}, outlines), svg('g', {class: 'venues'}, circles));
    }
    const legend = el('ul', {className: 'legend', 'aria-label': t('map legend')},
      ['online', 'unknown', 'offline'].map(s => el('li', {}, el('span', {className: `swatch state-${s}`, 'aria-hidden': 'true'}), `${t(s)}: ${t(WORST[s])}`)));
    holder.replaceChildren(legend, drawing);
    if (focused) { const again = holder.querySelector(`circle[data-venue="${CSS.escape(focused)}"]`); if (again) again.focus(); }
    // The text alternative: screens by state per district.
    const sums = {};
    for (const v of venues) {
      const d = sums[v.district || ''] = sums[v.district || ''] || {total: 0, online: 0, offline: 0, unknown: 0, dark: 0, venues: 0};
      d.venues += 1;
      for (const k of ['total', 'online', 'offline', 'unknown', 'dark']) d[k] += v.counts[k];
    }
    const rows = Object.entries(sums).sort((a, b) => a[0].localeCompare(b[0])).map(([d, c]) => el('tr', {dataset: {district: d}},
      el('th', {scope: 'row', text: districtName(d)}), el('td', {className: 'n', text: c.venues}), el('td', {className: 'n', text: c.total}),
      el('td', {className: 'n', text: c.online}), el('td', {className: 'n', text: c.offline}), el('td', {className: 'n', text: c.unknown}),
      el('td', {className: 'n', text: c.dark})));
    byDistrict.replaceChildren(el('h2', {text: t('States by district')}),
      el('table', {id: 'map-table'}, el('thead', {}, el('tr', {}, ['district', 'Venues', 'screens', 'online', 'offline', 'unknown', 'dark']
        .map(h => el('th', {scope: 'col', text: t(h)})))), el('tbody', {}, rows)));
  }
  return every(30000, async () => {
    try { await load(); } catch (e) { holder.replaceChildren(el('p', {className: 'said bad', role: 'alert', text: `${t('refused')}: ${e.message}`})); }
  });
}

// ---- emergencies --------------------------------------------------------------------------

function targetText(target) {
  const parts = [];
  if (target.districts) parts.push(target.districts.map(districtName).join(', '));
  if (target.venue_types) parts.push(target.venue_types.join(', '));
  for (const k of ['venues', 'screens', 'tags']) if (target[k]) parts.push(`${k}: ${target[k].join(', ')}`);
  return parts.length ? parts.join(' · ') : t('every screen');
}

const FOREVER = 50 * 365 * 864e5;

async function emergencies(main) {
  const said = statusLine('said');
  const choices = await api('/emergencies/choices');
  const checks = (name, legend, values, label) => el('fieldset', {className: 'checks', dataset: {field: name}},
    el('legend', {text: legend}),
    values.map(v => el('label', {}, el('input', {type: 'checkbox', name, value: v}), ' ', label(v))));
  const byId = Object.fromEntries(choices.creatives.map(c => [c.id, c]));
  const form = el('form', {id: 'start', novalidate: true}, el('fieldset', {},
    el('legend', {text: t('Start an emergency')}),
    choices.two_person ? el('p', {className: 'warn', text: t('two person')}) : null,
    field(t('Id'), el('input', {name: 'id', required: true, size: 24, autocomplete: 'off', pattern: '[a-z0-9][a-z0-9._-]*'})),
    field(t('Name'), el('input', {name: 'name', required: true, size: 32, autocomplete: 'off'})),
    field(t('Ends at', {zone: zones.default}), el('input', {name: 'until', type: 'datetime-local'})),
    checks('creatives', t('Creatives'), choices.creatives.map(c => c.id), id => `${byId[id].title || id} (${id}, ${byId[id].width}×${byId[id].height})`),
    el('div', {className: 'targets'},
      checks('districts', t('Target districts'), choices.districts, districtName),
      checks('venue_types', t('Target venue types'), choices.venue_types, v => v)),
    el('p', {className: 'hint', text: t('target hint')}),
    el('button', {className: 'primary', text: t('Start')}), ' ', said));
  const headers = ['Id', 'Name', 'Creatives', 'Target', 'Started', 'Ends', 'screens', 'Started by', 'State', ''];
  const active = el('table', {id: 'emergencies'}, el('thead', {}, el('tr', {}, headers.map(h => el('th', {scope: 'col', text: h ? t(h) : ''})))),
    el('tbody', {}, el('tr', {}, el('td', {colspan: headers.length, text: t('loading')}))));
  const hHeaders = ['Id', 'Name', 'Target', 'Started by', 'Started', 'Confirmed by', 'Ended by', 'Ended', 'screens'];
  const history = el('table', {id: 'emergency-history'}, el('thead', {}, el('tr', {}, hHeaders.map(h => el('th', {scope: 'col', text: t(h)})))),
    el('tbody', {}, el('tr', {}, el('td', {colspan: hHeaders.length, text: t('loading')}))));
  main.append(el('h1', {text: t('Emergencies')}), el('h2', {text: t('Active')}), el('div', {className: 'scroll', tabindex: 0, role: 'region', 'aria-label': t('Active')}, active), form,
    el('h2', {text: t('History')}), el('div', {className: 'scroll', tabindex: 0, role: 'region', 'aria-label': t('History')}, history));

  const clearErrors = () => {
    for (const e of form.querySelectorAll('[aria-invalid]')) e.removeAttribute('aria-invalid');
    for (const e of form.querySelectorAll('.field-error')) e.remove();
  };
  /** Shows an ApiError next to the control it names, and in the status line. */
  const refused = e => {
    say(said, e);
    if (!e.field) return;
    const name = e.field.split(/[.[]/)[0];
    const control = form.elements[name];
    const box = form.querySelector(`fieldset[data-field="${CSS.escape(name === 'target' ? 'districts' : name)}"]`)
      || (control && control.closest && control.closest('label'));
    if (control && control.setAttribute) control.setAttribute('aria-invalid', 'true');
    if (box) box.append(el('span', {className: 'field-error', text: e.message}));
  };

  async function act(path, done, button) {
    clearErrors();
    if (button) button.disabled = true;
    try {
      const out = await send('POST', path);
      say(said, done(out));
    } catch (e) {
      refused(e);
    } finally {
      if (button) button.disabled = false;
      await load().catch(() => {});
    }
  }

  let last = null;
  async function load() {
    const rows = await api('/emergencies/history');
    // Unchanged: leave the tables (and the keyboard focus on a button) alone.
    // (At least once a minute: a pending one's time to confirm runs out.)
    const seen = JSON.stringify(rows) + Math.floor(Date.now() / 60000);
    if (seen === last) return;
    last = seen;
    const f = document.activeElement;
    const refocus = f && f.dataset && (f.dataset.end ? `button[data-end="${CSS.escape(f.dataset.end)}"]`
      : f.dataset.confirm ? `button[data-confirm="${CSS.escape(f.dataset.confirm)}"]` : null);
    const now = Date.now();
    const current = rows.filter(r => r.active || (r.pending && Date.parse(r.pending.confirm_by) > now));
    const past = rows.filter(r => !current.includes(r) && (r.ended || Date.parse(r.end) <= now || r.pending));
    active.tBodies[0].replaceChildren(...(current.length ? current.map(r => {
      const open = Date.parse(r.end) - Date.parse(r.start) > FOREVER;
      const end = el('button', {type: 'button', text: t('End'), dataset: {end: r.id}, 'aria-label': t('End emergency', {name: r.name}),
        onclick: ev => act(`/emergencies/${encodeURIComponent(r.id)}/end`, o => t('ended ok', {id: o.emergency.id, n: o.screens.length}), ev.currentTarget)});
      const confirm = r.pending ? el('button', {type: 'button', className: 'primary', text: t('Confirm'), dataset: {confirm: r.id},
        'aria-label': t('Confirm emergency', {name: r.name}),
        onclick: ev => act(`/emergencies/${encodeURIComponent(r.id)}/confirm`, o => t('confirmed ok', {id: o.emergency.id, n: o.screens.length}), ev.currentTarget)}) : null;
      return el('tr', {dataset: {emergency: r.id, state: r.pending ? 'pending' : 'active'}},
        el('td', {text: r.id}), el('td', {text: r.name}),
        el('td', {text: r.creatives.map(c => (byId[c] && byId[c].title) || c).join(', ')}),
        el('td', {text: targetText(r.target)}),
        el('td', {text: fmtTime(r.pending ? r.pending.started_at : r.start)}),
        el('td', {text: r.pending || open ? t('open') : fmtTime(r.end)}),
        el('td', {className: 'n', text: r.screens}),
        el('td', {text: r.started_by || (r.pending && r.pending.started_by) || ''}),
        el('td', {className: r.pending ? 'warn' : 'ok', text: r.pending ? t('pending', {until: fmtTime(r.pending.confirm_by)}) : t('active')}),
        el('td', {className: 'actions'}, confirm, confirm ? ' ' : null, end));
    }) : [el('tr', {}, el('td', {colspan: headers.length, text: t('none active')}))]));
    history.tBodies[0].replaceChildren(...(past.length ? past.map(r => el('tr', {dataset: {emergency: r.id}},
      el('td', {text: r.id}), el('td', {text: r.name}), el('td', {text: targetText(r.target)}),
      el('td', {text: r.started_by || ''}), el('td', {text: fmtTime(r.start)}),
      el('td', {text: r.confirmed_by || ''}), el('td', {text: r.ended_by || ''}),
      el('td', {text: r.pending ? t('pending', {until: fmtTime(r.pending.confirm_by)}) : fmtTime(r.end)}),
      el('td', {className: 'n', text: r.screens})))
      : [el('tr', {}, el('td', {colspan: hHeaders.length, text: t('no history')}))]));
    if (refocus) { const again = main.querySelector(refocus); if (again) again.focus(); }
  }

  form.addEventListener('submit', async ev => {
    ev.preventDefault();
    clearErrors();
    const f = new FormData(form);
    const creatives = f.getAll('creatives');
    for (const name of ['id', 'name']) {
      if (!String(f.get(name) || '').trim()) {
        form.elements[name].setAttribute('aria-invalid', 'true');
        form.elements[name].closest('label').append(el('span', {className: 'field-error', text: form.elements[name].validationMessage || t('refused')}));
        form.elements[name].focus();
        return;
      }
    }
    if (!creatives.length) {
      form.querySelector('fieldset[data-field="creatives"]').append(el('span', {className: 'field-error', text: t('pick creative')}));
      say(said, new Error(t('pick creative')));
      return;
    }
    const target = {};
    if (f.getAll('districts').length) target.districts = f.getAll('districts');
    if (f.getAll('venue_types').length) target.venue_types = f.getAll('venue_types');
    const req = {id: String(f.get('id')).trim(), name: String(f.get('name')).trim(), creatives, target};
    if (f.get('until')) req.until = zonedToIso(f.get('until'));
    const button = form.querySelector('button');
    button.disabled = true;
    try {
      const out = await send('POST', '/emergencies', req);
      say(said, out.emergency.pending ? t('pending ok', {id: out.emergency.id}) : t('started ok', {id: out.emergency.id, n: out.screens.length}));
      form.reset();
    } catch (e) {
      refused(e);
    } finally {
      button.disabled = false;
      await load().catch(() => {});
    }
  });
  return every(5000, load);
}

register({path: 'fleet', title: 'Fleet', roles: ['operator', 'auditor'], menu: true, home: 'operator', render: fleet});
register({path: 'map', title: 'Map', roles: ['operator', 'auditor'], menu: true, render: map});
register({path: 'emergencies', title: 'Emergencies', roles: ['operator'], menu: true, render: emergencies});
