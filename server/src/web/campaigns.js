// The campaign staff's pages (approvers may read them): the campaign list, the calendar of
// flights and dayparts, and the editor with the server's own validation as you type and a
// forecast of what the campaign would deliver. Every rule is checked by the server
// (POST /campaigns/validate runs a save's checks without storing); this module only shows
// what it says, next to the field it names.
import {
  $, $$, el, svg, api, send, all, register, addStrings, nameOf, fmtTime, zonedToIso, isoToZoned,
  hasRole, lang, zones, num, statusLine, say, qs, go,
} from './core.js';

const t = addStrings({
  en: {
    'Campaign name': 'Name', Campaigns: 'Campaigns', Calendar: 'Calendar', 'New campaign': 'New campaign', 'Edit campaign': 'Edit campaign',
    Loading: 'Loading…', 'no campaigns': 'No campaigns yet: make one with “New campaign”.',
    State: 'State', Priority: 'Priority', Weight: 'Weight', Cap: 'Cap (plays per hour)', Flight: 'Flight', Dayparts: 'Dayparts',
    draft: 'draft', submitted: 'submitted', approved: 'approved', rejected: 'rejected', live: 'live', archived: 'archived',
    'live version plays': '{state}; the approved version plays', 'rejected because': 'rejected by {by}: {reason}',
    filler: 'filler', normal: 'normal', high: 'high', none: 'none',
    Id: 'Id', 'Name (Chinese)': 'Name', 'flight start': 'Flight starts ({zone})', 'flight end': 'Flight ends ({zone})',
    'dayparts help': 'One crontab per line (minute hour day-of-month month day-of-week), in each venue’s time zone.',
    Targeting: 'Targeting', 'target help': 'Every key you fill must match (a screen in any of the districts AND of any of the venue types…); leave all empty for every screen.',
    'Venue types': 'Venue types (OpenOOH)', Districts: 'Districts', Venues: 'Venues', Tags: 'Tags', Creatives: 'Creatives',
    Save: 'Save', 'Submit for approval': 'Submit for approval', saved: 'saved', 'submitted!': 'submitted for approval',
    'save first': 'save the campaign first', Validation: 'Checks', checking: 'checking…',
    'no problems': 'A save would be accepted: it targets {screens} screen(s) in {districts}; venue types {types}.',
    'problems found': '{n} problem(s): a save would be refused.', 'every state': 'every state', 'none in state': 'No campaign is {state}.', 'checks as you type': 'The server checks the campaign as you type, as a save would.', 'not parsed': 'not understood',
    'venues count': '{n} venue(s)', expand: 'Show {name}', collapse: 'Hide {name}',
    Forecast: 'Forecast', 'Run forecast': 'Run forecast', 'forecast waiting': 'The forecast runs once the checks pass.',
    forecasting: 'forecasting…', 'forecast head': '{screens} screen(s), {from} to {to}', truncated: '(first 31 days of the flight)',
    'Plays by district': 'Plays by district', 'Plays by venue': 'Plays by venue', 'Plays by campaign': 'Plays by campaign',
    District: 'District', Venue: 'Venue', Campaign: 'Campaign', Without: 'Without it', With: 'With it', Change: 'Change',
    'Loses plays': 'Campaigns that lose plays', Lost: 'Plays lost', 'nobody loses': 'No other campaign loses plays.',
    'bar label': 'all plays without it {without}, with it {with}, of which its own {ours}', 'Its plays': 'Its plays', 'legend without': 'all plays without it;', 'legend with': 'with it, of which', 'legend ours': 'its own.', 'no district': '(no district)', 'read only': 'Read only: only staff edit campaigns.',
    Week: 'Week', Month: 'Month', 'By venue type': 'By venue type', 'By district': 'By district', Previous: 'Previous',
    Next: 'Next', Today: 'Today', 'cal view': 'View', 'cal group': 'Group', 'no flights': 'No campaign flies in this {view}.',
    'all venues': 'All venues', Group: 'Group', 'bar text': '{name}: {from} – {to}; {dayparts}', 'cal range': '{from} – {to} ({zone})',
    'no creatives': 'No creatives yet: upload some first.', thumbnail: 'thumbnail of {name}',
  },
  zh: {
    'Campaign name': '名称', Campaigns: '投放活动', Calendar: '排期日历', 'New campaign': '新建活动', 'Edit campaign': '编辑活动',
    Loading: '加载中…', 'no campaigns': '还没有活动：点“新建活动”创建一个。',
    State: '状态', Priority: '优先级', Weight: '权重', Cap: '上限（每小时播放次数）', Flight: '投放期', Dayparts: '时段',
    draft: '草稿', submitted: '已提交', approved: '已批准', rejected: '已驳回', live: '投放中', archived: '已归档',
    'live version plays': '{state}；已批准的版本仍在播放', 'rejected because': '被{by}驳回：{reason}',
    filler: '填充', normal: '普通', high: '高', none: '无',
    Id: '编号', 'Name (Chinese)': '名称', 'flight start': '开始（{zone}）', 'flight end': '结束（{zone}）',
    'dayparts help': '每行一条 crontab（分 时 日 月 星期），按各场所的时区计算。',
    Targeting: '定向', 'target help': '填写的每一项都须满足（所选区县之一，且所选场所类型之一……）；全部留空即所有屏幕。',
    'Venue types': '场所类型（OpenOOH）', Districts: '区县', Venues: '场所', Tags: '标签', Creatives: '素材',
    Save: '保存', 'Submit for approval': '提交审批', saved: '已保存', 'submitted!': '已提交审批',
    'save first': '请先保存活动', Validation: '检查', checking: '检查中…',
    'no problems': '可以保存：覆盖{districts}的{screens}块屏幕；场所类型：{types}。',
    'problems found': '{n}个问题：保存会被拒绝。', 'every state': '全部状态', 'none in state': '没有{state}的活动。', 'checks as you type': '输入时服务器会按保存时的规则检查活动。', 'not parsed': '无法识别',
    'venues count': '{n}个场所', expand: '展开{name}', collapse: '收起{name}',
    Forecast: '预测', 'Run forecast': '运行预测', 'forecast waiting': '检查通过后自动预测。',
    forecasting: '预测中…', 'forecast head': '{screens}块屏幕，{from}至{to}', truncated: '（投放期的前31天）',
    'Plays by district': '各区县播放次数', 'Plays by venue': '各场所播放次数', 'Plays by campaign': '各活动播放次数',
    District: '区县', Venue: '场所', Campaign: '活动', Without: '不投放时', With: '投放时', Change: '变化',
    'Loses plays': '播放次数减少的活动', Lost: '减少次数', 'nobody loses': '没有其他活动减少播放。',
    'bar label': '不投放时共{without}次，投放时共{with}次，其中本活动{ours}次', 'Its plays': '本活动播放', 'legend without': '不投放时的全部播放；', 'legend with': '投放时的全部播放，其中', 'legend ours': '为本活动。', 'no district': '（无区县）', 'read only': '只读：仅工作人员可编辑活动。',
    Week: '周', Month: '月', 'By venue type': '按场所类型', 'By district': '按区县', Previous: '上一页', Next: '下一页', Today: '今天',
    'cal view': '视图', 'cal group': '分组', 'no flights': '本{view}没有投放中的活动。', 'all venues': '所有场所', Group: '分组',
    'bar text': '{name}：{from} – {to}；{dayparts}', 'cal range': '{from} – {to}（{zone}）',
    'no creatives': '还没有素材：请先上传。', thumbnail: '{name}的缩略图',
  },
});

