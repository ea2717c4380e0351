// The KV fast path (contract §3.2), what requests cost (X-Sync-Ops / Server-Timing, §7)
// and the admin usage report (§3, §5), on one server that flushes its usage counters
// after every request (USAGE_FLUSH_REQUESTS=1), so /api/admin/usage moves with each call.
// The KV state token is written ahead of every commit, never on a read, and answers only
// "nothing changed" for what the client already holds: a matching If-None-Match, or the
// cursor of an idle POST /api/sync (README, "304 without D1").
// Rate limits and quotas stay at the harness defaults (never reached).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startWorker, TEST_ADMIN_TOKEN } from '../helpers/server.mjs';
import { api, newUserId, rid, show, token, user } from '../helpers/client.mjs';
import { check, expectOps, expectProblem, ok, opsText, push, sleep, sumOps, task, del, waitFor } from '../helpers/sync.mjs';

let srv;
before(async () => {
  // Pushes of up to 1,000 changes (a Paid-plan MAX_CHANGES; the default is 100): the costs of a push of 1,000 are measured here.
  srv = await startWorker({ vars: { USAGE_FLUSH_REQUESTS: '1', MAX_CHANGES: '1000' } });
});
after(async () => {
  await srv?.stop();
});

const inm = (tag) => ({ headers: { 'if-none-match': tag } });

/** Two devices of one user: two different tokens with the same `sub`. */
async function devices(userId = newUserId()) {
  const a = api(srv.url, await token(userId, { claims: { device: 'a' } }));
  const b = api(srv.url, await token(userId, { claims: { device: 'b' } }));
  return { id: userId, a, b };
}

/** Asserts a 304 as §3.2 describes it: no body, the ETag, private caching, Vary. */
function expect304(res, tag) {
  const d = show(res);
  assert.equal(res.status, 304, d);
  assert.equal(res.text, '', `304 must have no body: ${d}`);
  assert.equal(res.headers.get('etag'), tag, `304 must carry the current ETag: ${d}`);
  const cc = (res.headers.get('cache-control') ?? '').toLowerCase();
  assert.ok(cc.includes('private') && (cc.includes('no-cache') || cc.includes('no-store')), `Cache-Control of ${d}`);
  const vary = (res.headers.get('vary') ?? '').toLowerCase().split(',').map((s) => s.trim());
  assert.ok(vary.includes('authorization'), `Vary must include Authorization: ${d}`);
}

/** A 304 answered from the KV state token: exactly one KV read and nothing else. */
function expectFast304(res, tag) {
  expect304(res, tag);
  const ops = expectOps(res);
  assert.deepEqual(ops, { d1: 0, 'rows-read': 0, 'rows-written': 0, 'kv-read': 1, 'kv-write': 0 },
    `a 304 from the KV fast path costs one KV read and no D1: ${show(res)}`);
}

