// HTTP and the live feed. Signed in by the HttpOnly session cookie: no key in script.
const HEADERS = { 'X-Requested-With': 'argus-console', 'Content-Type': 'application/json' };

export class ApiError extends Error {
  constructor(status, detail) { super(detail); this.status = status; }
}

export async function call(method, path, body) {
  const response = await fetch(path, { method, headers: HEADERS, credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body) });
  if (response.status === 204) return null;
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const detail = typeof data.detail === 'string' ? data.detail : JSON.stringify(data.detail);
    throw new ApiError(response.status, detail || response.statusText);
  }
  return data;
}

export const get = (path) => call('GET', path);
export const post = (path, body) => call('POST', path, body);

// The live feed: a snapshot of the active alerts, then every change; reconnects, except
// after a policy close (1008: the session expired or was signed out), reported by onExpired.
export function openFeed({ onSnapshot, onChange, onStatus, onExpired }) {
  let delay = 500;
  let socket = null;
  let stopped = false;
  const connect = () => {
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    socket = new WebSocket(`${scheme}://${location.host}/v1/alerts/stream`);
    socket.onopen = () => { delay = 500; onStatus(true); };
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.type === 'snapshot') onSnapshot(message.alerts);
      else if (message.type === 'change') onChange(message.alert);
    };
    socket.onclose = (event) => {
      onStatus(false);
      if (event.code === 1008) { stopped = true; onExpired(event.reason); }
      if (!stopped) { setTimeout(connect, delay); delay = Math.min(delay * 2, 15000); }
    };
  };
  connect();
  return () => { stopped = true; if (socket) socket.close(); };
}
