// Per-record versions: concurrent edits are reported as stale_version conflicts (never
// silently lost), versionless changes are last-writer-wins, replays are idempotent.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startWorker } from '../helpers/server.mjs';
import { api, newUserId, rid, show, token, twoDevices as devicesOf } from '../helpers/client.mjs';
import {
  assertFields, check, del, findRec, note, ok, pullAll, push, setting, snapshot, task,
} from '../helpers/sync.mjs';

let srv;
before(async () => {
  srv = await startWorker();
});
after(async () => {
  await srv?.stop();
});

const twoDevices = () => devicesOf(srv.url);

describe('concurrent edits', () => {
  test('both devices edit version 1: the second gets stale_version with the server record, then re-applies', async () => {
    const [A, B] = await twoDevices();
    const id = rid('t');
    await push(A, [task(id, { title: 'original', description: 'd', version: 1 })]);
    const pulledB = await pullAll(B, 0);
    assert.equal(findRec(pulledB.updates, 'tasks', id)?.version, 1);

    const editA = await push(A, [task(id, { title: 'A edit', description: 'd', version: 2, device_id: 'A' })]);
    const revA = editA.applied[0].rev;
    const tagAfterA = (await check(A)).etag;

    // B edits its copy of version 1 concurrently
    const rb = ok(await B.sync({ cursor: pulledB.cursor, changes: [task(id, { title: 'B edit', description: 'd', version: 2, device_id: 'B' })] }));
    assert.deepEqual(rb.applied, [], `B's stale edit must not be applied: ${JSON.stringify(rb)}`);
    assert.equal(rb.conflicts.length, 1, JSON.stringify(rb));
    const c = rb.conflicts[0];
    assert.equal(c.type, 'tasks');
    assert.equal(c.id, id);
    assert.equal(c.reason, 'stale_version');
    assertFields(c.server, { id, title: 'A edit', description: 'd', version: 2, rev: revA, device_id: 'A', deleted_at: null }, 'conflict.server');
    assert.equal((await check(A)).etag, tagAfterA, 'a conflict writes nothing');
    // B also received A's edit through the pull part of the same call
    assertFields(findRec(rb.updates, 'tasks', id), { title: 'A edit', version: 2 }, 'B pull');

    // B replaces its copy with the server's and re-applies its edit on top
    const retry = ok(await B.sync({ cursor: rb.cursor, changes: [task(id, { title: 'B edit', description: 'd', version: 3, device_id: 'B' })] }));
    assert.deepEqual(retry.conflicts, []);
    assert.deepEqual(retry.applied.map((x) => [x.id, x.version]), [[id, 3]]);

    const finalA = await pullAll(A, 0);
    assertFields(findRec(finalA.updates, 'tasks', id), { title: 'B edit', version: 3, device_id: 'B' }, 'final state at A');
  });

  test('a client may send back the server record it received (with its sync fields) to re-apply', async () => {
    const [A, B] = await twoDevices();
    const id = rid('t');
    await push(A, [task(id, { title: 'one', version: 1 })]);
    await push(A, [task(id, { title: 'two', version: 2 })]);
    const rb = ok(await B.sync({ cursor: 0, changes: [task(id, { title: 'stale', version: 1 })] }));
    assert.equal(rb.conflicts.length, 1, JSON.stringify(rb));
    const server = rb.conflicts[0].server;
    // "replace over merge": take the server record, edit it, bump its version
    const { type: _type, ...fields } = server;
    const res = ok(await B.sync({ cursor: rb.cursor, changes: [{ ...fields, type: 'tasks', title: 'two, then B', version: server.version + 1 }] }));
    assert.deepEqual(res.conflicts, []);
    assert.equal(res.applied[0]?.version, 3, JSON.stringify(res));
  });

  test('a push mixing a stale change with good ones applies the good ones and reports the stale one', async () => {
    const [A, B] = await twoDevices();
    const stale = rid('t');
    const fresh = rid('t');
    await push(A, [task(stale, { title: 'v1', version: 1 }), note(rid('n'))]);
    await push(A, [task(stale, { title: 'v2', version: 2 })]);
    const r = ok(await B.sync({ cursor: 0, changes: [task(stale, { title: 'old edit', version: 2 }), task(fresh, { title: 'new', version: 1 })] }));
    assert.deepEqual(r.applied.map((x) => x.id), [fresh], JSON.stringify(r));
    assert.deepEqual(r.conflicts.map((x) => [x.id, x.reason]), [[stale, 'stale_version']]);
    assertFields(r.conflicts[0].server, { title: 'v2', version: 2 });
    const all = await pullAll(A, 0);
    assertFields(findRec(all.updates, 'tasks', stale), { title: 'v2', version: 2 });
    assertFields(findRec(all.updates, 'tasks', fresh), { title: 'new', version: 1 });
  });

  test('a stale delete of an edited record is a conflict, and the record stays live', async () => {
    const [A, B] = await twoDevices();
    const id = rid('t');
    await push(A, [task(id, { title: 'v1', version: 1 })]);
    await push(A, [task(id, { title: 'v2', version: 2 })]);
    const r = ok(await B.sync({ cursor: 0, changes: [del('tasks', id, { version: 2 })] }));
    assert.deepEqual(r.applied, [], JSON.stringify(r));
    assert.deepEqual(r.conflicts.map((x) => [x.id, x.reason]), [[id, 'stale_version']]);
    const dl = ok(await A.get('/api/sync/tasks'));
    assertFields(dl.data.find((x) => x.id === id), { title: 'v2', version: 2, deleted_at: null });
  });

  test('editing a record another device deleted, from the old version, is a conflict showing the tombstone', async () => {
    const [A, B] = await twoDevices();
    const id = rid('t');
    await push(A, [task(id, { title: 'v1', version: 1 })]);
    const d = await push(A, [del('tasks', id)]);
    assert.equal(d.applied[0].version, 2);
    const r = ok(await B.sync({ cursor: 0, changes: [task(id, { title: 'edit of v1', version: 2 })] }));
    assert.deepEqual(r.applied, [], JSON.stringify(r));
    assert.equal(r.conflicts[0]?.reason, 'stale_version', JSON.stringify(r));
    const server = r.conflicts[0].server;
    assert.ok(server !== null && typeof server === 'object', `the conflict carries the tombstone as the server record: ${JSON.stringify(r.conflicts[0])}`);
    assert.ok(Number.isInteger(server.deleted_at), `server record must be the tombstone: ${JSON.stringify(server)}`);
    assertFields(server, { id, version: 2, rev: d.applied[0].rev }, 'the tombstone in the conflict');
    assert.ok(r.deleted.some((x) => x.id === id), 'and the pull part reports the tombstone');
  });

  test('a version higher than stored + 1 is accepted and stored as given', async () => {
    const [A] = await twoDevices();
    const id = rid('t');
    const r = await push(A, [task(id, { version: 10 })]);
    assert.equal(r.applied[0].version, 10);
    const dl = ok(await A.get('/api/sync/tasks'));
    assert.equal(dl.data.find((x) => x.id === id)?.version, 10);
  });
});

