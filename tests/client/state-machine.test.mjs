// Model-based test of the SDK's sync state machine against a scripted HTTP server whose
// answers are adversarial: every request gets, at random (seeded), a real answer from the
// reference implementation or one of 304, 401, 409, 410, 413, 429 / 503 with Retry-After,
// 500, a malformed or truncated body, a timeout, a dropped connection, or an answer lost
// after the server applied the push. Between requests the driver edits, deletes, goes
// offline, advances the virtual clock to the client's next timer or asks for a sync.
// Each request is checked against what the previous answer obliges the client to do;
// at the end, with a well-behaved server, the client must equal the server.
//   EDGESYNC_SEED=<n> node --test tests/client/state-machine.test.mjs   replays one seed
import assert from 'node:assert/strict';
import { test } from 'node:test';
const { createClient, memoryStorage, virtualClock } = await import(process.env.EDGESYNC_SDK ?? '../../client/dist/edgesync.js');
import { Reference, problem } from './helpers/reference.mjs';
import { scriptedServer, seeded } from './helpers/scripted.mjs';

const SEEDS = process.env.EDGESYNC_SEED ? [Number(process.env.EDGESYNC_SEED)] : [1, 2, 3, 4];
const STEPS = Number(process.env.STEPS ?? 220);
const TIMEOUT = 10_000;
const KINDS = [
  ['ok', 30], ['304', 3], ['401', 4], ['409', 2], ['410', 3], ['413', 4], ['429', 5], ['503-degraded', 4],
  ['503-busy', 3], ['500', 3], ['malformed', 3], ['truncated', 3], ['timeout', 3], ['reset', 3], ['lost', 3],
];
const RETRY = new Set(['304', '429', '503-busy', '500', 'malformed', 'truncated', 'timeout', 'reset', 'lost']);

const sig = (c) => `${c.type}:${c.id}:${c.version}:${c.deleted ? 'x' : JSON.stringify(c.title ?? c.body ?? '')}`;

