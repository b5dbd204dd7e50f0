// The operator's pages: emergencies (start, end) and the fleet; until the full pages land
// they keep the ids the browser tests use (#emergencies, #start, #said, #venues, #fleet).
import {el, api, send, register, every, addStrings} from './core.js';

const t = addStrings({en: {Overview: 'Overview'}, zh: {Overview: '总览'}});

function row(cells) {
  return el('tr', {}, cells.map(c => (c instanceof Node ? c : el('td', {text: c}))));
}

function overview(main) {
  const said = el('span', {id: 'said', role: 'status'});
  const emergencies = el('table', {id: 'emergencies'},
    el('thead', {}, row(['id', 'name', 'creatives', 'target', 'start', 'end', ''].map(h => el('th', {text: h})))), el('tbody'));
  const start = el('form', {id: 'start'}, el('fieldset', {},
    el('legend', {text: "Start an emergency (plays from each targeted screen's next slot)"}),
    el('label', {}, 'id ', el('input', {name: 'id', required: true, size: 16})), ' ',
    el('label', {}, 'name ', el('input', {name: 'name', required: true, size: 20})), ' ',
    el('label', {}, 'creatives ', el('input', {name: 'creatives', required: true, size: 24, placeholder: 'id, id'})), ' ',
    el('label', {}, 'target (JSON) ', el('input', {name: 'target', size: 28, value: '{}'})), ' ',
    el('label', {}, 'until ', el('input', {name: 'until', size: 22, placeholder: 'RFC 3339, optional'})), ' ',
    el('button', {text: 'Start'}), ' ', said));
  const venues = el('table', {id: 'venues'},
    el('thead', {}, row(['venue', 'type', 'planned', 'delivered', 'compliance'].map(h => el('th', {text: h})))), el('tbody'));
  const fleet = el('table', {id: 'fleet'},
    el('thead', {}, row(['screen', 'online', 'schedule (held / published)', 'media', 'backlog', 'last seq'].map(h => el('th', {text: h})))), el('tbody'));
  main.append(el('h1', {text: t('Overview')}), el('h2', {text: 'Emergency takeovers'}), emergencies, start,
    el('h2', {text: 'Venues: planned and delivered'}), venues, el('h2', {text: 'Fleet'}), fleet);

  let venuesAt = 0;
  const outcome = p => p.then(body => { said.textContent = `done: ${body.emergency.id}, ${body.screens.length} screen(s)`; })
    .catch(e => { said.textContent = `refused: ${e.message}`; }).finally(load);

  async function load() {
    const list = await api('/emergencies').catch(() => null);
    if (!list) return;
    const active = list.filter(r => r.active);
    emergencies.tBodies[0].replaceChildren(...(active.length ? active.map(r => {
      const open = Date.parse(r.end) - Date.parse(r.start) > 50 * 365 * 864e5;
      const end = el('button', {type: 'button', text: 'End', dataset: {end: r.id}, onclick: () => outcome(send('POST', `/emergencies/${encodeURIComponent(r.id)}/end`))});
      return row([r.id, r.name, r.creatives.join(', '), JSON.stringify(r.target), r.start, open ? 'open' : r.end, el('td', {}, end)]);
    }) : [row([el('td', {text: 'none active', colspan: 7})])]));
    if (Date.now() - venuesAt > 30000) {
      venuesAt = Date.now();
      const v = await api('/reports/venues?format=json').catch(() => null);
      if (Array.isArray(v)) venues.tBodies[0].replaceChildren(...v.map(r => row([
        r.venue_id, r.venue_type,
        el('td', {text: r.planned, className: 'n'}),
        el('td', {text: r.delivered, className: 'n'}),
        el('td', {text: `${Number(r.compliance_pct).toFixed(1)} %`, className: `n ${r.delivered === r.planned ? 'ok' : 'bad'}`}),
      ])));
    }
    const f = await api('/fleet?limit=1000').catch(() => ({}));
    fleet.tBodies[0].replaceChildren(...(f.items || []).map(r => {
      const s = r.status || {};
      return row([r.screen_id, el('td', {text: r.state, className: r.state === 'online' ? 'ok' : 'bad'}),
        `${s.schedule_version ?? ''} / ${r.published_version ?? ''}`, s.media_ready ? 'ready' : 'fetching',
        el('td', {text: s.outbox_backlog ?? '', className: 'n'}), el('td', {text: s.last_seq ?? '', className: 'n'})]);
    }));
  }

  start.addEventListener('submit', ev => {
    ev.preventDefault();
    const f = new FormData(start);
    let target;
    try { target = JSON.parse(f.get('target') || '{}'); } catch (e) { said.textContent = `target is not JSON: ${e.message}`; return; }
    const req = {id: f.get('id'), name: f.get('name'), creatives: f.get('creatives').split(',').map(s => s.trim()).filter(Boolean), target};
    if (f.get('until')) req.until = f.get('until');
    outcome(send('POST', '/emergencies', req));
  });
  return every(5000, load);
}

register({path: 'overview', title: 'Overview', roles: ['operator', 'auditor'], menu: true, home: 'operator', render: overview});
