// Crash safety: a burst of multi-record pushes in parallel, the worker (wrangler and
// workerd, the whole process group) killed with SIGKILL in the middle of it, then started
// again on the same persisted local D1/KV. Every push is fully present or fully absent
// (records carry their push's id), every acknowledged push is fully present with the revs
// it was told, cursors never go backwards, and retrying the unacknowledged pushes
// completes them without minting new revisions for the ones that had committed.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { api, newUserId, parseOps, show, token } from '../helpers/client.mjs';
import { startRestartableWorker } from '../helpers/restartable.mjs';
import { ok, pullAll, waitFor } from '../helpers/sync.mjs';
import { ROOT, baseEnv, run, testConfig } from '../helpers/server.mjs';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

/**
 * POST /api/sync over a raw socket; SIGKILL to the worker's process group (synchronously,
 * in the socket's first 'data' event) as soon as the answer starts. Resolves to the
 * answer's first bytes once the worker is gone.
 */
function pushThenKill(worker, tok, body) {
  return new Promise((resolve, reject) => {
    const payload = Buffer.from(JSON.stringify(body));
    const sock = net.connect(worker.port, '127.0.0.1');
    let killed = null;
    sock.on('connect', () => {
      sock.write(`POST /api/sync HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${tok}\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${payload.length}\r\nConnection: close\r\n\r\n`);
      sock.write(payload);
    });
    sock.once('data', (d) => {
      killed = worker.kill(); // sends SIGKILL before its first await
      sock.destroy();
      killed.then(() => resolve(d.toString('latin1', 0, 200)), reject);
    });
    sock.on('error', (e) => {
      if (!killed) reject(e);
    });
  });
}

/** Raw values of KV keys in a persisted local state, read with wrangler (no worker running): {key: value|null}. */
async function kvBulkGet(persistDir, keys) {
  const file = path.join(persistDir, 'kv-keys.json');
  fs.writeFileSync(file, JSON.stringify(keys));
  const out = await run(path.join(ROOT, 'node_modules', '.bin', 'wrangler'),
    ['kv', 'bulk', 'get', file, '--config', testConfig(), '--binding', 'CACHE', '--local', '--persist-to', persistDir], { cwd: ROOT, env: baseEnv() });
  const json = JSON.parse(out.slice(out.indexOf('{'), out.lastIndexOf('}') + 1));
  return Object.fromEntries(keys.map((k) => [k, json[k]?.value ?? null]));
}

const PUSHES = 50;
const PER_PUSH = 20;
const ROUNDS = 2;
const KILL_AFTER_ACKS = 6; // of PUSHES: kill while most are still in flight

let w;
before(async () => {
  w = await startRestartableWorker();
});
after(async () => {
  await w?.stop();
});

const recordsOf = (round, i) =>
  Array.from({ length: PER_PUSH }, (_, j) => ({ type: 'tasks', id: `r${round}-p${i}-n${j}`, title: `round ${round} push ${i} record ${j}`, sort_order: j }));
const pushOf = (id) => /^(r\d+-p\d+)-n\d+$/.exec(id)?.[1];

/** Every live task of the user, by full download paged by id. */
async function downloadAll(client) {
  const out = [];
  let afterId = null;
  for (let page = 0; page < 100; page++) {
    const q = `limit=1000${afterId === null ? '' : `&after=${encodeURIComponent(afterId)}`}`;
    const b = ok(await client.get(`/api/sync/tasks?${q}`));
    out.push(...b.data);
    if (!b.has_more) return out;
    afterId = b.data.at(-1).id;
  }
  throw new Error('download did not end');
}

// The worker writes the KV state token through in ctx.waitUntil, after answering: a kill
// between the D1 commit and that write leaves KV behind D1. A restarted worker must not
// serve that token (it trusts a user's KV token only after checking it against D1 once);
// these tests are its regression tests.

/** What GET /api/sync/check said right after each restart (asserted in its own test). */
const afterRestart = [];