// ---- shared ---------------------------------------------------------------------------

/** What a campaign's state is, as one word, and a longer text. */
function stateOf(c) {
  if (c.state === 'archived') return {key: 'archived', text: t('archived')};
  const status = c.approval ? c.approval.status : 'draft';
  if (c.state === 'live' && status === 'approved') return {key: 'live', text: t('live')};
  if (c.state === 'live') return {key: status, text: t('live version plays', {state: t(status)})};
  return {key: status, text: t(status)};
}

const enc = encodeURIComponent;
const loading = () => el('p', {className: 'loading', role: 'status', text: t('Loading')});
const flightText = (f, zone = zones.default) => `${fmtTime(f.start, zone, false)} – ${fmtTime(f.end, zone)}`;
/** A daypart's words in the page's language (the crontab when it is not understood). */
const words = d => (lang.current === 'zh' ? d.zh : d.en) || `${d.cron} (${t('not parsed')})`;

/** The venues a target reaches (screens ignored: only admins list them). */
function reached(target, venues) {
  const any = (vals, hit) => !vals || vals.length === 0 || vals.some(hit);
  return venues.filter(v => any(target.venues, id => id === v.spec.id)
    && any(target.venue_types, vt => v.spec.type === vt || v.spec.type.startsWith(`${vt}.`))
    && any(target.districts, d => v.spec.district === d)
    && any(target.tags, tag => (v.spec.tags || []).includes(tag)));
}

// ---- the list ---------------------------------------------------------------------------

