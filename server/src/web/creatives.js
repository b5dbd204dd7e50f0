// The creatives part of the dashboard: the creative library with upload (#/creatives), the
// approver's queue and reviews of campaigns and creatives (#/approvals, with the diff of a
// submitted campaign against its live and last rejected versions, its forecast and its
// creatives), and the preview of a screen's next day of slots (#/preview/:screen), each
// slot explained by the planner. Data from the server is only ever set as text.
import {
  $, $$, api, apiRaw, send, all, qs, el, addStrings, nameOf, fmtTime, zonedToIso, isoToZoned,
  register, go, every, hasRole, session, say, statusLine, field, table, num, ApiError,
} from './core.js';

const t = addStrings({
  en: {
    Creatives: 'Creatives', Approvals: 'Approvals', Preview: 'Preview',
    'Upload a creative': 'Upload a creative', File: 'File (image or video)', Id: 'Id', Title: 'Title',
    'Seconds on screen': 'Seconds on screen (stills)', Upload: 'Upload', 'Upload progress': 'Upload progress',
    uploading: 'uploading {pct} %…', uploaded: 'uploaded {id}: a draft; submit it for approval',
    phase_probing: 'reading the file…', phase_checking: 'checking (kiosk gate, loudness, flashes)…',
    phase_transcoding: 'transcoding for kiosks {pct} %…', phase_storing: 'storing…',
    verdicts: 'checks: {list}',
    'upload failed': 'the upload did not reach the server (network error)',
    'too big': 'the file is {size}: the server takes at most {max}',
    'Find': 'Find', 'State': 'State', all: 'all', draft: 'draft', submitted: 'submitted', approved: 'approved',
    rejected: 'rejected', retired: 'retired', live: 'live', archived: 'archived',
    'Library': 'Library', loading: 'loading…', 'no creatives': 'No creatives yet: upload one above.',
    'no match': 'No creative matches this filter.', 'Submit for approval': 'Submit for approval',
    'submitted it': 'submitted {id} for approval', 'Review': 'Review', 'Rejected because': 'Rejected: {reason}',
    kind_image: 'still', kind_video: 'video', 'by {who} at {at}': 'by {who}, {at}',
    'Campaigns in review': 'Campaigns in review', 'no campaigns in review': 'None of your campaigns is waiting or rejected.',
    Campaign: 'Campaign', Creative: 'Creative', Submitted: 'Submitted', Decision: 'Decision', Reason: 'Reason',
    'Waiting for approval': 'Waiting for approval', 'queue empty': 'Nothing is waiting for approval.',
    Kind: 'Kind', Name: 'Name', 'Submitted by': 'Submitted by', 'Submitted at': 'Submitted at', What: 'What',
    'new campaign': 'new campaign', 'change to a live campaign': 'change to a live campaign', 'new creative': 'new creative',
    'your own': 'your own: another approver decides',
    'Review of campaign': 'Campaign {name}', 'Review of creative': 'Creative {name}',
    'What changed': 'What changed', 'against live': 'Against the version that plays now (approved by {who}, {at})',
    'new: all added': 'A new campaign: nothing of it plays yet, so every field is added.',
    'since rejected': 'Since the version rejected by {who} ({at}): “{reason}”', 'nothing changed since rejected': 'Nothing changed since that rejection.',
    Field: 'Field', Before: 'Live', After: 'Submitted', Change: 'Change', 'Rejected version': 'Rejected version',
    added: 'added', changed: 'changed', removed: 'removed', same: 'same',
    'plus': 'added: {items}', 'minus': 'removed: {items}',
    Forecast: 'Forecast', 'forecast summary': '{plays} plays on {screens} screens, {from} to {to}',
    'forecast truncated': 'The flight is longer than the forecast covers (31 days).',
    District: 'District', Venue: 'Venue', Without: 'Without', With: 'With', 'Loses plays': 'Campaigns that lose plays',
    'nobody displaced': 'No other campaign loses a play.', Lost: 'Plays lost',
    'Its creatives': 'Its creatives', 'creative not approved': 'not approved yet: approve it before the campaign',
    'Your decision': 'Your decision', 'Reason (required to reject)': 'Reason (required to reject)',
    Approve: 'Approve', Reject: 'Reject', 'reason needed': 'Write the reason for the rejection first: the submitter reads it.',
    'approved it': 'Approved: {name} is live.', 'rejected it': 'Rejected: {name} goes back to its author with your reason.',
    'not submitted': 'This version is {status}: there is nothing to decide.', 'back to queue': 'Back to the queue',
    'Find a screen': 'Find a screen (venue, district, type)', 'no screens': 'No screen matches “{q}”.',
    'Pick a screen': 'Pick a screen to see its next day of slots.', 'From': 'From ({zone})',
    'Show': 'Show', 'timeline of': 'Slots of {screen} at {venue}, 24 hours from {from}',
    'times in': 'Times in {zone}.', 'no plays': 'Nothing is planned on this screen in this window.',
    'Legend': 'Legend', plays: '{n} plays', 'Explanation': 'Why this slot plays this',
    'explain hint': 'Pick a slot (arrow keys move between slots, Enter picks) to read the planner’s explanation.',
    'slot label': '{time}: {campaign}, {creative}', 'hour': 'Hour', 'other screen': 'Another screen',
    'all fields': 'Every field of the submitted version', Timeline: 'Timeline', 'screens found': '{n} screens', 'more screens': 'more than {n}: narrow the search',
    'unknown screen': 'There is no screen {id} in service.', Size: 'Size', Duration: 'Duration', 'Open': 'Open',
    'Media checks': 'Media checks', Check: 'Check', Outcome: 'Outcome', Detail: 'What was found',
    'no checks': 'No media check ran on this creative (stored before the checks existed, or a still).',
    check_flash: 'Flashes (WCAG 2.3.1)', check_gate: 'Video gate', check_transcode: 'Transcoding', check_loudness: 'Loudness',
    outcome_passed: 'passed', outcome_changed: 'changed to pass', outcome_warning: 'warning', outcome_refused: 'refused',
    'check warning': 'A media check warns: {checks}',
  },
  zh: {
    Creatives: '素材', Approvals: '审批', Preview: '预览',
    'Upload a creative': '上传素材', File: '文件（图片或视频）', Id: '编号', Title: '标题',
    'Seconds on screen': '播放秒数（静态图）', Upload: '上传', 'Upload progress': '上传进度',
    uploading: '上传中 {pct}%…', uploaded: '已上传 {id}：草稿，请提交审批',
    phase_probing: '正在读取文件…', phase_checking: '正在检查（终端规格、响度、闪烁）…',
    phase_transcoding: '正在为终端转码 {pct}%…', phase_storing: '正在保存…',
    verdicts: '检查：{list}',
    'upload failed': '上传未到达服务器（网络错误）',
    'too big': '文件为 {size}：服务器最多接受 {max}',
    Find: '查找', State: '状态', all: '全部', draft: '草稿', submitted: '待审批', approved: '已批准',
    rejected: '已驳回', retired: '已停用', live: '播出中', archived: '已归档',
    Library: '素材库', loading: '加载中…', 'no creatives': '还没有素材：请在上方上传。',
    'no match': '没有符合筛选条件的素材。', 'Submit for approval': '提交审批',
    'submitted it': '已提交 {id} 审批', Review: '审核', 'Rejected because': '驳回原因：{reason}',
    kind_image: '静态图', kind_video: '视频', 'by {who} at {at}': '{who}，{at}',
    'Campaigns in review': '审批中的投放', 'no campaigns in review': '没有待审批或被驳回的投放。',
    Campaign: '投放', Creative: '素材', Submitted: '提交', Decision: '决定', Reason: '原因',
    'Waiting for approval': '待审批', 'queue empty': '没有待审批的内容。',
    Kind: '类型', Name: '名称', 'Submitted by': '提交人', 'Submitted at': '提交时间', What: '内容',
    'new campaign': '新投放', 'change to a live campaign': '播出中投放的修改', 'new creative': '新素材',
    'your own': '您本人提交：须由其他审批人决定',
    'Review of campaign': '投放 {name}', 'Review of creative': '素材 {name}',
    'What changed': '变更内容', 'against live': '与当前播出版本相比（{who} 批准，{at}）',
    'new: all added': '新投放：尚无播出版本，所有字段均为新增。',
    'since rejected': '与 {who} 驳回的版本相比（{at}）：“{reason}”', 'nothing changed since rejected': '驳回后没有任何修改。',
    Field: '字段', Before: '播出版本', After: '提交版本', Change: '变化', 'Rejected version': '被驳回版本',
    added: '新增', changed: '修改', removed: '删除', same: '未变',
    plus: '新增：{items}', minus: '删除：{items}',
    Forecast: '预测', 'forecast summary': '{from} 至 {to}，{screens} 块屏幕共 {plays} 次播放',
    'forecast truncated': '投放期长于预测范围（31 天）。',
    District: '区', Venue: '场所', Without: '不含', With: '含', 'Loses plays': '播放减少的投放',
    'nobody displaced': '没有其他投放减少播放。', Lost: '减少次数',
    'Its creatives': '所用素材', 'creative not approved': '尚未批准：请先批准该素材',
    'Your decision': '您的决定', 'Reason (required to reject)': '原因（驳回时必填）',
    Approve: '批准', Reject: '驳回', 'reason needed': '请先填写驳回原因：提交人会看到它。',
    'approved it': '已批准：{name} 开始播出。', 'rejected it': '已驳回：{name} 连同原因退回提交人。',
    'not submitted': '此版本状态为{status}：无需决定。', 'back to queue': '返回待审批列表',
    'Find a screen': '查找屏幕（场所、区、类型）', 'no screens': '没有符合“{q}”的屏幕。',
    'Pick a screen': '选择一块屏幕，查看其接下来一天的时段。', From: '开始（{zone}）',
    Show: '显示', 'timeline of': '{venue} 的 {screen}：自 {from} 起 24 小时的时段',
    'times in': '时间为 {zone}。', 'no plays': '此屏幕在该时段内没有计划播放。',
    Legend: '图例', plays: '{n} 次', Explanation: '此时段为何播放此内容',
    'explain hint': '选择一个时段（方向键移动，回车选择）查看排期说明。',
    'slot label': '{time}：{campaign}，{creative}', hour: '小时', 'other screen': '其他屏幕',
    'all fields': '提交版本的全部字段', Timeline: '时间轴', 'screens found': '{n} 块屏幕', 'more screens': '超过 {n} 块：请缩小范围',
    'unknown screen': '没有在用的屏幕 {id}。', Size: '大小', Duration: '时长', Open: '打开',
    'Media checks': '媒体检查', Check: '检查', Outcome: '结果', Detail: '发现',
    'no checks': '此素材未经媒体检查（在检查功能之前存入，或为静态图）。',
    check_flash: '闪烁（WCAG 2.3.1）', check_gate: '视频规格', check_transcode: '转码', check_loudness: '响度',
    outcome_passed: '通过', outcome_changed: '已调整后通过', outcome_warning: '警告', outcome_refused: '拒绝',
    'check warning': '媒体检查警告：{checks}',
  },
});

