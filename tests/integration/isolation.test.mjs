// Users are isolated: the same record id under two users is two records; nothing one
// user does reads or changes the other's data.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startWorker } from '../helpers/server.mjs';
import { api, newUserId, rid, token } from '../helpers/client.mjs';
import {
  assertFields, assertUnchanged, check, del, findRec, list, note, ok, pullAll, push, setting, snapshot, task,
} from '../helpers/sync.mjs';

let srv;
before(async () => {
  srv = await startWorker();
});
after(async () => {
  await srv?.stop();
});

const TYPES = ['tasks', 'lists', 'notes', 'settings'];

async function pair() {
  const A = api(srv.url, await token(newUserId('alice')));
  const B = api(srv.url, await token(newUserId('bob')));
  return [A, B];
}

/** Every string reachable through B's read endpoints. */
async function everythingVisibleTo(client) {
  const seen = [];
  const { updates, deleted } = await pullAll(client, 0);
  seen.push(JSON.stringify(updates), JSON.stringify(deleted));
  for (const t of TYPES) {
    seen.push(JSON.stringify(ok(await client.get(`/api/sync/${t}?limit=1000`)).data));
    seen.push(JSON.stringify(ok(await client.get(`/api/sync/${t}/changes?since=0&limit=1000`)).changes));
  }
  return seen.join('\n');
}

