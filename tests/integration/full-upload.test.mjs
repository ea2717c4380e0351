// Per-type pushes: the full upload (POST /api/sync/{type}, replace the set, guarded by
// the cursor) and the delta push (POST /api/sync/{type}/delta).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startWorker } from '../helpers/server.mjs';
import { api, newUserId, rid, show, token, twoDevices as devicesOf } from '../helpers/client.mjs';
import {
  assertFields, assertUnchanged, check, countOf, del, expectProblem, findRec, list, note, ok, pullAll, push, snapshot, task,
} from '../helpers/sync.mjs';

let srv;
before(async () => {
  srv = await startWorker();
});
after(async () => {
  await srv?.stop();
});

const twoDevices = () => devicesOf(srv.url);

/** Strips a record to its list fields, the way a client would upload it. */
const asListUpload = (r) => ({ id: r.id, name: r.name, color: r.color, icon: r.icon, sort_order: r.sort_order, version: r.version });

describe('full upload', () => {
  test('refused with 409 sync_conflict when the server has newer changes; nothing written', async () => {
    const [A, B] = await twoDevices();
    await push(A, [list('l1', { version: 1 }), list('l2', { version: 1 }), list('l3', { version: 1 })]);
    const pulledB = await pullAll(B, 0);
    await push(A, [list('l1', { name: 'renamed by A', version: 2 })]);
    const before = await snapshot(A);

    const res = await B.post('/api/sync/lists', { data: [list('l1', { name: 'B says', version: 2 })], cursor: pulledB.cursor });
    const p = expectProblem(res, 409, 'sync_conflict');
    assert.equal(p.client_cursor, pulledB.cursor, show(res));
    assert.ok(Number.isInteger(p.server_cursor) && p.server_cursor > pulledB.cursor, show(res));
    assert.equal(p.action_required, 'refresh', show(res));
    assert.equal(typeof p.message, 'string', `409 body must carry message: ${show(res)}`);
    await assertUnchanged(A, before, 'stale full upload');
  });

  test('accepted after a refresh; records left out become tombstones another device receives', async () => {
    const [A, B] = await twoDevices();
    await push(A, [list('l1', { version: 1 }), list('l2', { version: 1 }), list('l3', { version: 1 }), task('t1', { version: 1 })]);
    const pulledA = await pullAll(A, 0);
    const pulledB = await pullAll(B, 0);
    await push(A, [list('l1', { name: 'renamed by A', version: 2 })]);

    // stale: refused
    const stale = await B.post('/api/sync/lists', { data: [], cursor: pulledB.cursor });
    expectProblem(stale, 409, 'sync_conflict');

    // refresh, then upload: l1 unchanged (as refreshed), l2 renamed, l3 left out, l4 new
    const refreshed = await pullAll(B, pulledB.cursor);
    const l1 = findRec(refreshed.updates, 'lists', 'l1');
    assertFields(l1, { name: 'renamed by A', version: 2 });
    const l2 = findRec(pulledB.updates, 'lists', 'l2');
    const res = await B.post('/api/sync/lists', {
      data: [asListUpload(l1), { ...asListUpload(l2), name: 'renamed by B', version: 2 }, { id: 'l4', name: 'new in upload' }],
      cursor: refreshed.cursor,
    });
    const b = ok(res);
    assert.equal(b.success, true, show(res));
    assert.equal(countOf(b.uploaded), 3, `uploaded counts the records sent (l1, l2, l4): ${show(res)}`);
    assert.equal(countOf(b.deleted), 1, `exactly l3 is deleted: ${show(res)}`);
    assert.ok(Number.isInteger(b.cursor) && b.cursor > refreshed.cursor, show(res));

    // A pulls: l3 tombstone, l2 and l4 updates, l1 not re-versioned, the task untouched
    const got = await pullAll(A, pulledA.cursor);
    assert.deepEqual(got.deleted.map((d) => [d.type, d.id]), [['lists', 'l3']], JSON.stringify(got));
    assertFields(findRec(got.updates, 'lists', 'l2'), { name: 'renamed by B', version: 2 });
    assertFields(findRec(got.updates, 'lists', 'l4'), { name: 'new in upload', version: 1, deleted_at: null });
    const l1Now = ok(await A.get('/api/sync/lists')).data.find((r) => r.id === 'l1');
    assertFields(l1Now, { name: 'renamed by A', version: 2, rev: l1.rev }, 'an identical record is not rewritten');
    const tasks = ok(await A.get('/api/sync/tasks'));
    assert.deepEqual(tasks.data.map((r) => r.id), ['t1'], 'a lists upload leaves other types alone');
    const lists = ok(await A.get('/api/sync/lists'));
    assert.deepEqual(lists.data.map((r) => r.id).sort(), ['l1', 'l2', 'l4']);

    // the cursor of the upload is safe: nothing pending for B after it but its own writes
    const after = await pullAll(B, b.cursor);
    assert.deepEqual(after.updates, []);
    assert.deepEqual(after.deleted, []);
  });

  test('`timestamp` is an alias of cursor; a cursor from a full download is enough to upload', async () => {
    const [A] = await twoDevices();
    await push(A, [task('a', { version: 1 }), task('b', { version: 1 })]);
    const dl = ok(await A.get('/api/sync/tasks'));
    const res = await A.post('/api/sync/tasks', { data: [{ id: 'a', title: 'task a' }], timestamp: dl.cursor });
    const b = ok(res);
    assert.equal(b.success, true);
    assert.equal(countOf(b.uploaded), 1, show(res));
    assert.equal(countOf(b.deleted), 1, show(res));
    assert.deepEqual(ok(await A.get('/api/sync/tasks')).data.map((r) => r.id), ['a']);
  });

  test('an empty upload tombstones the whole type', async () => {
    const [A, B] = await twoDevices();
    await push(A, [task('x', { version: 1 }), task('y', { version: 1 })]);
    const bPull = await pullAll(B, 0);
    const { cursor } = await check(A);
    const up = ok(await A.post('/api/sync/tasks', { data: [], cursor }));
    assert.equal(countOf(up.uploaded), 0, JSON.stringify(up));
    assert.equal(countOf(up.deleted), 2, JSON.stringify(up));
    const got = await pullAll(B, bPull.cursor);
    assert.deepEqual(got.deleted.map((d) => d.id).sort(), ['x', 'y']);
  });

  test('a newer tombstone than the cursor also refuses the upload', async () => {
    const [A, B] = await twoDevices();
    await push(A, [task('x', { version: 1 })]);
    const bPull = await pullAll(B, 0);
    await push(A, [del('tasks', 'x')]);
    const before = await snapshot(A);
    expectProblem(await B.post('/api/sync/tasks', { data: [task('x', { version: 1 })], cursor: bPull.cursor }), 409, 'sync_conflict');
    await assertUnchanged(A, before, 'stale full upload');
  });

  test('the tombstones of a large upload page correctly: every one arrives, with its own rev', async () => {
    const [A, B] = await twoDevices();
    const ids = Array.from({ length: 30 }, (_, i) => `bulk-${String(i).padStart(2, '0')}`);
    await push(A, ids.map((id) => task(id, { version: 1 })));
    const base = await pullAll(B, 0);
    const { cursor } = await check(A);
    const up = ok(await A.post('/api/sync/tasks', { data: [{ id: 'bulk-00', title: 'task bulk-00', version: 1 }], cursor }));
    assert.equal(countOf(up.deleted), 29, JSON.stringify(up));
    assert.equal(countOf(up.uploaded), 1, JSON.stringify(up));

    const got = await pullAll(B, base.cursor, { limit: 7 });
    assert.deepEqual(got.deleted.map((d) => d.id).sort(), ids.slice(1));
    const revs = got.deleted.map((d) => d.rev);
    assert.equal(new Set(revs).size, revs.length, 'every tombstone gets its own rev');

    const seen = [];
    let since = base.cursor;
    for (let i = 0; i < 20; i++) {
      const b = ok(await B.get(`/api/sync/tasks/changes?since=${since}&limit=7`));
      seen.push(...b.changes.deleted);
      since = b.cursor;
      if (!b.has_more) break;
    }
    assert.deepEqual(seen.sort(), ids.slice(1), '/changes pages deliver every tombstone once');
  });

  test('uploading exactly the stored set changes nothing (same ETag, no tombstones, no new revs)', async () => {
    const [A] = await twoDevices();
    await push(A, [list('a', { color: 'red', version: 1 }), list('b', { version: 3 })]);
    const before = await snapshot(A);
    const dl = ok(await A.get('/api/sync/lists'));
    const res = ok(await A.post('/api/sync/lists', { data: dl.data.map(asListUpload), cursor: dl.cursor }));
    assert.equal(res.success, true);
    assert.equal(countOf(res.uploaded), dl.data.length, `uploaded counts every record sent, changed or not: ${JSON.stringify(res)}`);
    assert.equal(dl.data.length, 2);
    assert.equal(countOf(res.deleted), 0, JSON.stringify(res));
    await assertUnchanged(A, before, 'identical full upload');
  });

  test('an invalid record refuses the whole upload (400, nothing written)', async () => {
    const [A] = await twoDevices();
    await push(A, [task('keep', { version: 1 })]);
    const before = await snapshot(A);
    const res = await A.post('/api/sync/tasks', { data: [{ id: 'new-one', title: 'ok' }, { id: 'bad', completed: 'yes', title: 'x' }], cursor: before.cursor });
    expectProblem(res, 400, 'invalid_field', { field: 'data[1].completed' });
    await assertUnchanged(A, before, 'invalid full upload');
  });
});

