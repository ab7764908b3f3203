// The operations console: sign-in, the live queue, filters in the URL, map, alert detail.
import { ApiError, call, get, openFeed, post } from './api.js';
import { compareAlerts, esc, formatTime, rank, severityBadge } from './format.js';
import { drawMap, setUpMap } from './map.js';
import { renderDetail } from './detail.js';
import { refresh as refreshWatchlists, wireWatchlists } from './watchlists.js';
import { showWall } from './cameras.js';

const $ = (id) => document.getElementById(id);
const FILTERS = ['site', 'rule', 'severity', 'state', 'camera', 'since'];
const SINCE_S = { '15m': 900, '1h': 3600, '24h': 86400 };
const state = { me: null, sites: [], zones: new Map(), alerts: new Map(), selected: null,
  fresh: new Set(), painted: false, muted: localStorage.getItem('argus.muted') === '1',
  resolvedLoaded: false, cameras: null };

const filters = () => {
  const params = new URLSearchParams(location.search);
  return Object.fromEntries(FILTERS.map((f) => [f, params.get(f) || (f === 'state' ? 'active' : '')]));
};

function setFilter(name, value) {
  const params = new URLSearchParams(location.search);
  if (value && !(name === 'state' && value === 'active')) params.set(name, value);
  else params.delete(name);
  history.replaceState(null, '', `${location.pathname}${params.size ? `?${params}` : ''}`);
  if (name === 'state' && ['resolved', 'all'].includes(value)) loadResolved();
  render();
}

function matches(alert, f) {
  const stateOk = f.state === 'all' || alert.state === f.state ||
    (f.state === 'active' && alert.state !== 'resolved');
  return stateOk && (!f.site || alert.site_id === f.site) && (!f.rule || alert.rule === f.rule) &&
    (!f.severity || alert.severity === f.severity) && (!f.camera || alert.camera_id === f.camera) &&
    (!SINCE_S[f.since] || alert.last_seen >= Date.now() / 1000 - SINCE_S[f.since]);
}

const zoneOf = (siteId) => state.zones.get(siteId) || 'UTC';
const timeAt = (seconds, siteId) => formatTime(seconds, zoneOf(siteId));

function visible() {
  const f = filters();
  return [...state.alerts.values()].filter((a) => matches(a, f)).sort(compareAlerts);
}

function rowHtml(a) {
  const classes = `row s-${a.severity} ${a.state}${a.alert_id === state.selected ? ' selected' : ''}` +
    (state.fresh.has(a.alert_id) ? ' fresh' : '');
  return `<li class="${classes}" data-id="${esc(a.alert_id)}" data-version="${a.version}"
    data-severity="${esc(a.severity)}" data-state="${esc(a.state)}" data-site="${esc(a.site_id)}">
    ${severityBadge(a.severity)}<span class="title">${esc(a.title)}</span>
    <span class="state">${esc(a.state)}</span>
    <span class="meta">${esc(a.rule)} · ${esc(a.site_id)}/${esc(a.zone_id)}${a.camera_id ?
      ` · ${esc(a.camera_id)}` : ''}${a.count > 1 ? ` · ×${a.count}` : ''}${a.assigned_to ?
      ` · → ${esc(a.assigned_to)}` : ''}</span>
    <span class="when">${esc(timeAt(a.last_seen, a.site_id))}</span></li>`;
}

function fillOptions(select, values, current) {
  const first = select.options[0].outerHTML;
  const all = [...new Set([...values, current].filter(Boolean))].sort();
  const html = first + all.map((v) => `<option value="${esc(v)}">${esc(v)}</option>`).join('');
  if (select.dataset.html !== html) { select.innerHTML = html; select.dataset.html = html; }
  select.value = current;
}

let scheduled = false;
function render() {
  if (scheduled) return;
  scheduled = true;
  requestAnimationFrame(() => { scheduled = false; paint(); });
}

function paint() {
  const f = filters();
  const list = visible();
  $('queue').innerHTML = list.map(rowHtml).join('');
  $('empty').hidden = list.length > 0;
  state.fresh.clear();
  const all = [...state.alerts.values()];
  fillOptions($('f-site'), [...state.sites.map((s) => s.id), ...all.map((a) => a.site_id)], f.site);
  fillOptions($('f-rule'), all.map((a) => a.rule), f.rule);
  fillOptions($('f-camera'), all.map((a) => a.camera_id), f.camera);
  $('f-severity').value = f.severity;
  $('f-state').value = f.state;
  $('f-since').value = SINCE_S[f.since] ? f.since : '';
  const open = all.filter((a) => a.state === 'open').length;
  $('counts').textContent = `${open} open · ${all.filter((a) => a.state === 'acknowledged').length} acknowledged`;
  drawMap($('map'), state.sites, all, f.site, (site) => setFilter('site', f.site === site ? '' : site));
  if (!state.painted) {
    state.painted = true;
    performance.mark('argus:queue-painted');
  }
}

