// Daily quotas and degradation (contract §5). One persisted D1/KV state, six UTC days:
// the server is restarted on the same persistence directory with DEV_CLOCK_OFFSET_MS
// (a test-only var that shifts the worker's clock; JWTs are still checked against the
// real clock) to start the next day, with different quotas each day:
//   day 0  QUOTA_REQUESTS=20, DEGRADE_AT=0.9, usage flushed after every request:
//          reads pause at 18 requests, pushes are still applied;
//   day 1  QUOTA_KV_WRITES=4, QUOTA_D1_ROWS_WRITTEN=40: the day-0 pushes are visible; near
//          the KV write budget the worker stops writing KV and answers conditional GETs
//          from D1; once the D1 write quota is spent, writes are refused;
//   day 2  default quotas: the refused writes are not there, the accepted ones are;
//          near the KV read budget (QUOTA_KV_READS=30) the worker stops reading KV and
//          keeps answering from D1: KV budgets never pause reads (contract §5);
//   day 3  QUOTA_D1_ROWS_READ=60: reads pause at 90 % of rows read, writes go on;
//   day 4  QUOTA_D1_ROWS_WRITTEN=120: between 90 % and 100 % reads pause and writes
//          pass, at 100 % writes are refused too (day 5 checks what was stored).
// The tests run in order and share the users below (each day builds on the one before).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startWorker, TEST_ADMIN_TOKEN } from '../helpers/server.mjs';
import { api, newUserId, show, token } from '../helpers/client.mjs';
import { assertFields, expectOps, expectProblem, findRec, ok, pullAll, push, task } from '../helpers/sync.mjs';

const DAY = 86_400_000;
const JITTER = 600;

let srv;
let offset = 0; // the server's clock offset (ms)
before(async () => {
  srv = await startWorker({ vars: { QUOTA_REQUESTS: '20', DEGRADE_AT: '0.9', USAGE_FLUSH_REQUESTS: '1' } });
});
after(async () => {
  await srv?.stop();
});

async function restart(vars) {
  srv = await srv.restart(vars);
  offset = Number(srv.vars.DEV_CLOCK_OFFSET_MS ?? 0);
}

const anon = () => api(srv.url, null);
const admin = async () => ok(await api(srv.url, TEST_ADMIN_TOKEN).get('/api/admin/usage'));
const secsToMidnight = (ms) => Math.ceil(((Math.floor(ms / DAY) + 1) * DAY - ms) / 1000);

/** Sends a request (`send()`), returning it with the test's clock around it (for Retry-After). */
async function timed(send) {
  const t0 = Date.now();
  const res = await send();
  return { res, t0, t1: Date.now() };
}

/**
 * Asserts a 503 `degraded` whose Retry-After points at the next UTC midnight of the
 * server's (shifted) clock, plus up to 600 s of jitter. Returns Retry-After.
 */
function expectDegraded({ res, t0, t1 }) {
  expectProblem(res, 503, 'degraded');
  const ra = res.headers.get('retry-after');
  assert.match(ra ?? '', /^\d+$/, `Retry-After on ${show(res)}`);
  const lo = secsToMidnight(t1 + offset);
  const hi = secsToMidnight(t0 + offset) + JITTER;
  assert.ok(Number(ra) >= lo && Number(ra) <= hi, `Retry-After ${ra} should be the seconds to the next UTC midnight (${lo}) plus at most ${JITTER} s: ${show(res)}`);
  const ops = expectOps(res);
  assert.equal(ops.d1, 0, `a paused request does no D1 work: ${show(res)}`);
  assert.equal(ops['rows-written'], 0, show(res));
  assert.match(res.headers.get('ratelimit') ?? '', /^"burst";r=\d+;t=\d+$/, `RateLimit header on ${show(res)}`);
  return Number(ra);
}

// user A with two devices; state carried from day to day
const A = { id: newUserId('quota') };
let a1;
let a2;
let cursor0; // the state both devices had seen before degradation
let tag0;
const K = { id: newUserId('kv') }; // user of the KV budget test (day 1, and day 2)
const expected = new Map(); // id → fields A should have once everything is applied
const refused = []; // ids of pushes the worker refused

