// The map: one pin per site at its lat/lon, coloured (and labelled) by the worst active
// alert there; clicking (or Enter on) a pin filters the queue to the site.
// With tiles configured (ARGUS_CONSOLE_TILE_URL, GET /v1/console/map) Leaflet, vendored and
// loaded only then, draws the pins over them; without tiles, or when they cannot be
// loaded, the plain map: a neutral background with the pins projected into the sites' box.
import { SYMBOL, esc, rank } from './format.js';

const LEAFLET = '/console/static/vendor/leaflet';
const TILE_TIMEOUT_MS = 8000;  // no tile loaded by then: the plain map
const tiled = { L: null, map: null, pins: null, fitted: '', failed: false };

const W = 1000;
const H = 560;
const PAD = 60;

export function project(sites) {
  const lats = sites.map((s) => s.lat);
  const lons = sites.map((s) => s.lon);
  const midLat = (Math.min(...lats) + Math.max(...lats)) / 2;
  const k = Math.cos((midLat * Math.PI) / 180) || 1;  // equirectangular, true at the middle
  const x0 = Math.min(...lons) * k;
  const y1 = Math.max(...lats);
  const width = Math.max(...lons) * k - x0;
  const height = y1 - Math.min(...lats);
  const scale = Math.min((W - 2 * PAD) / Math.max(width, 1e-6), (H - 2 * PAD) / Math.max(height, 1e-6));
  const dx = (W - width * scale) / 2;  // the sites' box centred
  const dy = (H - height * scale) / 2;
  return (lat, lon) => [dx + (lon * k - x0) * scale, dy + (y1 - lat) * scale];
}

// Where the pins go and how they look: the topology's sites (and sites only seen in
// alerts, at their alerts' position), the worst active severity and count at each.
function summary(sites, alerts) {
  const worst = new Map();
  const counts = new Map();
  for (const alert of alerts) {
    if (alert.state === 'resolved') continue;
    counts.set(alert.site_id, (counts.get(alert.site_id) || 0) + 1);
    if (!worst.has(alert.site_id) || rank(alert.severity) > rank(worst.get(alert.site_id))) {
      worst.set(alert.site_id, alert.severity);
    }
  }
  const places = [...sites];
  const known = new Set(sites.map((s) => s.id));
  for (const alert of alerts) {
    if (!known.has(alert.site_id)) {
      known.add(alert.site_id);
      places.push({ id: alert.site_id, name: alert.site_id, lat: alert.lat, lon: alert.lon });
    }
  }
  return places.map((site) => {
    const severity = worst.get(site.id);
    const count = counts.get(site.id) || 0;
    return { site, severity, count, label: `${site.name}: ${count} active` +
      (severity ? `, worst ${severity}` : ''), text: `${severity ? SYMBOL[severity] : ''} ${site.name} (${count})` };
  });
}

function drawPlain(svg, pins, selectedSite, onPick) {
  if (!pins.length) { svg.innerHTML = ''; return; }
  const at = project(pins.map((p) => p.site));
  svg.innerHTML = `<rect width="${W}" height="${H}" fill="#e7e9ee"/>${pins.map(({ site, severity, label, text }) => {
    const [x, y] = at(site.lat, site.lon);
    return `<g class="pin${site.id === selectedSite ? ' active' : ''}" data-site="${esc(site.id)}"
      role="button" tabindex="0" aria-label="${esc(label)}"><title>${esc(label)}</title>
      <circle cx="${x.toFixed(1)}" cy="${y.toFixed(1)}" r="16" class="fill-${severity || 'none'}"/>
      <text x="${(x > W / 2 ? x - 22 : x + 22).toFixed(1)}" y="${(y + 7).toFixed(1)}"
        text-anchor="${x > W / 2 ? 'end' : 'start'}">${esc(text)}</text></g>`;
  }).join('')}`;
  for (const pin of svg.querySelectorAll('.pin')) {
    const pick = () => onPick(pin.dataset.site);
    pin.addEventListener('click', pick);
    pin.addEventListener('keydown', (e) => { if (e.key === 'Enter') pick(); });
  }
}

