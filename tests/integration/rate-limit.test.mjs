// Per-user rate limiting (contract §5, §8.8) on a server with a small bucket: a burst of
// 3 refilled at 12 per minute (one token every 5 s, a full bucket in 15 s). The slow
// refill keeps exact token counts exact on a loaded machine: a test's few requests take
// well under 5 s. Nothing sleeps for a fixed time: after a 429 the tests keep asking
// (each ask refused, which must not cost a token) until a request passes, and token
// counts are checked against what the bucket can hold given the time the test measured
// since the bucket was last seen empty (a 429).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startWorker } from '../helpers/server.mjs';
import { api, newUserId, rid, show, token, user } from '../helpers/client.mjs';
import { expectOps, expectProblem, ok, pullAll, sleep, task } from '../helpers/sync.mjs';

const BURST = 3;
const PER_MINUTE = 12;
const RATE = PER_MINUTE / 60_000; // tokens per ms
const WINDOW = Math.ceil((BURST / PER_MINUTE) * 60); // seconds to refill a whole burst: 3

let srv;
before(async () => {
  srv = await startWorker({ vars: { RATE_LIMIT_BURST: String(BURST), RATE_LIMIT_PER_MINUTE: String(PER_MINUTE) } });
});
after(async () => {
  await srv?.stop();
});

/** Parses and checks `RateLimit-Policy` and `RateLimit` (IETF httpapi draft syntax). */
function limits(res) {
  const d = show(res);
  const policy = res.headers.get('ratelimit-policy');
  assert.equal(policy, `"burst";q=${BURST};w=${WINDOW}`, `RateLimit-Policy of ${d}`);
  const m = /^"burst";r=(\d+);t=(\d+)$/.exec(res.headers.get('ratelimit') ?? '');
  assert.ok(m, `RateLimit must be "burst";r=<remaining>;t=<seconds>: ${res.headers.get('ratelimit')} (${d})`);
  const r = Number(m[1]);
  const t = Number(m[2]);
  assert.ok(r <= BURST - 1, `r counts what is left after this request: ${d}`);
  assert.ok(t >= 1 && t <= WINDOW, `t is at most the window: ${res.headers.get('ratelimit')}`);
  return { r, t };
}

/**
 * What the test knows about a user's bucket: at the start of a refused request it held
 * less than one token; since then it gained at most elapsed × rate and lost one per
 * request that passed. `maxTokens(t)` is that upper bound at time t.
 */
function bucketBound() {
  let emptyAt = null;
  let passed = 0;
  return {
    refusedAt(t) {
      emptyAt = t;
      passed = 0;
    },
    passed() {
      passed++;
    },
    maxTokens: (t) => (emptyAt === null ? Infinity : 1 + (t - emptyAt) * RATE - passed),
  };
}

/** Sends `send()` and returns {res, t0, t1} (the test's clock around it). */
async function timed(send) {
  const t0 = Date.now();
  const res = await send();
  return { res, t0, t1: Date.now() };
}

/**
 * Asks with `send()` until a request passes, each ask 429 (refusals must not use tokens,
 * or this never ends); returns the passing {res, t0, t1}. `bound` follows the bucket.
 */
async function untilPass(send, bound, what) {
  const deadline = Date.now() + 60_000 / PER_MINUTE + 10_000;
  for (;;) {
    const r = await timed(send);
    if (r.res.status !== 429) {
      bound.passed();
      return r;
    }
    expect429(r.res);
    bound.refusedAt(r.t0);
    assert.ok(Date.now() < deadline, `${what}: no request passed within a refill interval while every ask was refused (do refusals use tokens?)`);
    await sleep(100);
  }
}

function expect429(res) {
  expectProblem(res, 429, 'rate_limited');
  const ra = res.headers.get('retry-after');
  assert.match(ra ?? '', /^\d+$/, `Retry-After (seconds) on ${show(res)}`);
  const secs = Number(ra);
  assert.ok(secs >= 1 && secs <= 60 / PER_MINUTE, `one token comes back within ${60 / PER_MINUTE} s here: Retry-After ${ra}`);
  const ops = expectOps(res);
  assert.equal(ops.d1, 0, `a throttled request does no D1 work: ${show(res)}`);
  assert.equal(limits(res).r, 0, show(res));
  return secs;
}

