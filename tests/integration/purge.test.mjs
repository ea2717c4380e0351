// The daily tombstone purge (contract §4.2, §4.4), fired locally with wrangler's
// --test-scheduled (GET /__scheduled) and TOMBSTONE_RETENTION_DAYS=0, so every tombstone
// that exists when it runs is purged. config-purge.test.mjs covers the basic 410 and
// recovery; this file covers what the purge must leave alone (live records, other users,
// since=0), the exact horizon, every type, recovery of a complete state while another
// device keeps writing, and repeated runs.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startWorker } from '../helpers/server.mjs';
import { api, newUserId, show, token } from '../helpers/client.mjs';
import { TYPES, check, del, expectProblem, list, note, ok, pullAll, push, setting, task, waitForServerClock } from '../helpers/sync.mjs';

let srv;
before(async () => {
  srv = await startWorker({ vars: { TOMBSTONE_RETENTION_DAYS: '0' }, extraArgs: ['--test-scheduled'] });
});
after(async () => {
  await srv?.stop();
});

/** Fires the purge once the server clock is past `rev` (the newest tombstone's rev,
 * which is at least its deleted_at): with retention 0 a tombstone is purged when it is
 * older than "now". Waits on the server's clock, not for a fixed time. */
async function runCron(rev) {
  assert.ok(Number.isInteger(rev), 'runCron needs the newest tombstone rev to wait for');
  await waitForServerClock(srv.url, rev);
  const res = await fetch(`${srv.url}/__scheduled?cron=${encodeURIComponent('17 3 * * *')}`);
  const text = await res.text();
  assert.equal(res.status, 200, `the scheduled handler must succeed: HTTP ${res.status} ${text}\n${srv.logs().slice(-3000)}`);
}

async function devices(userId = newUserId()) {
  return {
    id: userId,
    d1: api(srv.url, await token(userId, { claims: { device: 1 } })),
    d2: api(srv.url, await token(userId, { claims: { device: 2 } })),
  };
}

/** Every live record of every type by full download (paged by `after`), as a Map "type/id" → record. */
async function downloadAll(client, { limit = 100 } = {}) {
  const out = new Map();
  const cursors = {};
  for (const type of TYPES) {
    let after = null;
    for (let page = 0; ; page++) {
      assert.ok(page < 100, 'download did not finish');
      const q = `limit=${limit}${after === null ? '' : `&after=${encodeURIComponent(after)}`}`;
      const b = ok(await client.get(`/api/sync/${type}?${q}`));
      if (page === 0) cursors[type] = b.cursor;
      for (const r of b.data) out.set(`${type}/${r.id}`, { type, ...r });
      if (!b.has_more) break;
      after = b.data.at(-1).id;
    }
  }
  return { records: out, cursors };
}

/** Applies a /changes answer of `type` to a Map of live records. */
function applyChanges(state, type, changes) {
  for (const r of [...changes.created, ...changes.updated]) state.set(`${type}/${r.id}`, { type, ...r });
  for (const id of changes.deleted) state.delete(`${type}/${id}`);
}

/** Compares a client's records with the fields the user pushed (model: "type/id" → fields). */
function assertState(state, model, what) {
  assert.deepEqual([...state.keys()].sort(), [...model.keys()].sort(), `${what}: the set of live records`);
  for (const [key, fields] of model) {
    const rec = state.get(key);
    for (const [k, v] of Object.entries(fields)) {
      if (k === 'type') continue;
      assert.deepEqual(rec[k], v, `${what}: ${key}.${k} in ${JSON.stringify(rec)}`);
    }
  }
}

const keyOf = (c) => `${c.type}/${c.id}`;