function drawTiled(pins, selectedSite, onPick) {
  const { L, map } = tiled;
  const ids = pins.map((p) => p.site.id).sort().join(' ');
  if (ids !== tiled.fitted) {  // the view is set before the pins; kept until the sites change
    tiled.fitted = ids;
    if (pins.length) map.fitBounds(pins.map((p) => [p.site.lat, p.site.lon]), { padding: [60, 60], maxZoom: 14 });
    else map.setView([0, 0], 1);
  }
  tiled.pins.clearLayers();
  for (const { site, severity, label, text } of pins) {
    const marker = L.circleMarker([site.lat, site.lon], { radius: 11, weight: site.id === selectedSite ? 4 : 2,
      color: site.id === selectedSite ? '#1c3d6e' : '#fff', fillOpacity: 1,
      className: `pin fill-${severity || 'none'}${site.id === selectedSite ? ' active' : ''}` });
    marker.bindTooltip(esc(text), { permanent: true, direction: 'right', offset: [10, 0], className: 'pin-label' });
    marker.on('click', () => onPick(site.id));
    marker.addTo(tiled.pins);
    const el = marker.getElement();
    el.dataset.site = site.id;
    el.setAttribute('role', 'button');
    el.setAttribute('tabindex', '0');
    el.setAttribute('aria-label', label);
    el.addEventListener('keydown', (e) => { if (e.key === 'Enter') onPick(site.id); });
  }
}

export function drawMap(svg, sites, alerts, selectedSite, onPick) {
  const pins = summary(sites, alerts);
  if (tiled.map && !tiled.failed) {
    svg.innerHTML = '';
    drawTiled(pins, selectedSite, onPick);
  } else drawPlain(svg, pins, selectedSite, onPick);
}

function loadLeaflet() {
  return new Promise((resolve, reject) => {
    const css = Object.assign(document.createElement('link'), { rel: 'stylesheet', href: `${LEAFLET}/leaflet.css` });
    const script = Object.assign(document.createElement('script'), { src: `${LEAFLET}/leaflet.js` });
    script.onload = () => (window.L ? resolve(window.L) : reject(new Error('no Leaflet')));
    script.onerror = reject;
    document.head.append(css, script);
  });
}

// The plain map again, for good: tiles unreachable (or Leaflet missing). The pane's
// data-mode (tiles/plain) says which map shows, data-tiles how the tiles fared.
function fallBack(pane, redraw, why) {
  tiled.failed = true;
  if (tiled.map) tiled.map.remove();
  tiled.map = null;
  pane.dataset.mode = 'plain';
  pane.dataset.tiles = 'unavailable';
  pane.querySelector('#map-note').textContent = `Map tiles unavailable (${why}): plain map.`;
  redraw();
}

// With a tile URL, load Leaflet and draw the pins over the tiles; the first tile error
// before any tile loaded (or no tile within 8 s) falls back to the plain map. Without a
// tile URL nothing is loaded and the plain map stays.
export async function setUpMap(pane, { tile_url: url, attribution }, redraw) {
  if (!url || tiled.L) return;
  let L;
  try { L = await loadLeaflet(); } catch { fallBack(pane, redraw, 'map library not loaded'); return; }
  tiled.L = L;
  pane.dataset.mode = 'tiles';
  pane.dataset.tiles = 'loading';
  tiled.map = L.map(pane.querySelector('#tile-map'), { zoomSnap: 0.5 });
  tiled.map.attributionControl.setPrefix(false);
  tiled.pins = L.layerGroup().addTo(tiled.map);
  let loaded = 0;
  const layer = L.tileLayer(url, { attribution: esc(attribution), maxZoom: 19 });
  layer.on('tileload', () => {
    if (!loaded) performance.mark('argus:map-tiled');
    loaded += 1;
    pane.dataset.tiles = 'loaded';
  });
  layer.on('tileerror', () => { if (!loaded && !tiled.failed) fallBack(pane, redraw, 'tile server unreachable'); });
  setTimeout(() => { if (!loaded && !tiled.failed) fallBack(pane, redraw, 'no tile loaded'); }, TILE_TIMEOUT_MS);
  redraw();  // the pins first: fitBounds sets the view the tiles are fetched for
  layer.addTo(tiled.map);
}
