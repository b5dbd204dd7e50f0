// The auditor's pages: #/reports (planned against delivered over a window in a chosen
// zone, per district, venue, screen, campaign or creative, with the drill-down district ->
// venue -> screen -> plays, hourly and daily charts drawn as SVG, and exports of exactly
// the rows shown), #/changes (the change log with field diffs) and #/audit (the last audit
// verdict, and running it). Data from the server is only ever set as text.
import {el, svg, api, apiRaw, qs, register, addStrings, nameOf, fmtTime, zonedToIso, statusLine, say, field, lang, zones} from './core.js';

const t = addStrings({
  en: {
    Reports: 'Reports', Changes: 'Change log', Audit: 'Audit',
    'Planned and delivered': 'Planned and delivered', From: 'From (first day)', To: 'To (last day)', Zone: 'Time zone', By: 'Rows per',
    Show: 'Show', districts: 'District', venues: 'Venue', screens: 'Screen', campaigns: 'Campaign', creatives: 'Creative', plays: 'Plays',
    'Only campaign': 'Only campaign', 'every campaign': 'every campaign',
    name: 'Name', id: 'Id', detail: 'Detail', planned: 'Planned', delivered: 'Delivered', partial: 'Partial', failed: 'Failed',
    compliance: 'Compliance', total: 'Total', 'venue type': 'Venue type', 'venue count': 'Venues', venue: 'Venue',
    good: 'on target', short: 'short', poor: 'poor', 'nothing planned': 'nothing planned',
    'times in': 'Window {from} to {to}; times in {zone}.', 'all districts': 'All districts',
    'no district': '(no district)', loading: 'Loading…',
    'no rows': 'Nothing planned nor delivered here in this window.', 'no plays': 'No plays yet in this window on this screen.',
    time: 'Time', campaign: 'Campaign', creative: 'Creative', status: 'Status', duration: 'Duration (s)', synced: 'Clock synced',
    'Per hour': 'Planned and delivered per hour', 'Per day': 'Planned and delivered per day',
    'chart table': 'The same figures as a table', bucket: 'Starting', 'no buckets': 'The window is empty.',
    'Export CSV': 'Export CSV', 'Export JSON': 'Export JSON', 'server csv': "The server's own CSV for this query",
    'download ready': 'Exported {n} rows: {file}', 'open plays': 'plays of {name}', narrow: 'narrow to {name}',
    'bad dates': 'pick both dates, the first not after the last',
    // changes
    'Entity kind': 'Entity kind', 'every kind': 'every kind', number: '#', author: 'Author', at: 'Time', entities: 'Changed',
    comment: 'Comment', More: 'More', 'show diff': 'Show changes', 'hide diff': 'Hide changes', field: 'Field', before: 'Before', after: 'After',
    'no changes': 'No change recorded for this kind yet.', 'no field changes': 'no field changed', event: 'event: {kind}',
    created: 'created', deleted: 'deleted', 'end of log': 'That is the whole log.', 'n of kind': '{n} × {kind}',
    // audit
    'Last audit': 'Last audit', 'Run the audit': 'Run the audit now', 'never run': 'The audit has never been run on this server.',
    running: 'Auditing every signature, chain and play…', intact: 'intact', problems: '{n} problem(s) found',
    'audit when': 'Run {at} by {by}', verdict: 'Verdict', 'audit lines': 'What the audit printed',
  },
  zh: {
    Reports: '报表', Changes: '变更日志', Audit: '审计',
    'Planned and delivered': '计划与实播', From: '起始日', To: '截止日（含）', Zone: '时区', By: '按…分行',
    Show: '显示', districts: '区', venues: '场所', screens: '屏幕', campaigns: '广告活动', creatives: '素材', plays: '播放记录',
    'Only campaign': '仅此活动', 'every campaign': '全部活动',
    name: '名称', id: '编号', detail: '详情', planned: '计划', delivered: '实播', partial: '部分播放', failed: '失败',
    compliance: '达成率', total: '合计', 'venue type': '场所类型', 'venue count': '场所数', venue: '场所',
    good: '达标', short: '略低', poor: '偏低', 'nothing planned': '无计划',
    'times in': '时间窗 {from} 至 {to}；时间均为 {zone}。', 'all districts': '全部区',
    'no district': '（无区）', loading: '加载中…',
    'no rows': '此时间窗内这里既无计划也无播放。', 'no plays': '此时间窗内该屏幕尚无播放记录。',
    time: '时间', campaign: '广告活动', creative: '素材', status: '状态', duration: '时长（秒）', synced: '时钟已同步',
    'Per hour': '每小时计划与实播', 'Per day': '每日计划与实播',
    'chart table': '以表格显示相同数据', bucket: '开始', 'no buckets': '时间窗为空。',
    'Export CSV': '导出 CSV', 'Export JSON': '导出 JSON', 'server csv': '服务器生成的同一查询 CSV',
    'download ready': '已导出 {n} 行：{file}', 'open plays': '{name} 的播放记录', narrow: '细分到 {name}',
    'bad dates': '请选择两个日期，起始日不得晚于截止日',
    'Entity kind': '对象类型', 'every kind': '全部类型', number: '序号', author: '作者', at: '时间', entities: '变更对象',
    comment: '说明', More: '更多', 'show diff': '显示变更', 'hide diff': '隐藏变更', field: '字段', before: '之前', after: '之后',
    'no changes': '该类型尚无变更记录。', 'no field changes': '无字段变化', event: '事件：{kind}',
    created: '新建', deleted: '删除', 'end of log': '日志已全部显示。', 'n of kind': '{kind} × {n}',
    'Last audit': '最近一次审计', 'Run the audit': '立即审计', 'never run': '本服务器尚未运行过审计。',
    running: '正在核验所有签名、哈希链与播放记录…', intact: '完好', problems: '发现 {n} 个问题',
    'audit when': '{by} 于 {at} 运行', verdict: '结论', 'audit lines': '审计输出',
  },
});