async function list(main, _params, query) {
  const head = el('div', {className: 'page-head'}, el('h1', {text: t('Campaigns')}));
  if (hasRole('staff')) head.append(el('a', {id: 'new-campaign', className: 'button primary', href: '#/campaigns/new', text: t('New campaign')}));
  const wait = loading();
  main.append(head, wait);
  const items = await all('/campaigns');
  const rows = items.map(c => {
    const s = stateOf(c);
    const cap = c.spec.max_plays_per_hour;
    const state = el('td', {className: `state state-${s.key}`}, s.text);
    if (c.approval && c.approval.status === 'rejected' && c.approval.reason) {
      state.append(el('span', {className: 'rejection', text: t('rejected because', {by: c.approval.decided_by || '?', reason: c.approval.reason})}));
    }
    return el('tr', {dataset: {id: c.spec.id, state: s.key}},
      el('td', {}, el('a', {href: `#/campaigns/${enc(c.spec.id)}`, text: nameOf(c.spec)}), el('div', {className: 'muted', text: c.spec.id})),
      state,
      el('td', {text: t(c.spec.priority)}),
      num(c.spec.weight),
      num(cap ?? t('none')),
      el('td', {text: flightText(c.spec.flight)}));
  });
  wait.remove();
  if (!rows.length) { main.append(el('p', {className: 'empty', text: t('no campaigns')})); return; }
  // A filter by state, kept in the address (#/campaigns?state=rejected).
  const states = ['draft', 'submitted', 'approved', 'rejected', 'live', 'archived'];
  const filter = el('select', {id: 'state-filter'}, el('option', {value: '', text: t('every state')}),
    states.map(s => el('option', {value: s, text: t(s), selected: query.get('state') === s})));
  const none = el('p', {id: 'filter-empty', className: 'empty', hidden: true});
  const apply = () => {
    let shown = 0;
    for (const r of rows) { r.hidden = !!filter.value && r.dataset.state !== filter.value; shown += r.hidden ? 0 : 1; }
    none.hidden = shown > 0;
    none.textContent = t('none in state', {state: t(filter.value || 'draft')});
  };
  filter.addEventListener('change', () => { history.replaceState(null, '', `#/campaigns${qs({state: filter.value})}`); apply(); });
  main.append(el('div', {className: 'filters'}, el('label', {for: 'state-filter', text: t('State')}), ' ', filter), none);
  apply();
  main.append(el('div', {className: 'scroll'}, el('table', {id: 'campaigns'},
    el('thead', {}, el('tr', {}, ['Campaign name', 'State', 'Priority', {t: 'Weight', n: true}, {t: 'Cap', n: true}, 'Flight']
      .map(h => el('th', {scope: 'col', className: h.n ? 'n' : undefined, text: t(h.t || h)})))),
    el('tbody', {}, rows))));
}

// ---- the calendar -------------------------------------------------------------------------

const DAY = 864e5;
const ymd = ms => new Date(ms).toISOString().slice(0, 10);
const dayMs = s => Date.UTC(+s.slice(0, 4), +s.slice(5, 7) - 1, +s.slice(8, 10));

/** The days (YYYY-MM-DD) of the week (from Monday) or month around `anchor`. */
function daysOf(view, anchor) {
  const a = dayMs(anchor);
  let from; let n;
  if (view === 'month') {
    const d = new Date(a);
    from = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
    n = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1)).getTime() / DAY - from / DAY;
  } else {
    from = a - ((new Date(a).getUTCDay() + 6) % 7) * DAY;
    n = 7;
  }
  return Array.from({length: n}, (_, i) => ymd(from + i * DAY));
}

function shift(view, anchor, by) {
  const d = new Date(dayMs(anchor));
  if (view === 'month') return ymd(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + by, 1));
  return ymd(d.getTime() + by * 7 * DAY);
}