describe('day 0: request quota', () => {
  test('under DEGRADE_AT everything is served; at 90 % of QUOTA_REQUESTS the worker degrades', async () => {
    a1 = api(srv.url, await token(A.id, { claims: { device: 1 } }));
    a2 = api(srv.url, await token(A.id, { claims: { device: 2 } }));
    const p = await push(a1, [task('k1', { title: 'one' }), task('k2', { title: 'two', priority: 'high' })]);
    expected.set('k1', { title: 'one' }).set('k2', { title: 'two', priority: 'high' });
    const pulled = await pullAll(a2, 0);
    assert.deepEqual(pulled.updates.map((r) => r.id).sort(), ['k1', 'k2']);
    cursor0 = pulled.cursor;
    tag0 = p.etag;
    assert.equal(ok(await anon().get('/api/health')).degraded, false);

    // each admin call flushes and reports the exact count (itself excluded); the mode
    // it reports must flip exactly when the count reaches 18 of 20
    let prev = null;
    let flipped = null;
    for (let i = 0; i < 20 && flipped === null; i++) {
      const b = await admin();
      const used = b.usage.requests.used;
      if (prev !== null) assert.equal(used, prev + 1, 'each admin call is one more request');
      prev = used;
      assert.equal(b.usage.requests.limit, 20);
      assert.equal(b.degraded, used >= 18, `degraded iff requests >= 0.9 × 20: ${JSON.stringify(b)}`);
      assert.equal(b.mode, used >= 18 ? 'degraded' : 'normal', JSON.stringify(b));
      if (used >= 18) flipped = b;
    }
    assert.ok(flipped, 'the request quota must degrade the worker');
    assert.equal(flipped.usage.requests.used, 18, 'it degrades at 18, not later');
    assert.equal(flipped.usage.requests.percent, 90);
    assert.equal(ok(await anon().get('/api/health')).degraded, true, '/api/health reports degraded');
  });

  test('degraded: checks and pulls get 503 degraded with Retry-After at the next UTC midnight (+ jitter)', async () => {
    const calls = {
      check: () => a2.get('/api/sync/check'),
      'conditional check': () => a2.get('/api/sync/check', { headers: { 'if-none-match': tag0 } }),
      'alias /sync/check': () => a2.get('/sync/check'),
      changes: () => a2.get(`/api/sync/tasks/changes?since=${cursor0}`),
      'changes since=0': () => a2.get('/api/sync/notes/changes?since=0'),
      download: () => a2.get('/api/sync/tasks'),
      'conditional download': () => a2.get('/api/sync/tasks', { headers: { 'if-none-match': tag0 } }),
      'POST /api/sync without changes': () => a2.sync({ cursor: cursor0 }),
      'POST /api/sync with changes: []': () => a2.sync({ cursor: cursor0, changes: [] }),
      'POST /sync without changes': () => a2.post('/sync', { cursor: 0 }),
    };
    const retryAfters = [];
    for (const [name, call] of Object.entries(calls)) {
      const r = await timed(call);
      assert.equal(r.res.status, 503, `${name}: ${show(r.res)}`);
      retryAfters.push(expectDegraded(r));
    }
    assert.ok(new Set(retryAfters).size > 1, `Retry-After is spread by jitter: ${retryAfters}`);
    const h = ok(await anon().get('/api/health'));
    assert.equal(h.status, 'healthy');
    assert.equal(h.degraded, true);
  });

  test('degraded: a push is applied (200, degraded: true, applied, etag null, cursor unchanged); reads stay paused', async () => {
    const before = await timed(() => a2.get('/api/sync/check'));
    expectDegraded(before);
    const res = await a1.sync({ cursor: cursor0, changes: [task('k3', { title: 'three' }), task('k1', { title: 'one, edited', version: 2 })] });
    const b = ok(res);
    expected.set('k3', { title: 'three' }).set('k1', { title: 'one, edited', version: 2 });
    assert.equal(b.degraded, true, show(res));
    assert.deepEqual(b.applied.map((x) => [x.type, x.id, x.version]), [['tasks', 'k3', 1], ['tasks', 'k1', 2]], show(res));
    for (const x of b.applied) assert.ok(Number.isInteger(x.rev) && x.rev > cursor0, show(res));
    assert.deepEqual(b.conflicts, []);
    assert.deepEqual(b.updates, [], 'nothing is pulled in degraded mode');
    assert.deepEqual(b.deleted, []);
    assert.equal(b.has_more, false);
    assert.equal(b.cursor, cursor0, 'the cursor stays the client\'s: it has not seen the changes in between');
    assert.equal(b.etag, null, 'no state token: the client has not pulled');
    assert.equal(expectOps(res)['rows-written'], 1, `a push writes one row (the user's head page): ${show(res)}`);

    // the per-type delta push is a write too
    const d = await a1.post('/api/sync/tasks/delta', { changes: { created: [task('k4', { title: 'four' })] } });
    assert.deepEqual(ok(d).processed, { created: 1, updated: 0, deleted: 0 }, show(d));
    expected.set('k4', { title: 'four' });

    expectDegraded(await timed(() => a2.get('/api/sync/tasks/changes?since=0')));
    expectDegraded(await timed(() => a1.sync({ cursor: cursor0 })));
    const u = await admin();
    assert.equal(u.mode, 'degraded');
    assert.ok(u.usage.requests.used >= 18);
  });
});