describe('crash safety', () => {
  test(`SIGKILL during ${PUSHES} parallel pushes of ${PER_PUSH} records: all-or-nothing, no acknowledged loss, D1 cursors monotonic`, async (t) => {
    const userId = newUserId('crash');
    const tok = await token(userId);
    let highestAckedCursor = 0;
    const acked = new Map(); // push id -> applied[]

    for (let round = 0; round < ROUNDS; round++) {
      const client = api(w.url, tok);
      const pre = ok(await client.get('/api/sync/check'));
      const burstStart = Date.now();
      let acks = 0;
      let killed = null;
      const outcomes = new Array(PUSHES).fill(null);
      const fire = async (i) => {
        await new Promise((r) => setTimeout(r, i * 5)); // spread the burst a little
        if (killed) {
          outcomes[i] = { notSent: true };
          return;
        }
        try {
          const res = await client.sync({ cursor: pre.cursor, changes: recordsOf(round, i) });
          outcomes[i] = res;
          if (res.status === 200 && ++acks === KILL_AFTER_ACKS && !killed) killed = w.kill();
        } catch (e) {
          outcomes[i] = { error: String(e.cause?.code || e.message) };
        }
      };
      await Promise.all(Array.from({ length: PUSHES }, (_, i) => fire(i)));
      if (!killed) killed = w.kill(); // everything answered before the kill: restart anyway
      await killed;
      const killMs = Date.now() - burstStart;

      const count = { acked: 0, busy: 0, cut: 0, notSent: 0 };
      const busy = new Set();
      let roundAckedCursor = 0;
      outcomes.forEach((res, i) => {
        const pid = `r${round}-p${i}`;
        if (res.notSent) count.notSent++;
        else if (res.error) count.cut++;
        else if (res.status === 200) {
          count.acked++;
          assert.deepEqual(res.body.conflicts, [], show(res));
          assert.equal(res.body.applied.length, PER_PUSH, show(res));
          acked.set(pid, res.body.applied);
          const ownTop = Math.max(...res.body.applied.map((a) => a.rev));
          assert.ok(res.body.cursor >= ownTop || res.body.has_more, `push cursor below its own revs: ${show(res)}`);
          roundAckedCursor = Math.max(roundAckedCursor, res.body.cursor, ownTop);
        } else {
          // refused before the kill: a retryable 503 busy, nothing written
          assert.equal(res.status, 503, `push ${pid}: ${show(res)}`);
          assert.equal(res.body?.error, 'busy', show(res));
          busy.add(pid);
          count.busy++;
        }
      });
      highestAckedCursor = Math.max(highestAckedCursor, roundAckedCursor);
      t.diagnostic(`round ${round}: killed after ${killMs} ms: ${count.acked} acknowledged, ${count.busy} refused busy, ${count.cut} cut off in flight, ${count.notSent} not sent`);
      assert.ok(count.acked >= KILL_AFTER_ACKS && count.cut >= 1, `the kill should land mid-burst with pushes in flight: ${JSON.stringify(count)}`);

      const restartStart = Date.now();
      await w.restart();
      const after = api(w.url, tok);
      t.diagnostic(`round ${round}: restarted in ${Date.now() - restartStart} ms`);
      // first request after the restart, before anything writes again
      const chk = await after.get('/api/sync/check');
      const chkOld = await after.get('/api/sync/check', { headers: { 'if-none-match': pre.etag } });

      // All or nothing, per push; acknowledged pushes fully present with their revs.
      const records = await downloadAll(after);
      const groups = new Map();
      for (const r of records) {
        const pid = pushOf(r.id);
        assert.ok(pid, `unexpected record ${r.id}`);
        if (!groups.has(pid)) groups.set(pid, []);
        groups.get(pid).push(r);
      }
      let present = 0;
      for (let i = 0; i < PUSHES; i++) {
        const pid = `r${round}-p${i}`;
        const got = groups.get(pid) ?? [];
        assert.ok(got.length === 0 || got.length === PER_PUSH, `push ${pid} is partly stored: ${got.length} of ${PER_PUSH} records`);
        if (got.length) {
          present++;
          // one push = one transaction: one contiguous run of revs
          const revs = got.map((r) => r.rev).sort((a, b) => a - b);
          assert.equal(revs.at(-1) - revs[0], PER_PUSH - 1, `push ${pid}'s revs are not one contiguous batch: ${revs}`);
        }
        if (busy.has(pid)) assert.equal(got.length, 0, `push ${pid} was refused with 503 busy, yet stored`);
      }
      for (const [pid, applied] of acked) {
        const got = groups.get(pid) ?? [];
        assert.equal(got.length, PER_PUSH, `acknowledged push ${pid} lost records after the crash`);
        const revById = new Map(got.map((r) => [r.id, r.rev]));
        for (const a of applied) assert.equal(revById.get(a.id), a.rev, `${a.id}: stored rev differs from the acknowledged one`);
      }
      t.diagnostic(`round ${round}: ${present} of ${PUSHES} pushes present after restart (${count.acked} acknowledged)`);

      // D1-backed cursors never go backwards: the state covers every acknowledged push.
      const maxStoredRev = Math.max(...records.map((r) => r.rev));
      const changes = ok(await after.get(`/api/sync/tasks/changes?since=${pre.cursor}&limit=1`));
      assert.ok(changes.cursor > pre.cursor, `changes cursor ${changes.cursor} vs pre-burst ${pre.cursor}`);
      const pulled = await pullAll(after, 0, { limit: 1000 });
      assert.deepEqual(pulled.updates.map((r) => `${r.id}@${r.rev}`).sort(), records.map((r) => `${r.id}@${r.rev}`).sort(), 'pull from 0 vs full download');
      assert.ok(pulled.cursor >= highestAckedCursor, `pull cursor ${pulled.cursor} < highest acknowledged cursor ${highestAckedCursor}`);
      assert.ok(pulled.cursor >= maxStoredRev, `pull cursor ${pulled.cursor} < stored rev ${maxStoredRev}`);
      afterRestart.push({ round, check: chk, checkOld: chkOld, preEtag: pre.etag, highestAckedCursor, d1Cursor: pulled.cursor });

      // The client retries what it was not told about: those pushes complete; the ones
      // that had committed are replays (same revs, no new revisions).
      const base = pulled.cursor;
      let replayed = 0;
      for (let i = 0; i < PUSHES; i++) {
        const pid = `r${round}-p${i}`;
        if (acked.has(pid)) continue;
        const wasThere = (groups.get(pid) ?? []).length === PER_PUSH;
        const res = ok(await after.sync({ cursor: base, changes: recordsOf(round, i), limit: 1 }));
        assert.deepEqual(res.conflicts, [], JSON.stringify(res).slice(0, 1000));
        assert.equal(res.applied.length, PER_PUSH);
        if (wasThere) {
          replayed++;
          const revById = new Map(groups.get(pid).map((r) => [r.id, r.rev]));
          for (const a of res.applied) assert.equal(a.rev, revById.get(a.id), `${a.id}: a retried push that had committed must replay`);
          assert.ok(res.applied.every((a) => a.version === 1));
        } else {
          for (const a of res.applied) assert.ok(a.rev > base, `${a.id}: new rev ${a.rev} not above the cursor ${base} after restart`);
        }
        acked.set(pid, res.applied);
        highestAckedCursor = Math.max(highestAckedCursor, ...res.applied.map((a) => a.rev));
      }
      const all = await downloadAll(after);
      assert.equal(all.filter((r) => r.id.startsWith(`r${round}-`)).length, PUSHES * PER_PUSH, 'after retries every push is complete');
      t.diagnostic(`round ${round}: ${replayed} retried pushes had committed before the kill and replayed`);
      const end = ok(await after.get('/api/sync/check'));
      assert.ok(end.cursor >= highestAckedCursor, `check after the retries: ${end.cursor} < ${highestAckedCursor}`);
    }
    const log = w.logs();
    assert.ok(!/panicked|RuntimeError: unreachable/.test(log), `the worker crashed:\n${log.slice(-3000)}`);
  });

  test('GET /api/sync/check right after a restart never goes behind an acknowledged push', () => {
    assert.equal(afterRestart.length, ROUNDS, 'the crash test ran');
    for (const o of afterRestart) {
      const chk = ok(o.check);
      assert.ok(chk.cursor >= o.highestAckedCursor,
        `round ${o.round}: check cursor ${chk.cursor} < highest acknowledged cursor ${o.highestAckedCursor} (D1 has ${o.d1Cursor}): ${show(o.check)}`);
      assert.equal(o.checkOld.status, 200,
        `round ${o.round}: If-None-Match with the pre-burst ETag ${o.preEtag} must not be 304 after acknowledged pushes: ${show(o.checkOld)}`);
    }
  });

  // This test must prove that it hit the window it is about: the push has committed in
  // D1 (the worker answers after its batch) but the deferred KV write-through (started
  // with the answer) has not landed. The push goes over a raw socket and the worker's
  // process group gets SIGKILL on the first byte of the answer; then the KV entry is
  // read straight from the persisted local state (wrangler kv bulk get, no worker
  // running). An attempt "hit" when KV still held the state before the push. The window
  // is a few milliseconds, so attempts repeat (bounded) until one hits; in every attempt,
  // hit or not, the restarted worker's answers must agree with D1.
  test('killed right after a push commits: the state token (check, 304s) is not behind D1 after the restart', async (t) => {
    const userId = newUserId('kv');
    const tok = await token(userId);
    const MAX_ATTEMPTS = 24;
    const problems = [];
    const outcomes = [];
    let hits = 0;
    for (let i = 0; i < MAX_ATTEMPTS && hits === 0; i++) {
      let c = api(w.url, tok);
      const first = ok(await c.sync({ cursor: 0, changes: [{ type: 'tasks', id: `a${i}`, title: 'first' }] }));
      // the first push's state token is in KV once a check is answered from it (d1=0)
      const before = await waitFor(async () => {
        const r = await c.get('/api/sync/check');
        const b = ok(r);
        return parseOps(r.headers.get('x-sync-ops')).d1 === 0 && b.cursor === first.cursor ? b : false;
      }, 'the first push\'s state token in KV');
      const head = await pushThenKill(w, tok, { cursor: before.cursor, changes: [{ type: 'tasks', id: `b${i}`, title: 'second' }] });
      assert.match(head, /^HTTP\/1\.1 200/, `the push was answered 200 before the kill: ${JSON.stringify(head)}`);
      const inKv = (await kvBulkGet(w.persistDir, [`st:${userId}`]))[`st:${userId}`];
      const kvSeq = Number(/^(-?\d+):/.exec(inKv ?? '')?.[1]);
      await w.restart();
      c = api(w.url, tok);
      const chk = await c.get('/api/sync/check');
      const cond = await c.get('/api/sync/check', { headers: { 'if-none-match': before.etag } });
      const dl = await c.get('/api/sync/tasks', { headers: { 'if-none-match': before.etag } });
      const d1res = await c.get('/api/sync/tasks/changes?since=0');
      const d1 = ok(d1res);
      assert.ok(d1.changes.created.some((r) => r.id === `b${i}`), 'the push answered 200 is in D1');
      assert.ok(kvSeq === before.cursor || kvSeq === d1.cursor, `KV held ${inKv}: the state before (${before.cursor}) or after (${d1.cursor}) the push`);
      const hit = kvSeq === before.cursor;
      if (hit) hits++;
      outcomes.push(hit ? 'hit' : 'miss');
      if (ok(chk).cursor !== d1.cursor || cond.status !== 200 || dl.status !== 200) {
        problems.push(`attempt ${i}: POST /api/sync {cursor: ${before.cursor}, changes: [tasks/b${i}]} → 200, worker killed (KV held ${inKv}); after restart ` +
          `GET /api/sync/check → ${show(chk)}; GET /api/sync/check If-None-Match: ${before.etag} → ${cond.status} (${cond.headers.get('x-sync-ops')}); ` +
          `GET /api/sync/tasks If-None-Match: ${before.etag} → ${dl.status} (${dl.headers.get('x-sync-ops')}); ` +
          `GET /api/sync/tasks/changes?since=0 → cursor ${d1.cursor}, ETag ${d1res.headers.get('etag')}`);
      }
    }
    t.diagnostic(`kills after a commit: ${outcomes.join(' ')} (hit = KV still behind D1 at the kill); ${problems.length} restarts served a state token behind D1`);
    assert.deepEqual(problems, [], 'the KV state token went behind D1 after a crash');
    assert.ok(hits >= 1, `no kill of ${outcomes.length} landed between the D1 commit and the KV write-through: the test proved nothing`);
  });
});