for (const seed0 of SEEDS) {
  test(`state machine over adversarial answers (seed ${seed0})`, async (t) => {
    const R = seeded(seed0);
    t.diagnostic(`seed ${R.seed} (replay: EDGESYNC_SEED=${R.seed})`);
    const ref = new Reference();
    const clock = virtualClock(Date.UTC(2026, 0, 5, 9));
    let online = true;
    let tokens = 0;
    let wellBehaved = false;
    let manual = false; // a sync() call is outstanding: it may go before a backoff ends
    let onlineTrigger = false;
    let reloaded = false;
    let pausedUntil = 0; // reads paused (a 503 degraded) until
    const editedSince = new Set(); // records edited since the last request // a new client (on the same storage) starts over: backoff and a half-done download
    const log = []; // {kind, at, body, token, status(after), retryAfter}
    const problems = [];
    const fail = (msg) => problems.push(`request ${log.length}: ${msg}`);

    const srv = await scriptedServer((req) => {
      const at = clock.now();
      const prev = log.at(-1);
      const body = req.body;
      const token = req.headers.authorization;
      if (!online) fail('a request while offline');
      const isGet = req.method === 'GET';
      const changes = body?.changes ?? [];
      const sigs = changes.map(sig);
      if (prev && (isGet || prev.isGet)) {
        // a full download (GET per type) follows a 410 / 409 / refused change, and goes on
        // until done; its failures are retried like any other
        if (!isGet && (prev.kind === '410' || prev.kind === '409') && !(changes.length && at < pausedUntil)) fail(`${prev.kind}: no full download followed`);
      } else if (prev) {
        const excused = manual || onlineTrigger || reloaded;
        const prevSigs = (prev.body?.changes ?? []).map(sig);
        if (RETRY.has(prev.kind)) {
          if (!excused && prev.retryAfter && at < prev.at + prev.retryAfter * 1000) fail(`${prev.kind}: retried ${at - prev.at} ms later, before Retry-After ${prev.retryAfter} s`);
          if (!excused && !prev.retryAfter && at === prev.at) fail(`${prev.kind}: retried at once, without backoff`);
          for (const s of prevSigs) if (!sigs.includes(s) && changes.length < prevSigs.length) fail(`${prev.kind}: unacknowledged change ${s} not resent`);
          if (body.cursor !== prev.body.cursor && prev.kind !== 'lost' && !(reloaded && body.cursor === 0)) fail(`${prev.kind}: cursor moved ${prev.body.cursor} → ${body.cursor}`);
        }
        if (prev.kind === '401') {
          if (token === prev.token) fail('401: the same token was sent again');
        }
        // while reads are paused the download waits; pushes still go (degraded mode takes them)
        if ((prev.kind === '410' || prev.kind === '409') && !(changes.length && at < pausedUntil)) fail(`${prev.kind}: no full download followed`);
        if (prev.kind === '413') {
          if (prevSigs.length > 1) {
            if (changes.length > Math.floor(prevSigs.length / 2)) fail(`413: ${changes.length} changes after ${prevSigs.length}`);
          } else if (prevSigs.length === 1) {
            if (sigs.includes(prevSigs[0])) fail('413 of a single change: sent again');
            if (!(at < pausedUntil)) fail('413 of a single change: no full download followed');
          }
        }
        if (prev.kind === '503-degraded' && !excused) {
          const until = prev.at + prev.retryAfter * 1000;
          if (at < until && (prev.body.changes.length > 0 || changes.length === 0)) fail(`503 degraded: a ${changes.length ? 'push' : 'pull'} ${until - at} ms before Retry-After`);
        }
        if (prev.kind === 'ok' && prev.response.status === 200) {
          const r = prev.response.body;
          if (body.cursor !== r.cursor && !(body.cursor === 0)) fail(`ok: cursor ${body.cursor}, the reply said ${r.cursor}`);
          for (const a of r.applied) {
            const again = changes.find((c) => c.type === a.type && c.id === a.id && c.version === a.version);
            if (again && !editedSince.has(`${a.type}:${a.id}`)) fail(`ok: acknowledged ${a.type}:${a.id} v${a.version} sent again`);
          }
        }
      }
      manual = false;
      onlineTrigger = false;
      reloaded = false;
      editedSince.clear();
      let kind = wellBehaved ? 'ok' : weighted(R);
      const entry = { kind, at, body, token, isGet };
      log.push(entry);
      const ra = 1 + R.int(120);
      let answer;
      switch (kind) {
        case 'ok': answer = ref.answer(req); break;
        case '304': answer = { status: 304 }; break;
        case '401': answer = problem(401, 'unauthorized'); break;
        case '409': answer = problem(409, 'sync_conflict'); break;
        case '410': answer = problem(410, 'reset_required'); break;
        case '413': answer = problem(413, 'payload_too_large'); break;
        case '429': entry.retryAfter = ra; answer = { ...problem(429, 'rate_limited'), headers: { 'retry-after': String(ra) } }; break;
        case '503-degraded': entry.retryAfter = ra * 60; pausedUntil = Math.max(pausedUntil, at + ra * 60_000); answer = { ...problem(503, 'degraded'), headers: { 'retry-after': String(ra * 60) } }; break;
        case '503-busy': entry.retryAfter = 1; answer = { ...problem(503, 'busy'), headers: { 'retry-after': '1' } }; break;
        case '500': answer = problem(500, 'internal'); break;
        case 'malformed': answer = { status: 200, body: R.pick(['{"applied": [', 'null', '<html>oops</html>', '[]']) }; break;
        case 'truncated': answer = { status: 200, body: { applied: [], conflicts: [], updates: [{ id: 'x' }], cursor: 'soon' } }; break;
        case 'timeout': setImmediate(() => clock.advance(TIMEOUT)); answer = 'hang'; break;
        case 'reset': answer = 'reset'; break;
        case 'lost': ref.answer(req); answer = 'reset'; break;
      }
      entry.response = answer;
      if (process.env.TRACE) console.error('REQ', log.length, kind, JSON.stringify(body), '→', JSON.stringify(answer?.body ?? answer).slice(0, 400));
      return answer;
    });

    const storage = memoryStorage();
    const rejected = [];
    const conflicts = [];
    const make = () => {
      const c = createClient({
        url: srv.url,
        getToken: () => `tok-${++tokens}`,
        storage,
        clock,
        random: R.next,
        online: () => online,
        schedule: { pageLimit: 4, maxChanges: 6 },
      });
      c.on('reject', (e) => rejected.push(e));
      c.on('conflict', (e) => conflicts.push(e));
      return c;
    };
    let client = make();
    const settle = async () => {
      for (let i = 0; i < 3; i++) {
        await client.idle();
        await new Promise((r) => setImmediate(r));
      }
    };
    await settle();
    // Time moves one timer at a time, each followed by the requests it caused: a request
    // never sees the clock jump past its own timeout (unless the script says 'timeout').
    const advance = async (ms) => {
      const end = clock.now() + ms;
      for (let next = clock.next(); next != null && next <= end; next = clock.next()) {
        clock.advanceTo(next);
        await settle();
      }
      clock.advanceTo(end);
    };

    const ids = ['a', 'b', 'c', 'd', 'e'];
    let n = 0;
    for (let step = 0; step < STEPS; step++) {
      const roll = R.next();
      if (process.env.TRACE) console.error('step', step, roll.toFixed(2), log.length, log.at(-1)?.kind, JSON.stringify(client.status));
      if (roll < 0.35) {
        const type = R.pick(['tasks', 'notes']);
        const id = R.pick(ids);
        editedSince.add(`${type}:${id}`);
        if (R.next() < 0.2) await client.collection(type).delete(id);
        else await client.collection(type).put(type === 'tasks' ? { id, title: `t${++n}` } : { id, body: `n${++n}` });
      } else if (roll < 0.75) {
        const next = clock.next();
        if (next != null) clock.advanceTo(next);
      } else if (roll < 0.82) {
        manual = true;
        void client.sync();
      } else if (roll < 0.88) {
        online = !online;
        if (online) {
          onlineTrigger = true;
          client.trigger(true);
        }
      } else if (roll < 0.92) {
        // reload: a new client on the same storage (what a crash leaves behind)
        client.close();
        await settle();
        reloaded = true;
        client = make();
      } else {
        await advance(R.int(600_000));
      }
      await settle();
      // invariants after every step
      const st = client.status;
      const outbox = [...storage.data.keys()].filter((k) => k.startsWith('o:')).length;
      if (st.pending !== outbox) fail(`status.pending ${st.pending} but ${outbox} persisted outbox entries`);
      if (!online && st.state !== 'offline' && st.state !== 'error' && log.at(-1)?.at === clock.now()) {
        // going offline mid-sync is fine; a sync started offline must say so
      }
      if (st.state === 'paused' && !(st.resumeAt > clock.now())) fail(`paused without a future resumeAt: ${JSON.stringify(st)}`);
    }
    assert.deepEqual(problems, [], `seed ${R.seed}:\n${problems.slice(0, 15).join('\n')}`);

    // The server behaves from now on: the client must converge to it and empty its outbox.
    wellBehaved = true;
    online = true;
    for (let i = 0; i < 4; i++) {
      await advance(25 * 3600_000); // past any pause (Retry-After) or backoff
      manual = true;
      await client.sync();
      await settle();
    }
    const kinds = log.reduce((m, e) => ((m[e.kind] = (m[e.kind] ?? 0) + 1), m), {});
    t.diagnostic(`${log.length} requests: ${JSON.stringify(kinds)}; ${conflicts.length} conflicts, ${rejected.length} rejected`);
    assert.equal(client.status.pending, 0, `outbox empty at the end: ${JSON.stringify(client.status)}`);
    assert.equal(client.status.state, 'idle', JSON.stringify(client.status));
    const live = ref.live();
    for (const type of ['tasks', 'notes']) {
      const mine = Object.fromEntries(client.collection(type).list().map((r) => [r.id, r]));
      const theirs = live[type] ?? {};
      assert.deepEqual(Object.keys(mine).sort(), Object.keys(theirs).sort(), `seed ${R.seed}: ${type} ids`);
      for (const id of Object.keys(theirs)) {
        assert.equal(mine[id].version, theirs[id].version, `seed ${R.seed}: ${type}/${id} version`);
        assert.equal(mine[id].title ?? mine[id].body, theirs[id].title ?? theirs[id].body, `seed ${R.seed}: ${type}/${id} content`);
      }
    }
    // every kind of answer was exercised by this seed's run
    for (const [k] of KINDS) assert.ok(kinds[k] > 0 || log.length < 60, `seed ${R.seed}: no ${k} answer in ${log.length} requests`);
    client.close();
    await srv.close();
  });
}

function weighted(R) {
  const total = KINDS.reduce((s, [, w]) => s + w, 0);
  let x = R.next() * total;
  for (const [k, w] of KINDS) if ((x -= w) < 0) return k;
  return 'ok';
}