// ---- shared helpers ----------------------------------------------------------------------

const enc = encodeURIComponent;

/** A state badge: its text translated, its class the state. */
function badge(state) {
  return el('span', {className: `badge st-${state}`, text: t(state)});
}

function bytes(n) {
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(1)} MB`;
  if (n >= 1 << 10) return `${Math.round(n / (1 << 10))} KB`;
  return `${n} B`;
}

/** A check's name, translated when known. */
function checkName(check) {
  const key = `check_${check}`;
  const name = t(key);
  return name === key ? check : name;
}

/** The media checks' verdicts on a creative (`checks`, in the order they ran). */
function checksView(c) {
  const checks = c.checks || [];
  return el('section', {id: 'creative-checks', 'aria-labelledby': 'checks-h'},
    el('h2', {id: 'checks-h', text: t('Media checks')}),
    checks.length
      ? table(['Check', 'Outcome', 'Detail'], checks.map(k => el('tr', {dataset: {check: k.check, outcome: k.outcome}},
        el('th', {scope: 'row', text: checkName(k.check)}),
        el('td', {className: k.outcome === 'passed' ? 'ok' : k.outcome === 'refused' ? 'bad' : 'warn', text: t(`outcome_${k.outcome}`)}),
        el('td', {text: k.detail}))), {className: 'compact'})
      : el('p', {className: 'empty', text: t('no checks')}));
}

/** A creative's displayed state: retired wins over its review. */
function creativeState(c) {
  return c.retired_at ? 'retired' : c.approval.status;
}

/** Shows an error next to the control it names (`.err[data-for=field]` in `form`), or in
 * the status line. */
function showError(form, line, e) {
  for (const s of $$('.err', form)) s.textContent = '';
  for (const c of $$('[aria-invalid]', form)) c.removeAttribute('aria-invalid');
  let f = e.field;
  if (!f && e.status === 409) f = 'id';
  if (!f && e.status === 413) f = 'file';
  const spot = f && $(`.err[data-for="${CSS.escape(f)}"]`, form);
  if (spot) {
    spot.textContent = e.message;
    const control = form.elements[f];
    if (control) { control.setAttribute('aria-invalid', 'true'); control.focus(); }
  }
  say(line, e);
}

/** A labelled control with a slot for its error. */
function fieldWithError(label, control) {
  const err = el('span', {className: 'err', dataset: {for: control.name}, id: `err-${control.name}`, 'aria-live': 'polite'});
  control.setAttribute('aria-describedby', err.id);
  return el('label', {className: 'field'}, el('span', {text: label}), control, err);
}

function loadingLine() {
  return el('p', {className: 'loading', role: 'status', text: t('loading')});
}

// ---- #/creatives ----------------------------------------------------------------------------

/** Uploads `form`'s file with its meta by XMLHttpRequest (for its progress). */
function upload(form, progress, line) {
  const f = new FormData(form);
  const file = f.get('file');
  const meta = {id: String(f.get('id') || '').trim(), title: String(f.get('title') || '').trim()};
  const secs = String(f.get('duration_seconds') || '').trim();
  if (secs) meta.duration_seconds = Number(secs);
  const body = new FormData();
  body.append('meta', JSON.stringify(meta));
  if (file && file.size) body.append('file', file, file.name);
  // The server reports what it does with the file once received (probing, checks,
  // transcoding) under a token of ours.
  const token = `ui-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
  let polling = null;
  const follow = async () => {
    try {
      const p = await api(`/creatives/progress/${token}`);
      if (!['probing', 'checking', 'transcoding', 'storing'].includes(p.phase)) return;
      const pct = Math.round(p.fraction * 100);
      progress.value = p.phase === 'transcoding' ? pct : progress.value;
      line.textContent = t(`phase_${p.phase}`, {pct});
      line.className = 'said';
    } catch (_) { /* not there yet, or gone: the upload's answer says how it ended */ }
  };
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', `/api/v1/creatives?progress=${token}`);
    xhr.setRequestHeader('X-CSRF-Token', session.user ? session.user.csrf_token : '');
    xhr.upload.addEventListener('progress', ev => {
      if (!ev.lengthComputable) return;
      const pct = Math.round((ev.loaded / ev.total) * 100);
      progress.value = pct;
      line.textContent = t('uploading', {pct});
      line.className = 'said';
    });
    xhr.upload.addEventListener('load', () => {
      progress.value = 0;
      polling = setInterval(follow, 500);
    });
    xhr.addEventListener('loadend', () => clearInterval(polling));
    xhr.addEventListener('load', () => {
      let parsed = null;
      try { parsed = JSON.parse(xhr.responseText); } catch (_) { /* not JSON */ }
      if (xhr.status >= 200 && xhr.status < 300) { progress.value = 100; resolve(parsed); }
      else reject(new ApiError(xhr.status, parsed));
    });
    xhr.addEventListener('error', () => reject(new Error(t('upload failed'))));
    progress.hidden = false;
    progress.value = 0;
    xhr.send(body);
  });
}