describe('token bucket', () => {
  test('the (burst+1)-th request in a row is 429 rate_limited with Retry-After; after it, requests pass again', async () => {
    const u = await user(srv.url);
    const seen = [];
    for (let i = 0; i < BURST; i++) {
      const res = await u.sync({ cursor: 0, changes: [task(`t${i}`)] });
      ok(res);
      seen.push(limits(res).r);
    }
    assert.deepEqual(seen, [2, 1, 0], 'RateLimit r counts down');
    const bound = bucketBound();
    const refused = await timed(() => u.sync({ cursor: 0, changes: [task('t-refused')] }));
    expect429(refused.res);
    bound.refusedAt(refused.t0);
    expect429(await u.get('/api/sync/check'));
    expect429(await u.get('/api/sync/tasks/changes?since=0'));

    // refusals do not use tokens: asking again and again (each refused), a request passes
    // once one token is back, and it takes that token: none is left
    const again = await untilPass(() => u.get('/api/sync/tasks/changes?since=0'), bound, 'after the burst');
    const body = ok(again.res);
    assert.deepEqual(body.changes.created.map((r) => r.id).sort(), ['t0', 't1', 't2'], 'the throttled push stored nothing');
    assert.ok(limits(again.res).r <= Math.floor(bound.maxTokens(again.t1)), `r ${limits(again.res).r} vs at most ${bound.maxTokens(again.t1)} tokens`);
    assert.equal(limits(again.res).r, 0, 'exactly one token came back');
    const next = await timed(() => u.get('/api/sync/check'));
    if (bound.maxTokens(next.t1) < 1) expect429(next.res);
    else assert.ok([200, 429].includes(next.res.status), show(next.res));
  });

  test('RateLimit-Policy and RateLimit on every authenticated response (200, 304, 400, 409, 429, POST), r decreasing', async () => {
    const u = await user(srv.url);
    const p = await u.sync({ cursor: 0, changes: [task('x')] });
    ok(p);
    const responses = [
      p,
      await u.get('/api/sync/check', { headers: { 'if-none-match': p.body.etag } }),
      await u.get('/api/sync/tasks/changes?since=-5'),
      await u.get('/api/sync/check'),
    ];
    assert.deepEqual(responses.map((r) => r.status), [200, 304, 400, 429], responses.map(show).join('\n'));
    assert.deepEqual(responses.map((r) => limits(r).r), [2, 1, 0, 0]);
    const ts = responses.map((r) => limits(r).t);
    for (let i = 1; i < 3; i++) assert.ok(ts[i] >= ts[i - 1], `t grows as the bucket empties: ${ts}`);

    const v = await user(srv.url);
    await v.sync({ cursor: 0, changes: [task('y')] });
    const conflict = await v.post('/api/sync/tasks', { cursor: 0, data: [] });
    assert.equal(conflict.status, 409, show(conflict));
    limits(conflict);
    const delta = await v.post('/api/sync/tasks/delta', { changes: { created: [task(rid('t'))] } });
    ok(delta);
    assert.equal(limits(delta).r, 0);
  });

  test('another user is unaffected; a second token of the throttled user is throttled too', async () => {
    const id = newUserId();
    const a1 = api(srv.url, await token(id, { claims: { device: 1 } }));
    const a2 = api(srv.url, await token(id, { claims: { device: 2 } }));
    for (let i = 0; i < BURST; i++) ok(await a1.get('/api/sync/check'));
    expect429(await a1.get('/api/sync/check'));
    expect429(await a2.get('/api/sync/check')); // the bucket is the user's, not the token's

    const b = await user(srv.url);
    const res = await b.sync({ cursor: 0, changes: [task('b1')] });
    ok(res);
    assert.equal(limits(res).r, BURST - 1, 'a fresh user starts with a full bucket');
    const pulled = await pullAll(b, 0);
    assert.deepEqual(pulled.updates.map((r) => r.id), ['b1']);
  });

  test('a throttled bucket is persisted to KV when it drops below half the burst, at most once per second', async () => {
    const u = await user(srv.url);
    const kvWrites = [];
    const call = async () => {
      const res = await u.get('/api/sync/tasks/changes?since=0'); // writes nothing else to KV
      kvWrites.push(expectOps(res)['kv-write']);
      return res;
    };
    ok(await call()); // 2 tokens left: not throttled, nothing persisted
    const t0 = Date.now();
    ok(await call()); // 1 left, below half of 3: persisted
    assert.deepEqual(kvWrites, [0, 1], 'the request that drops the bucket below half the burst writes it to KV');

    // a rapid run of throttled requests writes the bucket at most once per second
    ok(await call());
    for (let i = 0; i < 8; i++) assert.equal((await call()).status, 429);
    const elapsed = Date.now() - t0;
    const writes = kvWrites.slice(1).reduce((a, b) => a + b, 0);
    assert.ok(writes <= 1 + Math.floor(elapsed / 1000), `at most one KV write per second: ${writes} writes in ${elapsed} ms: ${kvWrites}`);

    // the still-throttled user's bucket is written again once a second has passed since
    // the last write, and not before: keep asking until a request writes KV
    const lastWrite = t0;
    let persisted = null;
    for (let i = 0; i < 100 && !persisted; i++) {
      await sleep(100);
      const r = await timed(call);
      assert.ok([200, 429].includes(r.res.status), show(r.res));
      if (kvWrites.at(-1) === 1) persisted = r;
      else assert.ok(r.t0 - lastWrite < 60_000, 'still waiting for the next write');
    }
    assert.ok(persisted, `throttled for more than a second: the bucket is persisted again (${kvWrites})`);
    assert.ok(persisted.t1 - lastWrite >= 1000, `not within a second of the previous write (${persisted.t1 - lastWrite} ms)`);
    const next = await timed(call);
    assert.equal(next.res.status, 429, show(next.res));
    if (next.t0 - persisted.t0 < 1000) assert.equal(kvWrites.at(-1), 0, 'but not twice within a second');
  });

  test('users an isolate has not seen cost about one KV read per isolate per minute, not one each', async () => {
    // the shared set of throttled buckets is read when a new user shows up, at most once a
    // minute per isolate: of these first requests of new users (well within a minute), at
    // most one reads KV, and none writes it (nobody is throttled)
    const ops = [];
    for (let i = 0; i < 6; i++) {
      const u = await user(srv.url);
      const res = await u.get('/api/sync/tasks/changes?since=0');
      ok(res);
      ops.push(expectOps(res));
    }
    const reads = ops.map((o) => o['kv-read']);
    assert.ok(reads.reduce((a, b) => a + b, 0) <= 1, `at most one KV read for six new users: ${reads}`);
    assert.deepEqual(ops.map((o) => o['kv-write']), [0, 0, 0, 0, 0, 0]);
  });

  // Last: restarts the server. The new isolate has no buckets in memory; a user it has
  // not seen is restored from KV. The refill is slowed to 1 per minute on restart, so
  // what the user gets right after the restart is decided by the persisted bucket.
  test('the persisted bucket is what a new isolate starts from (restart, refill slowed to 1/min)', async () => {
    const throttled = await user(srv.url);
    for (let i = 0; i < 2; i++) ok(await throttled.get('/api/sync/tasks/changes?since=0'));
    const persisted = await throttled.get('/api/sync/tasks/changes?since=0');
    ok(persisted); // 0 left in memory; KV holds the bucket as of the request before (1 left)
    const fresh = await user(srv.url);
    ok(await fresh.get('/api/sync/check'));

    srv = await srv.restart({ RATE_LIMIT_PER_MINUTE: '1' });
    const t = api(srv.url, throttled.token);
    const first = await t.get('/api/sync/tasks/changes?since=0');
    ok(first);
    assert.equal(expectOps(first)['kv-read'], 1, `the bucket is read from KV: ${show(first)}`);
    assert.match(first.headers.get('ratelimit') ?? '', /^"burst";r=0;/, `restored with one token, not a full bucket: ${show(first)}`);
    const second = await t.get('/api/sync/check');
    expectProblem(second, 429, 'rate_limited');
    assert.ok(Number(second.headers.get('retry-after')) > 1, `at 1 per minute the next token is far: ${show(second)}`);

    // a user whose bucket was never persisted (never throttled) starts full
    const f = await api(srv.url, fresh.token).get('/api/sync/check');
    ok(f);
    assert.match(f.headers.get('ratelimit') ?? '', /^"burst";r=2;/, show(f));
  });
});
