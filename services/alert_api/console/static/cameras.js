// The camera wall: one tile per camera with its newest cached frame (faces pixelated by
// the API), its zones, tripwires and live tracks drawn over it, online or offline (the
// pipeline's newest frame or tracks within 10 s); refreshed every 2 s while the view is open.
import { get } from './api.js';
import { esc } from './format.js';

const $ = (id) => document.getElementById(id);
const REFRESH_MS = 2000;
let timer = null;

const points = (pts) => pts.map(([x, y]) => `${x},${y}`).join(' ');

function overlay(camera) {
  return `<svg class="overlay" viewBox="0 0 1 1" preserveAspectRatio="none" aria-hidden="true">
    ${camera.zones.map((z) => `<polygon class="zone" points="${points(z.polygon)}"><title>${esc(z.id)}</title></polygon>`).join('')}
    ${camera.lines.map((l) => `<polyline class="tripwire" points="${points(l.points)}"><title>${esc(l.id)}</title></polyline>`).join('')}
    <g class="tracks"></g>
  </svg><p class="offline-label" aria-hidden="true">OFFLINE</p>`;
}

// The camera's newest tracks as boxes with their ids (lost ones dashed).
async function drawTracks(tile, camera) {
  let latest = null;
  if (camera.online && camera.tracks_age_s !== null) {
    try { latest = await get(`/v1/cameras/${encodeURIComponent(camera.id)}/tracks`); } catch { latest = null; }
  }
  const tracks = latest ? latest.tracks : [];
  tile.dataset.tracks = String(tracks.length);
  tile.querySelector('.tracks').innerHTML = tracks.map(({ id, cls, state, box: [x1, y1, x2, y2] }) =>
    `<g class="track ${esc(state)}" data-track="${id}"><rect x="${x1}" y="${y1}" width="${x2 - x1}"
      height="${y2 - y1}"/><text x="${x1}" y="${Math.max(y1 - 0.01, 0.04)}">${esc(cls)} ${id}</text>
      <title>${esc(cls)} ${id} (${esc(state)})</title></g>`).join('');
}

function status(camera) {
  return camera.online ? `<span class="cam-status online">● online</span>`
    : `<span class="cam-status offline">○ offline${camera.age_s === null ? ' (no recent frame)'
      : ` (last frame ${Math.round(camera.age_s)} s ago)`}</span>`;
}

async function tick() {
  let cameras;
  try { cameras = await get('/v1/cameras'); } catch { return; }
  const wall = $('wall');
  if (!cameras.length) { wall.innerHTML = '<p class="empty">No camera in the topology.</p>'; return; }
  for (const camera of cameras) {
    let tile = wall.querySelector(`[data-camera="${CSS.escape(camera.id)}"]`);
    if (!tile) {
      tile = document.createElement('figure');
      tile.className = 'tile';
      tile.dataset.camera = camera.id;
      tile.innerHTML = `<div class="frame"><img alt="Camera ${esc(camera.id)}, faces pixelated">${overlay(camera)}</div>
        <figcaption><b>${esc(camera.id)}</b> · ${esc(camera.site_id)} <span class="st"></span></figcaption>`;
      wall.append(tile);
    }
    tile.classList.toggle('online', camera.online);
    tile.classList.toggle('offline', !camera.online);
    tile.querySelector('.st').innerHTML = status(camera);
    drawTracks(tile, camera);
    if (camera.online && String(camera.latest_seq) !== tile.dataset.seq) {
      const next = new Image();  // swapped in once loaded: no flicker
      next.onload = () => {
        tile.querySelector('img').src = next.src;
        tile.querySelector('.frame').style.aspectRatio = `${next.naturalWidth} / ${next.naturalHeight}`;
        tile.dataset.seq = String(camera.latest_seq);
      };
      next.src = `/v1/cameras/${encodeURIComponent(camera.id)}/latest.jpg?seq=${camera.latest_seq}`;
    }
  }
}

export function showWall(visible) {
  clearInterval(timer);
  timer = null;
  if (visible) {
    tick();
    timer = setInterval(tick, REFRESH_MS);
  }
}