/** The server's upload limit (`MAX_UPLOAD` in http/creatives.rs): larger files are
 * refused here rather than after the upload. */
const MAX_UPLOAD = 256 * 1024 * 1024;

/** An id suggested by a file name: lower case letters, digits and dashes. */
function idFromName(name) {
  return name.replace(/\.[^.]*$/, '').toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 60);
}

function creativeCard(c, onSubmit) {
  const state = creativeState(c);
  const m = c.measurement || {};
  const title = nameOf({title: c.spec.title, id: c.spec.id});
  const info = el('dl', {className: 'facts'},
    el('dt', {text: t('Id')}), el('dd', {text: c.spec.id}),
    el('dt', {text: t('Kind')}), el('dd', {text: t(`kind_${c.spec.kind}`)}),
    el('dt', {text: t('Duration')}), el('dd', {text: `${c.spec.duration_seconds} s`}),
    el('dt', {text: t('Size')}), el('dd', {text: `${m.width || '?'}×${m.height || '?'} px, ${bytes(c.spec.bytes)}`}));
  const actions = el('div', {className: 'actions'});
  if (state === 'draft' && hasRole('staff')) {
    actions.append(el('button', {type: 'button', className: 'primary', dataset: {submit: c.spec.id}, text: t('Submit for approval'),
      'aria-label': `${t('Submit for approval')}: ${title}`, onclick: () => onSubmit(c)}));
  }
  if (state === 'submitted' && hasRole('approver')) {
    actions.append(el('a', {href: `#/approvals/creative/${enc(c.spec.id)}`, text: t('Review'), 'aria-label': `${t('Review')}: ${title}`}));
  }
  const who = c.approval.status === 'submitted' && c.approval.submitted_by
    ? el('p', {className: 'muted', text: `${t('submitted')} ${t('by {who} at {at}', {who: c.approval.submitted_by, at: fmtTime(c.approval.submitted_at)})}`}) : null;
  const reason = state === 'rejected' && c.approval.reason
    ? el('p', {className: 'reason bad', dataset: {reason: c.spec.id}, text: t('Rejected because', {reason: c.approval.reason})}) : null;
  const warned = (c.checks || []).filter(k => k.outcome === 'warning');
  const warning = warned.length
    ? el('p', {className: 'warn', dataset: {checkWarning: c.spec.id}, text: t('check warning', {checks: warned.map(k => `${checkName(k.check)}: ${k.detail}`).join('; ')})}) : null;
  return el('li', {className: `card st-${state}`, dataset: {id: c.spec.id, state}},
    el('img', {src: `/api/v1/creatives/${enc(c.spec.id)}/thumbnail`, alt: title, loading: 'lazy', width: 160, height: 90, className: 'thumb'}),
    el('div', {className: 'body'}, el('h3', {text: title}), badge(state), info, who, reason, warning, actions));
}