describe('KV fast path', () => {
  test('after a push (which writes the token ahead), repeated conditional checks are 304 with d1=0', async () => {
    const u = await user(srv.url);
    await push(u, [task(rid('t'))]);
    const first = await u.get('/api/sync/check');
    ok(first);
    const tag = first.headers.get('etag');
    assert.match(tag ?? '', /^"[^"]+"$/, show(first));
    for (let i = 0; i < 3; i++) expectFast304(await u.get('/api/sync/check', inm(tag)), tag);
    // the same through HEAD and the /sync/check alias
    expectFast304(await u.head('/api/sync/check', inm(tag)), tag);
    expectFast304(await u.get('/sync/check', inm(tag)), tag);
  });

  test('a push from another device: the next check is 200 with the new ETag, then 304 again from KV', async () => {
    const { a, b } = await devices();
    const p1 = await push(a, [task('t1', { title: 'from a' })]);
    const tag1 = (await check(a)).etag;
    assert.equal(tag1, p1.etag, 'the check ETag equals the push etag');
    expectFast304(await a.get('/api/sync/check', inm(tag1)), tag1);

    // device b pushes; device a's very next conditional check sees it (same location: b's
    // push wrote the token ahead of its commit, so a's tag no longer matches it). The new
    // state comes from D1: a KV value is never handed out as a new ETag or cursor.
    const p2 = await push(b, [task('t2', { title: 'from b' })], p1.cursor);
    assert.notEqual(p2.etag, tag1, 'a push changes the state token');
    const seen = await a.get('/api/sync/check', inm(tag1));
    const body = ok(seen);
    assert.equal(seen.headers.get('etag'), p2.etag, `the check after b's push must carry b's ETag: ${show(seen)}`);
    assert.equal(body.etag, p2.etag, show(seen));
    assert.equal(body.cursor, p2.cursor, `the check cursor is the state after b's push: ${show(seen)}`);
    assert.deepEqual([expectOps(seen).d1, expectOps(seen)['kv-read'], expectOps(seen)['kv-write']], [1, 1, 0],
      `the token no longer matches a's tag: one KV read, then the state row from D1, no KV write: ${show(seen)}`);
    expectFast304(await a.get('/api/sync/check', inm(p2.etag)), p2.etag);

    // the same through the one-request sync: a's idle sync from its old cursor pulls b's
    // change from D1; from the new cursor it is answered from KV
    const behind = await a.sync({ cursor: p1.cursor });
    assert.deepEqual(ok(behind).updates.map((r) => r.id), ['t2'], show(behind));
    assert.ok(expectOps(behind).d1 >= 1 && expectOps(behind)['kv-read'] === 1, show(behind));
    const idle = await a.sync({ cursor: p2.cursor });
    assert.deepEqual(expectOps(idle), { d1: 0, 'rows-read': 0, 'rows-written': 0, 'kv-read': 1, 'kv-write': 0 }, show(idle));
    assert.equal(ok(idle).cursor, p2.cursor);

    // a delete is a change too
    const p3 = await push(b, [del('tasks', 't1')], p2.cursor);
    const after3 = await a.get('/api/sync/check', inm(p2.etag));
    ok(after3);
    assert.equal(after3.headers.get('etag'), p3.etag, show(after3));
    expectFast304(await a.get('/api/sync/check', inm(p3.etag)), p3.etag);

    // and device a really gets what the checks announced
    const pulled = ok(await a.sync({ cursor: p1.cursor }));
    assert.deepEqual(pulled.updates.map((r) => r.id), ['t2']);
    assert.deepEqual(pulled.deleted.map((r) => r.id), ['t1']);
    assert.equal(pulled.etag, p3.etag);
  });

  test('conditional GETs of /changes?since= and the full download are 304 with d1=0 once the token is primed', async () => {
    const u = await user(srv.url);
    const p = await push(u, [task('a'), task('b'), task('c')]);
    const tag = (await check(u)).etag;
    assert.equal(tag, p.etag);
    for (const path of [
      '/api/sync/tasks/changes?since=0',
      `/api/sync/tasks/changes?since=${p.cursor}&limit=10`,
      '/api/sync/notes/changes?since=0',
      '/api/sync/tasks',
      '/api/sync/tasks?limit=2&after=a',
      '/api/sync/settings',
    ]) {
      expectFast304(await u.get(path, inm(tag)), tag);
    }
    // weak form and lists (RFC 9110 weak comparison) also hit the fast path
    expectFast304(await u.get('/api/sync/tasks/changes?since=0', inm(`W/${tag}`)), tag);
    expectFast304(await u.get('/api/sync/tasks', inm(`"nope", ${tag}`)), tag);

    // a tag that does not match goes to D1 and returns the data
    const miss = await u.get('/api/sync/tasks/changes?since=0', inm('"s1"'));
    const body = ok(miss);
    assert.equal(miss.headers.get('etag'), tag, show(miss));
    assert.deepEqual(body.changes.created.map((r) => r.id).sort(), ['a', 'b', 'c']);
    assert.ok(expectOps(miss).d1 >= 1, `a non-matching tag is answered from D1: ${show(miss)}`);

    // after another push the old tag no longer matches on any of them
    const p2 = await push(u, [task('d')], p.cursor);
    const ch = await u.get(`/api/sync/tasks/changes?since=${p.cursor}`, inm(tag));
    assert.deepEqual(ok(ch).changes.created.map((r) => r.id), ['d'], show(ch));
    assert.equal(ch.headers.get('etag'), p2.etag, show(ch));
    const dl = await u.get('/api/sync/tasks', inm(tag));
    assert.deepEqual(ok(dl).data.map((r) => r.id), ['a', 'b', 'c', 'd'], show(dl));
    assert.equal(dl.headers.get('etag'), p2.etag, show(dl));
    expectFast304(await u.get('/api/sync/tasks', inm(p2.etag)), p2.etag);
  });

  test('an unconditional check always asks D1 and a read never writes KV; an idle POST /api/sync at the token is answered from KV', async () => {
    const u = await user(srv.url);
    ok(await u.sync({ cursor: 0, changes: [] })); // from 0 there is no token to match: D1
    const miss = await u.get('/api/sync/check');
    ok(miss);
    assert.deepEqual([expectOps(miss).d1, expectOps(miss)['kv-read'], expectOps(miss)['kv-write']], [1, 0, 0],
      `an unconditional check wants the state itself: D1 only, and nothing is filled into KV: ${show(miss)}`);

    const p1 = await push(u, [task('a')]);
    const p2 = await push(u, [task('b')], p1.cursor);
    const plain = await u.get('/api/sync/check');
    assert.equal(ok(plain).cursor, p2.cursor, show(plain));
    assert.equal(plain.headers.get('etag'), p2.etag, show(plain));
    assert.deepEqual([expectOps(plain).d1, expectOps(plain)['kv-read'], expectOps(plain)['kv-write']], [1, 0, 0], show(plain));

    // idle sync at the client's cursor, which the token equals: no D1 statement, and the
    // reply D1 would give (nothing new, the same cursor, its etag, has_more false)
    for (const body of [{ cursor: p2.cursor }, { cursor: p2.cursor, changes: [] }, { last_sync: p2.cursor, limit: 5 }]) {
      const idle = await u.sync(body);
      const b = ok(idle);
      assert.deepEqual(expectOps(idle), { d1: 0, 'rows-read': 0, 'rows-written': 0, 'kv-read': 1, 'kv-write': 0 }, show(idle));
      const { server_time: t, ...rest } = b;
      assert.deepEqual(rest, { applied: [], conflicts: [], updates: [], deleted: [], cursor: p2.cursor, has_more: false, etag: p2.etag }, show(idle));
      assert.ok(Number.isInteger(t), show(idle));
    }
    // from an older cursor KV cannot answer: D1 pulls what changed
    const older = await u.sync({ cursor: p1.cursor });
    assert.deepEqual(ok(older).updates.map((r) => r.id), ['b'], show(older));
    assert.equal(older.body.cursor, p2.cursor);
    assert.ok(expectOps(older).d1 >= 1 && expectOps(older)['kv-read'] === 1 && expectOps(older)['kv-write'] === 0, show(older));
    // a cursor the token does not equal (ahead of it, a client's own mistake) goes to D1
    const ahead = await u.sync({ cursor: p2.cursor + 1 });
    assert.equal(ok(ahead).updates.length, 0, show(ahead));
    assert.ok(expectOps(ahead).d1 >= 1, show(ahead));
  });

  test('a user within the rate limit costs no KV write on requests that do not write', async () => {
    const u = await user(srv.url);
    const p = await push(u, [task('x'), task('y')]);
    const first = await u.get('/api/sync/check'); // from D1; the token was written ahead of the push
    ok(first);
    const tag = first.headers.get('etag');
    const responses = [
      await u.get('/api/sync/check'),
      await u.get('/api/sync/check', inm(tag)),
      await u.get('/api/sync/check', inm('"other"')),
      await u.head('/api/sync/check'),
      await u.get('/api/sync/tasks/changes?since=0'),
      await u.get('/api/sync/tasks/changes?since=0', inm(tag)),
      await u.get(`/api/sync/lists/changes?since=${p.cursor}`),
      await u.get('/api/sync/tasks'),
      await u.get('/api/sync/tasks', inm(tag)),
      await u.get('/api/sync/notes?limit=5'),
      await u.sync({ cursor: 0 }),
      await u.sync({ cursor: p.cursor, changes: [] }),
      await u.sync({ cursor: 0, changes: [task('x')] }), // an idempotent replay writes nothing
      await u.get('/api/sync/tasks/changes?since=-1'), // 400
      await u.post('/api/sync', '{', { headers: { 'content-type': 'application/json' } }), // 400
    ];
    for (const res of responses) {
      assert.ok(res.status < 500, show(res));
      assert.equal(expectOps(res)['kv-write'], 0, `a request that writes nothing must not write KV: ${show(res)}`);
      // the limiter saw it (in memory): the RateLimit header is there
      assert.match(res.headers.get('ratelimit') ?? '', /^"burst";r=\d+;t=\d+$/, show(res));
    }
    // the state is unchanged, and a real write costs exactly one KV write (the token)
    assert.equal((await check(u)).etag, p.etag);
    const w = await u.sync({ cursor: p.cursor, changes: [task('z')] });
    ok(w);
    assert.equal(expectOps(w)['kv-write'], 1, `a push writes the KV token through, nothing else: ${show(w)}`);
  });
});

