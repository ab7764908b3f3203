// The fallback map: a neutral background, one pin per site at its lat/lon projected into the
// sites' bounding box, coloured (and labelled) by the worst active alert there.
import { SYMBOL, esc, rank } from './format.js';

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

export function drawMap(svg, sites, alerts, selectedSite, onPick) {
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
  for (const alert of alerts) {  // sites not in the topology: at their alerts' position
    if (!known.has(alert.site_id)) {
      known.add(alert.site_id);
      places.push({ id: alert.site_id, name: alert.site_id, lat: alert.lat, lon: alert.lon });
    }
  }
  if (!places.length) { svg.innerHTML = ''; return; }
  const at = project(places);
  const pins = places.map((site) => {
    const [x, y] = at(site.lat, site.lon);
    const severity = worst.get(site.id);
    const label = `${site.name}: ${counts.get(site.id) || 0} active` +
      (severity ? `, worst ${severity}` : '');
    return `<g class="pin${site.id === selectedSite ? ' active' : ''}" data-site="${esc(site.id)}"
      role="button" tabindex="0" aria-label="${esc(label)}"><title>${esc(label)}</title>
      <circle cx="${x.toFixed(1)}" cy="${y.toFixed(1)}" r="16" class="fill-${severity || 'none'}"/>
      <text x="${(x > W / 2 ? x - 22 : x + 22).toFixed(1)}" y="${(y + 7).toFixed(1)}"
        text-anchor="${x > W / 2 ? 'end' : 'start'}">${severity ? SYMBOL[severity] : ''}
      ${esc(site.name)} (${counts.get(site.id) || 0})</text></g>`;
  });
  svg.innerHTML = `<rect width="${W}" height="${H}" fill="#e7e9ee"/>${pins.join('')}`;
  for (const pin of svg.querySelectorAll('.pin')) {
    const pick = () => onPick(pin.dataset.site);
    pin.addEventListener('click', pick);
    pin.addEventListener('keydown', (e) => { if (e.key === 'Enter') pick(); });
  }
}