async function creativesPage(main) {
  const line = statusLine('creatives-said');
  const list = el('ul', {id: 'creatives', className: 'cards', 'aria-busy': 'true'});
  const empty = el('p', {id: 'creatives-empty', className: 'empty', hidden: true});
  const text = el('input', {id: 'creative-filter', type: 'search', name: 'q', size: 24});
  const stateSel = el('select', {id: 'state-filter', name: 'state'},
    ['all', 'draft', 'submitted', 'approved', 'rejected', 'retired'].map(s => el('option', {value: s, text: t(s)})));
  const reviews = el('div', {id: 'campaign-reviews'});
  let items = [];

  const render = () => {
    const q = text.value.trim().toLowerCase();
    const want = stateSel.value;
    const shown = items.filter(c => (want === 'all' || creativeState(c) === want)
      && (!q || `${c.spec.id}\n${c.spec.title}`.toLowerCase().includes(q)));
    list.replaceChildren(...shown.map(c => creativeCard(c, submitCreative)));
    empty.hidden = shown.length > 0;
    empty.textContent = items.length ? t('no match') : t('no creatives');
  };

  async function submitCreative(c) {
    try {
      await send('POST', `/creatives/${enc(c.spec.id)}/submit`);
      say(line, t('submitted it', {id: c.spec.id}));
    } catch (e) { say(line, e); }
    await load();
  }

  async function load() {
    try {
      items = (await all('/creatives')).sort((a, b) => (b.approval.submitted_at || '').localeCompare(a.approval.submitted_at || '') || a.spec.id.localeCompare(b.spec.id));
      render();
    } catch (e) { say(line, e); }
    list.removeAttribute('aria-busy');
    if (hasRole('staff')) await loadReviews();
  }

  async function loadReviews() {
    let campaigns = [];
    try { campaigns = await all('/campaigns'); } catch (e) { reviews.replaceChildren(el('p', {className: 'said bad', text: `${t('refused')}: ${e.message}`})); return; }
    const open = campaigns.filter(c => c.state !== 'archived' && ['draft', 'submitted', 'rejected'].includes(c.approval.status));
    if (!open.length) { reviews.replaceChildren(el('p', {className: 'empty', text: t('no campaigns in review')})); return; }
    reviews.replaceChildren(table(['Campaign', 'State', 'Submitted', 'Reason', ''], open.map(c => {
      const action = c.approval.status === 'draft'
        ? el('button', {type: 'button', dataset: {submitCampaign: c.spec.id}, text: t('Submit for approval'), 'aria-label': `${t('Submit for approval')}: ${nameOf(c.spec)}`,
          onclick: async () => {
            try { await send('POST', `/campaigns/${enc(c.spec.id)}/submit`); say(line, t('submitted it', {id: c.spec.id})); } catch (e) { say(line, e); }
            await loadReviews();
          }}) : '';
      return el('tr', {dataset: {campaign: c.spec.id, state: c.approval.status}},
        el('td', {}, nameOf(c.spec), el('br'), el('small', {className: 'muted', text: c.spec.id})),
        el('td', {}, badge(c.approval.status)),
        el('td', {text: c.approval.submitted_by ? t('by {who} at {at}', {who: c.approval.submitted_by, at: fmtTime(c.approval.submitted_at)}) : ''}),
        el('td', {className: 'reason', text: c.approval.status === 'rejected' ? `${c.approval.reason || ''} (${c.approval.decided_by || ''})` : ''}),
        el('td', {}, action));
    }), {className: 'reviews'}));
  }

  main.append(el('h1', {text: t('Creatives')}));
  if (hasRole('staff')) {
    const progress = el('progress', {id: 'upload-progress', max: 100, value: 0, 'aria-label': t('Upload progress'), hidden: true});
    const upLine = statusLine('upload-said');
    const fileInput = el('input', {type: 'file', name: 'file', required: true, accept: 'image/*,video/*'});
    const idInput = el('input', {name: 'id', required: true, size: 22, pattern: '[a-z0-9][a-z0-9._-]*', autocomplete: 'off'});
    const titleInput = el('input', {name: 'title', size: 28});
    const secs = el('input', {name: 'duration_seconds', type: 'number', min: 1, max: 3600, size: 5, inputmode: 'numeric'});
    const form = el('form', {id: 'upload', className: 'upload'}, el('fieldset', {},
      el('legend', {text: t('Upload a creative')}),
      fieldWithError(t('File'), fileInput), fieldWithError(t('Id'), idInput), fieldWithError(t('Title'), titleInput),
      fieldWithError(t('Seconds on screen'), secs),
      el('div', {className: 'go'}, el('button', {className: 'primary', text: t('Upload')}), progress, el('span', {className: 'err', dataset: {for: 'meta'}})),
      upLine));
    fileInput.addEventListener('change', () => {
      const file = fileInput.files[0];
      if (file && !idInput.value) idInput.value = idFromName(file.name);
      if (file && !titleInput.value) titleInput.value = file.name.replace(/\.[^.]*$/, '');
      secs.required = !!file && file.type.startsWith('image/');
    });
    form.addEventListener('submit', async ev => {
      ev.preventDefault();
      const chosen = fileInput.files[0];
      if (chosen && chosen.size > MAX_UPLOAD) {
        showError(form, upLine, Object.assign(new Error(t('too big', {size: bytes(chosen.size), max: bytes(MAX_UPLOAD)})), {field: 'file'}));
        return;
      }
      const button = $('button', form);
      button.disabled = true;
      try {
        const made = await upload(form, progress, upLine);
        for (const s of $$('.err', form)) s.textContent = '';
        const verdicts = (made.checks || []).map(c => `${c.check} ${t(`outcome_${c.outcome}`)}`);
        say(upLine, [t('uploaded', {id: made.spec.id}), verdicts.length ? t('verdicts', {list: verdicts.join(', ')}) : '']
          .filter(Boolean).join(' · '));
        form.reset();
        await load();
      } catch (e) {
        showError(form, upLine, e);
      } finally {
        button.disabled = false;
      }
    });
    main.append(form, el('h2', {text: t('Campaigns in review')}), reviews);
  }
  main.append(el('h2', {text: t('Library')}),
    el('div', {className: 'filters', role: 'search'}, field(t('Find'), text), field(t('State'), stateSel)),
    line, empty, list);
  text.addEventListener('input', render);
  stateSel.addEventListener('change', render);
  list.append(el('li', {className: 'loading', text: t('loading')}));
  await load();
}