describe('costs (X-Sync-Ops)', () => {
  test('measured costs: 304 fast path, check miss, pull of 100, push of 10 and of 1,000', async (t) => {
    const u = await user(srv.url);
    const table = {};
    const note = (label, res) => {
      table[label] = opsText(res);
      t.diagnostic(`${label}: ${opsText(res)}`);
      return expectOps(res);
    };

    ok(await u.sync({ cursor: 0 })); // known to the limiter, no KV token yet
    const miss = await u.get('/api/sync/check');
    const body = ok(miss);
    const m = note('check without If-None-Match (always D1)', miss);
    assert.equal(m.d1, 1, show(miss));
    assert.equal(m['rows-written'], 0, show(miss));
    assert.ok(m['rows-read'] <= 1, `one indexed state row at most: ${show(miss)}`);
    assert.equal(m['kv-read'], 0, `an unconditional check does not read the KV token: ${show(miss)}`);
    assert.equal(m['kv-write'], 0, `a read never writes the KV token: ${show(miss)}`);
    const idleD1 = await u.sync({ cursor: body.cursor });
    const i0 = note('idle POST /api/sync from D1 (cursor 0: no token to match)', idleD1);
    assert.deepEqual([i0['kv-read'], i0['kv-write'], i0['rows-written']], [0, 0, 0], show(idleD1));
    assert.ok(i0.d1 >= 1, show(idleD1));

    const p10 = await u.sync({ cursor: body.cursor, changes: Array.from({ length: 10 }, (_, i) => task(`t${String(i).padStart(4, '0')}`)) });
    assert.equal(ok(p10).applied.length, 10, show(p10));
    const c10 = note('push of 10 tasks', p10);
    assert.equal(c10['rows-written'], 1, `a push of a small user writes one row, its head page: ${show(p10)}`);
    assert.equal(c10['kv-write'], 1, `the state token, written ahead of the commit: ${show(p10)}`);
    assert.equal(c10['kv-read'], 0, show(p10));

    const fast = await u.get('/api/sync/check', inm(p10.body.etag));
    expectFast304(fast, p10.body.etag);
    note('conditional check, 304 from KV', fast);
    const stale = await u.get('/api/sync/check', inm(body.etag));
    const s = note('conditional check, tag behind the token (200 from D1)', stale);
    assert.equal(ok(stale).cursor, p10.body.cursor, show(stale));
    assert.deepEqual([s.d1, s['kv-read'], s['kv-write']], [1, 1, 0], show(stale));
    const idle = await u.sync({ cursor: p10.body.cursor });
    const ik = note('idle POST /api/sync from KV', idle);
    assert.deepEqual(ik, { d1: 0, 'rows-read': 0, 'rows-written': 0, 'kv-read': 1, 'kv-write': 0 }, show(idle));
    // what an idle sync costs when the token cannot confirm the cursor (expired, a phantom,
    // or, here, a cursor it does not equal): one KV read, then D1, nothing written
    const unmatched = await u.sync({ cursor: p10.body.cursor + 1 });
    assert.equal(ok(unmatched).updates.length, 0, show(unmatched));
    const iu = note('idle POST /api/sync, token does not match: from D1', unmatched);
    assert.deepEqual([iu['kv-read'], iu['kv-write'], iu['rows-written']], [1, 0, 0], show(unmatched));
    assert.ok(iu.d1 >= 1, show(unmatched));

    const p90 = await u.sync({ cursor: p10.body.cursor, changes: Array.from({ length: 90 }, (_, i) => task(`t${String(i + 10).padStart(4, '0')}`)) });
    assert.equal(ok(p90).applied.length, 90, show(p90));
    const pull = await u.get('/api/sync/tasks/changes?since=0&limit=100');
    const pb = ok(pull);
    assert.equal(pb.changes.created.length, 100, show(pull));
    assert.equal(pb.has_more, false);
    const cp = note('pull of 100 (/api/sync/tasks/changes?since=0&limit=100)', pull);
    assert.equal(cp.d1, 1, `the head page holds state and records: ${show(pull)}`);
    assert.equal(cp['rows-read'], 1, `a user of 100 records is one row: ${show(pull)}`);
    assert.equal(cp['rows-written'], 0, show(pull));
    assert.equal(cp['kv-read'] + cp['kv-write'], 0, `an unconditional pull does not touch KV: ${show(pull)}`);

    const big = await user(srv.url);
    ok(await big.sync({ cursor: 0 }));
    const p1000 = await big.sync({ cursor: 0, changes: Array.from({ length: 1000 }, (_, i) => task(`b${i}`)) });
    assert.equal(ok(p1000).applied.length, 1000, show(p1000));
    const c1000 = note('push of 1,000 tasks', p1000);
    // 1,000 records outgrow the head (500): the push also spills into a few buckets
    assert.ok(c1000.d1 <= 4, `a push runs a few D1 statements whatever its size: ${table['push of 10 tasks']} vs ${opsText(p1000)}`);
    assert.ok(c1000['rows-written'] >= 2 && c1000['rows-written'] <= 13, `the head and the buckets it spilled into (at most 8 + 2 splits): ${show(p1000)}`);
    assert.equal(c1000['kv-write'], 1, show(p1000));
  });
});

