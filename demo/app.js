// The demo app: tasks, lists and notes on the edgesync SDK (/sdk/edgesync.js, the same
// bundle the npm package ships). Sign-in is the worker's development route
// (POST /api/dev/login, only under `npm run dev`); the SDK does the rest: local first,
// a friendly sync indicator, a notice when a conflict replaced an edit.
import { createClient } from '/sdk/edgesync.js';

const $ = (s) => document.querySelector(s);
const SESSION = 'edgesync-demo-session';
const FIELDS = { tasks: 'title', lists: 'name', notes: 'title' };

let session = JSON.parse(localStorage.getItem(SESSION) || 'null');
let sync;
let tab = 'tasks';

async function login(user) {
  const res = await fetch('/api/dev/login', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ user }),
  });
  if (res.status === 404) throw new Error('Development sign-in is off: start the worker with `npm run dev`.');
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body.detail || `sign-in failed (HTTP ${res.status})`);
  session = { user, token: body.token, expires_at: body.expires_at };
  localStorage.setItem(SESSION, JSON.stringify(session));
  return session;
}

// Called by the SDK once, and again after a 401: then sign in afresh.
let tokenCalls = 0;
async function getToken() {
  const fresh = session?.token && (!session.expires_at || session.expires_at > Date.now() + 60_000);
  if (tokenCalls++ === 0 && fresh) return session.token;
  return (await login(session.user)).token;
}

function utcTime(ms) {
  const d = new Date(ms);
  return `${String(d.getUTCHours()).padStart(2, '0')}:${String(d.getUTCMinutes()).padStart(2, '0')} UTC`;
}

/** The friendly indicator: what the user needs to know, never an error screen. */
export function statusText(s) {
  switch (s.state) {
    case 'syncing': return 'Syncing…';
    case 'offline': return 'Offline: changes saved';
    case 'paused': return `Paused until ${utcTime(s.resumeAt)}: changes saved`;
    case 'error': return s.error === 'unauthorized' ? 'Signed out: changes saved, sign in again' : 'Sync problem: changes saved, retrying';
    default: return s.pending ? 'Changes saved, syncing soon' : 'Synced';
  }
}

function showStatus(s) {
  const el = $('#sync-status');
  el.textContent = statusText(s);
  el.dataset.state = s.state;
  el.title = s.lastSyncAt ? `last sync ${new Date(s.lastSyncAt).toLocaleString()}` : 'not synced yet';
}

function notice(text) {
  const n = $('#notice');
  n.textContent = text;
  n.hidden = false;
  clearTimeout(notice.t);
  notice.t = setTimeout(() => (n.hidden = true), 15_000);
}

function render() {
  const col = sync.collection(tab);
  const field = FIELDS[tab];
  const items = col.list().sort((a, b) => (a.sort_order ?? 0) - (b.sort_order ?? 0) || String(a.id).localeCompare(b.id));
  $('#new-title').placeholder = `New ${tab.slice(0, -1)}`;
  const ul = $('#items');
  ul.replaceChildren(
    ...items.map((item) => {
      const li = document.createElement('li');
      li.dataset.id = item.id;
      if (tab === 'tasks') {
        const done = document.createElement('input');
        done.type = 'checkbox';
        done.checked = !!item.completed;
        done.onchange = () => col.put({ ...fields(item), completed: done.checked });
        li.append(done);
        li.classList.toggle('done', !!item.completed);
      }
      const title = document.createElement('input');
      title.type = 'text';
      title.className = 'title';
      title.value = item[field] ?? '';
      title.onchange = () => col.put({ ...fields(item), [field]: title.value });
      li.append(title);
      if (tab === 'notes') {
        const body = document.createElement('textarea');
        body.value = item.body ?? '';
        body.rows = 2;
        body.onchange = () => col.put({ ...fields(item), body: body.value });
        li.append(body);
      }
      const del = document.createElement('button');
      del.textContent = '×';
      del.title = 'delete';
      del.className = 'delete';
      del.onclick = () => col.delete(item.id);
      li.append(del);
      return li;
    }),
  );
}

/** The fields of a record, without the server's sync fields. */
function fields(item) {
  const { version, rev, created_at, updated_at, deleted_at, device_id, ...rest } = item;
  return rest;
}

function start() {
  $('#sign-in').hidden = true;
  $('#app').hidden = false;
  $('#sign-out').hidden = $('#sync-now').hidden = false;
  $('#user').textContent = session.user;
  sync = createClient({ url: location.origin, getToken, name: `demo:${session.user}` });
  window.edgesync = sync; // for the console (and the browser tests)
  sync.on('status', showStatus);
  showStatus(sync.status);
  sync.on('change', (e) => e.type === tab && render());
  sync.on('conflict', (c) => {
    const label = c.local?.[FIELDS[c.type]] || c.id;
    notice(`Your edit to “${label}” was replaced by a newer version from another device.`);
  });
  sync.on('reject', (r) => notice(`The server refused a change to ${r.type} ${r.id}: ${r.detail ?? r.error}`));
  sync.ready.then(render);
}

$('#sign-in').onsubmit = async (ev) => {
  ev.preventDefault();
  try {
    await login($('#name').value.trim());
    start();
  } catch (e) {
    $('#sign-in-error').textContent = e.message;
  }
};
$('#sign-out').onclick = () => {
  sync?.close();
  localStorage.removeItem(SESSION);
  location.reload();
};
$('#sync-now').onclick = () => sync?.sync();
$('#add').onsubmit = async (ev) => {
  ev.preventDefault();
  const input = $('#new-title');
  const text = input.value.trim();
  if (!text) return;
  input.value = '';
  const id = `${tab.slice(0, 1)}-${crypto.randomUUID().slice(0, 13)}`;
  await sync.collection(tab).put({ id, [FIELDS[tab]]: text, sort_order: Date.now() % 1e9 });
};
for (const b of document.querySelectorAll('nav button')) {
  b.onclick = () => {
    tab = b.dataset.tab;
    for (const x of document.querySelectorAll('nav button')) x.classList.toggle('active', x === b);
    render();
  };
}

if (session?.user) start();
else $('#sign-in').hidden = false;