// ---- #/approvals ----------------------------------------------------------------------------

async function queuePage(main) {
  const line = statusLine('queue-said');
  const box = el('div', {className: 'scroll'}, loadingLine());
  main.append(el('h1', {text: t('Waiting for approval')}), line, box);
  const me = session.user.name;
  // Kept fresh while the page is open (a new submission appears within the interval).
  return every(30000, async () => {
    let campaigns; let creatives;
    try {
      [campaigns, creatives] = await Promise.all([all('/campaigns'), all('/creatives')]);
    } catch (e) { say(line, e); return; }
    const rows = [
      ...campaigns.filter(c => c.approval.status === 'submitted' && c.state !== 'archived')
        .map(c => ({kind: 'campaign', id: c.spec.id, name: nameOf(c.spec), a: c.approval, what: c.approved ? 'change to a live campaign' : 'new campaign'})),
      ...creatives.filter(c => c.approval.status === 'submitted' && !c.retired_at)
        .map(c => ({kind: 'creative', id: c.spec.id, name: nameOf({title: c.spec.title, id: c.spec.id}), a: c.approval, what: 'new creative'})),
    ].sort((x, y) => (x.a.submitted_at || '').localeCompare(y.a.submitted_at || ''));
    if (!rows.length) {
      box.replaceChildren(el('p', {id: 'queue', className: 'empty', text: t('queue empty')}));
      return;
    }
    box.replaceChildren(table(['Kind', 'Name', 'What', 'Submitted by', 'Submitted at'], rows.map(r =>
      el('tr', {dataset: {kind: r.kind, id: r.id}},
        el('td', {}, t(r.kind === 'campaign' ? 'Campaign' : 'Creative')),
        el('td', {}, el('a', {href: `#/approvals/${r.kind}/${enc(r.id)}`, text: r.name}), el('br'), el('small', {className: 'muted', text: r.id})),
        el('td', {}, t(r.what), r.a.submitted_by === me ? el('small', {className: 'warn own', text: ` (${t('your own')})`}) : ''),
        el('td', {text: r.a.submitted_by || ''}),
        el('td', {text: fmtTime(r.a.submitted_at)}))), {id: 'queue'}));
  });
}

/** The decision form: `textarea#reason`, `#approve`, `#reject`; `decide(action, reason)`
 * calls the server. A rejection without a reason is stopped here. */
function decisionForm(status, decide) {
  const reason = el('textarea', {id: 'reason', name: 'reason', rows: 3, cols: 60, 'aria-describedby': 'reason-err'});
  const err = el('span', {id: 'reason-err', className: 'err', 'aria-live': 'polite'});
  const line = statusLine('decision-said');
  const approve = el('button', {type: 'button', id: 'approve', className: 'primary', text: t('Approve')});
  const reject = el('button', {type: 'button', id: 'reject', className: 'danger', text: t('Reject')});
  const run = async (action) => {
    err.textContent = '';
    reason.removeAttribute('aria-invalid');
    if (action === 'reject' && !reason.value.trim()) {
      err.textContent = t('reason needed');
      reason.setAttribute('aria-invalid', 'true');
      reason.focus();
      return;
    }
    approve.disabled = reject.disabled = true;
    try {
      await decide(action, reason.value.trim(), line);
    } catch (e) {
      say(line, e);
      if (e.field === 'reason') { err.textContent = e.message; reason.focus(); }
    } finally {
      approve.disabled = reject.disabled = false;
    }
  };
  approve.addEventListener('click', () => run('approve'));
  reject.addEventListener('click', () => run('reject'));
  const note = status === 'submitted' ? null : el('p', {className: 'warn', text: t('not submitted', {status: t(status)})});
  return el('section', {className: 'decision', 'aria-labelledby': 'decision-h'},
    el('h2', {id: 'decision-h', text: t('Your decision')}), note,
    el('label', {className: 'field wide'}, el('span', {text: t('Reason (required to reject)')}), reason, err),
    el('div', {className: 'go'}, approve, reject), line,
    el('p', {}, el('a', {href: '#/approvals', text: t('back to queue')})));
}

/** A campaign's fields as dotted paths, in the order they are written. */
export function flatten(value, path = '', out = new Map()) {
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value)) flatten(v, path ? `${path}.${k}` : k, out);
  } else if (path) out.set(path, value);
  return out;
}

const FIELD_ORDER = ['name', 'priority', 'weight', 'flight.start', 'flight.end', 'dayparts', 'max_plays_per_hour',
  'target.screens', 'target.venues', 'target.venue_types', 'target.districts', 'target.tags', 'creatives'];

/** Field by field: [{field, before, after, change}] of `after` against `before` (null: all
 * added). */
export function diff(before, after) {
  const a = before ? flatten(before) : new Map();
  const b = flatten(after);
  const keys = [...new Set([...FIELD_ORDER, ...a.keys(), ...b.keys()])].filter(k => k !== 'id' && (a.has(k) || b.has(k)));
  return keys.map(k => {
    const x = a.get(k); const y = b.get(k);
    // Instants compare as instants: "+08:00" and "Z" of the same moment are the same.
    const same = k.startsWith('flight.') && x && y ? Date.parse(x) === Date.parse(y) : JSON.stringify(x) === JSON.stringify(y);
    let change = 'changed';
    if (x === undefined) change = 'added';
    else if (y === undefined) change = 'removed';
    else if (same) change = 'same';
    return {field: k, before: x, after: y, change};
  });
}

function showValue(field, v) {
  if (v === undefined || v === null) return '';
  if (field.startsWith('flight.')) return fmtTime(v);
  if (Array.isArray(v)) return v.map(x => (typeof x === 'object' ? JSON.stringify(x) : String(x))).join(', ');
  return String(v);
}