// ---- names -------------------------------------------------------------------------------

let namesCache = null;
/** The names of venues, screens, campaigns and creatives, the catalogue's zone and the
 * default window (GET /reports/names), fetched once per page load. */
async function names() {
  if (!namesCache) {
    const n = await api('/reports/names');
    n.venue = Object.fromEntries(n.venues.map(v => [v.id, v]));
    n.screen = Object.fromEntries(n.screens.map(s => [s.id, s]));
    n.campaign = Object.fromEntries(n.campaigns.map(c => [c.id, c]));
    n.creative = Object.fromEntries(n.creatives.map(c => [c.id, c]));
    namesCache = n;
  }
  return namesCache;
}

// Beijing's districts by name (ids are their pinyin); other ids show as they are.
const DISTRICTS = {dongcheng: '东城区', xicheng: '西城区', chaoyang: '朝阳区', haidian: '海淀区', fengtai: '丰台区', shijingshan: '石景山区',
  mentougou: '门头沟区', fangshan: '房山区', tongzhou: '通州区', shunyi: '顺义区', changping: '昌平区', daxing: '大兴区', huairou: '怀柔区',
  pinggu: '平谷区', miyun: '密云区', yanqing: '延庆区'};

function districtName(d) {
  if (d === '(none)') return t('no district');
  if (!DISTRICTS[d]) return d;
  return lang.current === 'zh' ? DISTRICTS[d] : `${d[0].toUpperCase()}${d.slice(1)}`;
}

/** The display name of a row's key at a level. */
function labelOf(n, by, id) {
  switch (by) {
    case 'districts': return districtName(id);
    case 'venues': return nameOf(n.venue[id]) || id;
    case 'screens': { const s = n.screen[id]; return s ? `${nameOf(n.venue[s.venue]) || s.venue} · ${id.split('-').pop()}` : id; }
    case 'campaigns': return nameOf(n.campaign[id]) || id;
    case 'creatives': return nameOf(n.creative[id]) || id;
    default: return id;
  }
}

// ---- dates -------------------------------------------------------------------------------

