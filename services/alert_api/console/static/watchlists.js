// The watchlist view (operator keys): lists, their entries with names, enroll a person
// from photos, remove an entry — all through the alert API's /v1/watchlists routes.
import { ApiError, call, get } from './api.js';
import { esc } from './format.js';

const $ = (id) => document.getElementById(id);
let current = '';

async function enroll(form) {
  const data = new FormData(form);
  const list = encodeURIComponent(data.get('list_id'));
  data.delete('list_id');
  const response = await fetch(`/v1/watchlists/${list}/entries`, { method: 'POST', body: data,
    headers: { 'X-Requested-With': 'argus-console' }, credentials: 'same-origin' });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new ApiError(response.status, typeof body.detail === 'string' ? body.detail : JSON.stringify(body.detail));
  }
  return body;
}

function say(kind, text) {
  $('wl-result').className = `banner ${kind}`;
  $('wl-result').textContent = text;
}

async function showEntries(listId) {
  current = listId;
  $('wl-list-id').value = listId;
  const entries = await get(`/v1/watchlists/${encodeURIComponent(listId)}/entries?names=true`);
  $('wl-entries').innerHTML = `<h3>${esc(listId)}: ${entries.length} entr${entries.length === 1 ? 'y' : 'ies'}</h3>
    <ul class="wl-entries">${entries.map((e) => `<li data-reference="${esc(e.reference)}">
      <b>${esc(e.name || '')}</b> <span>${esc(e.reference)} · ${esc(e.category)} · ${e.photos} photo(s)
      · by ${esc(e.created_by)}${e.expires_at ? ` · until ${esc(new Date(e.expires_at * 1000).toISOString().slice(0, 10))}` : ''}</span>
      <button type="button" class="wl-remove">Remove</button></li>`).join('')}</ul>`;
  for (const button of $('wl-entries').querySelectorAll('.wl-remove')) {
    button.addEventListener('click', async () => {
      const reference = button.closest('li').dataset.reference;
      try {
        await call('DELETE', `/v1/watchlists/${encodeURIComponent(listId)}/entries/${encodeURIComponent(reference)}`);
        say('done', `Removed ${reference} from ${listId}.`);
      } catch (error) { say('fail', error.message); }
      await refresh();
    });
  }
}

export async function refresh() {
  try {
    const lists = await get('/v1/watchlists');
    $('wl-lists').innerHTML = lists.length ? lists.map((l) => `<li><button type="button" class="wl-open"
      data-list="${esc(l.list_id)}">${esc(l.list_id)}</button> ${esc(l.category)} · ${l.entries} entr${l.entries === 1 ? 'y' : 'ies'}
      · threshold ${l.threshold}${l.description ? ` · ${esc(l.description)}` : ''}</li>`).join('')
      : '<li class="empty">No watchlist yet: enroll someone to create one.</li>';
    for (const button of $('wl-lists').querySelectorAll('.wl-open')) {
      button.addEventListener('click', () => showEntries(button.dataset.list));
    }
    if (current) await showEntries(current);
  } catch (error) { say('fail', error.message); }
}

export function wireWatchlists() {
  $('wl-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const form = event.target;
    try {
      const person = await enroll(form);
      say('done', `Enrolled ${person.reference} on ${person.list_id} (${person.photos} photo(s)).`);
      current = person.list_id;
      form.reset();
      $('wl-list-id').value = current;
    } catch (error) { say('fail', error.message); }
    await refresh();
  });
}