function diffTable(rows, beforeLabel, id) {
  return el('div', {className: 'scroll'}, table(['Field', beforeLabel, 'After', 'Change'], rows.map(r => {
    let note = t(r.change);
    if (r.change === 'changed' && Array.isArray(r.before) && Array.isArray(r.after)) {
      const plus = r.after.filter(x => !r.before.includes(x)); const minus = r.before.filter(x => !r.after.includes(x));
      note = [plus.length ? t('plus', {items: plus.join(', ')}) : '', minus.length ? t('minus', {items: minus.join(', ')}) : ''].filter(Boolean).join('; ') || note;
    }
    return el('tr', {className: `ch-${r.change}`, dataset: {field: r.field, change: r.change}},
      el('th', {scope: 'row', text: r.field}),
      el('td', {text: showValue(r.field, r.before)}),
      el('td', {text: showValue(r.field, r.after)}),
      el('td', {className: 'change', text: note}));
  }), {id, className: 'diff'}));
}

function forecastView(f, venues) {
  const mine = f.by_campaign.find(c => c.id === f.campaign);
  const venueName = id => (venues.get(id) ? nameOf(venues.get(id)) : id);
  const top = [...f.by_venue].sort((x, y) => (y.with - y.without) - (x.with - x.without)).slice(0, 10);
  return el('div', {id: 'forecast-result'},
    el('p', {text: t('forecast summary', {plays: mine ? mine.with : 0, screens: f.screens, from: fmtTime(f.from), to: fmtTime(f.to)})}),
    f.truncated ? el('p', {className: 'warn', text: t('forecast truncated')}) : null,
    el('div', {className: 'cols'},
      table(['District', 'Without', 'With'], f.by_district.map(d => [d.id, num(d.without), num(d.with)]), {className: 'compact'}),
      table(['Venue', 'Without', 'With'], top.map(d => [venueName(d.id), num(d.without), num(d.with)]), {className: 'compact'})),
    el('h3', {text: t('Loses plays')}),
    f.displaced.length
      ? table(['Campaign', 'Lost'], f.displaced.map(d => [d.campaign, num(d.lost)]), {className: 'compact'})
      : el('p', {className: 'empty', text: t('nobody displaced')}));
}

/** Where a creative can be seen: a video plays from `/media/{sha256}`; a still is its file. */
function creativeMedia(c, large) {
  const title = nameOf({title: c.spec.title, id: c.spec.id});
  const thumb = `/api/v1/creatives/${enc(c.spec.id)}/thumbnail`;
  if (c.spec.kind === 'video') {
    return el('video', {controls: true, preload: 'metadata', poster: thumb, src: `/media/${c.spec.sha256}`, className: large ? 'large' : 'small', 'aria-label': title});
  }
  return el('img', {src: large ? `/media/${c.spec.sha256}` : thumb, alt: title, className: large ? 'large' : 'small', loading: 'lazy'});
}

async function campaignReview(main, params) {
  const id = params.id;
  const wait = loadingLine();
  main.append(wait);
  const [v, creatives, screens] = await Promise.all([
    api(`/campaigns/${enc(id)}/versions`), all('/creatives').catch(() => []), all('/preview/screens').catch(() => []),
  ]);
  wait.remove();
  const byId = new Map(creatives.map(c => [c.spec.id, c]));
  const venues = new Map(screens.map(s => [s.venue_id, {id: s.venue_id, name: s.venue_name, name_en: s.venue_name_en}]));
  const a = v.approval;
  main.append(el('h1', {text: t('Review of campaign', {name: nameOf(v.working)})}),
    el('p', {className: 'meta'}, el('code', {text: v.id}), ' ', badge(a.status), ' ',
      a.submitted_by ? t('by {who} at {at}', {who: a.submitted_by, at: fmtTime(a.submitted_at)}) : ''));

  // The diff: against the live version (or all added), and since the last rejection.
  const box = el('section', {id: 'diff', 'aria-labelledby': 'diff-h'}, el('h2', {id: 'diff-h', text: t('What changed')}));
  if (v.live) {
    const rows = diff(v.live.spec, v.working);
    box.append(el('p', {text: t('against live', {who: v.live.approved_by || '?', at: fmtTime(v.live.approved_at)})}),
      diffTable(rows, 'Before', 'diff-live'));
  } else {
    box.append(el('p', {text: t('new: all added')}));
  }
  const r = v.rejected;
  if (r) {
    const rows = diff(r.spec, v.working).filter(x => x.change !== 'same');
    box.append(el('h3', {text: t('since rejected', {who: r.approval.decided_by || '?', at: fmtTime(r.approval.decided_at), reason: r.approval.reason || ''})}),
      rows.length ? diffTable(rows, 'Rejected version', 'diff-rejected') : el('p', {className: 'empty', text: t('nothing changed since rejected')}));
  }
  if (!v.live) box.append(el('details', {}, el('summary', {text: t('all fields')}), diffTable(diff(null, v.working), 'Before', 'diff-all')));
  main.append(box);

  // Forecast of the submitted version.
  const fc = el('section', {id: 'forecast', 'aria-labelledby': 'forecast-h', 'aria-busy': 'true'},
    el('h2', {id: 'forecast-h', text: t('Forecast')}), loadingLine());
  main.append(fc);
  send('POST', '/forecast', v.working)
    .then(f => fc.replaceChildren(fc.firstChild, forecastView(f, venues)))
    .catch(e => fc.replaceChildren(fc.firstChild, el('p', {className: 'said bad', text: `${t('refused')}: ${e.message}`})))
    .finally(() => fc.removeAttribute('aria-busy'));

  // Its creatives.
  main.append(el('section', {id: 'campaign-creatives', 'aria-labelledby': 'cc-h'}, el('h2', {id: 'cc-h', text: t('Its creatives')}),
    el('ul', {className: 'cards'}, v.working.creatives.map(cid => {
      const c = byId.get(cid);
      if (!c) return el('li', {className: 'card', dataset: {id: cid}}, el('p', {text: cid}));
      const st = creativeState(c);
      return el('li', {className: `card st-${st}`, dataset: {id: cid}}, creativeMedia(c, false),
        el('div', {className: 'body'}, el('h3', {text: nameOf({title: c.spec.title, id: cid})}), badge(st),
          st === 'approved' ? null : el('p', {className: 'warn'}, t('creative not approved'), ' ',
            st === 'submitted' ? el('a', {href: `#/approvals/creative/${enc(cid)}`, text: t('Review')}) : '')));
    }))));

  main.append(decisionForm(a.status, async (action, reason, line) => {
    const done = await send('POST', `/campaigns/${enc(id)}/${action}`, action === 'reject' ? {reason} : undefined);
    say(line, t(action === 'approve' ? 'approved it' : 'rejected it', {name: nameOf(done.spec)}));
    $('.meta .badge', main).replaceWith(badge(done.approval.status));
  }));
}