describe('day 1: KV write budget, D1 write quota', () => {
  test('next UTC day (restart, clock +1 day): reads resume and the degraded pushes are visible', async () => {
    const day0 = (await admin()).day;
    await restart({
      DEV_CLOCK_OFFSET_MS: String(DAY),
      QUOTA_REQUESTS: '100000000',
      QUOTA_D1_ROWS_WRITTEN: '40',
      QUOTA_KV_WRITES: '4',
      USAGE_FLUSH_REQUESTS: '1000',
      USAGE_FLUSH_SECS: '86400',
    });
    a1 = api(srv.url, await token(A.id, { claims: { device: 1 } }));
    a2 = api(srv.url, await token(A.id, { claims: { device: 2 } }));
    const h = ok(await anon().get('/api/health'));
    assert.equal(h.degraded, false, JSON.stringify(h));
    assert.ok(Math.abs(h.timestamp - (Date.now() + DAY)) < 60_000, `the server clock is shifted by a day: ${h.timestamp}`);
    const u = await admin();
    assert.equal(u.day, day0 + 1, JSON.stringify(u));
    assert.equal(u.mode, 'normal');

    const c = await a2.get('/api/sync/check', { headers: { 'if-none-match': tag0 } });
    ok(c);
    assert.notEqual(c.headers.get('etag'), tag0, 'the degraded pushes changed the state');
    const pulled = await pullAll(a2, cursor0);
    assert.deepEqual(pulled.updates.map((r) => r.id).sort(), ['k1', 'k3', 'k4'], 'exactly the changes made while degraded');
    for (const id of ['k1', 'k3', 'k4']) assertFields(findRec(pulled.updates, 'tasks', id), expected.get(id), `(${id})`);
    assert.equal(c.headers.get('etag'), pulled.pages.at(-1).etag);
    cursor0 = pulled.cursor;
  });

  test('near QUOTA_KV_WRITES the worker stops writing KV and answers conditional GETs from D1, correctly', async () => {
    const k1 = api(srv.url, await token(K.id, { claims: { device: 1 } }));
    const k2 = api(srv.url, await token(K.id, { claims: { device: 2 } }));
    ok(await k2.sync({ cursor: 0 })); // k2's first request may read the shared rate-limit set

    // pushes write the state token to KV (ahead of their commits) until 90 % of the budget is used
    let n = 0;
    let c = 0;
    for (; n < 10; n++) {
      const p = await k1.sync({ cursor: c, changes: [task(`p${n}`)] });
      ok(p);
      c = p.body.cursor;
      if (expectOps(p)['kv-write'] === 0) break;
      K.kvTag = p.body.etag;
    }
    assert.ok(K.kvTag, 'pushes wrote the KV token before the budget ran low');
    assert.ok(n < 10, 'pushes must stop writing KV near the KV write budget');
    const u = await admin();
    assert.equal(u.kv_trusted, false, JSON.stringify(u));
    assert.ok(u.usage.kv_writes.used >= 0.9 * 4, JSON.stringify(u.usage));
    assert.equal(u.mode, 'normal', 'the KV write budget does not pause reads');
    assert.equal(u.degraded, false);

    // KV still holds K.kvTag; the real state has moved on
    const last = await k1.sync({ cursor: c, changes: [task('final')] });
    const p = ok(last);
    assert.equal(expectOps(last)['kv-write'], 0, `no KV write any more: ${show(last)}`);
    const tag = p.etag;
    assert.notEqual(tag, K.kvTag);
    K.tag = tag;
    K.count = n + 2;

    const stale = await k2.get('/api/sync/check', { headers: { 'if-none-match': K.kvTag } });
    ok(stale);
    assert.equal(stale.headers.get('etag'), tag, `a stale KV token must not answer: ${show(stale)}`);
    assert.equal(stale.body.cursor, p.cursor);
    const cur = await k2.get('/api/sync/check', { headers: { 'if-none-match': tag } });
    assert.equal(cur.status, 304, show(cur));
    assert.equal(cur.headers.get('etag'), tag);
    const plain = await k2.get('/api/sync/check');
    assert.equal(ok(plain).etag, tag, show(plain));
    for (const r of [stale, cur, plain]) {
      assert.deepEqual(
        [expectOps(r).d1, expectOps(r)['kv-read'], expectOps(r)['kv-write']], [1, 0, 0],
        `answered from D1 (one statement), KV neither read nor written: ${show(r)}`,
      );
    }
    const ch = await k2.get('/api/sync/tasks/changes?since=0', { headers: { 'if-none-match': tag } });
    assert.equal(ch.status, 304, show(ch));
    assert.ok(expectOps(ch).d1 >= 1 && expectOps(ch)['kv-read'] === 0, show(ch));
    const dl = await k2.get('/api/sync/tasks', { headers: { 'if-none-match': K.kvTag } });
    assert.equal(ok(dl).count, K.count, show(dl));
    assert.equal(dl.headers.get('etag'), tag);
    assert.equal(ok(await anon().get('/api/health')).degraded, false);
  });

  test('with the D1 write quota spent, pushes get 503 degraded and write nothing', async (t) => {
    const accepted = [];
    let refusal = null;
    // one row written per push (packed pages): up to 40 pushes spend the quota
    for (let i = 0; i < 60 && !refusal; i++) {
      const id = `w${i}`;
      const r = await timed(() => a1.sync({ cursor: cursor0, changes: [task(id, { title: `write ${i}` })] }));
      if (r.res.status === 503) {
        refusal = r;
        refused.push(id);
      } else {
        const b = ok(r.res);
        assert.deepEqual(b.applied.map((x) => x.id), [id], show(r.res));
        accepted.push(id);
        expected.set(id, { title: `write ${i}` });
      }
    }
    assert.ok(refusal, 'pushes must be refused once QUOTA_D1_ROWS_WRITTEN is spent');
    assert.ok(accepted.length >= 1, 'the day started under the quota: a push was accepted first');
    expectDegraded(refusal);
    assert.match(refusal.res.body.detail, /write/i, show(refusal.res));
    t.diagnostic(`accepted before the quota was spent: ${accepted.join(', ')}; refused: ${refused.join(', ')}`);

    // every way of writing is refused, and reads pause too
    const more = await timed(() => a1.sync({ cursor: cursor0, changes: [task('w-more')] }));
    expectDegraded(more);
    refused.push('w-more');
    expectDegraded(await timed(() => a1.post('/api/sync/tasks/delta', { changes: { created: [task('w-delta')] } })));
    refused.push('w-delta');
    expectDegraded(await timed(() => a1.post('/api/sync/tasks', { cursor: cursor0, data: [task('w-upload')] })));
    refused.push('w-upload');
    expectDegraded(await timed(() => a2.get('/api/sync/check')));
    expectDegraded(await timed(() => a2.sync({ cursor: cursor0 })));
    assert.equal(ok(await anon().get('/api/health')).degraded, true);
    const u = await admin();
    assert.equal(u.mode, 'writes_refused', JSON.stringify(u));
    assert.equal(u.degraded, true);
    assert.ok(u.usage.d1_rows_written.used >= 40, JSON.stringify(u.usage));
  });
});

