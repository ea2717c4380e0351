// Users spread over three D1 databases (SHARD_MAP "DB,DB_1,DB_2"), and a bucket of users
// moved between them (`npm run reshard`, POST /api/admin/reshard) while its users sync.
// Where a user's pages are is read from the admin route's `locate` step, which counts the
// user's rows in every database.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startWorker, TEST_ADMIN_TOKEN } from '../helpers/server.mjs';
import { api, newUserId, parseOps, show, token } from '../helpers/client.mjs';
import { expectProblem, ok, pullAll, push, sleep, task } from '../helpers/sync.mjs';
import { bucketOf, evenBinding } from '../helpers/shards.mjs';
import { reshard } from '../../scripts/reshard.mjs';

const DBS = ['DB', 'DB_1', 'DB_2'];
let srv;
let admin;
before(async () => {
  srv = await startWorker({ databases: 3 });
  admin = api(srv.url, TEST_ADMIN_TOKEN);
});
after(async () => {
  await srv?.stop();
});

const step = async (body) => ok(await admin.post('/api/admin/reshard', body));
const pagesOf = async (userId) => (await step({ step: 'locate', user: userId })).pages;

/** `n` new user ids whose bucket is `bucket`. */
function usersIn(bucket, n, prefix = 'sh') {
  const out = [];
  for (let i = 0; out.length < n; i++) {
    const id = `${prefix}-${bucket}-${i}-${Math.random().toString(36).slice(2, 8)}`;
    if (bucketOf(id) === bucket) out.push(id);
  }
  return out;
}

async function device(userId, name) {
  return { ...api(srv.url, await token(userId, { claims: { device: name } })), cursor: 0, name };
}