describe('full upload: counts, cursor, limits', () => {
  test('uploaded is the number of records sent; a record given twice counts twice and the last one is stored', async () => {
    const [A] = await twoDevices();
    const { cursor } = await check(A);
    const data = [{ id: 'u1', title: 'one' }, { id: 'u2', title: 'two' }, { id: 'u1', title: 'one, again' }, { id: 'u3', title: 'three' }];
    const up = ok(await A.post('/api/sync/tasks', { data, cursor }));
    assert.equal(countOf(up.uploaded), data.length, JSON.stringify(up));
    assert.equal(countOf(up.deleted), 0, JSON.stringify(up));
    const stored = ok(await A.get('/api/sync/tasks')).data;
    assert.deepEqual(stored.map((r) => [r.id, r.title]), [['u1', 'one, again'], ['u2', 'two'], ['u3', 'three']]);
  });

  // The returned cursor is safe for pulling *every* type: when a peer changed another
  // type after the client's cursor, the client's own cursor comes back, so a pull from
  // it still brings the peer's change (a new sequence would skip it).
  test('a peer\'s change to another type after the client\'s cursor is not skipped by the upload\'s cursor', async () => {
    const [A, B] = await twoDevices();
    await push(A, [task('t1'), note('n0')]);
    const base = await pullAll(A, 0);
    const peer = await push(B, [note('n-peer', { title: 'from B' })], base.cursor); // after A's cursor
    const up = ok(await A.post('/api/sync/tasks', { data: [{ id: 't1', title: 'task t1' }, { id: 't2', title: 'new' }], cursor: base.cursor }));
    assert.ok(Number.isInteger(up.cursor), JSON.stringify(up));
    const pulled = await pullAll(A, up.cursor);
    assert.ok(findRec(pulled.updates, 'notes', 'n-peer'),
      `POST /api/sync from the upload's cursor ${up.cursor} must include B's note (rev ${peer.applied[0].rev}): ${JSON.stringify(pulled.updates.map((r) => [r.type, r.id, r.rev]))}`);
    assert.ok(up.cursor < peer.applied[0].rev, `the cursor does not pass the peer's change: ${up.cursor} vs ${peer.applied[0].rev}`);
  });

  test('with nothing changed after the client\'s cursor, the returned cursor is the new sequence (control)', async () => {
    const [A] = await twoDevices();
    await push(A, [task('t1'), note('n0')]);
    const base = await pullAll(A, 0);
    const up = ok(await A.post('/api/sync/tasks', { data: [{ id: 't2', title: 'new' }], cursor: base.cursor }));
    assert.ok(up.cursor > base.cursor, JSON.stringify(up));
    assert.equal(up.cursor, (await check(A)).cursor, 'the state after the upload');
    const after = await pullAll(A, up.cursor);
    assert.deepEqual([after.updates, after.deleted], [[], []]);
  });

  test('default limits: more than MAX_UPLOAD_RECORDS (1,000) records → 413 on the full upload, more than MAX_CHANGES (100) changes → 413 on the delta push; nothing written', async () => {
    const [A] = await twoDevices();
    await push(A, [task('keep')]);
    const before = await snapshot(A);
    const recs = Array.from({ length: 1001 }, (_, i) => ({ id: `m${i}`, title: `m${i}` }));
    expectProblem(await A.post('/api/sync/tasks', { data: recs, cursor: before.cursor }), 413, 'payload_too_large', { mentions: ['MAX_UPLOAD_RECORDS'] });
    expectProblem(await A.post('/api/sync/tasks/delta', { changes: { created: recs.slice(0, 101) } }), 413, 'payload_too_large', { mentions: ['MAX_CHANGES'] });
    // the limit counts the delta's lists together
    expectProblem(await A.post('/api/sync/tasks/delta', { changes: { created: recs.slice(0, 60), updated: recs.slice(60, 100), deleted: ['keep'] } }), 413, 'payload_too_large');
    await assertUnchanged(A, before, 'over-limit upload and delta');
    // 100 changes are accepted on the delta push, 1,000 records on the full upload (controls)
    const ok100 = ok(await A.post('/api/sync/tasks/delta', { changes: { created: recs.slice(0, 100) } }));
    assert.deepEqual(ok100.processed, { created: 100, updated: 0, deleted: 0 });
    const up = ok(await A.post('/api/sync/tasks', { data: recs.slice(0, 1000), cursor: (await check(A)).cursor }));
    assert.equal(up.uploaded, 1000, JSON.stringify(up));
    assert.equal(ok(await A.get('/api/sync/tasks?limit=1000')).data.length, 1000, 'the set is the 1,000 uploaded ("keep" is a tombstone)');
  });
});