async function creativeReview(main, params) {
  const c = await api(`/creatives/${enc(params.id)}`);
  const st = creativeState(c);
  const title = nameOf({title: c.spec.title, id: c.spec.id});
  const m = c.measurement || {};
  main.append(el('h1', {text: t('Review of creative', {name: title})}),
    el('p', {className: 'meta'}, el('code', {text: c.spec.id}), ' ', badge(st), ' ',
      c.approval.submitted_by ? t('by {who} at {at}', {who: c.approval.submitted_by, at: fmtTime(c.approval.submitted_at)}) : ''),
    el('figure', {id: 'creative-large'}, creativeMedia(c, true),
      el('figcaption', {text: `${t(`kind_${c.spec.kind}`)}, ${c.spec.duration_seconds} s, ${m.width || '?'}×${m.height || '?'} px, ${bytes(c.spec.bytes)}`})),
    st === 'rejected' && c.approval.reason ? el('p', {className: 'reason bad', text: t('Rejected because', {reason: c.approval.reason})}) : '',
    checksView(c),
    decisionForm(c.approval.status, async (action, reason, line) => {
      const done = await send('POST', `/creatives/${enc(c.spec.id)}/${action}`, action === 'reject' ? {reason} : undefined);
      say(line, t(action === 'approve' ? 'approved it' : 'rejected it', {name: title}));
      $('.meta .badge', main).replaceWith(badge(creativeState(done)));
    }));
}

// ---- #/preview ------------------------------------------------------------------------------

const venueOf = s => ({id: s.venue_id, name: s.venue_name, name_en: s.venue_name_en});
const PALETTE = 12;