async function calendar(main, _params, query) {
  const zone = zones.default;
  const today = fmtTime(new Date().toISOString(), zone, false).slice(0, 10);
  const view = query.get('view') === 'month' ? 'month' : 'week';
  const by = query.get('by') === 'district' ? 'district' : 'type';
  const date = /^\d{4}-\d{2}-\d{2}$/.test(query.get('date') || '') ? query.get('date') : today;
  const to = changes => go(`calendar${qs({view, by, date, ...changes})}`);
  const toggle = (id, pressed, text, onclick) => el('button', {id, type: 'button', 'aria-pressed': String(pressed), text: t(text), onclick});
  const days = daysOf(view, date);
  main.append(el('h1', {text: t('Calendar')}),
    el('div', {className: 'cal-tools'},
      el('div', {role: 'group', 'aria-label': t('cal view')},
        toggle('cal-week', view === 'week', 'Week', () => to({view: 'week'})),
        toggle('cal-month', view === 'month', 'Month', () => to({view: 'month'}))),
      el('div', {role: 'group', 'aria-label': t('cal group')},
        toggle('cal-by-type', by === 'type', 'By venue type', () => to({by: 'type'})),
        toggle('cal-by-district', by === 'district', 'By district', () => to({by: 'district'}))),
      el('div', {role: 'group', 'aria-label': t('Calendar')},
        el('button', {id: 'cal-prev', type: 'button', text: t('Previous'), onclick: () => to({date: shift(view, date, -1)})}),
        el('button', {id: 'cal-today', type: 'button', text: t('Today'), onclick: () => to({date: today})}),
        el('button', {id: 'cal-next', type: 'button', text: t('Next'), onclick: () => to({date: shift(view, date, 1)})}))),
    el('h2', {id: 'cal-range', text: t('cal range', {from: days[0], to: days[days.length - 1], zone})}));
  const wait = loading();
  main.append(wait);
  const [campaigns, venues, taxonomy] = await Promise.all([all('/campaigns'), hasRole('staff') ? all('/venues').catch(() => []) : [], api('/taxonomy')]);
  const typeName = new Map(taxonomy.map(n => [n.value, n.name]));
  const start = zonedToIso(`${days[0]}T00:00`, zone);
  const end = zonedToIso(`${ymd(dayMs(days[days.length - 1]) + DAY)}T00:00`, zone);
  const flying = campaigns.filter(c => c.state !== 'archived'
    && Date.parse(c.spec.flight.start) < Date.parse(end) && Date.parse(c.spec.flight.end) > Date.parse(start));
  const texts = flying.length ? await send('POST', '/dayparts/text', {dayparts: flying.flatMap(c => c.spec.dayparts)}) : [];
  let at = 0;
  const dayparts = new Map(flying.map(c => [c.spec.id, c.spec.dayparts.map(() => texts[at++])]));
  wait.remove();
  if (!flying.length) { main.append(el('p', {className: 'empty', text: t('no flights', {view: t(view === 'week' ? 'Week' : 'Month')})})); return; }
  // Groups: each campaign under every venue type (or district) it reaches.
  const groups = new Map();
  for (const c of flying) {
    const reach = reached(c.spec.target || {}, venues);
    // Without the venues (only staff list them), by the target's own values.
    const own = (by === 'type' ? c.spec.target?.venue_types : c.spec.target?.districts) || [];
    const keys = venues.length ? [...new Set(reach.map(v => (by === 'type' ? v.spec.type : v.spec.district || '')))] : (own.length ? own : ['*']);
    for (const k of keys) { if (!groups.has(k)) groups.set(k, []); groups.get(k).push(c); }
  }
  const groupName = k => (k === '*' ? t('all venues') : by === 'district' ? (k || t('no district')) : `${typeName.get(k) || k} (${k})`);
  const bodies = [];
  for (const k of [...groups.keys()].sort()) {
    const rows = [el('tr', {className: 'cal-group'}, el('th', {scope: 'rowgroup', colspan: days.length + 1, text: groupName(k)}))];

    const rank = {emergency: 0, high: 1, normal: 2, filler: 3};
    for (const c of groups.get(k).sort((x, y) => (rank[x.spec.priority] ?? 9) - (rank[y.spec.priority] ?? 9) || nameOf(x.spec).localeCompare(nameOf(y.spec)))) {
      const first = isoToZoned(c.spec.flight.start, zone).slice(0, 10);
      const last = isoToZoned(new Date(Date.parse(c.spec.flight.end) - 1).toISOString(), zone).slice(0, 10);
      const from = days.findIndex(d => d >= first);
      const span = days.filter(d => d >= first && d <= last).length;
      const cells = [el('th', {scope: 'row', className: 'cal-name'}, el('a', {href: `#/campaigns/${enc(c.spec.id)}`, text: nameOf(c.spec)}))];
      for (let i = 0; i < from; i++) cells.push(el('td'));
      const text = dayparts.get(c.spec.id).map(words).join('; ');
      cells.push(el('td', {colspan: span, className: `cal-bar prio-${c.spec.priority}${first < days[0] ? ' cont-before' : ''}${last > days[days.length - 1] ? ' cont-after' : ''}`,
        dataset: {campaign: c.spec.id}},
      el('span', {className: 'bar-name', text: nameOf(c.spec)}), ' ', el('span', {className: 'bar-dayparts', text})));
      for (let i = from + span; i < days.length; i++) cells.push(el('td'));
      rows.push(el('tr', {dataset: {id: c.spec.id, group: k}}, cells));
    }
    bodies.push(el('tbody', {dataset: {group: k}}, rows));
  }
  const dayHead = d => {
    const wd = new Date(dayMs(d)).toLocaleDateString(lang.current === 'zh' ? 'zh-CN' : 'en', {weekday: 'short', timeZone: 'UTC'});
    return el('th', {scope: 'col', className: `cal-day${d === today ? ' today' : ''}`, dataset: {day: d}},
      el('span', {text: view === 'week' ? d.slice(5) : String(+d.slice(8))}), el('span', {className: 'wd', text: wd}));
  };
  main.append(el('div', {className: 'scroll'}, el('table', {id: 'calendar', className: `cal cal-${view}`, dataset: {view, by}},
    el('thead', {}, el('tr', {}, el('th', {scope: 'col', text: t(by === 'type' ? 'Venue types' : 'Districts')}), days.map(dayHead))),
    bodies)));
}

// ---- the editor -----------------------------------------------------------------------------

/** A box for a field's problem, next to it. */
const problemBox = key => el('p', {className: 'problem', id: `problem-${key}`, dataset: {field: key}, role: 'alert'});

/** The field a server problem names, as one of the editor's boxes. */
function boxKey(field) {
  const f = String(field || '');
  if (f.startsWith('dayparts')) return 'dayparts';
  if (f.startsWith('creatives')) return 'creatives';
  if (f.startsWith('target')) return 'target';
  if (f.startsWith('flight')) return 'flight';
  if (['id', 'name', 'priority', 'weight', 'max_plays_per_hour'].includes(f)) return f;
  return 'general';
}