describe('the same record twice in one push', () => {
  test('is applied in order: both reported applied with increasing revs, the later one stored, one record pulled', async () => {
    const [A, B] = await twoDevices();
    const id = rid('t');
    const res = await A.sync({ cursor: 0, changes: [task(id, { title: 'first', version: 1 }), task(id, { title: 'second', version: 2 })] });
    const b = ok(res);
    assert.deepEqual(b.conflicts, [], show(res));
    assert.deepEqual(b.applied.map((x) => [x.id, x.version]), [[id, 1], [id, 2]], show(res));
    assert.ok(b.applied[1].rev > b.applied[0].rev, `the later change gets the later rev: ${show(res)}`);
    const stored = ok(await A.get('/api/sync/tasks')).data.find((r) => r.id === id);
    assertFields(stored, { title: 'second', version: 2, rev: b.applied[1].rev }, 'later change in the push wins');
    const pulled = await pullAll(B, 0);
    assert.deepEqual(pulled.updates.map((r) => [r.id, r.version, r.title]), [[id, 2, 'second']], 'another device gets the record once, in its final state');
  });

  test('a versionless repeat is applied on top of the first (stored + 1 each time)', async () => {
    const [A] = await twoDevices();
    const id = rid('t');
    const b = ok(await A.sync({ cursor: 0, changes: [task(id, { title: 'a' }), task(id, { title: 'b' }), task(id, { title: 'c' })] }));
    assert.deepEqual(b.applied.map((x) => x.version), [1, 2, 3], JSON.stringify(b));
    assertFields(ok(await A.get('/api/sync/tasks')).data.find((r) => r.id === id), { title: 'c', version: 3 });
  });
});

