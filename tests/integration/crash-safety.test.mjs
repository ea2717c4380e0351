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

// The worker writes the KV state token ahead of each D1 commit (awaited, before the batch
// is sent), and the token only ever answers "nothing changed" for a tag or cursor the
// client already holds. So a kill after a commit leaves KV equal to D1, never behind it;
// a kill between the write-ahead and the commit leaves a phantom state that no client
// holds, which costs a D1 read and never hides a change. These tests are the regression
// tests of both windows (an earlier design wrote the token after answering, and a kill
// in between left KV behind D1).

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

  // Killed on the first byte of the answer, i.e. after the D1 commit: the token was
  // written before the commit, so the persisted KV (read with wrangler kv bulk get, no
  // worker running) holds the new state, and the restarted worker's answers agree with D1.
  test('killed right after a push commits: the state token (check, 304s) is not behind D1 after the restart', async (t) => {
    const userId = newUserId('kv');
    const tok = await token(userId);
    const ATTEMPTS = 3;
    const problems = [];
    const held = [];
    for (let i = 0; i < ATTEMPTS; i++) {
      let c = api(w.url, tok);
      const first = ok(await c.sync({ cursor: 0, changes: [{ type: 'tasks', id: `a${i}`, title: 'first' }] }));
      // the first push's state token is in KV (written ahead): a conditional check with its
      // tag is answered from it (d1=0)
      const r0 = await c.get('/api/sync/check', { headers: { 'if-none-match': first.etag } });
      assert.equal(r0.status, 304, show(r0));
      assert.equal(parseOps(r0.headers.get('x-sync-ops')).d1, 0, `the token is in KV as soon as the push is answered: ${show(r0)}`);
      const head = await pushThenKill(w, tok, { cursor: first.cursor, changes: [{ type: 'tasks', id: `b${i}`, title: 'second' }] });
      assert.match(head, /^HTTP\/1\.1 200/, `the push was answered 200 before the kill: ${JSON.stringify(head)}`);
      const inKv = (await kvBulkGet(w.persistDir, [`st:${userId}`]))[`st:${userId}`];
      const kvSeq = Number(/^(-?\d+):/.exec(inKv ?? '')?.[1]);
      await w.restart();
      c = api(w.url, tok);
      const chk = await c.get('/api/sync/check');
      const cond = await c.get('/api/sync/check', { headers: { 'if-none-match': first.etag } });
      const dl = await c.get('/api/sync/tasks', { headers: { 'if-none-match': first.etag } });
      const idle = await c.sync({ cursor: first.cursor });
      const d1res = await c.get('/api/sync/tasks/changes?since=0');
      const d1 = ok(d1res);
      assert.ok(d1.changes.created.some((r) => r.id === `b${i}`), 'the push answered 200 is in D1');
      held.push(`${inKv} (D1 ${d1.cursor})`);
      assert.equal(kvSeq, d1.cursor, `KV held ${inKv}: the token written ahead of the commit is D1's state (${d1.cursor}), not the one before (${first.cursor})`);
      if (ok(chk).cursor !== d1.cursor || cond.status !== 200 || dl.status !== 200 || !ok(idle).updates.some((r) => r.id === `b${i}`)) {
        problems.push(`attempt ${i}: POST /api/sync {cursor: ${first.cursor}, changes: [tasks/b${i}]} → 200, worker killed (KV held ${inKv}); after restart ` +
          `GET /api/sync/check → ${show(chk)}; GET /api/sync/check If-None-Match: ${first.etag} → ${cond.status} (${cond.headers.get('x-sync-ops')}); ` +
          `GET /api/sync/tasks If-None-Match: ${first.etag} → ${dl.status} (${dl.headers.get('x-sync-ops')}); ` +
          `POST /api/sync {cursor: ${first.cursor}} → ${show(idle)}; GET /api/sync/tasks/changes?since=0 → cursor ${d1.cursor}, ETag ${d1res.headers.get('etag')}`);
      }
    }
    t.diagnostic(`KV after each kill after a commit: ${held.join(', ')}`);
    assert.deepEqual(problems, [], 'the KV state token went behind D1 after a crash');
  });

  // Killed between the write-ahead and the commit. Under DEV_MODE the header
  // X-Edgesync-Stall-Ahead holds the commit back after the token is written; the test sees
  // the write-ahead land through the API (a conditional check with the current tag stops
  // being answered from KV while D1 still says 304), then kills the worker: the window is
  // provably hit. KV then holds a phantom state that no client holds.
  test('killed between the write-ahead and the commit: the phantom token costs a D1 read, never a missed change', async (t) => {
    const userId = newUserId('phantom');
    const tok = await token(userId);
    let c = api(w.url, tok);
    const p1 = ok(await c.sync({ cursor: 0, changes: [{ type: 'tasks', id: 'a', title: 'first' }] }));
    const p2 = ok(await c.sync({ cursor: p1.cursor, changes: [{ type: 'tasks', id: 'b', title: 'second' }] }));
    const inm = (tag) => ({ headers: { 'if-none-match': tag } });
    const fast = await c.get('/api/sync/check', inm(p2.etag));
    assert.deepEqual([fast.status, parseOps(fast.headers.get('x-sync-ops')).d1], [304, 0], show(fast));

    const stalled = fetch(`${w.url}/api/sync`, {
      method: 'POST',
      headers: { authorization: `Bearer ${tok}`, 'content-type': 'application/json', 'x-edgesync-stall-ahead': '60000' },
      body: JSON.stringify({ cursor: p2.cursor, changes: [{ type: 'tasks', id: 'c', title: 'never committed' }] }),
    }).then((r) => r.status, (e) => String(e.cause?.code || e.message));
    const inWindow = await waitFor(async () => {
      const r = await c.get('/api/sync/check', inm(p2.etag));
      assert.equal(r.status, 304, `D1 has not committed the stalled push: ${show(r)}`);
      return parseOps(r.headers.get('x-sync-ops')).d1 === 1 ? r : false;
    }, 'the write-ahead of the stalled push', { intervalMs: 50 });
    assert.equal(parseOps(inWindow.headers.get('x-sync-ops'))['kv-read'], 1, show(inWindow));
    await w.kill();
    t.diagnostic(`the stalled push ended with: ${await stalled}`);
    const inKv = (await kvBulkGet(w.persistDir, [`st:${userId}`]))[`st:${userId}`];
    const kvSeq = Number(/^(-?\d+):/.exec(inKv ?? '')?.[1]);
    assert.ok(kvSeq > p2.cursor, `KV holds the phantom state written ahead (${inKv}), past D1's ${p2.cursor}`);

    await w.restart();
    c = api(w.url, tok);
    const chk = await c.get('/api/sync/check');
    assert.equal(ok(chk).cursor, p2.cursor, `D1's state, not the phantom: ${show(chk)}`);
    assert.equal(chk.headers.get('etag'), p2.etag);
    const cond = await c.get('/api/sync/check', inm(p2.etag));
    assert.equal(cond.status, 304, `nothing changed, and D1 says so: ${show(cond)}`);
    assert.deepEqual([parseOps(cond.headers.get('x-sync-ops')).d1, parseOps(cond.headers.get('x-sync-ops'))['kv-read']], [1, 1],
      `the phantom matches no client's tag: one KV read, then D1: ${show(cond)}`);
    const idle = await c.sync({ cursor: p2.cursor });
    assert.deepEqual([ok(idle).cursor, idle.body.updates.length, idle.body.etag], [p2.cursor, 0, p2.etag], show(idle));
    assert.ok(parseOps(idle.headers.get('x-sync-ops')).d1 >= 1, show(idle));
    const behind = ok(await c.sync({ cursor: p1.cursor }));
    assert.deepEqual(behind.updates.map((r) => r.id), ['b'], 'a pull from an older cursor gets exactly what was committed');
    const all = ok(await c.get('/api/sync/tasks/changes?since=0'));
    assert.deepEqual(all.changes.created.map((r) => r.id).sort(), ['a', 'b'], 'the stalled push stored nothing');

    // the client retries: the push commits and the token is in step again
    const retry = ok(await c.sync({ cursor: p2.cursor, changes: [{ type: 'tasks', id: 'c', title: 'never committed' }] }));
    assert.ok(retry.cursor > p2.cursor, JSON.stringify(retry));
    const again = await c.get('/api/sync/check', inm(retry.etag));
    assert.deepEqual([again.status, parseOps(again.headers.get('x-sync-ops')).d1], [304, 0], show(again));
    const log = w.logs();
    assert.ok(!/panicked|RuntimeError: unreachable/.test(log), `the worker crashed:\n${log.slice(-3000)}`);
  });
});