describe('after a purge', () => {
  // user A: live records and tombstones of every type; user B: the same ids, all live
  const A = {};
  const B = {};
  const model = new Map(); // A's live records as pushed
  let oldCursor; // A's cursor from before its deletes
  let beforePurge; // downloads before the purge
  let horizon;

  before(async () => {
    Object.assign(A, await devices());
    Object.assign(B, await devices());
    const live = [
      task('t1', { title: 'alpha', description: 'd', completed: true, pinned: true, priority: 'high', due_date: 1_700_000_000_000, list_id: 'l1', sort_order: 3 }),
      task('t2'), task('t3', { title: 'gamma' }), task('t4'), task('t5', { title: 'epsilon' }),
      list('l1', { name: 'Home', color: '#fff', icon: 'house', sort_order: 1 }), list('l2'),
      note('n1', { body: 'gone soon' }), note('n2', { title: 'kept', body: 'text', pinned: true, list_id: 'l1' }),
      setting('s1', { theme: 'dark', sizes: [1, 2] }), setting('s2', 'bye'),
    ];
    const created = await push(A.d1, live);
    oldCursor = created.cursor;
    // B holds the same ids (all live) and has a cursor from before A's deletes
    await push(B.d1, live.slice(0, 5));
    B.cursor = (await check(B.d1)).cursor;
    // revs are server milliseconds: keep B's cursor strictly below A's deletes
    await waitForServerClock(srv.url, B.cursor);

    const doomed = [del('tasks', 't2'), del('tasks', 't4'), del('lists', 'l2'), del('notes', 'n1'), del('settings', 's2')];
    const deleted = await push(A.d1, doomed, oldCursor);
    for (const c of live) if (!doomed.some((d) => keyOf(d) === keyOf(c))) model.set(keyOf(c), c);
    horizon = Math.max(...deleted.applied.map((a) => a.rev));
    await push(B.d1, [task('t2', { title: 'B edits t2' }), list('l2'), note('n1'), setting('s2', 'B keeps it')], B.cursor);
    B.etag = (await check(B.d1)).etag;
    B.pull = ok(await B.d2.get(`/api/sync/tasks/changes?since=${B.cursor}`));

    beforePurge = { A: await downloadAll(A.d1), B: await downloadAll(B.d1) };
    // before the purge, A's pull from the old cursor lists the deletions
    const pre = await pullAll(A.d2, oldCursor);
    assert.equal(pre.deleted.length, 5, 'five tombstones exist before the purge');
    await runCron(horizon);
  });

  test('live records of every type are untouched (same fields, versions and revs)', async () => {
    const now = await downloadAll(A.d1);
    assert.deepEqual([...now.records.entries()].sort(), [...beforePurge.A.records.entries()].sort());
    assertState(now.records, model, 'A after the purge');
  });

  test('another user\'s records with the same ids, its state token and its old cursors are untouched', async () => {
    const now = await downloadAll(B.d1);
    assert.deepEqual([...now.records.entries()].sort(), [...beforePurge.B.records.entries()].sort());
    assert.equal(now.records.get('tasks/t2').title, 'B edits t2');
    assert.equal((await check(B.d1)).etag, B.etag, 'the purge does not change another user\'s state token');
    // B's cursor is older than A's horizon; B's horizon must not have moved
    assert.ok(B.cursor > 0 && B.cursor < horizon);
    const res = await B.d2.get(`/api/sync/tasks/changes?since=${B.cursor}`);
    assert.deepEqual(ok(res), { ...B.pull, timestamp: res.body.timestamp }, show(res));
    const p = await pullAll(B.d2, B.cursor);
    assert.deepEqual(p.updates.map(keyOf).sort(), ['lists/l2', 'notes/n1', 'settings/s2', 'tasks/t2']);
  });

  test('410 reset_required below the horizon, for every type and for POST /api/sync; 200 from the horizon on', async () => {
    for (const type of TYPES) {
      const b = expectProblem(await A.d2.get(`/api/sync/${type}/changes?since=${oldCursor}`), 410, 'reset_required');
      assert.equal(b.purge_horizon, horizon, `the horizon is the newest purged rev: ${JSON.stringify(b)}`);
      assert.equal(b.action_required, 'full_download');
      expectProblem(await A.d2.get(`/api/sync/${type}/changes?since=${horizon - 1}`), 410, 'reset_required');
      const at = ok(await A.d2.get(`/api/sync/${type}/changes?since=${horizon}`));
      assert.equal(at.total_changes, 0, JSON.stringify(at));
    }
    expectProblem(await A.d2.sync({ cursor: oldCursor }), 410, 'reset_required');
    expectProblem(await A.d2.sync({ last_sync: horizon - 1 }), 410, 'reset_required');
    // a push with a cursor from before the horizon is refused whole: nothing is applied
    expectProblem(await A.d2.sync({ cursor: oldCursor, changes: [task('lost')] }), 410, 'reset_required');
    const p = ok(await A.d2.sync({ cursor: horizon }));
    assert.deepEqual([p.updates, p.deleted], [[], []], 'nothing after the horizon, and the refused push is not there');
  });

  // RFC 9110 §13.2.1: a precondition is ignored when the response without it would not be
  // a 2xx. The D1 path does that (410); the KV fast path answers 304 first.
  test('a conditional pull from below the horizon is 410 too, even with the current ETag', async () => {
    const { etag } = await check(A.d2);
    for (const type of TYPES) {
      expectProblem(await A.d2.get(`/api/sync/${type}/changes?since=${oldCursor}`, { headers: { 'if-none-match': etag } }), 410, 'reset_required');
    }
  });

  test('since=0 still works: the live set, without the purged tombstones', async () => {
    const state = new Map();
    for (const type of TYPES) {
      const b = ok(await A.d2.get(`/api/sync/${type}/changes?since=0`));
      assert.deepEqual(b.changes.deleted, [], `${type}: purged tombstones are gone`);
      assert.equal(b.has_more, false);
      applyChanges(state, type, b.changes);
    }
    assertState(state, model, '/changes?since=0');
    const all = await pullAll(A.d2, 0);
    assert.deepEqual(all.deleted, []);
    assert.deepEqual(all.updates.map(keyOf).sort(), [...model.keys()].sort());
  });

  test('recovery: a paged full download plus a pull from its cursor gives the complete state, even while another device writes', async () => {
    // device 2 resets: downloads every type two records per page; device 1 writes
    // between the pages (edit, delete, create, across types)
    const state = new Map();
    const cursors = {};
    let wrote = false;
    for (const type of TYPES) {
      let after = null;
      for (let page = 0; ; page++) {
        const q = `limit=2${after === null ? '' : `&after=${after}`}`;
        const b = ok(await A.d2.get(`/api/sync/${type}?${q}`));
        if (page === 0) cursors[type] = b.cursor;
        for (const r of b.data) state.set(`${type}/${r.id}`, { type, ...r });
        if (!wrote) {
          wrote = true;
          const edits = [task('t5', { title: 'epsilon v2' }), del('tasks', 't3'), task('t6', { title: 'new' }), list('l3', { name: 'Work' }), del('notes', 'n2'), setting('s1', { theme: 'light' })];
          await push(A.d1, edits, (await check(A.d1)).cursor);
          model.set('tasks/t5', edits[0]).set('tasks/t6', edits[2]).set('lists/l3', edits[3]).set('settings/s1', edits[5]);
          model.delete('tasks/t3');
          model.delete('notes/n2');
        }
        if (!b.has_more) break;
        after = b.data.at(-1).id;
      }
    }
    assert.ok(wrote);
    for (const type of TYPES) {
      const b = ok(await A.d2.get(`/api/sync/${type}/changes?since=${cursors[type]}`));
      applyChanges(state, type, b.changes);
    }
    assertState(state, model, 'download + per-type pulls');

    // the same with POST /api/sync from the first page's cursor
    const fresh = await downloadAll(A.d2, { limit: 3 });
    const p = await pullAll(A.d2, Math.min(...Object.values(fresh.cursors)));
    for (const r of p.updates) fresh.records.set(keyOf(r), r);
    for (const d of p.deleted) fresh.records.delete(keyOf(d));
    assertState(fresh.records, model, 'download + POST /api/sync');
  });
});