describe('day 2: after the reset', () => {
  test('next UTC day: the refused writes do not exist, every accepted one does', async () => {
    await restart({
      DEV_CLOCK_OFFSET_MS: String(2 * DAY),
      QUOTA_D1_ROWS_WRITTEN: '1000000000',
      QUOTA_KV_WRITES: '100000000',
      QUOTA_KV_READS: '30', // for the last test of the day
    });
    a2 = api(srv.url, await token(A.id, { claims: { device: 2 } }));
    const all = await pullAll(a2, 0);
    const ids = all.updates.map((r) => r.id).sort();
    assert.deepEqual(ids, [...expected.keys()].sort(), `A's records after three days (refused: ${refused})`);
    for (const id of refused) assert.equal(findRec(all.updates, 'tasks', id), undefined, `${id} was refused and must not exist`);
    for (const [id, fields] of expected) assertFields(findRec(all.updates, 'tasks', id), fields, `(${id})`);
    assert.deepEqual(all.deleted, []);
  });

  test('counting usage costs no D1 write per request (flushes are batched)', async () => {
    const before = await admin();
    const responses = [];
    for (let i = 0; i < 10; i++) responses.push(await a2.sync({ cursor: 0, limit: 1 }));
    for (const r of responses) {
      ok(r);
      assert.equal(expectOps(r)['rows-written'], 0, show(r));
    }
    const afterU = await admin();
    assert.equal(afterU.usage.requests.used - before.usage.requests.used, 11);
    // one flush in between: the first admin call's own (USAGE_FLUSH_REQUESTS=1000)
    assert.equal(afterU.usage.d1_rows_written.used - before.usage.d1_rows_written.used, 1, `${JSON.stringify(before.usage)} → ${JSON.stringify(afterU.usage)}`);
  });

  // Day 1 stopped writing K's state token to KV, so KV still holds the token of an older
  // state (it lives STATE_CACHE_TTL = 300 s). With the new day's KV budget the worker
  // trusts KV again and answers from that stale token.
  test('a state token left stale in KV by the exhausted KV budget is not trusted the next day', async () => {
    const k2 = api(srv.url, await token(K.id, { claims: { device: 2 } }));
    const res = await k2.get('/api/sync/check', { headers: { 'if-none-match': K.kvTag } });
    assert.equal(res.status, 200, `K's state changed after ${K.kvTag}: ${show(res)}`);
    assert.equal(res.headers.get('etag'), K.tag, show(res));
    const dl = await k2.get('/api/sync/tasks', { headers: { 'if-none-match': K.kvTag } });
    assert.equal(ok(dl).count, K.count, show(dl));
  });

  // The contract changed here (issue #10, item 5): KV budgets never pause reads. Until
  // this change, reads paused (503 degraded) at 90 % of QUOTA_KV_READS; now the worker
  // stops using KV there and keeps answering every read from D1.
  test('near QUOTA_KV_READS the worker stops reading KV and keeps answering from D1 (no pause)', async () => {
    const before = await admin();
    const used = before.usage.kv_reads.used; // exact: nothing is being flushed (USAGE_FLUSH_REQUESTS=1000)
    assert.equal(before.usage.kv_reads.limit, 30);
    assert.ok(used < 26, `the day's earlier tests read KV only a few times: ${JSON.stringify(before.usage)}`);
    assert.equal(before.mode, 'normal');
    assert.equal(before.kv_trusted, true, JSON.stringify(before));
    // a push writes A's token ahead of its commit (a2 is known to the rate limiter: no KV read)
    const p = await push(a2, [task('kv-reads')]);
    let served = 0;
    let fromD1 = null;
    for (let i = 0; i < 30 && !fromD1; i++) {
      const r = await a2.get('/api/sync/check', { headers: { 'if-none-match': p.etag } });
      assert.equal(r.status, 304, show(r));
      const ops = expectOps(r);
      if (ops['kv-read'] === 1) {
        assert.equal(ops.d1, 0, `answered from KV: ${show(r)}`);
        served++;
      } else fromD1 = r;
    }
    // each conditional check reads KV once; the check that sees 27 reads (0.9 × 30) asks D1
    assert.ok(fromD1, 'near the KV read budget the worker must stop reading KV');
    assert.equal(served, 27 - used, 'checks answered from KV before the worker stopped reading it');
    assert.deepEqual([expectOps(fromD1).d1, expectOps(fromD1)['kv-read'], expectOps(fromD1)['kv-write']], [1, 0, 0], show(fromD1));
    // every read keeps being answered, from D1, with KV neither read nor written
    const reads = [
      await a2.get('/api/sync/check', { headers: { 'if-none-match': p.etag } }),
      await a2.get('/api/sync/check'),
      await a2.sync({ cursor: p.cursor }),
      await a2.get(`/api/sync/tasks/changes?since=${p.cursor}`),
      await a2.get('/api/sync/tasks', { headers: { 'if-none-match': p.etag } }),
    ];
    assert.deepEqual(reads.map((r) => r.status), [304, 200, 200, 200, 304], reads.map(show).join('\n'));
    for (const r of reads) {
      assert.ok(expectOps(r).d1 >= 1, `answered from D1: ${show(r)}`);
      assert.equal(expectOps(r)['kv-read'], 0, `KV is not read any more: ${show(r)}`);
      assert.equal(expectOps(r)['kv-write'], 0, show(r));
    }
    assert.equal(reads[1].body.cursor, p.cursor);
    assert.deepEqual([reads[2].body.cursor, reads[2].body.updates.length, reads[2].body.has_more], [p.cursor, 0, false]);
    // a push still writes the token ahead (within the KV write budget): isolates that have
    // not yet learned the day's totals keep reading a token in step with D1
    const w = await a2.sync({ cursor: p.cursor, changes: [task('kv-reads-2')] });
    assert.equal(ok(w).applied.length, 1, show(w));
    assert.deepEqual([expectOps(w)['kv-read'], expectOps(w)['kv-write']], [0, 1], show(w));
    const u = await admin();
    assert.equal(u.mode, 'normal', `KV reads never pause reads: ${JSON.stringify(u)}`);
    assert.equal(u.degraded, false);
    assert.equal(u.kv_trusted, false, JSON.stringify(u));
    assert.equal(u.usage.kv_reads.used, 27);
    assert.ok(u.usage.kv_reads.percent >= 90, JSON.stringify(u.usage));
    assert.equal(ok(await anon().get('/api/health')).degraded, false);
  });
});