describe('versionless changes (last writer wins)', () => {
  test('a change without version is applied as stored + 1', async () => {
    const [A, B] = await twoDevices();
    const id = rid('t');
    const r1 = await push(A, [task(id, { title: 'first' })]);
    assert.equal(r1.applied[0].version, 1);
    const r2 = await push(B, [task(id, { title: 'second' })]);
    assert.equal(r2.applied[0].version, 2);
    const r3 = await push(A, [task(id, { title: 'third' })]);
    assert.equal(r3.applied[0].version, 3);
    assert.ok(r3.applied[0].rev > r2.applied[0].rev && r2.applied[0].rev > r1.applied[0].rev);
    const all = await pullAll(B, 0);
    assertFields(findRec(all.updates, 'tasks', id), { title: 'third', version: 3 });
  });

  test('a versionless change equal to the stored record is a no-op replay', async () => {
    const [A] = await twoDevices();
    const id = rid('s');
    const first = await push(A, [setting(id, { a: 1 })]);
    const tag = (await check(A)).etag;
    const again = await push(A, [setting(id, { a: 1 })]);
    assert.equal(again.applied[0].version, 1, JSON.stringify(again));
    assert.equal(again.applied[0].rev, first.applied[0].rev, 'no new rev');
    assert.equal((await check(A)).etag, tag, 'ETag unchanged');
  });
});

describe('idempotent replay', () => {
  test('resending the exact same push changes nothing and reports the changes as applied', async () => {
    const [A, B] = await twoDevices();
    const ids = [rid('t'), rid('n'), rid('s')];
    const batch = [
      task(ids[0], { title: 'x', completed: true, version: 1 }),
      note(ids[1], { body: 'y', version: 1 }),
      setting(ids[2], [1, 2, { z: null }], { version: 1 }),
    ];
    const first = await push(A, batch);
    await pullAll(B, 0);
    const before = await snapshot(A);
    const second = ok(await A.sync({ cursor: 0, changes: batch }));
    assert.deepEqual(second.conflicts, [], `a replay is not a conflict: ${JSON.stringify(second.conflicts)}`);
    const key = (x) => `${x.type}/${x.id}/${x.version}/${x.rev}`;
    assert.deepEqual(second.applied.map(key).sort(), first.applied.map(key).sort(), 'same versions, no new revs');
    const after = await snapshot(A);
    assert.equal(after.etag, before.etag, 'ETag unchanged by a replay');
    assert.deepEqual(after.entries, before.entries);
    assert.equal(second.etag, before.etag);
  });

  test('replaying an edit and a delete is idempotent too', async () => {
    const [A] = await twoDevices();
    const t = rid('t');
    const n = rid('n');
    await push(A, [task(t, { version: 1 }), note(n, { version: 1 })]);
    const batch = [task(t, { title: 'edited', version: 2 }), del('notes', n, { version: 2 })];
    const first = await push(A, batch);
    const tag = (await check(A)).etag;
    const second = ok(await A.sync({ cursor: 0, changes: batch }));
    assert.deepEqual(second.conflicts, [], JSON.stringify(second));
    assert.deepEqual(second.applied.map((x) => [x.id, x.version, x.rev]).sort(), first.applied.map((x) => [x.id, x.version, x.rev]).sort());
    assert.equal((await check(A)).etag, tag);
  });
});