describe('repeated purges', () => {
  test('a second run changes nothing; a later delete reaches other devices, and the next purge moves the horizon', async () => {
    const C = await devices();
    await push(C.d1, [task('x'), task('y'), task('z')]);
    const first = await push(C.d1, [del('tasks', 'x')], (await check(C.d1)).cursor);
    const h1 = first.applied[0].rev;
    await runCron(h1);
    const cp = (await check(C.d1)).cursor; // at the horizon: nothing was purged after it
    assert.equal(cp, h1);
    await runCron(h1); // nothing new to purge
    ok(await C.d2.get(`/api/sync/tasks/changes?since=${cp}`));
    expectProblem(await C.d2.get(`/api/sync/tasks/changes?since=${cp - 1}`), 410, 'reset_required');

    // a delete after the purge reaches a device pulling from a post-purge cursor
    const second = await push(C.d1, [del('tasks', 'y')], cp);
    const seen = ok(await C.d2.get(`/api/sync/tasks/changes?since=${cp}`));
    assert.deepEqual(seen.changes.deleted, ['y']);
    const synced = seen.cursor;

    // the next purge removes that tombstone too: the horizon moves up to it
    await runCron(second.applied[0].rev);
    const b = expectProblem(await C.d2.get(`/api/sync/tasks/changes?since=${cp}`), 410, 'reset_required');
    assert.equal(b.purge_horizon, second.applied[0].rev);
    // a device that had already pulled the delete is fine
    const after = ok(await C.d2.get(`/api/sync/tasks/changes?since=${synced}`));
    assert.equal(after.total_changes, 0);
    const all = await pullAll(C.d2, 0);
    assert.deepEqual(all.updates.map((r) => r.id), ['z']);
    assert.deepEqual(all.deleted, []);
  });
});