describe('isolation between users', () => {
  test('B pushing A\'s ids creates B\'s own records (version 1) and leaves A\'s untouched', async () => {
    const [A, B] = await pair();
    const id = 'shared-id';
    await push(A, [
      task(id, { title: 'ALICE-TASK', version: 1 }),
      list(id, { name: 'ALICE-LIST', version: 1 }),
      note(id, { body: 'ALICE-NOTE', version: 1 }),
      setting(id, 'ALICE-SETTING', { version: 1 }),
    ]);
    await push(A, [task(id, { title: 'ALICE-TASK-2', version: 2 })]);
    const aBefore = await snapshot(A);

    // B uses the same ids, with version 1 and without version: both create B's record
    const r = ok(await B.sync({ cursor: 0, changes: [
      task(id, { title: 'BOB-TASK', version: 1 }),
      list(id, { name: 'BOB-LIST' }),
      note(id, { body: 'BOB-NOTE', version: 1 }),
      setting(id, 'BOB-SETTING'),
    ] }));
    assert.deepEqual(r.conflicts, [], `B must not conflict with A's records: ${JSON.stringify(r.conflicts)}`);
    assert.deepEqual(r.applied.map((x) => x.version), [1, 1, 1, 1], JSON.stringify(r.applied));
    assert.deepEqual(r.updates, [], 'B must not receive A\'s records');

    await assertUnchanged(A, aBefore, 'push by another user');
    const aTasks = ok(await A.get('/api/sync/tasks'));
    assertFields(aTasks.data.find((x) => x.id === id), { title: 'ALICE-TASK-2', version: 2 });

    const seenByB = await everythingVisibleTo(B);
    assert.ok(!seenByB.includes('ALICE'), `B sees A's data:\n${seenByB.slice(0, 2000)}`);
    assert.ok(seenByB.includes('BOB-TASK'));

    // B editing and deleting "its" copy never reaches A's
    await push(B, [task(id, { title: 'BOB-TASK-2', version: 2 }), del('notes', id)]);
    const r2 = ok(await B.sync({ cursor: 0, changes: [task(id, { title: 'BOB stale', version: 1 })] }));
    assert.equal(r2.conflicts[0]?.server?.title, 'BOB-TASK-2', 'conflicts show B\'s own record, never A\'s');
    await assertUnchanged(A, aBefore, 'edit/delete by another user');
  });

  test('B never sees A\'s data, in any endpoint', async () => {
    const [A, B] = await pair();
    await push(A, Array.from({ length: 20 }, (_, i) => task(rid('ALICE-t'), { title: `ALICE-${i}` })));
    const gone = rid('ALICE-n');
    await push(A, [note(gone, { body: 'ALICE-note' }), setting(rid('ALICE-s'), { who: 'ALICE' }), list(rid('ALICE-l'))]);
    await push(A, [del('notes', gone)]);
    await push(B, [task(rid('t'), { title: 'BOB-only' })]);
    const seenByB = await everythingVisibleTo(B);
    assert.ok(!seenByB.includes('ALICE'), seenByB.slice(0, 2000));
    const pulled = await pullAll(B, 0);
    assert.deepEqual(pulled.updates.map((x) => x.title), ['BOB-only']);
  });

  test('B\'s full upload does not tombstone A\'s records', async () => {
    const [A, B] = await pair();
    const ids = [rid('t'), rid('t'), 'same-id'];
    await push(A, ids.map((id) => task(id, { title: 'ALICE' })));
    const aBefore = await snapshot(A);
    await push(B, [task('same-id', { title: 'BOB' }), task(rid('t'), { title: 'BOB' })]);
    const { cursor } = await check(B);
    const res = ok(await B.post('/api/sync/tasks', { data: [], cursor }));
    assert.equal(res.success, true);
    const bTasks = ok(await B.get('/api/sync/tasks'));
    assert.deepEqual(bTasks.data, [], 'B\'s own tasks are tombstoned');
    await assertUnchanged(A, aBefore, 'full upload by another user');
    const aTasks = ok(await A.get('/api/sync/tasks'));
    assert.deepEqual(aTasks.data.map((x) => x.id).sort(), [...ids].sort());
  });

  test('B\'s delta push with A\'s ids touches only B', async () => {
    const [A, B] = await pair();
    const id = rid('t');
    await push(A, [task(id, { title: 'ALICE', version: 1 })]);
    const aBefore = await snapshot(A);
    const r = ok(await B.post('/api/sync/tasks/delta', { changes: { created: [], updated: [{ id, title: 'BOB', version: 2 }], deleted: [] } }));
    assert.equal(r.success, true);
    assert.deepEqual(r.conflicts, []);
    const r2 = ok(await B.post('/api/sync/tasks/delta', { changes: { deleted: [id] } }));
    assert.equal(r2.success, true);
    await assertUnchanged(A, aBefore, 'delta push by another user');
  });

  test('a user id with SQL metacharacters is just another isolated user', async () => {
    const [A] = await pair();
    await push(A, [task(rid('t'), { title: 'ALICE' })]);
    const aBefore = await snapshot(A);
    const weird = api(srv.url, await token("x' OR '1'='1"));
    const weird2 = api(srv.url, await token('%'));
    for (const W of [weird, weird2]) {
      const p = await pullAll(W, 0);
      assert.deepEqual(p.updates.filter((x) => x.title === 'ALICE'), []);
      await push(W, [task(rid('t'), { title: 'WEIRD' })]);
      assert.ok(!(await everythingVisibleTo(W)).includes('ALICE'));
    }
    await assertUnchanged(A, aBefore, 'pushes by other users');
  });

  test('the ETag of one user does not move when another user writes', async () => {
    const [A, B] = await pair();
    await push(A, [task(rid('t'))]);
    const tagA = (await check(A)).etag;
    await push(B, [task(rid('t'))]);
    await push(B, [task(rid('t'))]);
    assert.equal((await check(A)).etag, tagA);
    const res = await A.get('/api/sync/check', { headers: { 'if-none-match': tagA } });
    assert.equal(res.status, 304);
  });

  test('records of one user stay findable by id after the other deletes theirs', async () => {
    const [A, B] = await pair();
    const id = rid('t');
    await push(A, [task(id, { title: 'A' })]);
    await push(B, [task(id, { title: 'B' })]);
    await push(B, [del('tasks', id)]);
    const a = await pullAll(A, 0);
    assertFields(findRec(a.updates, 'tasks', id), { title: 'A', deleted_at: null });
    assert.deepEqual(a.deleted, []);
  });
});
