// Pure helpers: escaping, severities (colour + symbol + text), times in a site's zone.
export const SEVERITIES = ['info', 'low', 'medium', 'high', 'critical'];
export const SYMBOL = { critical: '▲', high: '◆', medium: '●', low: '■', info: '○' };
export const rank = (severity) => SEVERITIES.indexOf(severity);

const ESCAPES = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
export const esc = (value) => String(value ?? '').replace(/[&<>"']/g, (c) => ESCAPES[c]);

export const severityBadge = (severity) =>
  `<span class="sev sev-${esc(severity)}">${SYMBOL[severity] || '?'} ${esc(severity).toUpperCase()}</span>`;

// Most severe first, then the newest.
export function compareAlerts(a, b) {
  return rank(b.severity) - rank(a.severity) || b.last_seen - a.last_seen;
}

const formatters = new Map();
function formatter(zone) {
  if (!formatters.has(zone)) {
    formatters.set(zone, new Intl.DateTimeFormat('en-GB', { timeZone: zone, year: 'numeric',
      month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit',
      hour12: false, timeZoneName: 'short' }));
  }
  return formatters.get(zone);
}

// A Unix time (s) as the site's local time, e.g. "04/12/2026, 12:01:02 CET".
export function formatTime(seconds, zone) {
  if (seconds === null || seconds === undefined) return '';
  try { return formatter(zone || 'UTC').format(new Date(seconds * 1000)); }
  catch { return formatter('UTC').format(new Date(seconds * 1000)); }
}