function beep() {
  if (state.muted) return;
  try {
    const ctx = new AudioContext();
    const tone = ctx.createOscillator();
    tone.connect(ctx.destination);
    tone.frequency.value = 880;
    tone.start();
    tone.stop(ctx.currentTime + 0.2);
  } catch { /* no audio device */ }
}

function upsert(alert, live) {
  const known = state.alerts.get(alert.alert_id);
  if (known && known.version > alert.version) return;
  if (live && !known && rank(alert.severity) >= rank('high')) beep();
  if (live) state.fresh.add(alert.alert_id);
  state.alerts.set(alert.alert_id, alert);
  if (live && alert.alert_id === state.selected) showDetail(alert.alert_id);
}

async function loadResolved() {
  if (state.resolvedLoaded) return;
  state.resolvedLoaded = true;
  const { alerts } = await get('/v1/alerts?state=resolved&limit=500');
  for (const a of alerts) upsert(a, false);
  render();
}

function select(alertId) {
  state.selected = alertId;
  for (const row of $('queue').querySelectorAll('.row.selected')) row.classList.remove('selected');
  const row = $('queue').querySelector(`[data-id="${CSS.escape(alertId)}"]`);
  if (row) { row.classList.add('selected'); row.scrollIntoView({ block: 'nearest' }); }
  showDetail(alertId);
}

async function showDetail(alertId) {
  // the cameras' zones, drawn over evidence snapshots: asked once, with the first alert shown
  state.cameras ||= get('/v1/cameras').then((list) => new Map(list.map((c) => [c.id, c])),
    () => { state.cameras = null; return new Map(); });  // asked again next time
  try {
    const id = encodeURIComponent(alertId);
    const [alert, audit, procedure, cameras] = await Promise.all([get(`/v1/alerts/${id}`),
      get(`/v1/audit?alert_id=${id}&limit=200`), get(`/v1/alerts/${id}/procedure`), state.cameras]);
    if (state.selected !== alertId) return;
    upsert(alert, false);
    renderDetail($('detail'), alert, audit, procedure,
      { operator: state.me.role === 'operator', timeAt, act, resolveDialog, tick, cameras });
  } catch (error) {
    $('detail').innerHTML = `<p class="banner fail">${esc(error.message)}</p>`;
  }
}

const ROUTE = { acknowledge: 'ack', resolve: 'resolve', assign: 'assign', note: 'note', escalate: 'escalate' };
const DONE = { acknowledge: 'Acknowledged', resolve: 'Resolved', assign: 'Assigned', note: 'Note added',
  escalate: 'Escalated' };

// Act on the alert as the operator saw it (its version): a change made meanwhile by
// someone else comes back as a conflict, shown, never overwritten.
async function act(action, alert, comment, extra = {}) {
  const path = `/v1/alerts/${encodeURIComponent(alert.alert_id)}/${ROUTE[action]}`;
  let banner;
  try {
    upsert(await post(path, { comment, expected_version: alert.version, ...extra }), false);
    banner = ['done', `${DONE[action]}.`];
  } catch (error) {
    const conflict = error instanceof ApiError && error.status === 409;
    banner = [conflict ? 'conflict' : 'fail', `${conflict ? 'Conflict: ' : ''}${error.message}`];
  }
  render();
  await showDetail(alert.alert_id);
  if (banner[0] === 'done') {  // the note went with the action
    const typed = $('detail').querySelector('#ack-note');
    if (typed) typed.value = '';
  }
  const note = document.createElement('p');
  note.className = `banner ${banner[0]}`;
  note.id = 'action-result';
  note.setAttribute('role', 'status');
  note.textContent = banner[1];
  $('detail').prepend(note);
}

// Tick or untick a step of the rule's procedure (audited by the API).
async function tick(alert, step, done) {
  try {
    await post(`/v1/alerts/${encodeURIComponent(alert.alert_id)}/procedure/${step}`, { done });
    await showDetail(alert.alert_id);
  } catch (error) {
    await showDetail(alert.alert_id);
    const note = document.createElement('p');
    note.className = 'banner fail';
    note.textContent = error.message;
    $('detail').prepend(note);
  }
}

function resolveDialog(alert) {
  const dialog = $('resolve-dialog');
  $('resolve-note').value = '';
  dialog.onclose = () => {
    if (dialog.returnValue !== 'ok') return;
    const note = $('resolve-note').value.trim();
    act('resolve', alert, `${$('resolve-reason').value}${note ? `: ${note}` : ''}`);
  };
  dialog.showModal();
}