function checkTree(taxonomy, venues, selected, disabled) {
  const count = new Map();
  for (const v of venues) {
    for (let s = v.spec.type; s; s = s.includes('.') ? s.slice(0, s.lastIndexOf('.')) : '') count.set(s, (count.get(s) || 0) + 1);
  }
  const children = new Map();
  for (const n of taxonomy) { const p = n.parent ?? 0; if (!children.has(p)) children.set(p, []); children.get(p).push(n); }
  const node = n => {
    const kids = children.get(n.id) || [];
    const box = el('input', {type: 'checkbox', name: 'venue_type', value: n.value, id: `vt-${n.value}`, checked: selected.has(n.value), disabled});
    const label = el('label', {for: `vt-${n.value}`}, `${n.name} `, el('code', {text: n.value}),
      count.get(n.value) ? el('span', {className: 'count', text: ` · ${t('venues count', {n: count.get(n.value)})}`}) : null);
    const li = el('li', {className: kids.length ? 'branch' : 'leaf'}, box, ' ', label);
    if (kids.length) {
      const open = kids.some(function has(k) { return selected.has(k.value) || count.has(k.value) || (children.get(k.id) || []).some(has); });
      const sub = el('ul', {hidden: !open});
      const btn = el('button', {type: 'button', className: 'tree-toggle', 'aria-expanded': String(open), 'aria-label': t(open ? 'collapse' : 'expand', {name: n.name}), text: open ? '−' : '+'});
      btn.addEventListener('click', () => {
        const now = sub.hidden;
        sub.hidden = !now;
        btn.setAttribute('aria-expanded', String(now));
        btn.setAttribute('aria-label', t(now ? 'collapse' : 'expand', {name: n.name}));
        btn.textContent = now ? '−' : '+';
        if (now && !sub.childElementCount) sub.append(...kids.map(node));
      });
      if (open) sub.append(...kids.map(node));
      li.prepend(btn, ' ');
      li.append(sub);
    }
    return li;
  };
  return el('ul', {id: 'venue-types', className: 'tree'}, (children.get(0) || []).map(node));
}

/** Checkboxes `name` with values; `label(v)` their text. */
function boxes(id, name, values, selected, label, disabled) {
  return el('div', {id, className: 'boxes'}, values.map(v => el('label', {className: 'box'},
    el('input', {type: 'checkbox', name, value: v, checked: selected.has(v), disabled}), ' ', label(v))));
}

