// Assertions and sync-protocol helpers shared by the integration tests.
import assert from 'node:assert/strict';
import { show } from './client.mjs';

export const TYPES = ['tasks', 'lists', 'notes', 'settings'];

/** Asserts the status and returns the parsed body. */
export function expectStatus(res, status) {
  assert.equal(res.status, status, `expected HTTP ${status}, got ${show(res)}`);
  return res.body;
}

/** Asserts a successful JSON response (200) and returns its body. */
export function ok(res) {
  expectStatus(res, 200);
  assert.ok(res.body && typeof res.body === 'object', `expected a JSON body, got ${show(res)}`);
  return res.body;
}

/**
 * Asserts an RFC 9457 problem response: status, `application/problem+json`, the
 * machine code in `error`, and the documented members. `field` (if given) must equal the
 * body's `field`; `mentions` strings must appear in `detail` (or in `field`).
 */
export function expectProblem(res, status, code, { field, mentions = [] } = {}) {
  const d = show(res);
  assert.equal(res.status, status, `expected HTTP ${status} ${code}, got ${d}`);
  const ct = res.headers.get('content-type') || '';
  assert.match(ct, /^application\/problem\+json/i, `content-type of ${d}`);
  const b = res.body;
  assert.ok(b && typeof b === 'object', `problem body must be JSON: ${d}`);
  assert.equal(b.error, code, `error code of ${d}`);
  assert.equal(b.status, status, `status member of ${d}`);
  assert.equal(typeof b.title, 'string', `title member of ${d}`);
  assert.equal(typeof b.detail, 'string', `detail member of ${d}`);
  assert.ok(b.timestamp !== undefined && b.timestamp !== null, `timestamp member of ${d}`);
  if (field !== undefined) assert.equal(b.field, field, `field member of ${d}`);
  for (const m of mentions) {
    assert.ok(String(b.detail).includes(m) || String(b.field ?? '').includes(m), `detail/field should mention ${JSON.stringify(m)}: ${d}`);
  }
  return b;
}

/** GET /api/sync/check → {etag, cursor, body}. */
export async function check(client) {
  const res = await client.get('/api/sync/check');
  const b = ok(res);
  const etag = res.headers.get('etag');
  assert.ok(etag, `check must send an ETag: ${show(res)}`);
  return { etag, cursor: b.cursor, body: b, res };
}

/**
 * Pulls everything after `cursor` with POST /api/sync (no changes), following `has_more`.
 * Returns {updates, deleted, cursor, pages} where pages is the list of raw bodies.
 */
export async function pullAll(client, cursor = 0, { limit, maxPages = 50 } = {}) {
  const updates = [];
  const deleted = [];
  const pages = [];
  let c = cursor;
  for (let i = 0; ; i++) {
    assert.ok(i < maxPages, `pull did not finish within ${maxPages} pages`);
    const req = { cursor: c };
    if (limit !== undefined) req.limit = limit;
    const b = ok(await client.sync(req));
    pages.push(b);
    assert.ok(Array.isArray(b.updates), `updates must be an array: ${JSON.stringify(b).slice(0, 500)}`);
    assert.ok(Array.isArray(b.deleted), `deleted must be an array: ${JSON.stringify(b).slice(0, 500)}`);
    assert.equal(typeof b.has_more, 'boolean', 'has_more must be a boolean');
    assert.ok(Number.isInteger(b.cursor), `cursor must be an integer: ${b.cursor}`);
    assert.ok(b.cursor >= c, `cursor went backwards: ${c} -> ${b.cursor}`);
    // contract §2 / §4.2: a page holds changes after the cursor, ordered by rev, and
    // ends at its last row (never past the cursor it returns)
    assertRevOrder(b.updates, `updates of the page after ${c}`, { after: c, upTo: b.cursor });
    assertRevOrder(b.deleted, `deleted of the page after ${c}`, { after: c, upTo: b.cursor });
    updates.push(...b.updates);
    deleted.push(...b.deleted);
    c = b.cursor;
    if (!b.has_more) break;
  }
  return { updates, deleted, cursor: c, pages };
}

/**
 * Asserts that `items` (records or tombstones with `rev`) are in strictly increasing rev
 * order, as the contract orders every pull, and (when given) all in (after, upTo].
 */