function onKey(event) {
  if (!state.me || $('console').hidden || event.target.closest('input, textarea, select, dialog') || event.ctrlKey ||
      event.metaKey || event.altKey) return;
  const list = visible();
  const index = list.findIndex((a) => a.alert_id === state.selected);
  const current = list[index];
  if (event.key === 'j' || event.key === 'k') {
    const next = list[Math.max(0, Math.min(list.length - 1, index + (event.key === 'j' ? 1 : -1)))];
    if (next) select(next.alert_id);
  } else if (event.key === 'a' && current && state.me.role === 'operator') {
    act('acknowledge', current, '');
  } else if (event.key === 'r' && current && state.me.role === 'operator') {
    resolveDialog(current);
  } else return;
  event.preventDefault();
}

async function start(me) {
  state.me = me;
  $('signin').hidden = true;
  $('console').hidden = false;
  $('user').hidden = false;
  $('who').textContent = me.name;
  $('role').textContent = me.role;
  $('role').className = `role ${me.role}`;
  $('mute').textContent = state.muted ? 'Sound off' : 'Sound on';
  $('view-watchlists').hidden = me.role !== 'operator';
  const view = new URLSearchParams(location.search).get('view');
  if (view === 'cameras' || (view === 'watchlists' && me.role === 'operator')) showView(view);
  state.sites = await get('/v1/sites');
  get('/v1/console/map').then((tiles) => setUpMap($('map-pane'), tiles, render), () => {});
  state.zones = new Map(state.sites.map((s) => [s.id, s.timezone]));
  if (['resolved', 'all'].includes(filters().state)) loadResolved();
  openFeed({
    onSnapshot: (alerts) => {
      for (const [id, a] of state.alerts) if (a.state !== 'resolved') state.alerts.delete(id);
      for (const a of alerts) upsert(a, false);
      render();
    },
    onChange: (alert) => { upsert(alert, true); render(); },
    onStatus: (up) => { $('live').textContent = up ? 'live' : 'offline'; $('live').className = `live ${up ? 'on' : 'off'}`; },
    onExpired: () => signedOut('Your session has ended: sign in again.'),
  });
  const params = new URLSearchParams(location.search);
  if (params.get('alert')) select(params.get('alert'));
}

// The session ended (expired, signed out elsewhere, key removed): back to the sign-in,
// the filters kept in the URL.
function signedOut(message) {
  state.me = null;
  showWall(false);
  for (const id of ['console', 'cameras', 'watchlists', 'user']) $(id).hidden = true;
  $('signin').hidden = false;
  $('signin-error').textContent = message;
  $('api-key').focus();
}

// The alert view, the camera wall or the watchlist view (operator keys), kept in the URL
// as view=cameras / view=watchlists.
function showView(name) {
  $('console').hidden = name !== 'queue';
  $('cameras').hidden = name !== 'cameras';
  $('watchlists').hidden = name !== 'watchlists';
  const params = new URLSearchParams(location.search);
  if (name !== 'queue') params.set('view', name); else params.delete('view');
  history.replaceState(null, '', `${location.pathname}${params.size ? `?${params}` : ''}`);
  showWall(name === 'cameras');
  if (name === 'watchlists') refreshWatchlists();
}

function wire() {
  wireWatchlists();
  $('view-watchlists').addEventListener('click', () => showView('watchlists'));
  $('back-to-queue').addEventListener('click', () => showView('queue'));
  $('view-cameras').addEventListener('click', () => showView('cameras'));
  $('cameras-back').addEventListener('click', () => showView('queue'));
  $('signin-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    $('signin-error').textContent = '';
    try {
      const me = await post('/v1/session', { api_key: $('api-key').value });
      $('api-key').value = '';
      await start(me);
    } catch (error) {
      $('signin-error').textContent = error.status === 401 ? 'Unknown API key.' : error.message;
    }
  });
  $('sign-out').addEventListener('click', async () => { await call('DELETE', '/v1/session'); location.reload(); });
  $('mute').addEventListener('click', () => {
    state.muted = !state.muted;
    localStorage.setItem('argus.muted', state.muted ? '1' : '0');
    $('mute').textContent = state.muted ? 'Sound off' : 'Sound on';
    $('mute').setAttribute('aria-pressed', String(state.muted));
  });
  for (const name of FILTERS) $(`f-${name}`).addEventListener('change', (e) => setFilter(name, e.target.value));
  $('f-clear').addEventListener('click', () => { history.replaceState(null, '', location.pathname); render(); });
  $('queue').addEventListener('click', (event) => {
    const row = event.target.closest('.row');
    if (row) select(row.dataset.id);
  });
  document.addEventListener('keydown', onKey);
  setInterval(() => { if (state.me && filters().since) render(); }, 30000);  // alerts age out
}

wire();
get('/v1/session').then(start, () => { $('signin').hidden = false; $('api-key').focus(); });