async function editor(main, params) {
  const isNew = !params.id;
  const staff = hasRole('staff');
  const zone = zones.default;
  main.append(el('h1', {text: t(isNew ? 'New campaign' : 'Edit campaign')}));
  const wait = loading();
  main.append(wait);
  const [entity, venues, creatives, taxonomy, campaigns] = await Promise.all([
    isNew ? null : api(`/campaigns/${enc(params.id)}`),
    staff ? all('/venues').catch(() => []) : [],
    all('/creatives'),
    api('/taxonomy'),
    all('/campaigns'),
  ]);
  wait.remove();
  const names = new Map(campaigns.map(c => [c.spec.id, c.spec]));
  const spec = entity ? entity.spec : {id: '', name: '', priority: 'normal', weight: 1, flight: {start: '', end: ''}, dayparts: ['* * * * *'], target: {}, creatives: []};
  const target = spec.target || {};
  const ro = !staff;
  const input = (name, attrs = {}) => el('input', {name, id: `f-${name}`, 'aria-describedby': `problem-${boxKey(name)}`, disabled: ro, ...attrs});
  const labelled = (name, text, control, extra) => el('div', {className: 'field'}, el('label', {for: control.id, text}), control, extra, problemBox(name));

  // The state line and the rejection.
  const stateLine = el('p', {id: 'campaign-state', role: 'status'});
  const rejection = el('p', {id: 'rejection', className: 'rejection', hidden: true});
  const showState = e => {
    if (!e) { stateLine.textContent = `${t('State')}: ${t('draft')}`; stateLine.dataset.state = 'new'; return; }
    const s = stateOf(e);
    stateLine.textContent = `${t('State')}: ${s.text}`;
    stateLine.dataset.state = s.key;
    const reason = e.approval && e.approval.status === 'rejected' ? e.approval.reason : null;
    rejection.hidden = !reason;
    rejection.textContent = reason ? t('rejected because', {by: e.approval.decided_by || '?', reason}) : '';
  };
  showState(entity);
  if (ro) main.append(el('p', {className: 'muted', text: t('read only')}));

  const daypartsArea = el('textarea', {name: 'dayparts', id: 'f-dayparts', rows: 4, cols: 28, spellcheck: 'false', disabled: ro,
    'aria-describedby': 'dayparts-help problem-dayparts'});
  daypartsArea.value = spec.dayparts.join('\n');
  const daypartsText = el('ol', {id: 'dayparts-text', 'aria-live': 'polite', 'aria-label': t('Dayparts')});
  const districts = [...new Set([...venues.map(v => v.spec.district), ...(target.districts || [])].filter(Boolean))].sort();
  const tags = [...new Set([...venues.flatMap(v => v.spec.tags || []), ...(target.tags || [])])].sort();
  const byId = new Map(venues.map(v => [v.spec.id, v]));
  for (const id of target.venues || []) if (!byId.has(id)) byId.set(id, {spec: {id}});
  const liveCreatives = creatives.filter(c => !c.retired_at);
  const creativeBoxes = el('div', {id: 'creatives', className: 'creatives'}, liveCreatives.length ? liveCreatives.map(c => {
    const name = c.spec.title || c.spec.id;
    return el('label', {className: 'creative'},
      el('input', {type: 'checkbox', name: 'creative', value: c.spec.id, checked: spec.creatives.includes(c.spec.id), disabled: ro}),
      el('img', {src: `/api/v1/creatives/${enc(c.spec.id)}/thumbnail`, alt: t('thumbnail', {name}), loading: 'lazy', width: 96, height: 54}),
      el('span', {className: 'creative-name', text: name}),
      el('span', {className: 'muted', text: `${c.spec.id} · ${c.measurement ? `${c.measurement.width}×${c.measurement.height}` : ''} · ${c.spec.duration_seconds}s${c.approval && c.approval.status !== 'approved' ? ` · ${t(c.approval.status)}` : ''}`}));
  }) : [el('p', {className: 'empty', text: t('no creatives')})]);

  const priority = el('select', {name: 'priority', id: 'f-priority', disabled: ro, 'aria-describedby': 'problem-priority'},
    ['filler', 'normal', 'high'].map(p => el('option', {value: p, text: t(p), selected: spec.priority === p})));
  const form = el('form', {id: 'campaign-form', novalidate: true},
    el('div', {className: 'editor-grid'},
      el('div', {},
        el('fieldset', {}, el('legend', {text: t('Campaign')}),
          labelled('id', t('Id'), input('id', {value: spec.id, readonly: !isNew, required: true, size: 24, autocomplete: 'off'})),
          labelled('name', t('Name (Chinese)'), input('name', {value: spec.name, required: true, size: 32, autocomplete: 'off'})),
          labelled('priority', t('Priority'), priority),
          labelled('weight', t('Weight'), input('weight', {type: 'number', min: 1, step: 1, value: spec.weight, size: 5})),
          labelled('max_plays_per_hour', t('Cap'), input('max_plays_per_hour', {type: 'number', min: 1, step: 1, value: spec.max_plays_per_hour ?? '', size: 5})),
          el('div', {className: 'flight'},
            labelled('flight', t('flight start', {zone}), input('flight_start', {type: 'datetime-local', value: spec.flight.start ? isoToZoned(spec.flight.start, zone) : '', 'aria-describedby': 'problem-flight'})),
            el('div', {className: 'field'}, el('label', {for: 'f-flight_end', text: t('flight end', {zone})}),
              input('flight_end', {type: 'datetime-local', value: spec.flight.end ? isoToZoned(spec.flight.end, zone) : '', 'aria-describedby': 'problem-flight'})))),
        el('fieldset', {className: 'dayparts'}, el('legend', {text: t('Dayparts')}),
          el('p', {id: 'dayparts-help', className: 'muted', text: t('dayparts help')}),
          el('div', {className: 'dayparts-pair'}, el('div', {}, el('label', {for: 'f-dayparts', className: 'sr-only', text: t('Dayparts')}), daypartsArea), daypartsText),
          problemBox('dayparts'))),
      el('div', {},
        el('fieldset', {id: 'targeting'}, el('legend', {text: t('Targeting')}),
          el('p', {className: 'muted', text: t('target help')}),
          problemBox('target'),
          el('fieldset', {}, el('legend', {text: t('Districts')}), boxes('districts', 'district', districts, new Set(target.districts || []), d => d, ro)),
          el('fieldset', {}, el('legend', {text: t('Venue types')}), checkTree(taxonomy, venues, new Set(target.venue_types || []), ro)),
          el('details', {}, el('summary', {text: t('Venues')}),
            boxes('venues', 'venue', [...byId.keys()], new Set(target.venues || []), id => `${nameOf({...byId.get(id).spec, id})} (${id})`, ro)),
          el('details', {}, el('summary', {text: t('Tags')}), boxes('tags', 'tag', tags, new Set(target.tags || []), x => x, ro))))),
    el('fieldset', {}, el('legend', {text: t('Creatives')}), problemBox('creatives'), creativeBoxes),
    problemBox('general'),
    el('section', {id: 'validation-box', 'aria-labelledby': 'validation-h'},
      el('h2', {id: 'validation-h', text: t('Validation')}), el('div', {id: 'validation', 'aria-live': 'polite'})),
    staff ? el('div', {className: 'actions'},
      el('button', {id: 'save', type: 'submit', className: 'primary', text: t('Save')}), ' ',
      el('button', {id: 'submit', type: 'button', text: t('Submit for approval'), disabled: isNew}), ' ',
      statusLine('campaign-said')) : null);
  const forecastBox = el('section', {id: 'forecast', 'aria-labelledby': 'forecast-h'},
    el('h2', {id: 'forecast-h', text: t('Forecast')}),
    staff ? el('button', {id: 'forecast-run', type: 'button', text: t('Run forecast')}) : null,
    el('div', {id: 'forecast-body', 'aria-live': 'polite'}, el('p', {className: 'muted', text: t('forecast waiting')})));
  main.append(stateLine, rejection, form, forecastBox);

  /** The campaign the form describes, as the API takes it. */
  const read = () => {
    const f = new FormData(form);
    const list = name => f.getAll(name).map(String);
    const tgt = {};
    if (target.screens) tgt.screens = target.screens;
    for (const [key, name] of [['venues', 'venue'], ['venue_types', 'venue_type'], ['districts', 'district'], ['tags', 'tag']]) {
      const vals = list(name);
      if (vals.length) tgt[key] = vals;
    }
    const n = v => (v === '' || v === null ? null : Number(v));
    const out = {
      id: String(f.get('id') || '').trim(),
      name: String(f.get('name') || ''),
      priority: String(f.get('priority') || 'normal'),
      weight: Number.isInteger(n(f.get('weight'))) && n(f.get('weight')) >= 0 ? n(f.get('weight')) : 0,
      flight: {start: zonedToIso(String(f.get('flight_start') || ''), zone) || '', end: zonedToIso(String(f.get('flight_end') || ''), zone) || ''},
      dayparts: String(f.get('dayparts') || '').split('\n').map(s => s.trim()).filter(Boolean),
      target: tgt,
      creatives: list('creative'),
    };
    const cap = n(f.get('max_plays_per_hour'));
    if (cap !== null && Number.isInteger(cap) && cap >= 0) out.max_plays_per_hour = cap;
    return out;
  };
  if (ro) {
    // Approvers read: the dayparts in words, no validation (a staff action).
    const texts = await send('POST', '/dayparts/text', {dayparts: spec.dayparts});
    daypartsText.replaceChildren(...texts.map(d => el('li', {text: words(d)})));
    return undefined;
  }

  const said = $('#campaign-said', form);
  const validation = $('#validation', form);
  let timer = null;
  let asked = 0;
  let lastGood = null;
  let live = true;
  const showProblems = problems => {
    for (const box of $$('.problem', form)) box.textContent = '';
    for (const c of $$('[aria-invalid]', form)) c.removeAttribute('aria-invalid');
    for (const p of problems) {
      const key = boxKey(p.field);
      const box = $(`#problem-${key}`, form);
      box.textContent = box.textContent ? `${box.textContent} ${p.message}` : p.message;
      const control = $(`#f-${key === 'flight' ? 'flight_start' : key}`, form);
      if (control) control.setAttribute('aria-invalid', 'true');
    }
  };
  async function check() {
    const mine = ++asked;
    const c = read();
    validation.replaceChildren(el('p', {className: 'muted', text: t('checking')}));
    let v;
    try {
      v = await send('POST', `/campaigns/validate${qs({new: String(isNew)})}`, c);
    } catch (e) {
      if (mine !== asked || !live) return;
      // A body the server cannot read at all (a 400 naming the field).
      showProblems([{field: e.field || 'general', message: e.message}]);
      validation.replaceChildren(el('ul', {}, el('li', {className: 'bad', text: e.message})));
      return;
    }
    if (mine !== asked || !live) return;
    daypartsText.replaceChildren(...v.dayparts.map((d, i) => el('li', {className: d.en ? 'ok-text' : 'bad', dataset: {index: i, cron: d.cron}, text: words(d)})));
    showProblems(v.problems);
    if (v.problems.length) {
      validation.replaceChildren(el('p', {className: 'bad', text: t('problems found', {n: v.problems.length})}),
        el('ul', {}, v.problems.map(p => el('li', {dataset: {field: p.field}}, el('code', {text: p.field}), ': ', p.message))));
      return;
    }
    validation.replaceChildren(el('p', {className: 'ok', dataset: {screens: v.screens}, text: t('no problems', {
      screens: v.screens, districts: v.districts.join(', ') || '—', types: v.venue_types.join(', ') || '—'})}));
    const key = JSON.stringify(c);
    if (key !== lastGood) { lastGood = key; forecast(c); }
  }
  const later = () => { clearTimeout(timer); timer = setTimeout(check, 300); };
  form.addEventListener('input', later);
  form.addEventListener('change', later);

  let forecastAsked = 0;
  async function forecast(c = read()) {
    const mine = ++forecastAsked;
    const body = $('#forecast-body');
    body.replaceChildren(el('p', {className: 'muted', role: 'status', text: t('forecasting')}));
    try {
      const f = await send('POST', '/forecast', c);
      if (mine === forecastAsked && live) {
        names.set(c.id, c);
        body.replaceChildren(...forecastView(f, byId, names, zone));
      }
    } catch (e) {
      if (mine === forecastAsked && live) body.replaceChildren(el('p', {className: 'said bad', role: 'alert', text: `${t('refused')}: ${e.message}`}));
    }
  }
  $('#forecast-run').addEventListener('click', () => forecast());

  const saveIt = async () => {
    const c = read();
    const saved = isNew && !form.dataset.saved ? await send('POST', '/campaigns', c) : await send('PUT', `/campaigns/${enc(c.id)}`, c);
    form.dataset.saved = saved.spec.id;
    // A new campaign's page is replaced by the saved campaign's (`outcome` goes there):
    // its state shows there, not on a page about to go.
    if (!isNew) showState(saved);
    return saved;
  };
  const outcome = async (what, done) => {
    try {
      const e = await what();
      say(said, t(done));
      if (isNew) { go(`campaigns/${enc(e.spec.id)}`); return; }
      $('#submit', form).disabled = false;
    } catch (e) {
      say(said, e);
      if (e.field) showProblems([{field: e.field, message: e.message}]);
    }
  };
  form.addEventListener('submit', ev => { ev.preventDefault(); outcome(saveIt, 'saved'); });
  $('#submit', form).addEventListener('click', () => outcome(async () => {
    const c = read();
    await saveIt();
    const e = await send('POST', `/campaigns/${enc(c.id)}/submit`);
    showState(e);
    return e;
  }, 'submitted!'));
  // A new form is checked once something is typed: an empty one is not yet wrong.
  if (isNew) validation.replaceChildren(el('p', {className: 'muted', text: t('checks as you type')}));
  else check();
  return () => { live = false; clearTimeout(timer); };
}