describe('delta push', () => {
  test('created / updated / deleted are applied, counted, and reach another device', async () => {
    const [A, B] = await twoDevices();
    const base = await pullAll(B, 0);
    const r1 = ok(await A.post('/api/sync/tasks/delta', { changes: { created: [{ id: 'd1', title: 'one' }, { id: 'd2', title: 'two', priority: 'low' }], updated: [], deleted: [] }, cursor: 0 }));
    assert.equal(r1.success, true);
    assert.deepEqual(r1.processed, { created: 2, updated: 0, deleted: 0 });
    assert.deepEqual(r1.conflicts, []);
    assert.ok(Number.isInteger(r1.cursor));

    const r2 = ok(await A.post('/api/sync/tasks/delta', { changes: { created: [], updated: [{ id: 'd1', title: 'one!', version: 2 }], deleted: [{ id: 'd2', version: 2 }] } }));
    assert.deepEqual(r2.processed, { created: 0, updated: 1, deleted: 1 });
    assert.deepEqual(r2.conflicts, []);

    const got = await pullAll(B, base.cursor);
    assertFields(findRec(got.updates, 'tasks', 'd1'), { title: 'one!', version: 2 });
    assert.deepEqual(got.deleted.map((d) => d.id), ['d2']);

    const r3 = ok(await A.post('/api/sync/tasks/delta', { changes: { deleted: ['d1'] } }));
    assert.deepEqual(r3.processed, { created: 0, updated: 0, deleted: 1 });
    assert.deepEqual(ok(await B.get('/api/sync/tasks')).data, []);
  });

  test('a stale update is reported in conflicts, not processed', async () => {
    const [A] = await twoDevices();
    await push(A, [task('s', { title: 'v1', version: 1 })]);
    await push(A, [task('s', { title: 'v2', version: 2 })]);
    const before = await snapshot(A);
    const r = ok(await A.post('/api/sync/tasks/delta', { changes: { updated: [{ id: 's', title: 'from v1', version: 2 }] } }));
    assert.deepEqual(r.processed, { created: 0, updated: 0, deleted: 0 });
    assert.equal(r.conflicts.length, 1, JSON.stringify(r));
    assert.equal(r.conflicts[0].reason, 'stale_version');
    assertFields(r.conflicts[0].server, { title: 'v2', version: 2 });
    await assertUnchanged(A, before, 'stale delta update');
  });

  test('an invalid record in a delta applies nothing', async () => {
    const [A] = await twoDevices();
    await push(A, [task('k', { version: 1 })]);
    const before = await snapshot(A);
    const res = await A.post('/api/sync/tasks/delta', { changes: { created: [{ id: 'fine', title: 'ok' }, { id: 'nope', title: 'x', colour: 'red' }] } });
    expectProblem(res, 400, 'invalid_field', { mentions: ['colour'] });
    await assertUnchanged(A, before, 'invalid delta');
  });

  test('a delta push is a write: the ETag changes; with a cursor sent, an integer cursor comes back', async () => {
    const [A] = await twoDevices();
    const { etag: tag, cursor } = await check(A);
    const r = ok(await A.post('/api/sync/tasks/delta', { changes: { created: [{ id: rid('t'), title: 'x' }] }, cursor }));
    assert.ok(Number.isInteger(r.cursor) && r.cursor >= cursor, JSON.stringify(r));
    const after = await check(A);
    assert.notEqual(after.etag, tag);
    // without a cursor the worker cannot know what the client has seen: null or an integer
    const r2 = ok(await A.post('/api/sync/tasks/delta', { changes: { created: [{ id: rid('t'), title: 'y' }] } }));
    assert.ok(r2.cursor === null || Number.isInteger(r2.cursor), JSON.stringify(r2));
  });

  test('the delta push cursor never skips a peer change the client has not pulled', async () => {
    const [A, B] = await twoDevices();
    const { cursor } = await check(A);
    const peer = rid('peer');
    await push(B, [task(peer)]);
    const r = ok(await A.post('/api/sync/tasks/delta', { changes: { created: [{ id: rid('own'), title: 'own' }] }, cursor }));
    const ch = ok(await A.get(`/api/sync/tasks/changes?since=${r.cursor}`));
    const ids = [...ch.changes.created, ...ch.changes.updated].map((x) => x.id);
    assert.ok(ids.includes(peer), `B's change must still be pullable from the delta push cursor ${r.cursor}: ${JSON.stringify(ch)}`);
  });
});