describe('observability', () => {
  test('every response carries X-Sync-Ops and Server-Timing (health, 2xx, 304, 400, 401, 404, 405, 413, 415, admin)', async () => {
    const u = await user(srv.url);
    const anon = api(srv.url, null);
    await push(u, [task(rid('t'))]);
    const { etag } = await check(u);
    const responses = {
      health: await anon.get('/api/health'),
      'health HEAD': await anon.head('/api/health'),
      openapi: await anon.get('/api/openapi.json'),
      '404 route': await anon.get('/api/nothing-here'),
      '404 type': await u.get('/api/sync/widgets'),
      '405': await u.delete('/api/sync'),
      '401 no token': await anon.get('/api/sync/check'),
      '401 bad token': await api(srv.url, 'not.a.jwt').sync({ cursor: 0 }),
      '400': await u.get('/api/sync/tasks/changes'),
      '413': await u.sync({ cursor: 0, changes: Array.from({ length: 1001 }, (_, i) => task(`x${i}`)) }),
      '415': await u.post('/api/sync', 'cursor=0', { headers: { 'content-type': 'text/plain' } }),
      check: await u.get('/api/sync/check'),
      '304': await u.get('/api/sync/check', inm(etag)),
      pull: await u.sync({ cursor: 0 }),
      push: await u.sync({ cursor: 0, changes: [task(rid('t'))] }),
      delta: await u.post('/api/sync/notes/delta', { changes: { created: [{ id: rid('n'), title: 'n' }] } }),
      download: await u.get('/api/sync/tasks'),
      admin: await api(srv.url, TEST_ADMIN_TOKEN).get('/api/admin/usage'),
      'admin 401': await api(srv.url, 'wrong').get('/api/admin/usage'),
    };
    const expected = {
      health: 200, 'health HEAD': 200, openapi: 200, '404 route': 404, '404 type': 404, '405': 405,
      '401 no token': 401, '401 bad token': 401, '400': 400, '413': 413, '415': 415, check: 200, '304': 304,
      pull: 200, push: 200, delta: 200, download: 200, admin: 200, 'admin 401': 401,
    };
    for (const [name, res] of Object.entries(responses)) {
      assert.equal(res.status, expected[name], `${name}: ${show(res)}`);
      const ops = expectOps(res);
      if (['health', 'openapi', '404 route', '401 no token', '405'].includes(name)) {
        assert.deepEqual(ops, { d1: 0, 'rows-read': 0, 'rows-written': 0, 'kv-read': 0, 'kv-write': 0 }, `${name} costs nothing: ${show(res)}`);
      }
    }
    assert.ok(expectOps(responses.push).d1 >= 1 && expectOps(responses.push)['rows-written'] >= 1, show(responses.push));
  });
});