// Days 3 and 4: the D1 row quotas. Usage is exact within this isolate (no flush runs but
// the isolate's first, USAGE_FLUSH_REQUESTS=1000 and USAGE_FLUSH_SECS=86400 carry over).
describe('day 3: D1 rows read', () => {
  test('at 90 % of QUOTA_D1_ROWS_READ reads pause (503 degraded) and pushes are still applied', async () => {
    // a pull of a small user reads one row (its head page), so the quota is small
    await restart({ DEV_CLOCK_OFFSET_MS: String(3 * DAY), QUOTA_KV_READS: '100000000', QUOTA_D1_ROWS_READ: '60' });
    const r = api(srv.url, await token(newUserId('rows'), { claims: { device: 1 } }));
    await push(r, Array.from({ length: 40 }, (_, i) => task(`r${i}`)));
    const start = await admin();
    assert.equal(start.mode, 'normal', JSON.stringify(start));
    assert.ok(start.usage.d1_rows_read.used < 54, JSON.stringify(start.usage));
    let paused = null;
    let served = 0;
    for (let i = 0; i < 100 && !paused; i++) {
      const res = await timed(() => r.get('/api/sync/tasks/changes?since=0'));
      if (res.res.status === 503) paused = res;
      else {
        assert.equal(ok(res.res).changes.created.length, 40, show(res.res));
        assert.ok(expectOps(res.res)['rows-read'] >= 1, show(res.res));
        served++;
      }
    }
    assert.ok(paused, 'reads must pause once D1 rows read reach 90 % of the quota');
    assert.ok(served >= 1, 'the day started under the quota');
    expectDegraded(paused);
    const u = await admin();
    assert.equal(u.mode, 'degraded', JSON.stringify(u));
    assert.ok(u.usage.d1_rows_read.percent >= 90, JSON.stringify(u.usage));
    for (const k of ['requests', 'd1_rows_written', 'kv_reads', 'kv_writes']) assert.ok(u.usage[k].percent < 90, `${k}: ${JSON.stringify(u.usage)}`);
    assert.equal(ok(await anon().get('/api/health')).degraded, true);
    // writes go on
    const w = ok(await r.sync({ cursor: 0, changes: [task('while-paused')] }));
    assert.equal(w.degraded, true, JSON.stringify(w));
    assert.deepEqual(w.applied.map((x) => x.id), ['while-paused']);
  });
});