/** The local date (YYYY-MM-DD) of an instant in a zone. */
const dateIn = (iso, zone) => fmtTime(iso, zone, false).slice(0, 10);

function nextDay(date) {
  const d = new Date(`${date}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + 1);
  return d.toISOString().slice(0, 10);
}

/** The window [from 00:00, day after `to` 00:00) in `zone`, as RFC 3339 instants. */
function windowOf(from, to, zone) {
  if (!from || !to || from > to) return null;
  return {from: zonedToIso(`${from}T00:00`, zone), to: zonedToIso(`${nextDay(to)}T00:00`, zone)};
}

// ---- compliance --------------------------------------------------------------------------

/** The compliance text: the figure and a word (the exports carry the same text). */
function complianceText(planned, delivered, pct) {
  if (planned === 0 && delivered === 0) return t('nothing planned');
  return `${pct.toFixed(1)} % ${pct >= 95 ? t('good') : pct >= 80 ? t('short') : t('poor')}`;
}

/** A compliance cell: the text, and a colour (never colour alone). */
function complianceCell(planned, delivered, pct) {
  if (planned === 0 && delivered === 0) return el('td', {className: 'n muted', text: t('nothing planned')});
  const cls = pct >= 95 ? 'ok' : pct >= 80 ? 'warn' : 'bad';
  return el('td', {className: `n compliance ${cls}`, dataset: {level: cls}},
    el('span', {className: `dot ${cls}`, 'aria-hidden': 'true'}), complianceText(planned, delivered, pct));
}

const pctOf = (p, d) => (p === 0 ? (d === 0 ? 100 : 0) : (100 * d) / p);

// ---- export ------------------------------------------------------------------------------

function csvCell(v) {
  const s = String(v ?? '');
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

let lastExported = null;
/** The last export made in the page: {file, type, text} (what was downloaded). */
export function lastExport() { return lastExported; }

/** CSV of a header row and rows of text. */
export function toCsv(head, rows) {
  return [head, ...rows].map(r => r.map(csvCell).join(',')).join('\r\n') + '\r\n';
}

// ---- charts ------------------------------------------------------------------------------

const CH = {w: 640, h: 220, left: 52, right: 10, top: 28, bottom: 36};

/** A bar chart of planned and delivered per bucket, with axes, legend, a <title> per bar,
 * and each bucket's figures on its group (data-start, data-planned, data-delivered). */
function chart(id, title, series, zone, bucket) {
  const label = b => (bucket === 'day' ? dateIn(b.start, zone) : fmtTime(b.start, zone, false).slice(5));
  const max = Math.max(1, ...series.buckets.flatMap(b => [b.planned, b.delivered]));
  const n = Math.max(1, series.buckets.length);
  const plotW = CH.w - CH.left - CH.right;
  const plotH = CH.h - CH.top - CH.bottom;
  const step = plotW / n;
  const barW = Math.min(36, Math.max(1, step * 0.4));
  const y = v => CH.top + plotH - (plotH * v) / max;
  const titleId = `${id}-title`;
  const g = svg('svg', {id, viewBox: `0 0 ${CH.w} ${CH.h}`, role: 'img', 'aria-labelledby': titleId, class: 'chart', preserveAspectRatio: 'xMinYMin meet'},
    svg('title', {id: titleId, text: `${title} (${zone})`}));
  // y axis with 4 ticks
  for (let i = 0; i <= 4; i++) {
    const v = Math.round((max * i) / 4);
    g.append(svg('line', {x1: CH.left, x2: CH.w - CH.right, y1: y(v), y2: y(v), class: 'grid'}),
      svg('text', {x: CH.left - 6, y: y(v) + 4, class: 'tick', 'text-anchor': 'end', text: v}));
  }
  g.append(svg('line', {x1: CH.left, x2: CH.left, y1: CH.top, y2: CH.top + plotH, class: 'axis'}),
    svg('line', {x1: CH.left, x2: CH.w - CH.right, y1: CH.top + plotH, y2: CH.top + plotH, class: 'axis'}));
  const every = Math.ceil(n / 8);
  series.buckets.forEach((b, i) => {
    const x = CH.left + i * step + step * 0.1;
    const when = fmtTime(b.start, zone);
    g.append(svg('g', {class: 'bucket', 'data-start': b.start, 'data-planned': b.planned, 'data-delivered': b.delivered},
      svg('rect', {class: 'bar planned', x, y: y(b.planned), width: barW, height: CH.top + plotH - y(b.planned)},
        svg('title', {text: `${when}: ${t('planned')} ${b.planned}`})),
      svg('rect', {class: 'bar delivered', x: x + barW, y: y(b.delivered), width: barW, height: CH.top + plotH - y(b.delivered)},
        svg('title', {text: `${when}: ${t('delivered')} ${b.delivered}`}))));
    if (i % every === 0) g.append(svg('text', {x: x + barW, y: CH.top + plotH + 16, class: 'tick', 'text-anchor': 'middle', text: label(b)}));
  });
  // legend
  g.append(svg('rect', {x: CH.left, y: 6, width: 12, height: 12, class: 'bar planned'}),
    svg('text', {x: CH.left + 16, y: 16, class: 'legend', text: t('planned')}),
    svg('rect', {x: CH.left + 100, y: 6, width: 12, height: 12, class: 'bar delivered'}),
    svg('text', {x: CH.left + 116, y: 16, class: 'legend', text: t('delivered')}),
    svg('text', {x: CH.w - CH.right, y: CH.h - 6, class: 'tick', 'text-anchor': 'end', text: zone}));
  const alt = el('details', {className: 'chart-table'}, el('summary', {text: t('chart table')}),
    el('table', {id: `${id}-table`},
      el('caption', {text: `${title} (${zone})`}),
      el('thead', {}, el('tr', {}, el('th', {scope: 'col', text: t('bucket')}), el('th', {scope: 'col', className: 'n', text: t('planned')}), el('th', {scope: 'col', className: 'n', text: t('delivered')}))),
      el('tbody', {}, series.buckets.map(b => el('tr', {}, el('td', {text: fmtTime(b.start, zone)}), el('td', {className: 'n', text: b.planned}), el('td', {className: 'n', text: b.delivered})))),
      el('tfoot', {}, el('tr', {}, el('th', {scope: 'row', text: t('total')}), el('td', {className: 'n', text: series.planned}), el('td', {className: 'n', text: series.delivered})))));
  return el('figure', {className: 'chart-box'}, el('figcaption', {text: title}),
    series.buckets.length ? g : el('p', {text: t('no buckets')}), alt);
}

// ---- #/reports ---------------------------------------------------------------------------

const LEVELS = ['districts', 'venues', 'screens', 'campaigns', 'creatives', 'plays'];

/** Where a row's link goes: the next level of the drill-down, narrowed to the row. */
function narrowTo(state, by, id) {
  switch (by) {
    case 'districts': return {...state, district: id, by: 'venues'};
    case 'venues': return {...state, venue: id, by: 'screens'};
    case 'screens': return {...state, screen: id, by: 'plays'};
    case 'campaigns': return {...state, campaign: id, by: 'venues'};
    default: return null;
  }
}

const hashOf = state => `#/reports${qs(state)}`;

async function reports(main, params, query) {
  main.append(el('h1', {text: t('Planned and delivered')}));
  const status = el('p', {id: 'report-status', className: 'said', role: 'status', text: t('loading')});
  main.append(status);
  const n = await names();
  const zone = query.get('zone') || n.zone || zones.default;
  const state = {
    from: query.get('from') || dateIn(n.from, zone),
    to: query.get('to') || dateIn(new Date(Date.parse(n.to) - 1).toISOString(), zone),
    zone,
    by: LEVELS.includes(query.get('by')) ? query.get('by') : 'districts',
    district: query.get('district') || '', venue: query.get('venue') || '', screen: query.get('screen') || '', campaign: query.get('campaign') || '',
  };
  // A screen's venue and a venue's district fill in from the names (a link may name only
  // the deeper one).
  if (state.screen && !state.venue && n.screen[state.screen]) state.venue = n.screen[state.screen].venue;
  if (state.venue && !state.district && n.venue[state.venue]) state.district = n.venue[state.venue].district || '(none)';

  const zoneSet = new Set([zone, n.zone, 'UTC', ...n.venues.map(v => v.timezone), 'Asia/Shanghai', 'Asia/Tokyo', 'Europe/London', 'America/New_York']);
  const zoneSel = el('select', {name: 'zone'}, [...zoneSet].filter(Boolean).map(z => el('option', {value: z, text: z, selected: z === zone})));
  const bySel = el('select', {name: 'by'}, LEVELS.map(l => el('option', {value: l, text: t(l), selected: l === state.by})));
  const campSel = el('select', {name: 'campaign'}, el('option', {value: '', text: t('every campaign')}),
    n.campaigns.map(c => el('option', {value: c.id, text: nameOf(c), selected: c.id === state.campaign})));
  const fromIn = el('input', {type: 'date', name: 'from', value: state.from, required: true});
  const toIn = el('input', {type: 'date', name: 'to', value: state.to, required: true});
  const formSaid = statusLine('report-form-said');
  const form = el('form', {id: 'report-window'},
    field(t('From'), fromIn), field(t('To'), toIn), field(t('Zone'), zoneSel), field(t('By'), bySel), field(t('Only campaign'), campSel),
    el('button', {className: 'primary', text: t('Show')}), formSaid);
  form.addEventListener('submit', ev => {
    ev.preventDefault();
    if (!windowOf(fromIn.value, toIn.value, zoneSel.value)) { say(formSaid, new Error(t('bad dates'))); fromIn.focus(); return; }
    location.hash = hashOf({...state, from: fromIn.value, to: toIn.value, zone: zoneSel.value, by: bySel.value, campaign: campSel.value});
  });
  main.append(form);

  const win = windowOf(state.from, state.to, zone);
  if (!win) { say(formSaid, new Error(t('bad dates'))); status.textContent = ''; return undefined; }

  // Breadcrumb: all districts > district > venue > screen.
  const crumbs = [{label: t('all districts'), to: {...state, district: '', venue: '', screen: '', by: 'districts'}}];
  if (state.district) crumbs.push({label: districtName(state.district), to: {...state, venue: '', screen: '', by: 'venues'}});
  if (state.venue) crumbs.push({label: labelOf(n, 'venues', state.venue), to: {...state, screen: '', by: 'screens'}});
  if (state.screen) crumbs.push({label: state.screen, to: {...state, by: 'plays'}});
  const drill = el('nav', {id: 'drill', 'aria-label': t('Reports')}, el('ol', {}, crumbs.map((c, i) => el('li', {},
    i === crumbs.length - 1 ? el('span', {'aria-current': 'page', text: c.label}) : el('a', {href: hashOf(c.to), text: c.label})))));
  main.append(drill, el('p', {id: 'report-zone', text: t('times in', {from: fmtTime(win.from, zone), to: fmtTime(win.to, zone), zone})}));

  const filters = {from: win.from, to: win.to, district: state.district, venue: state.venue, screen: state.screen, campaign: state.campaign};
  const kind = state.by;
  const exportBox = el('p', {className: 'exports'});
  const tableBox = el('div', {className: 'scroll'});
  const charts = el('div', {className: 'charts'});
  main.append(charts, exportBox, tableBox);

  let head;
  let body;
  let foot = null;
  let headers;
  try {
    const [rows, hour, day] = await Promise.all([
      api(`/reports/${kind}${qs({...filters, format: 'json'})}`),
      api(`/reports/series${qs({...filters, zone, bucket: 'hour'})}`),
      api(`/reports/series${qs({...filters, zone, bucket: 'day'})}`),
    ]);
    if (kind === 'plays') {
      headers = ['time', 'campaign', 'creative', 'status', 'duration', 'synced', 'id'];
      const vzone = (n.venue[state.venue] || {}).timezone || zone;
      body = rows.map(r => ({id: r.play_id, cells: [fmtTime(r.slot_start, vzone), labelOf(n, 'campaigns', r.campaign_id), labelOf(n, 'creatives', r.creative_id),
        r.status, String(Math.round(r.duration_ms / 100) / 10), r.clock_synced ? '✓' : '✗', r.play_id]}));
      head = headers.map(h => t(h));
    } else {
      const idKey = `${kind.slice(0, -1)}_id`;
      const detailKey = {districts: 'venues', venues: 'venue_type', screens: 'venue_id'}[kind] || 'detail';
      const detailHead = {districts: 'venue count', venues: 'venue type', screens: 'venue'}[kind] || 'detail';
      headers = ['name', 'id', detailHead, 'planned', 'delivered', 'partial', 'failed', 'compliance'];
      head = headers.map(h => t(h));
      body = rows.map(r => {
        const detail = kind === 'screens' ? labelOf(n, 'venues', r[detailKey]) : String(r[detailKey] ?? '');
        return {id: r[idKey], planned: r.planned, delivered: r.delivered, pct: r.compliance_pct,
          cells: [labelOf(n, kind, r[idKey]), r[idKey], detail, r.planned, r.delivered, r.partial, r.failed, complianceText(r.planned, r.delivered, Number(r.compliance_pct))]};
      });
      const sum = k => rows.reduce((a, r) => a + r[k], 0);
      const [p, d] = [sum('planned'), sum('delivered')];
      foot = {planned: p, delivered: d, cells: [t('total'), '', '', p, d, sum('partial'), sum('failed'), complianceText(p, d, pctOf(p, d))]};
    }
    const numeric = new Set(['planned', 'delivered', 'partial', 'failed', 'compliance', 'duration']);
    const tbl = el('table', {id: 'report', dataset: {kind, from: win.from, to: win.to, zone}},
      el('caption', {text: `${t(kind)} · ${crumbs.map(c => c.label).join(' › ')}`}),
      el('thead', {}, el('tr', {}, headers.map((h, i) => el('th', {scope: 'col', className: numeric.has(h) ? 'n' : '', text: head[i]})))),
      el('tbody', {}, body.length ? body.map(r => {
        const next = narrowTo(state, kind, r.id);
        return el('tr', {dataset: {id: r.id}}, r.cells.map((c, i) => {
          const h = headers[i];
          if (h === 'name') {
            return el('th', {scope: 'row'}, next ? el('a', {href: hashOf(next), title: t(kind === 'screens' ? 'open plays' : 'narrow', {name: c}), text: c}) : c);
          }
          if (h === 'compliance') return complianceCell(r.planned, r.delivered, r.pct);
          return el('td', {className: numeric.has(h) ? 'n' : '', text: c});
        }));
      }) : el('tr', {}, el('td', {colspan: headers.length, className: 'empty', text: kind === 'plays' ? t('no plays') : t('no rows')}))),
      foot ? el('tfoot', {}, el('tr', {dataset: {total: ''}}, foot.cells.map((c, i) => (i === 0 ? el('th', {scope: 'row', text: c})
        : headers[i] === 'compliance' ? complianceCell(foot.planned, foot.delivered, pctOf(foot.planned, foot.delivered))
          : el('td', {className: numeric.has(headers[i]) ? 'n' : '', text: c}))))) : null);
    tableBox.append(tbl);
    charts.append(chart('chart-hour', t('Per hour'), hour, zone, 'hour'), chart('chart-day', t('Per day'), day, zone, 'day'));
    status.textContent = '';
    status.hidden = true;
  } catch (e) {
    say(e.field ? formSaid : status, e);
    return undefined;
  }

  // Exports: exactly the rows on screen (same columns and texts), made in the page.
  const said = statusLine('export-said');
  const base = `signage-${kind}-${state.from}-${state.to}`;
  const link = el('a', {id: 'export-download', hidden: true});
  const download = (text, type, file) => {
    if (link.href) URL.revokeObjectURL(link.href);
    lastExported = {file, type, text};
    link.href = URL.createObjectURL(new Blob([text], {type}));
    link.download = file;
    link.textContent = file;
    link.hidden = false;
    link.click();
    say(said, t('download ready', {n: body.length, file}));
  };
  const rowsShown = () => body.map(r => r.cells.map(String));
  exportBox.append(
    el('button', {type: 'button', id: 'export-csv', text: t('Export CSV'), onclick: () => download(toCsv(head, rowsShown()), 'text/csv;charset=utf-8', `${base}.csv`)}), ' ',
    el('button', {type: 'button', id: 'export-json', text: t('Export JSON'), onclick: () => download(`${JSON.stringify(rowsShown().map(r => Object.fromEntries(r.map((c, i) => [headers[i], c]))), null, 1)}\n`, 'application/json', `${base}.json`)}), ' ',
    el('a', {id: 'export-server', href: `/api/v1/reports/${kind}${qs({...filters, format: 'csv'})}`, text: t('server csv')}), ' ',
    link, said);
  return undefined;
}

// ---- #/changes ---------------------------------------------------------------------------

/** Every field path of a JSON value with its text ("a.b[0]" -> "…"). */
function flatten(v, prefix = '', out = {}) {
  if (v !== null && typeof v === 'object') {
    const entries = Array.isArray(v) ? v.map((x, i) => [`${prefix}[${i}]`, x]) : Object.entries(v).map(([k, x]) => [prefix ? `${prefix}.${k}` : k, x]);
    if (!entries.length) out[prefix || '·'] = Array.isArray(v) ? '[]' : '{}';
    for (const [k, x] of entries) flatten(x, k, out);
  } else if (v !== undefined) {
    out[prefix || '·'] = typeof v === 'string' ? v : JSON.stringify(v);
  }
  return out;
}

function diffOf(change) {
  const before = change.before == null ? {} : flatten(change.before);
  const after = change.after == null ? {} : flatten(change.after);
  const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort().filter(k => before[k] !== after[k]);
  const what = change.before == null ? ` (${t('created')})` : change.after == null ? ` (${t('deleted')})` : '';
  return el('div', {className: 'diff'}, el('h3', {text: `${change.entity} ${change.id}${what}`}),
    keys.length ? el('table', {className: 'fields'},
      el('thead', {}, el('tr', {}, ['field', 'before', 'after'].map(h => el('th', {scope: 'col', text: t(h)})))),
      el('tbody', {}, keys.map(k => el('tr', {}, el('th', {scope: 'row', text: k}), el('td', {className: 'before', text: before[k] ?? '—'}), el('td', {className: 'after', text: after[k] ?? '—'})))))
      : el('p', {text: t('no field changes')}));
}

/** What a revision changed: each entity when few, else a count per kind. */
function changedText(list) {
  if (list.length <= 4) return list.map(c => `${c.entity} ${c.id}`).join(', ');
  const per = {};
  for (const c of list) per[c.entity] = (per[c.entity] || 0) + 1;
  return Object.entries(per).map(([k, n]) => t('n of kind', {n, kind: k})).join(', ');
}

async function changes(main, params, query) {
  main.append(el('h1', {text: t('Changes')}));
  const entity = query.get('entity') || '';
  const limit = Math.min(1000, Math.max(1, Number(query.get('limit')) || 50));
  const sel = el('select', {name: 'entity'}, el('option', {value: '', text: t('every kind')}),
    ['venue', 'screen', 'creative', 'campaign', 'emergency', 'user'].map(k => el('option', {value: k, text: k, selected: k === entity})));
  sel.addEventListener('change', () => { location.hash = `#/changes${qs({entity: sel.value, limit: query.get('limit')})}`; });
  main.append(el('form', {id: 'changes-filter'}, field(t('Entity kind'), sel)));
  const said = el('p', {id: 'changes-said', className: 'said', role: 'status', text: t('loading')});
  const tbody = el('tbody');
  const tbl = el('table', {id: 'changes'},
    el('thead', {}, el('tr', {}, ['number', 'at', 'author', 'entities', 'comment', ''].map(h => el('th', {scope: 'col', text: h ? t(h) : '', className: h === 'number' ? 'n' : ''})))), tbody);
  const more = el('button', {type: 'button', id: 'changes-more', text: t('More'), hidden: true});
  main.append(el('div', {className: 'scroll'}, tbl), more, said);
  let cursor = null;
  async function load() {
    more.disabled = true;
    try {
      const page = await api(`/changes${qs({entity, limit, cursor})}`);
      for (const r of page.items) {
        const diffRow = el('tr', {className: 'diff-row', hidden: true}, el('td', {colspan: 6}, r.changes.map(diffOf)));
        const toggle = el('button', {type: 'button', className: 'toggle', 'aria-expanded': 'false', text: t('show diff'), disabled: !r.changes.length});
        toggle.addEventListener('click', () => {
          const open = diffRow.hidden;
          diffRow.hidden = !open;
          toggle.setAttribute('aria-expanded', String(open));
          toggle.textContent = open ? t('hide diff') : t('show diff');
        });
        tbody.append(el('tr', {dataset: {id: r.number}},
          el('td', {className: 'n', text: r.number}), el('td', {text: fmtTime(r.at)}), el('td', {text: r.author}),
          el('td', {text: changedText(r.changes)}),
          el('td', {text: r.event ? `${t('event', {kind: r.event})} ${r.comment}`.trim() : r.comment}),
          el('td', {}, toggle)), diffRow);
      }
      cursor = page.next;
      more.hidden = !cursor;
      said.textContent = tbody.children.length ? (cursor ? '' : t('end of log')) : t('no changes');
    } catch (e) { say(said, e); }
    more.disabled = false;
  }
  more.addEventListener('click', load);
  await load();
  return undefined;
}

// ---- #/audit -----------------------------------------------------------------------------

async function audit(main) {
  main.append(el('h1', {text: t('Audit')}));
  const last = el('section', {id: 'audit-last', 'aria-labelledby': 'audit-last-h', 'aria-busy': 'true'}, el('h2', {id: 'audit-last-h', text: t('Last audit')}), el('p', {text: t('loading')}));
  const said = statusLine('audit-said');
  const run = el('button', {type: 'button', id: 'audit-run', className: 'primary', text: t('Run the audit')});
  main.append(el('p', {}, run, ' ', said), last);
  async function show() {
    const resp = await apiRaw('/audit/last');
    const head = el('h2', {id: 'audit-last-h', text: t('Last audit')});
    if (resp.status === 404) {
      last.replaceChildren(head, el('p', {className: 'verdict', dataset: {verdict: 'never'}, text: t('never run')}));
    } else {
      const body = await resp.json();
      if (!resp.ok) throw new Error((body.error || {}).message || `HTTP ${resp.status}`);
      const ok = body.intact;
      last.replaceChildren(head,
        el('p', {className: 'when', text: t('audit when', {at: fmtTime(body.at), by: body.by})}),
        el('p', {className: `verdict ${ok ? 'ok' : 'bad'}`, dataset: {verdict: ok ? 'intact' : 'problems'}},
          el('span', {className: `dot ${ok ? 'ok' : 'bad'}`, 'aria-hidden': 'true'}),
          `${t('verdict')}: ${ok ? t('intact') : t('problems', {n: body.verdict.problems.length})}`),
        el('h3', {text: t('audit lines')}),
        el('pre', {className: 'lines', tabindex: '0', text: body.lines}));
    }
    last.setAttribute('aria-busy', 'false');
  }
  run.addEventListener('click', async () => {
    run.disabled = true;
    say(said, t('running'));
    try {
      const v = await api('/audit/verify', {method: 'POST'});
      say(said, v.problems.length ? t('problems', {n: v.problems.length}) : `${t('Audit')}: ${t('intact')}`);
      await show();
    } catch (e) { say(said, e); }
    run.disabled = false;
  });
  try { await show(); } catch (e) { say(said, e); }
  return undefined;
}

register({path: 'reports', title: 'Reports', roles: ['auditor'], menu: true, home: 'auditor', render: reports});
register({path: 'changes', title: 'Changes', roles: ['auditor'], menu: true, render: changes});
register({path: 'audit', title: 'Audit', roles: ['auditor'], menu: true, render: audit});