/** "HH:MM:SS" of `ms` in `zone`. */
function clock(ms, zone) {
  return new Intl.DateTimeFormat('sv-SE', {timeZone: zone, hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23'}).format(new Date(ms));
}

/** Plan CSV rows: {at (ms), iso, campaign, creative}. */
function parsePlan(csv) {
  return csv.split('\n').slice(1).filter(Boolean).map(line => {
    const [, , at, campaign, creative] = line.split(',');
    return {at: Date.parse(at), iso: at, campaign, creative};
  });
}

function screenPicker(current) {
  const input = el('input', {id: 'screen-search', type: 'search', name: 'q', size: 30, autocomplete: 'off', value: current || ''});
  const results = el('ul', {id: 'screens', className: 'screen-list', 'aria-live': 'polite'});
  const count = el('p', {className: 'muted', role: 'status'});
  let timer = null; let asked = 0;
  const search = async () => {
    const q = input.value.trim();
    const mine = ++asked;
    let page;
    try { page = await api(`/preview/screens${qs({q, limit: 50})}`); } catch (e) { count.textContent = `${t('refused')}: ${e.message}`; return; }
    if (mine !== asked) return;
    count.textContent = page.next ? t('more screens', {n: page.items.length}) : t('screens found', {n: page.items.length});
    results.replaceChildren(...(page.items.length ? page.items.map(s => el('li', {dataset: {screen: s.id}, className: s.id === current ? 'current' : ''},
      el('a', {href: `#/preview/${enc(s.id)}`},
        el('strong', {text: nameOf(venueOf(s))}), ' ', el('span', {className: 'muted', text: `${s.id} · ${s.district || ''} · ${s.venue_type}`})))) : [el('li', {className: 'empty', text: t('no screens', {q})})]));
  };
  input.addEventListener('input', () => { clearTimeout(timer); timer = setTimeout(search, 200); });
  search();
  return el('section', {className: 'picker', 'aria-label': t('Find a screen')}, field(t('Find a screen'), input), count, results);
}

async function previewPage(main, params, query) {
  main.append(el('h1', {text: t('Preview')}));
  const layout = el('div', {className: 'preview'});
  main.append(layout);
  const id = params.screen;
  layout.append(screenPicker(id));
  const right = el('div', {className: 'preview-main'});
  layout.append(right);
  if (!id) { right.append(el('p', {className: 'empty', text: t('Pick a screen')})); return undefined; }

  right.append(loadingLine());
  const found = await api(`/preview/screens${qs({q: id, limit: 1000})}`);
  const s = found.items.find(x => x.id === id);
  if (!s) { right.replaceChildren(el('p', {className: 'said bad', text: t('unknown screen', {id})})); return undefined; }
  const zone = s.timezone;
  // Names where this user may read them (auditors see ids).
  const [campaigns, creatives] = await Promise.all([
    hasRole('staff', 'approver') ? all('/campaigns').catch(() => []) : [],
    hasRole('staff', 'approver') ? all('/creatives').catch(() => []) : [],
  ]);
  const campaignName = new Map(campaigns.map(c => [c.spec.id, nameOf(c.spec)]));
  const creativeName = new Map(creatives.map(c => [c.spec.id, nameOf({title: c.spec.title, id: c.spec.id})]));

  const hourMs = 3600e3;
  const startIso = query.get('from') || new Date(Math.floor(Date.now() / hourMs) * hourMs).toISOString();
  const fromInput = el('input', {id: 'preview-from', type: 'datetime-local', name: 'from', step: 3600, value: isoToZoned(startIso, zone)});
  const form = el('form', {className: 'filters', id: 'preview-form'}, field(t('From', {zone}), fromInput), el('button', {text: t('Show')}));
  form.addEventListener('submit', ev => {
    ev.preventDefault();
    const iso = zonedToIso(fromInput.value, zone);
    if (iso) go(`preview/${enc(id)}?from=${enc(iso)}`);
  });
  const from = Date.parse(startIso);
  const to = from + 24 * hourMs;
  const explain = el('section', {id: 'explain-box', 'aria-labelledby': 'explain-h'},
    el('h2', {id: 'explain-h', text: t('Explanation')}),
    el('pre', {id: 'explain', tabindex: 0, 'aria-live': 'polite', text: t('explain hint')}));
  right.replaceChildren(
    el('h2', {text: t('timeline of', {screen: s.id, venue: nameOf(venueOf(s)), from: fmtTime(startIso, zone)})}),
    el('p', {className: 'muted', text: `${t('times in', {zone})} ${s.district || ''} · ${s.venue_type} · ${s.width}×${s.height} · ${s.slot_seconds} s`}),
    form, loadingLine());

  let plays;
  try {
    plays = parsePlan(await (async () => {
      const resp = await apiRaw(`/plan${qs({screen: id, from: new Date(from).toISOString(), to: new Date(to).toISOString()})}`);
      const text = await resp.text();
      if (!resp.ok) { let b = null; try { b = JSON.parse(text); } catch (_) { /* text */ } throw new ApiError(resp.status, b); }
      return text;
    })());
  } catch (e) {
    right.lastChild.replaceWith(el('p', {className: 'said bad', role: 'alert', text: `${t('refused')}: ${e.message}`}));
    return undefined;
  }
  const colour = new Map();
  const counts = new Map();
  for (const p of plays) {
    if (!colour.has(p.campaign)) colour.set(p.campaign, colour.size % PALETTE);
    counts.set(p.campaign, (counts.get(p.campaign) || 0) + 1);
  }
  const slotMs = s.slot_seconds * 1000;
  const timeline = el('div', {id: 'timeline', role: 'group', 'aria-label': t('Timeline'), dataset: {zone}});
  const ruler = el('div', {className: 'ruler', 'aria-hidden': 'true'}, el('span', {className: 'hour-label'}),
    el('div', {className: 'ticks'}, [0, 15, 30, 45].map(m => el('span', {text: `:${String(m).padStart(2, '0')}`}))));
  timeline.append(ruler);
  const buttons = [];
  let i = 0;
  for (let h = from; h < to; h += hourMs) {
    const track = el('div', {className: 'track'});
    while (i < plays.length && plays[i].at < h + hourMs) {
      const p = plays[i++];
      if (p.at < h) continue;
      const label = t('slot label', {time: clock(p.at, zone), campaign: campaignName.get(p.campaign) || p.campaign, creative: creativeName.get(p.creative) || p.creative});
      const b = el('button', {type: 'button', className: `slot c${colour.get(p.campaign)}`, tabindex: -1, 'aria-label': label, title: label,
        dataset: {at: p.iso, campaign: p.campaign, creative: p.creative}});
      b.style.left = `${((p.at - h) / hourMs) * 100}%`;
      b.style.width = `${(slotMs / hourMs) * 100}%`;
      buttons.push(b);
      track.append(b);
    }
    timeline.append(el('div', {className: 'hour'}, el('span', {className: 'hour-label', text: clock(h, zone).slice(0, 5)}), track));
  }
  if (buttons.length) buttons[0].tabIndex = 0;

  let current = buttons[0];
  const focus = b => {
    if (!b) return;
    if (current) current.tabIndex = -1;
    b.tabIndex = 0;
    b.focus();
    current = b;
  };
  timeline.addEventListener('keydown', ev => {
    const k = buttons.indexOf(document.activeElement);
    if (k < 0) return;
    const at = Date.parse(buttons[k].dataset.at);
    let next = null;
    if (ev.key === 'ArrowRight') next = buttons[k + 1];
    else if (ev.key === 'ArrowLeft') next = buttons[k - 1];
    else if (ev.key === 'ArrowDown') next = buttons.find(b => Date.parse(b.dataset.at) >= at + hourMs) || buttons[buttons.length - 1];
    else if (ev.key === 'ArrowUp') next = [...buttons].reverse().find(b => Date.parse(b.dataset.at) <= at - hourMs) || buttons[0];
    else if (ev.key === 'Home') next = buttons[0];
    else if (ev.key === 'End') next = buttons[buttons.length - 1];
    else return;
    ev.preventDefault();
    focus(next);
  });
  let asked = 0;
  timeline.addEventListener('click', async ev => {
    const b = ev.target.closest('button.slot');
    if (!b) return;
    focus(b);
    for (const x of $$('.slot.picked', timeline)) { x.classList.remove('picked'); x.removeAttribute('aria-current'); }
    b.classList.add('picked');
    b.setAttribute('aria-current', 'true');
    const out = $('#explain');
    const mine = ++asked;
    out.textContent = t('loading');
    out.dataset.at = b.dataset.at;
    try {
      const resp = await apiRaw(`/explain${qs({screen: id, at: b.dataset.at})}`);
      const text = await resp.text();
      if (mine !== asked) return;
      if (!resp.ok) { let body = null; try { body = JSON.parse(text); } catch (_) { /* text */ } throw new ApiError(resp.status, body); }
      out.textContent = `${b.getAttribute('aria-label')} (${zone})\n\n${text}`;
      out.classList.remove('bad');
    } catch (e) {
      out.textContent = `${t('refused')}: ${e.message}`;
      out.classList.add('bad');
    }
  });

  const legend = el('ul', {id: 'legend', className: 'legend', 'aria-label': t('Legend')},
    [...colour.entries()].map(([cid, c]) => el('li', {dataset: {campaign: cid}},
      el('span', {className: `swatch c${c}`, 'aria-hidden': 'true'}), ` ${campaignName.get(cid) || cid} `,
      el('span', {className: 'muted', text: t('plays', {n: counts.get(cid)})}))));
  right.lastChild.replaceWith(...(plays.length
    ? [legend, el('div', {className: 'scroll'}, timeline), explain]
    : [el('p', {className: 'empty', id: 'timeline', text: t('no plays')})]));
  return undefined;
}

register({path: 'approvals', title: 'Approvals', roles: ['approver'], menu: true, home: 'approver', render: queuePage});
register({path: 'approvals/campaign/:id', title: 'Approvals', roles: ['approver'], render: campaignReview});
register({path: 'approvals/creative/:id', title: 'Approvals', roles: ['approver'], render: creativeReview});
register({path: 'creatives', title: 'Creatives', roles: ['staff', 'approver'], menu: true, render: creativesPage});
register({path: 'preview', title: 'Preview', roles: ['staff', 'approver', 'auditor'], menu: true, render: previewPage});
register({path: 'preview/:screen', title: 'Preview', roles: ['staff', 'approver', 'auditor'], render: previewPage});