describe('three databases', () => {
  test('users land on all three, each user only in the database of its bucket, at the same cost', async () => {
    const seen = new Set();
    for (let i = 0; i < 24; i++) {
      const id = newUserId('spread');
      const c = api(srv.url, await token(id));
      const res = await c.sync({ cursor: 0, changes: [task(`t-${i}`)] });
      ok(res);
      const ops = parseOps(res.headers.get('x-sync-ops'));
      assert.deepEqual([ops.d1, ops['rows-written']], [2, 1], `a first push costs what it costs with one database: ${show(res)}`);
      const home = evenBinding(bucketOf(id), 3);
      const pages = await pagesOf(id);
      for (const db of DBS) assert.equal(pages[db], db === home ? 1 : 0, `${id} (bucket ${bucketOf(id)}) in ${db}`);
      seen.add(home);
    }
    assert.deepEqual([...seen].sort(), DBS, 'every database holds users');
  });

  test('step by step: a moving bucket refuses writes (503 busy, Retry-After) and serves reads; after the switch every request follows the fence', async () => {
    const bucket = 40; // DB holds 0-85
    const [id] = usersIn(bucket, 1, 'steps');
    const [other] = usersIn(bucket + 1, 1, 'steps'); // same database, another bucket
    const A = await device(id, 'a');
    const O = await device(other, 'o');
    const first = await push(A, [task('t1'), task('t2')]);
    await push(O, [task('o1')]);

    const begun = await step({ step: 'begin', bucket, to: 'DB_2' });
    assert.deepEqual([begun.from, begun.to, begun.state], ['DB', 'DB_2', 'moving']);
    const refused = await A.sync({ cursor: first.cursor, changes: [task('t3')] });
    expectProblem(refused, 503, 'busy');
    assert.ok(Number(refused.headers.get('retry-after')) >= 1, `Retry-After on ${show(refused)}`);
    const during = await pullAll(A, 0);
    assert.deepEqual(during.updates.map((r) => r.id).sort(), ['t1', 't2'], 'reads go on while the bucket moves');
    await push(O, [task('o2')]); // another bucket of the same database is not held

    const copied = await step({ step: 'copy', bucket, to: 'DB_2', after: null, limit: 100 });
    assert.ok(copied.copied >= 1, JSON.stringify(copied));
    assert.deepEqual(await pagesOf(id), { DB: 1, DB_1: 0, DB_2: 1 }, 'copied, not yet switched');
    const switched = await step({ step: 'switch', bucket, to: 'DB_2' });
    assert.match(switched.shard_map, /DB_2:40(,|$)/, switched.shard_map);

    // The first request of this isolate meets the fence in DB and follows it (2
    // statements); it remembers where the bucket went (1 statement from then on).
    const c1 = await A.get('/api/sync/check');
    assert.equal(parseOps(c1.headers.get('x-sync-ops')).d1, 2, `forwarded: ${show(c1)}`);
    const c2 = await A.get('/api/sync/check');
    assert.equal(parseOps(c2.headers.get('x-sync-ops')).d1, 1, `remembered: ${show(c2)}`);
    const pushed = await push(A, [task('t3')], first.cursor);
    assert.deepEqual(pushed.applied.map((a) => a.id), ['t3']);

    const cleaned = await step({ step: 'clean', bucket, from: 'DB', after: null, limit: 100 });
    assert.ok(cleaned.deleted >= 1, JSON.stringify(cleaned));
    assert.deepEqual(await pagesOf(id), { DB: 0, DB_1: 0, DB_2: 1 }, 'only in the new database');
    assert.deepEqual((await pullAll(A, 0)).updates.map((r) => r.id).sort(), ['t1', 't2', 't3']);

    // And back: the bucket returns to DB (its configured database), whose old fence goes.
    await step({ step: 'begin', bucket, to: 'DB' });
    for (let next = null; ; ) {
      const r = await step({ step: 'copy', bucket, to: 'DB', after: next, limit: 100 });
      if ((next = r.next) === null) break;
    }
    const back = await step({ step: 'switch', bucket, to: 'DB' });
    assert.match(back.shard_map, /^DB:0-85,/, back.shard_map);
    await step({ step: 'clean', bucket, from: 'DB_2', after: null, limit: 100 });
    assert.deepEqual(await pagesOf(id), { DB: 1, DB_1: 0, DB_2: 0 });
    await push(A, [task('t4')], pushed.cursor);
    assert.deepEqual((await pullAll(A, 0)).updates.map((r) => r.id).sort(), ['t1', 't2', 't3', 't4']);
    assert.deepEqual((await pullAll(O, 0)).updates.map((r) => r.id).sort(), ['o1', 'o2']);

    // Steps out of order are refused and change nothing.
    expectProblem(await admin.post('/api/admin/reshard', { step: 'copy', bucket, to: 'DB_1' }), 400, 'invalid_field', { field: 'step' });
    expectProblem(await admin.post('/api/admin/reshard', { step: 'begin', bucket, to: 'DB' }), 400, 'invalid_field', { field: 'to' });
    expectProblem(await admin.post('/api/admin/reshard', { step: 'clean', bucket, from: 'DB' }), 400, 'invalid_field', { field: 'from' });
    expectProblem(await admin.post('/api/admin/reshard', { step: 'begin', bucket, to: 'DB_9' }), 400, 'invalid_field', { field: 'to', mentions: ['DB_9'] });
    assert.equal((await step({ step: 'locate', bucket })).moving, false, 'a refused begin fences nothing');
    const noAdmin = await api(srv.url).post('/api/admin/reshard', { step: 'locate', bucket });
    expectProblem(noAdmin, 401, 'unauthorized');
  });

  test('a reshard while two devices of each user push and pull loses nothing, and ends with the users in the new database only', async () => {
    const bucket = 120; // DB_1 holds 86-170
    const users = usersIn(bucket, 3, 'live');
    const devices = [];
    for (const id of users) devices.push([await device(id, 'a'), await device(id, 'b')]);
    const acked = new Map(users.map((id) => [id, new Set()]));
    let busy = 0;
    let stop = false;
    let n = 0;
    const loop = async (userId, dev) => {
      while (!stop) {
        const id = `${dev.name}-${n++}`;
        const res = await dev.sync({ cursor: dev.cursor, changes: [task(id)] });
        if (res.status === 503) {
          expectProblem(res, 503, 'busy');
          assert.ok(res.headers.get('retry-after'), show(res));
          busy++;
          await sleep(100);
          continue;
        }
        const b = ok(res);
        for (const a of b.applied) acked.get(userId).add(a.id);
        dev.cursor = b.cursor;
        await sleep(20);
      }
    };
    const loops = devices.flatMap((pair, i) => pair.map((d) => loop(users[i], d)));
    await sleep(500);
    const moved = await reshard({ url: srv.url, adminToken: TEST_ADMIN_TOKEN, bucket, to: 'DB', grace: 1 });
    await sleep(500);
    stop = true;
    await Promise.all(loops);
    console.log(`[shards] moved bucket ${bucket} (${moved.users} users) DB_1 → DB in ${moved.busyMs} ms of held writes ` +
      `(${busy} pushes answered busy), ${moved.totalMs} ms in all; rows read ${moved.rowsRead}, written ${moved.rowsWritten}`);
    assert.equal(moved.from, 'DB_1');
    assert.ok(moved.users >= users.length, JSON.stringify(moved));
    for (const [i, id] of users.entries()) {
      assert.ok(acked.get(id).size > 0, `${id} wrote`);
      for (const dev of devices[i]) {
        const all = await pullAll(dev, 0);
        const ids = new Set(all.updates.map((r) => r.id));
        for (const a of acked.get(id)) assert.ok(ids.has(a), `${id}: acknowledged ${a} is on ${dev.name}`);
        assert.equal(ids.size, acked.get(id).size, `${id}: nothing unacknowledged appeared`);
      }
      assert.deepEqual(await pagesOf(id), { DB: 1, DB_1: 0, DB_2: 0 }, `${id} is in DB only`);
    }
  });

  test('what moving a bucket of 100 users costs', async () => {
    const bucket = 200; // DB_2 holds 171-255
    const count = 100;
    const users = usersIn(bucket, count, 'many');
    for (const id of users) {
      const c = api(srv.url, await token(id));
      ok(await c.sync({ cursor: 0, changes: Array.from({ length: 10 }, (_, i) => task(`t${i}`)) }));
    }
    const moved = await reshard({ url: srv.url, adminToken: TEST_ADMIN_TOKEN, bucket, to: 'DB_1', grace: 0 });
    console.log(`[shards] bucket of 100 users (10 tasks each): ${moved.busyMs} ms held, ${moved.totalMs} ms in all, ` +
      `rows read ${moved.rowsRead}, rows written ${moved.rowsWritten}, ${moved.pages} pages copied`);
    assert.ok(moved.users >= 100, JSON.stringify(moved)); // (a user of another test may share the bucket)
    assert.equal(moved.deleted, moved.users);
    for (const id of users.slice(0, 5)) assert.deepEqual(await pagesOf(id), { DB: 0, DB_1: 1, DB_2: 0 });
  });
});