export function assertRevOrder(items, what = 'pull', { after, upTo } = {}) {
  const revs = items.map((x) => x.rev);
  for (const r of revs) assert.ok(Number.isInteger(r), `${what}: rev ${r} is not an integer`);
  for (let i = 1; i < revs.length; i++) {
    assert.ok(revs[i] > revs[i - 1], `${what} must be ordered by rev: ${revs.join(', ')}`);
  }
  if (after !== undefined) for (const r of revs) assert.ok(r > after, `${what}: rev ${r} is not after the cursor ${after}`);
  if (upTo !== undefined) for (const r of revs) assert.ok(r <= upTo, `${what}: rev ${r} is past the page's cursor ${upTo}`);
}

/**
 * Collapses pulled changes into the state a client would hold: Map "type/id" →
 * record (live) or {type, id, deleted: true, rev}. Later pages win over earlier ones.
 * Each list must come ordered by rev (asserted, not re-sorted): the sort below only
 * interleaves `updates` with `deleted`, which the protocol sends as two lists.
 */
export function applyPull(state, { updates, deleted }) {
  assertRevOrder(updates, 'updates');
  assertRevOrder(deleted, 'deleted');
  const events = [
    ...updates.map((r) => ({ key: `${r.type}/${r.id}`, rev: r.rev, value: r })),
    ...deleted.map((d) => ({ key: `${d.type}/${d.id}`, rev: d.rev, value: { ...d, deleted: true } })),
  ].sort((a, b) => a.rev - b.rev);
  for (const e of events) state.set(e.key, e.value);
  return state;
}

/**
 * What the server holds for a user, as seen through its API: the full pull from 0
 * collapsed, plus the ETag. Used to assert that a rejected request changed nothing.
 */
export async function snapshot(client) {
  const { etag } = await check(client);
  const pulled = await pullAll(client, 0);
  const state = applyPull(new Map(), pulled);
  const entries = [...state.entries()].sort(([a], [b]) => (a < b ? -1 : 1));
  return { etag, entries, cursor: pulled.cursor };
}

/** Asserts that the user's stored data is what `before` (a snapshot) recorded. */
export async function assertUnchanged(client, before, what = 'request') {
  const after = await snapshot(client);
  assert.equal(after.etag, before.etag, `ETag changed after a rejected ${what}: stored data was modified`);
  assert.deepEqual(after.entries, before.entries, `stored records changed after a rejected ${what}`);
}

/** Pushes changes (POST /api/sync) and asserts 200 with no conflicts; returns the body. */
export async function push(client, changes, cursor = 0) {
  const b = ok(await client.sync({ cursor, changes }));
  assert.deepEqual(b.conflicts, [], `unexpected conflicts: ${JSON.stringify(b.conflicts).slice(0, 1000)}`);
  assert.equal(b.applied.length, changes.length, `every change should be applied: ${JSON.stringify(b).slice(0, 1000)}`);
  return b;
}

/** Finds the record `type/id` among pulled updates (type-tagged), or undefined. */
export const findRec = (updates, type, id) => updates.find((r) => r.type === type && r.id === id);

/** Asserts that `rec` carries the given field values (deep equality per field). */
export function assertFields(rec, fields, msg = '') {
  assert.ok(rec, `record missing ${msg}`);
  for (const [k, v] of Object.entries(fields)) {
    assert.deepEqual(rec[k], v, `field ${k} of ${rec.type ?? ''}/${rec.id} ${msg}: ${JSON.stringify(rec)}`);
  }
}

/** Asserts the server-owned sync fields of a returned record. */
export function assertSyncFields(rec, { version, deleted = false, nearNow = true } = {}) {
  const d = JSON.stringify(rec);
  assert.equal(typeof rec.id, 'string', d);
  if (version !== undefined) assert.equal(rec.version, version, `version of ${d}`);
  assert.ok(Number.isInteger(rec.version) && rec.version >= 1, `version of ${d}`);
  assert.ok(Number.isInteger(rec.rev) && rec.rev > 0, `rev of ${d}`);
  assert.ok(Number.isInteger(rec.created_at), `created_at of ${d}`);
  assert.ok(Number.isInteger(rec.updated_at), `updated_at of ${d}`);
  assert.ok(rec.updated_at >= rec.created_at, `updated_at < created_at in ${d}`);
  assert.ok('deleted_at' in rec, `deleted_at missing in ${d}`);
  assert.ok('device_id' in rec, `device_id missing in ${d}`);
  if (deleted) assert.ok(Number.isInteger(rec.deleted_at), `deleted_at of ${d}`);
  else assert.equal(rec.deleted_at, null, `deleted_at of ${d}`);
  if (nearNow) {
    const skew = Math.abs(rec.updated_at - Date.now());
    assert.ok(skew < 30_000, `updated_at ${rec.updated_at} is ${skew} ms from the test clock: ${d}`);
  }
}

