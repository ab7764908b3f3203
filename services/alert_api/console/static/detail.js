// The alert detail: facts, actions (operator keys only), evidence snapshots (detection boxes
// and zones drawn over them), the event timeline (evidence and lifecycle changes in time
// order) and the audit trail.
import { esc, severityBadge } from './format.js';

const MAX_SNAPSHOTS = 4;

function timeline(alert, audit, timeAt) {
  const items = alert.evidence.map((e) => ({ ts: e.ts, text: `${e.source} event ${e.event_id}` +
    (e.camera_id ? ` (camera ${e.camera_id})` : '') + (e.sensor_id ? ` (sensor ${e.sensor_id})` : '') }));
  for (const entry of audit) {
    if (entry.action !== 'evidence') {
      items.push({ ts: entry.ts, text: `${entry.action} by ${entry.actor}` +
        (entry.comment ? ` — ${entry.comment}` : '') });
    }
  }
  items.sort((a, b) => a.ts - b.ts);
  return items.map((i) => `<li><time>${esc(timeAt(i.ts, alert.site_id))}</time> ${esc(i.text)}</li>`).join('');
}

function auditTrail(alert, audit, timeAt) {
  return audit.map((e) => `<li data-action="${esc(e.action)}"><time>${esc(timeAt(e.ts, alert.site_id))}</time>
    <b>${esc(e.actor)}</b> ${esc(e.action)} ${esc(e.from_state)} → ${esc(e.to_state)} (v${e.version})
    ${e.comment ? `— ${esc(e.comment)}` : ''}${e.event_ids && e.event_ids.length ?
      ` events: ${esc(e.event_ids.join(', '))}` : ''}</li>`).join('');
}

const pts = (polygon) => polygon.map(([x, y]) => `${x},${y}`).join(' ');

// The camera zone(s) an evidence item was seen in: its own zone_id, else (alerts older than
// schema 4) the camera's zones mapped to the alert's zone.
function zonesOf(item, alert, cameras) {
  const camera = cameras.get(item.camera_id || alert.camera_id);
  if (!camera) return [];
  return camera.zones.filter((z) => (item.zone_id ? z.id === item.zone_id
    : z.id === alert.zone_id || z.site_zone === alert.zone_id));
}

// Detection boxes and zones over a snapshot, in normalised image coordinates.
function overlay(items, alert, cameras) {
  const zones = new Map();
  for (const item of items) for (const z of zonesOf(item, alert, cameras)) zones.set(z.id, z);
  const boxes = items.filter((i) => i.box);
  if (!zones.size && !boxes.length) return '';
  return `<svg class="overlay" viewBox="0 0 1 1" preserveAspectRatio="none" aria-hidden="true">
    ${[...zones.values()].map((z) => `<polygon class="zone" data-zone="${esc(z.id)}" points="${pts(z.polygon)}"><title>zone ${esc(z.id)}</title></polygon>`).join('')}
    ${boxes.map(({ box: b, event_id: id }) => `<rect class="box" data-event="${esc(id)}" x="${b.x1}" y="${b.y1}"
      width="${b.x2 - b.x1}" height="${b.y2 - b.y1}"><title>${esc(id)}</title></rect>`).join('')}</svg>`;
}

function snapshots(alert, cameras) {
  const refs = [...new Set(alert.evidence.map((e) => e.snapshot_ref).filter(Boolean))].slice(0, MAX_SNAPSHOTS);
  if (!refs.length) return '<p class="empty">No snapshot kept for this alert.</p>';
  return `<div class="snaps" data-refs="${esc(refs.join(' '))}">${refs.map((ref) => `<figure><div class="shot"><img class="snapshot" loading="lazy"
    src="/v1/snapshots/${ref.split('/').map(encodeURIComponent).join('/')}"
    alt="Evidence snapshot ${esc(ref)} (faces pixelated)">${overlay(alert.evidence.filter((e) => e.snapshot_ref === ref), alert, cameras)}</div>
    <figcaption>${esc(ref)}</figcaption></figure>`).join('')}</div>`;
}

function checklist(alert, procedure, canTick, timeAt) {
  if (!procedure.steps.length) return '';
  return `<h3>Procedure</h3><ol id="procedure" class="procedure">${procedure.steps.map((s) => `<li>
    <label><input type="checkbox" data-step="${s.index}"${s.done ? ' checked' : ''}${canTick ? '' : ' disabled'}>
    ${esc(s.text)}</label>${s.by ? ` <small>${s.done ? 'done' : 'unticked'} by ${esc(s.by)},
    ${esc(timeAt(s.at, alert.site_id))}</small>` : ''}</li>`).join('')}</ol>`;
}