// ---- the forecast -------------------------------------------------------------------------

/** Two bars scaled to `max`: without the campaign, and with it (its own plays marked). */
function bars(without, withIt, ours, max) {
  const w = 160;
  const len = v => (max ? Math.max(v ? 1 : 0, Math.round((v / max) * w)) : 0);
  return svg('svg', {width: w, height: 18, viewBox: `0 0 ${w} 18`, role: 'img', 'aria-label': t('bar label', {without, with: withIt, ours})},
    svg('rect', {x: 0, y: 1, width: len(without), height: 7, class: 'bar-without'}),
    svg('rect', {x: 0, y: 10, width: len(withIt - ours), height: 7, class: 'bar-with'}),
    svg('rect', {x: len(withIt - ours), y: 10, width: len(ours), height: 7, class: 'bar-ours'}));
}

function countsTable(id, caption, head, rows, name, withOurs = true) {
  const max = Math.max(0, ...rows.flatMap(r => [r.without, r.with]));
  return el('table', {id, className: 'forecast-table'},
    el('caption', {text: t(caption)}),
    el('thead', {}, el('tr', {}, [head, withOurs ? {t: 'Its plays', n: 1} : null, {t: 'Without', n: 1}, {t: 'With', n: 1}, {t: 'Change', n: 1}, '']
      .filter(h => h !== null).map(h => el('th', {scope: 'col', className: h.n ? 'n' : undefined, text: h ? t(h.t || h) : ''})))),
    el('tbody', {}, rows.map(r => el('tr', {dataset: {id: r.id}},
      el('th', {scope: 'row', text: name(r.id)}),
      withOurs ? num(r.campaign ?? 0, 'ours') : null,
      num(r.without, 'without'), num(r.with, 'with'),
      num(r.with - r.without > 0 ? `+${r.with - r.without}` : r.with - r.without, r.with < r.without ? 'bad' : ''),
      el('td', {}, bars(r.without, r.with, r.campaign ?? 0, max))))));
}