/** Counts a response member that may be a number or an array. */
export const countOf = (x) => (Array.isArray(x) ? x.length : x);

// Record builders (full field sets; tests override what they care about).
export const task = (id, f = {}) => ({ type: 'tasks', id, title: `task ${id}`, ...f });
export const list = (id, f = {}) => ({ type: 'lists', id, name: `list ${id}`, ...f });
export const note = (id, f = {}) => ({ type: 'notes', id, title: `note ${id}`, ...f });
export const setting = (id, value, f = {}) => ({ type: 'settings', id, value, ...f });
export const del = (type, id, f = {}) => ({ type, id, deleted: true, ...f });

// Cost and observability helpers (X-Sync-Ops, Server-Timing).

export const OPS_KEYS = Object.freeze(['d1', 'rows-read', 'rows-written', 'kv-read', 'kv-write']);
const SF_MEMBER = /^[a-z*][a-z0-9_\-.*]*=-?\d{1,15}$/;

/**
 * Asserts that a response carries `X-Sync-Ops` as an RFC 8941 dictionary of integers with
 * every documented member (d1, rows-read, rows-written, kv-read, kv-write; each once,
 * >= 0) and `Server-Timing` with `total;dur=`, plus `d1;dur=` / `kv;dur=` exactly when
 * D1 / KV were used. Returns the parsed ops.
 */
export function expectOps(res) {
  const d = show(res);
  const raw = res.headers.get('x-sync-ops');
  assert.ok(raw, `X-Sync-Ops missing: ${d}`);
  const members = raw.split(',').map((m) => m.trim());
  for (const m of members) assert.match(m, SF_MEMBER, `X-Sync-Ops member ${JSON.stringify(m)} is not key=sf-integer: ${raw}`);
  const keys = members.map((m) => m.split('=')[0]);
  assert.equal(new Set(keys).size, keys.length, `X-Sync-Ops has duplicate keys: ${raw}`);
  const ops = {};
  for (const m of members) {
    const [k, v] = m.split('=');
    ops[k] = Number(v);
  }
  for (const k of OPS_KEYS) {
    assert.ok(Number.isInteger(ops[k]) && ops[k] >= 0, `X-Sync-Ops must carry ${k} >= 0: ${raw} (${d})`);
  }
  const st = res.headers.get('server-timing') ?? '';
  assert.match(st, /(^|,)\s*total;\s*dur=\d+(\.\d+)?\s*(,|$)/, `Server-Timing total;dur= missing: ${st} (${d})`);
  const hasD1 = /(^|,)\s*d1;\s*dur=\d+(\.\d+)?\s*(,|$)/.test(st);
  const hasKv = /(^|,)\s*kv;\s*dur=\d+(\.\d+)?\s*(,|$)/.test(st);
  assert.equal(hasD1, ops.d1 > 0, `Server-Timing d1;dur= iff D1 was used: ${st} vs ${raw}`);
  assert.equal(hasKv, ops['kv-read'] + ops['kv-write'] > 0, `Server-Timing kv;dur= iff KV was used: ${st} vs ${raw}`);
  return ops;
}

/** Sums the X-Sync-Ops of several responses (each checked with expectOps). */
export function sumOps(responses) {
  const sum = Object.fromEntries(OPS_KEYS.map((k) => [k, 0]));
  for (const r of responses) {
    const o = expectOps(r);
    for (const k of OPS_KEYS) sum[k] += o[k];
  }
  return sum;
}

/** `X-Sync-Ops` as a compact string for messages and diagnostics. */
export const opsText = (res) => res.headers.get('x-sync-ops');

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Waits on a condition, not on the clock: calls `probe()` until it returns a truthy value
 * (which is returned), every `intervalMs`, failing after `timeoutMs` with `what` and the
 * last value seen. For state that settles after a response (deferred KV writes, usage
 * flushes, the server clock passing a point).
 */
export async function waitFor(probe, what, { timeoutMs = 10_000, intervalMs = 25 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await probe();
    if (last) return last;
    if (Date.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${JSON.stringify(last)})`);
    await sleep(intervalMs);
  }
}

/**
 * Waits until the worker's own clock (GET /api/health `timestamp`, which follows
 * DEV_CLOCK_OFFSET_MS) is past `ms`: e.g. before a purge with retention 0 must see a
 * tombstone as older than its cutoff.
 */
export async function waitForServerClock(url, ms) {
  return waitFor(async () => {
    const res = await fetch(`${url}/api/health`);
    const b = await res.json();
    return b.timestamp > ms ? b.timestamp : false;
  }, `the server clock to pass ${ms}`);
}