describe('day 4: between 90 % and 100 % of D1 rows written', () => {
  test('reads pause and writes pass; at 100 % writes are refused too', async () => {
    await restart({ DEV_CLOCK_OFFSET_MS: String(4 * DAY), QUOTA_D1_ROWS_READ: '1000000000', QUOTA_D1_ROWS_WRITTEN: '120' });
    const bandUser = newUserId('band');
    const w = api(srv.url, await token(bandUser, { claims: { device: 1 } }));
    const phases = []; // per step: [push status, read status]
    let bandAdmin = null;
    const stored = [];
    for (let i = 0; i < 200; i++) {
      const p = await timed(() => w.sync({ cursor: 0, changes: [task(`b${i}`)] }));
      if (p.res.status === 200) stored.push(`b${i}`);
      else expectDegraded(p);
      const rd = await timed(() => w.get('/api/sync/tasks/changes?since=0&limit=1'));
      if (rd.res.status !== 200) expectDegraded(rd);
      phases.push([p.res.status, rd.res.status]);
      if (p.res.status === 200 && rd.res.status === 503 && !bandAdmin) bandAdmin = await admin();
      if (p.res.status === 503) break;
    }
    const seq = phases.map(([a, b]) => `${a}/${b}`);
    const compact = seq.filter((s, i) => s !== seq[i - 1]).join(' → ');
    assert.equal(compact, '200/200 → 200/503 → 503/503', `push/read statuses go normal → reads paused, writes pass → both refused: ${seq.join(' ')}`);
    assert.ok(bandAdmin, 'the band was observed');
    assert.equal(bandAdmin.mode, 'degraded', `in the band the mode is degraded, not writes_refused: ${JSON.stringify(bandAdmin)}`);
    const pct = bandAdmin.usage.d1_rows_written.percent;
    assert.ok(pct >= 90 && pct < 100, `the band is 90 % ≤ rows written < 100 %: ${JSON.stringify(bandAdmin.usage)}`);
    const end = await admin();
    assert.equal(end.mode, 'writes_refused', JSON.stringify(end));

    // every push answered 200 is stored (checked on the next day)
    await restart({ DEV_CLOCK_OFFSET_MS: String(5 * DAY), QUOTA_D1_ROWS_WRITTEN: '1000000000' });
    const all = await pullAll(api(srv.url, await token(bandUser)), 0);
    assert.deepEqual(all.updates.map((r) => r.id).sort(), [...stored].sort(), 'exactly the pushes answered 200 are stored');
  });
});