export function renderDetail(root, alert, audit, procedure, { operator, timeAt, act, resolveDialog, tick, cameras }) {
  const active = alert.state !== 'resolved';
  const exportLink = `<a id="export" class="button" download
    href="/v1/alerts/${encodeURIComponent(alert.alert_id)}/export">Export case</a>`;
  const actions = !operator ? '' : active ? `<div class="actions">
      <textarea id="ack-note" rows="2" maxlength="1800" placeholder="Note (optional)"
        aria-label="Note"></textarea>
      ${alert.state === 'open' ? '<button id="ack" class="primary" type="button">Acknowledge (a)</button>' : ''}
      <button id="note" type="button">Add note</button>
      <button id="escalate" type="button"${alert.severity === 'critical' ? ' disabled' : ''}>Escalate</button>
      <button id="resolve" type="button">Resolve… (r)</button>${exportLink}
      <span class="assign"><input id="assignee" maxlength="100" placeholder="Operator name"
        aria-label="Assign to" value="${esc(alert.assigned_to || '')}">
      <button id="assign" type="button">Assign</button></span></div>`
    : `<div class="actions">${exportLink}</div>`;
  // a live change redraws the detail: what the operator is typing survives it
  const same = root.dataset.alertId === alert.alert_id;
  const typed = same ? { note: root.querySelector('#ack-note')?.value,
    assignee: root.querySelector('#assignee')?.value, focus: document.activeElement?.id } : {};
  // the snapshots already shown stay (each load is a face-model pass on the server)
  const shown = same ? root.querySelector('.snaps') : null;
  root.dataset.alertId = alert.alert_id;
  root.innerHTML = `<h2>${severityBadge(alert.severity)} ${esc(alert.title)}</h2>
    <dl><dt>State</dt><dd id="detail-state">${esc(alert.state)}</dd>
    <dt>Rule</dt><dd>${esc(alert.rule)}</dd><dt>Site</dt><dd>${esc(alert.site_id)} / ${esc(alert.zone_id)}</dd>
    <dt>Camera</dt><dd>${esc(alert.camera_id || '—')}</dd>
    <dt>First seen</dt><dd>${esc(timeAt(alert.first_seen, alert.site_id))}</dd>
    <dt>Last seen</dt><dd>${esc(timeAt(alert.last_seen, alert.site_id))}</dd>
    <dt>Count</dt><dd>${alert.count}</dd><dt>Version</dt><dd id="detail-version">${alert.version}</dd>
    ${alert.assigned_to ? `<dt>Assigned to</dt><dd id="detail-assignee">${esc(alert.assigned_to)}</dd>` : ''}
    ${alert.acknowledged_by ? `<dt>Acknowledged</dt><dd>${esc(alert.acknowledged_by)}</dd>` : ''}
    ${alert.resolved_by ? `<dt>Resolved</dt><dd>${esc(alert.resolved_by)}</dd>` : ''}</dl>
    ${actions}
    ${checklist(alert, procedure, operator && active, timeAt)}
    <h3>Evidence</h3>${snapshots(alert, cameras)}
    <h3>Timeline</h3><ol class="timeline">${timeline(alert, audit, timeAt)}</ol>
    <h3>Audit trail</h3><ol id="audit" class="audit">${auditTrail(alert, audit, timeAt)}</ol>`;
  const fresh = root.querySelector('.snaps');
  if (shown && fresh && shown.dataset.refs === fresh.dataset.refs) fresh.replaceWith(shown);
  for (const [id, value] of [['ack-note', typed.note], ['assignee', typed.assignee]]) {
    const field = root.querySelector(`#${id}`);
    if (field && value !== undefined) field.value = value;
    if (field && typed.focus === id) field.focus();
  }
  for (const img of root.querySelectorAll('img.snapshot')) {
    img.addEventListener('error', () => { img.alt = 'Snapshot unavailable'; img.classList.add('missing'); });
  }
  const note = () => root.querySelector('#ack-note').value.trim();
  const on = (id, handler) => { const el = root.querySelector(id); if (el) el.addEventListener('click', handler); };
  on('#ack', () => act('acknowledge', alert, note()));
  on('#note', () => act('note', alert, note()));
  on('#escalate', () => act('escalate', alert, note()));
  on('#assign', () => act('assign', alert, note(), { assignee: root.querySelector('#assignee').value.trim() }));
  on('#resolve', () => resolveDialog(alert));
  for (const box of root.querySelectorAll('#procedure input')) {
    box.addEventListener('change', () => tick(alert, Number(box.dataset.step), box.checked));
  }
}
