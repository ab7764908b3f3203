// The camera wall: one tile per camera with its newest cached frame (faces pixelated by
// the API), its zones and tripwires drawn over it, online or offline; refreshed every 2 s
// while the view is open.
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
  </svg>`;
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
    tile.querySelector('.st').innerHTML = status(camera);
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