function forecastView(f, venues, campaigns, zone) {
  const out = [el('p', {id: 'forecast-head', dataset: {screens: f.screens}},
    t('forecast head', {screens: f.screens, from: fmtTime(f.from, zone, false), to: fmtTime(f.to, zone)}), f.truncated ? ` ${t('truncated')}` : '')];
  out.push(el('p', {className: 'muted legend'}, el('span', {className: 'key key-without'}), ` ${t('legend without')} `,
    el('span', {className: 'key key-with'}), ` ${t('legend with')} `, el('span', {className: 'key key-ours'}), ` ${t('legend ours')}`));
  const venueName = id => (venues.has(id) ? nameOf({...venues.get(id).spec, id}) : id);
  out.push(el('div', {className: 'forecast-tables'},
    countsTable('forecast-districts', 'Plays by district', 'District', f.by_district, id => id || t('no district')),
    countsTable('forecast-campaigns', 'Plays by campaign', 'Campaign', f.by_campaign, id => nameOf(campaigns.get(id) || {id}), false)));
  out.push(el('div', {className: 'scroll'}, countsTable('forecast-venues', 'Plays by venue', 'Venue', f.by_venue, venueName)));
  out.push(el('h3', {text: t('Loses plays')}));
  out.push(f.displaced.length
    ? el('table', {id: 'forecast-displaced'}, el('thead', {}, el('tr', {}, el('th', {scope: 'col', text: t('Campaign')}), el('th', {scope: 'col', className: 'n', text: t('Lost')}))),
      el('tbody', {}, f.displaced.map(d => el('tr', {dataset: {id: d.campaign}}, el('td', {text: nameOf(campaigns.get(d.campaign) || {id: d.campaign})}), num(d.lost, 'bad')))))
    : el('p', {id: 'forecast-displaced', text: t('nobody loses')}));
  return out;
}

register({path: 'campaigns', title: 'Campaigns', roles: ['staff', 'approver'], menu: true, home: 'staff', render: list});
register({path: 'calendar', title: 'Calendar', roles: ['staff', 'approver'], menu: true, render: calendar});
register({path: 'campaigns/new', title: 'New campaign', roles: ['staff'], render: editor});
register({path: 'campaigns/:id', title: 'Edit campaign', roles: ['staff', 'approver'], render: editor});