describe('admin usage', () => {
  const admin = () => api(srv.url, TEST_ADMIN_TOKEN);
  async function usage() {
    const res = await admin().get('/api/admin/usage');
    const b = ok(res);
    const u = b.usage;
    return {
      body: b,
      requests: u.requests.used,
      rowsRead: u.d1_rows_read.used,
      rowsWritten: u.d1_rows_written.used,
      kvReads: u.kv_reads.used,
      kvWrites: u.kv_writes.used,
      hits: b.kv_fast_path.hits,
      misses: b.kv_fast_path.misses,
      flushes: b.accounting.flushes,
    };
  }

  test('the report: today, every quota with used / limit / percent, mode, fast-path hit ratio', async () => {
    const { body } = await usage();
    const now = Date.now();
    assert.equal(body.day, Math.floor(body.timestamp / 86_400_000), JSON.stringify(body));
    assert.equal(body.date, new Date(body.day * 86_400_000).toISOString().slice(0, 10), JSON.stringify(body));
    assert.ok(Math.abs(body.timestamp - now) < 60_000, JSON.stringify(body));
    const limits = {
      requests: srv.vars.QUOTA_REQUESTS, d1_rows_read: srv.vars.QUOTA_D1_ROWS_READ,
      d1_rows_written: srv.vars.QUOTA_D1_ROWS_WRITTEN, kv_reads: srv.vars.QUOTA_KV_READS, kv_writes: srv.vars.QUOTA_KV_WRITES,
    };
    for (const [k, limit] of Object.entries(limits)) {
      const q = body.usage[k];
      assert.ok(q, `usage.${k} missing: ${JSON.stringify(body)}`);
      assert.equal(q.limit, Number(limit), `usage.${k}.limit is the configured quota`);
      assert.ok(Number.isInteger(q.used) && q.used >= 0, JSON.stringify(q));
      assert.equal(q.percent, Math.round((q.used * 10_000) / q.limit) / 100, `usage.${k}.percent: ${JSON.stringify(q)}`);
    }
    assert.ok(body.usage.requests.used >= 1, 'earlier requests of this file are counted');
    assert.equal(body.degraded, false);
    assert.equal(body.mode, 'normal');
    assert.equal(body.kv_trusted, true);
    assert.equal(body.degrade_at, 0.9);
    const { hits, misses, hit_ratio: ratio } = body.kv_fast_path;
    assert.ok(hits > 0, 'earlier tests of this file used the fast path');
    assert.equal(ratio, hits / (hits + misses));
    // accounting's own rows: the day's upserts, all made by this file's one isolate
    assert.ok(Number.isInteger(body.accounting.flushes) && body.accounting.flushes >= 1, JSON.stringify(body.accounting));
    assert.equal(body.accounting.isolates, 1, `one isolate flushed today: ${JSON.stringify(body.accounting)}`);
  });

  /**
   * Reads the admin report until the usage flushes scheduled after earlier responses
   * (ctx.waitUntil) have landed, instead of assuming they have: `settled(report, polls)`
   * says whether the report shows them (each extra poll is itself one more request with
   * two more flushes: its own and the one scheduled after it).
   */
  async function settledUsage(settled) {
    let polls = 0;
    let last;
    await waitFor(async () => {
      if (polls) await sleep(100);
      last = await usage();
      polls++;
      return settled(last, polls);
    }, 'the usage flushes to land in the admin report', { timeoutMs: 15_000, intervalMs: 0 });
    return { report: last, polls };
  }

  test('after known D1 traffic the counters move by exactly the X-Sync-Ops sums, plus one row written and two read per flush', async () => {
    // Every request here runs D1 statements; a usage flush is scheduled after each
    // response (USAGE_FLUSH_REQUESTS=1). The report is read until every one has landed.
    const u = await user(srv.url);
    ok(await u.sync({ cursor: 0 })); // the user's first request also reads the KV bucket
    const before = await usage();
    const p = await u.sync({ cursor: 0, changes: [task('a'), task('b'), task('c')] });
    const responses = [
      p,
      await u.sync({ cursor: p.body.cursor, changes: [task('d'), del('tasks', 'a')] }),
      await u.get('/api/sync/tasks/changes?since=0'),
      await u.get('/api/sync/tasks?limit=2'),
      await u.sync({ cursor: 0 }),
      await u.post('/api/sync/lists/delta', { changes: { created: [{ id: 'l1', name: 'L' }] } }),
    ];
    for (const r of responses) ok(r);
    const K = responses.length;
    const sum = sumOps(responses);
    // flushes: the first admin call's own, the one after it, one after each request, and
    // two per extra poll of the report
    const flushesAt = (polls) => K + 2 + 2 * (polls - 1);
    const { report: afterSnap, polls } = await settledUsage((r, n) =>
      r.requests - before.requests === K + n && r.rowsWritten - before.rowsWritten === sum['rows-written'] + flushesAt(n));
    const d = (k) => afterSnap[k] - before[k];
    const msg = `before ${JSON.stringify(before.body.usage)} after ${JSON.stringify(afterSnap.body.usage)} ops ${JSON.stringify(sum)} (${polls} polls)`;
    assert.equal(d('requests'), K + polls, `requests: the K requests and the admin calls before the last: ${msg}`);
    // what this traffic is known to cost, independently of the worker's own counting:
    // pushes write the KV state token once each (3: two pushes and the delta push),
    // unconditional pulls and downloads never touch KV, each write (two pushes and the
    // delta push) writes one row, the user's head page, and every request reads it
    assert.equal(sum['kv-write'], 3, `X-Sync-Ops: one KV write per push: ${msg}`);
    assert.equal(sum['kv-read'], 0, `X-Sync-Ops: no KV read: ${msg}`);
    assert.equal(d('kvWrites'), 3, msg);
    assert.equal(d('kvReads'), 0, msg);
    assert.equal(sum['rows-written'], 3, `one row per write: ${msg}`);
    assert.ok(sum['rows-read'] >= K, `every request read the head: ${msg}`);
    assert.equal(d('hits'), 0, msg);
    assert.equal(d('misses'), 0, msg);
    // and the report agrees exactly with the per-request X-Sync-Ops plus the flushes
    assert.equal(d('rowsWritten'), sum['rows-written'] + flushesAt(polls), `rows written = X-Sync-Ops sum + 1 per flush: ${msg}`);
    assert.equal(d('rowsRead'), sum['rows-read'] + 2 * flushesAt(polls), `rows read = X-Sync-Ops sum + 2 per flush: ${msg}`);
    // the row's own flush counter agrees: one upsert per flush
    assert.equal(d('flushes'), flushesAt(polls), `accounting.flushes: ${msg}`);
  });

  test('fast-path traffic: requests K+1, KV reads and writes exactly as in X-Sync-Ops, hits = answers without D1', async () => {
    const { a, b } = await devices();
    ok(await a.sync({ cursor: 0 }));
    ok(await b.sync({ cursor: 0 }));
    const before = await usage();
    const responses = [];
    const go = async (p) => {
      const r = await p;
      responses.push(r);
      return r;
    };
    const pushed = await go(a.sync({ cursor: 0, changes: [task('x')] }));
    const tag = ok(pushed).etag;
    const at = pushed.body.cursor;
    await go(a.get('/api/sync/check')); // unconditional: D1 answers, KV not consulted
    await go(a.get('/api/sync/check', inm(tag))); // 304 from KV: a hit
    await go(b.get('/api/sync/check', inm(tag))); // other device, same user: a hit
    await go(a.get('/api/sync/tasks/changes?since=0', inm(tag))); // hit
    await go(a.get('/api/sync/tasks', inm(tag))); // hit
    await go(a.get('/api/sync/tasks', inm('"stale"'))); // KV consulted, D1 answers: a miss
    await go(a.get('/api/sync/tasks/changes?since=0')); // unconditional: KV not consulted
    await go(b.sync({ cursor: at })); // idle sync at the token: 200 from KV, a hit
    await go(b.sync({ cursor: at, changes: [task('y')] }));
    const moved = await go(a.get('/api/sync/check', inm(tag))); // the token moved on: D1 answers 200, a miss
    assert.equal(ok(moved).cursor, responses.at(-2).body.cursor, show(moved));
    const behind = await go(a.sync({ cursor: at })); // idle sync behind the token: D1 pulls y, a miss
    assert.deepEqual(ok(behind).updates.map((r) => r.id), ['y'], show(behind));
    await go(api(srv.url, null).get('/api/health'));
    await go(api(srv.url, null).get('/api/nope'));
    const K = responses.length;
    const sum = sumOps(responses);
    const afterSnap = await usage();
    const d = (k) => afterSnap[k] - before[k];
    const msg = `before ${JSON.stringify(before.body)} after ${JSON.stringify(afterSnap.body)} ops ${JSON.stringify(sum)}`;
    // known independently of the worker's counting: every conditional GET and every idle
    // sync from a cursor past 0 reads the KV token once (8), nothing else reads KV; each
    // push writes it once, ahead of its commit (2)
    assert.equal(sum['kv-read'], 8, `X-Sync-Ops: eight KV reads: ${responses.map(show).join('\n')}`);
    assert.equal(sum['kv-write'], 2, `X-Sync-Ops: two KV writes (the pushes): ${msg}`);
    assert.equal(d('kvReads'), 8, msg);
    assert.equal(d('kvWrites'), 2, msg);

    const fastAnswers = responses.filter((r) => [200, 304].includes(r.status) && expectOps(r)['kv-read'] === 1 && expectOps(r).d1 === 0);
    const fast304 = responses.filter((r) => r.status === 304 && expectOps(r).d1 === 0);
    assert.equal(fast304.length, 4, responses.map(show).join('\n'));
    assert.equal(fastAnswers.length, 5, responses.map(show).join('\n'));
    assert.equal(d('requests'), K + 1, msg);
    assert.equal(d('kvReads'), sum['kv-read'], msg);
    assert.equal(d('kvWrites'), sum['kv-write'], msg);
    assert.equal(d('hits'), fastAnswers.length, `kv_fast_path.hits: the 304s and the idle sync answered from KV: ${msg}`);
    assert.equal(d('misses'), 3, `kv_fast_path.misses: the stale-tag download, the check and the idle sync behind the token: ${msg}`);
    // flushes may coalesce when a KV-only request is counted while the previous flush is
    // still running; each flush costs exactly one row written and two read
    const flushes = d('rowsWritten') - sum['rows-written'];
    assert.ok(flushes >= 1 && flushes <= K + 2, `between 1 and K+2 flushes: ${flushes} (${msg})`);
    assert.equal(d('rowsRead') - sum['rows-read'], 2 * flushes, msg);
    const r = afterSnap.body.kv_fast_path;
    assert.equal(r.hit_ratio, r.hits / (r.hits + r.misses));
  });
});

// RFC 9110 §13.2.1: preconditions are ignored when the response without them would not
// be a 2xx, so a bad query is the same 400 with If-None-Match as without it, even when
// the KV token matches (a regression test: the fast path once answered 304 first).
describe('conditional GETs are validated first', () => {
  test('a conditional GET with an invalid query is a 400 even when the tag matches', async () => {
    const u = await user(srv.url);
    const p = await push(u, [task('x')]);
    await check(u);
    for (const path of ['/api/sync/tasks/changes?sinse=0', '/api/sync/tasks/changes', '/api/sync/tasks/changes?since=abc', '/api/sync/tasks?since=5']) {
      expectProblem(await u.get(path), 400, 'invalid_field');
      expectProblem(await u.get(path, inm(p.etag)), 400, 'invalid_field');
      expectProblem(await u.get(path, inm('*')), 400, 'invalid_field');
    }
  });
});
