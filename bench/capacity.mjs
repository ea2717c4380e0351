// Capacity model: replays one day of a user population through the real worker (local
// workerd, D1, KV) at reduced scale, counts every resource from X-Sync-Ops and the request
// count, and extrapolates to the Workers Free plan's daily limits. Writes
// bench/results/capacity.json.
//
//   node bench/capacity.mjs                      the brief's usage model, 200 users
//   node bench/capacity.mjs --help               every parameter with its default
//   node bench/capacity.mjs --from-results --isolates 300   re-run only the model
//
// Usage model (defaults from the brief): 60% of users are active and sync 4 times a day per
// device, the others twice; 2 devices per user; an active user creates 7 tasks a day in 3
// editing sessions, each session's changes debounced into one push from the device it
// happened on. A sync is a conditional check (GET /api/sync/check, If-None-Match), then a
// POST /api/sync (push + pull) when the device has local changes or the check says
// something changed.
//
// Two regimes, two replays:
//  - "kv": the worker as configured, with the KV state token. Its KV entries live
//    STATE_CACHE_TTL (300 s), and whether a check finds one depends on time, so this replay
//    runs in real time with each user's day compressed: gaps shorter than the TTL are scaled
//    by 60/300 against a worker with STATE_CACHE_TTL=60 (KV's minimum), longer ones become
//    63 s. An entry is then alive in the replay exactly when it would be in the day. Each
//    check's KV outcome (hit = no D1 statement) is compared with the simulated day's: the
//    fidelity line. About 11 minutes, mostly waiting.
//  - "d1": the same day against a worker with QUOTA_KV_WRITES=0, which never trusts KV:
//    how the worker runs once its KV write guard (90% of 1,000 writes) has tripped. Fast.
import fs from 'node:fs';

import { startWorker, TEST_ADMIN_TOKEN } from '../tests/helpers/server.mjs';
import { token } from '../tests/helpers/client.mjs';
import { addOps, closeAgents, expect, flags, log, readResult, rng, send, sleep, tasks, writeResult, zeroOps } from './lib/common.mjs';
import { BRIEF, capacity, perUser, series } from './lib/model.mjs';

const opt = flags(
  {
    users: 200,
    activeShare: 0.6,
    activeSyncs: 4,
    inactiveSyncs: 2,
    devices: 2,
    creates: 7,
    sessions: 3,
    debounceS: 3,
    checkFirst: true,
    pushOnChange: true,
    jitter: 0.1,
    initialRecords: 100,
    stateCacheTtl: 300,
    seed: 1,
    regimes: 'kv,d1',
    timeFaithful: true,
    concurrency: 8,
    isolates: 100,
    coldSyncShare: 1,
    flushRequests: 100,
    flushSecs: 600, // the worker's default (wrangler.toml USAGE_FLUSH_SECS)
    degradeAt: 0.9,
    fromResults: false,
    readyFile: '',
    goFile: '',
    quick: false,
  },
  {
    users: 'simulated users (the reduced scale)',
    activeShare: 'share of active users',
    activeSyncs: 'scheduled syncs per day per device of an active user',
    inactiveSyncs: 'scheduled syncs per day per device of an inactive user',
    devices: 'devices per user',
    creates: 'task creations per active user per day',
    sessions: 'editing sessions per active user per day (one push each)',
    debounceS: 'seconds from a session\'s last change to its push',
    checkFirst: 'a sync with local changes still checks first (false: it pushes directly)',
    pushOnChange: 'push a session\'s changes after the debounce (false: at the device\'s next scheduled sync)',
    jitter: 'scheduled sync times vary by ± this share of the period',
    initialRecords: 'tasks each user holds before the day (setup, not counted)',
    stateCacheTtl: 'STATE_CACHE_TTL of the deployed worker, seconds (the day\'s KV entry lifetime)',
    seed: 'PRNG seed of the population',
    regimes: 'replays to run: kv (KV fast path), d1 (past the KV write guard)',
    timeFaithful: 'kv replay in compressed real time so KV entries expire as in the day (false: no waiting, KV outcomes unfaithful)',
    concurrency: 'users replayed at once in the untimed replays',
    isolates: 'model: isolates serving the day (usage flush cadence)',
    coldSyncShare: 'model: share of syncs landing on an isolate that has not seen the user (one KV read each)',
    flushRequests: 'model: USAGE_FLUSH_REQUESTS',
    flushSecs: 'model: USAGE_FLUSH_SECS',
    degradeAt: 'model: DEGRADE_AT (reads pause at this share of a limit)',
    fromResults: 'skip the replays; recompute the model from bench/results/capacity.json',
    readyFile: 'touch this file when the first replay\'s setup is done (scripts/bench.sh then starts the throughput runs)',
    goFile: 'start the real-time day only once this file exists (scripts/bench.sh creates it after the throughput runs)',
    quick: '40 users, no real-time waiting (KV outcomes then unfaithful)',
  },
);
if (opt.quick) {
  opt.users = Math.min(opt.users, 40);
  opt.timeFaithful = false;
}
const DAY = 86_400;
const REAL_TTL = 60; // STATE_CACHE_TTL of the kv replay's worker (KV's minimum)
const LONG_GAP = REAL_TTL + 3; // real seconds standing for a gap >= the day's TTL (3 s margin)
const SCALE = REAL_TTL / opt.stateCacheTtl; // real seconds per simulated second below the TTL

// ---- the simulated day ------------------------------------------------------------------
function population() {
  const R = rng(opt.seed);
  const nActive = Math.round(opt.users * opt.activeShare);
  const users = [];
  for (let u = 0; u < opt.users; u++) {
    const active = u < nActive;
    const syncs = active ? opt.activeSyncs : opt.inactiveSyncs;
    const events = [];
    for (let d = 0; d < opt.devices; d++) {
      const period = DAY / syncs;
      const phase = R() * period;
      for (let k = 0; k < syncs; k++) {
        const t = Math.min(DAY - 1, Math.max(0, phase + k * period + (R() * 2 - 1) * opt.jitter * period));
        events.push({ t, device: d, kind: 'scheduled', creates: 0 });
      }
    }
    if (active && opt.sessions > 0) {
      // creates spread over the sessions as evenly as possible, the remainder at random
      const counts = Array.from({ length: opt.sessions }, () => Math.floor(opt.creates / opt.sessions));
      for (let i = 0; i < opt.creates % opt.sessions; i++) counts[Math.floor(R() * opt.sessions)]++;
      for (const n of counts) {
        if (!n) continue;
        const t = Math.min(DAY - 1, R() * DAY);
        const device = Math.floor(R() * opt.devices);
        if (opt.pushOnChange) events.push({ t: Math.min(DAY - 1, t + opt.debounceS), device, kind: 'local', creates: n });
        else events.push({ t, device, kind: 'edit', creates: n }); // rides the next scheduled sync
      }
    }
    events.sort((a, b) => a.t - b.t);
    users.push({ index: u, active, events });
  }
  return users;
}

// Real-time offsets (s) of a user's events in the kv replay: below the day's TTL a gap is
// scaled, from it on it becomes LONG_GAP, so "younger than the TTL" is preserved for every
// pair of events (sums of scaled gaps stay below REAL_TTL exactly when the day's sums stay
// below its TTL; one long gap alone exceeds it).
function realOffsets(events) {
  const out = [];
  let prev = null;
  let r = 0;
  for (const e of events) {
    if (prev != null) {
      const gap = e.t - prev;
      r += gap < opt.stateCacheTtl ? gap * SCALE : LONG_GAP;
    }
    out.push(r);
    prev = e.t;
  }
  return out;
}

// ---- one replay -----------------------------------------------------------------------
async function usage(base) {
  const r = expect(await send(base, { path: '/api/admin/usage', headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` } }), 200, 'admin usage');
  const u = r.json.usage;
  return {
    day: r.json.day,
    requests: u.requests.used,
    rows_read: u.d1_rows_read.used,
    rows_written: u.d1_rows_written.used,
    kv_reads: u.kv_reads.used,
    kv_writes: u.kv_writes.used,
  };
}

async function replay(regime, people) {
  const kvRegime = regime === 'kv';
  const timed = kvRegime && opt.timeFaithful;
  const vars = kvRegime ? { STATE_CACHE_TTL: String(REAL_TTL) } : { QUOTA_KV_WRITES: '0' };
  const srv = await startWorker({ vars });
  const base = srv.url;
  log(`[${regime}] worker ${base}, ${people.length} users`);
  try {
    // Setup (not counted): each user's initial records pushed from device 0, the other
    // devices pulled to the same state.
    const users = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: opt.concurrency }, async () => {
        while (next < people.length) {
          const p = people[next++];
          const tok = await token(`cap-${opt.seed}-${regime}-${p.index}`);
          const devices = Array.from({ length: opt.devices }, () => ({ cursor: 0, etag: null, pending: [], made: 0 }));
          const first = expect(await send(base, { method: 'POST', path: '/api/sync', token: tok, body: { cursor: 0, changes: tasks(opt.initialRecords, `init-${p.index}`) } }), 200, 'setup push');
          devices[0].cursor = first.json.cursor;
          devices[0].etag = first.json.etag;
          for (const d of devices.slice(1)) {
            for (;;) {
              const r = expect(await send(base, { method: 'POST', path: '/api/sync', token: tok, body: { cursor: d.cursor, limit: 1000 } }), 200, 'setup pull');
              d.cursor = r.json.cursor;
              d.etag = r.json.etag;
              if (!r.json.has_more) break;
            }
          }
          users[p.index] = { ...p, token: tok, devices, setupDone: performance.now() };
        }
      }),
    );
    const before = await usage(base);
    if (opt.readyFile) fs.writeFileSync(opt.readyFile, `${regime} setup done\n`);

    const acc = {
      totals: { requests: 0, ...zeroOps() },
      active: { requests: 0, ...zeroOps() },
      inactive: { requests: 0, ...zeroOps() },
      kinds: {},
      syncs: 0,
      checks: 0,
      stateReads: 0, // checks that read the KV state token
      kvHits: 0,
      predictedHits: 0,
      fidelityMismatch: 0,
      errors: [],
      syncMs: [],
    };
    const count = (u, kind, res) => {
      for (const bucket of [acc.totals, u.active ? acc.active : acc.inactive]) {
        bucket.requests++;
        addOps(bucket, res.ops);
      }
      const k = (acc.kinds[kind] ??= { requests: 0, ...zeroOps() });
      k.requests++;
      addOps(k, res.ops);
    };
    const call = async (u, kind, req, ok) => {
      const res = await send(base, { ...req, token: u.token });
      if (!ok.includes(res.status)) {
        acc.errors.push(`${kind}: HTTP ${res.status} ${res.text.slice(0, 200)}`);
        return null;
      }
      count(u, kind, res);
      return res;
    };

    // The simulated KV entry of each user: alive until kvUntil (day seconds).
    async function sync(u, dev, e) {
      acc.syncs++;
      let changes = [];
      if (e.kind === 'local') changes = tasks(e.creates, `u${u.index}d${e.device}`, (dev.made += e.creates) - e.creates);
      else if (dev.pending.length) changes = dev.pending.splice(0);
      let post = changes.length > 0;
      if (opt.checkFirst || !post) {
        const res = await call(u, 'check', { path: '/api/sync/check', headers: dev.etag ? { 'if-none-match': dev.etag } : {} }, [200, 304]);
        if (!res) return;
        acc.checks++;
        const usedKv = kvRegime && res.ops['kv-read'] >= 1;
        if (usedKv) acc.stateReads++;
        const hit = usedKv && res.ops.d1 === 0;
        if (hit) acc.kvHits++;
        const predicted = kvRegime && e.t < u.kvUntil;
        if (predicted) acc.predictedHits++;
        if (kvRegime && predicted !== hit) acc.fidelityMismatch++;
        if (kvRegime && !predicted) u.kvUntil = e.t + opt.stateCacheTtl; // a miss fills KV
        const kind = `check ${res.status}${kvRegime ? (hit ? ' (KV)' : ' (D1)') : ''}`;
        acc.kinds[kind] ??= { requests: 0, ...zeroOps() };
        acc.kinds[kind].requests++;
        addOps(acc.kinds[kind], res.ops);
        if (res.status === 200 && res.json?.etag !== dev.etag) post = true;
      }
      if (!post) return;
      let first = true;
      for (;;) {
        const body = { cursor: dev.cursor, ...(first && changes.length ? { changes } : {}) };
        const kind = first && changes.length ? 'POST /api/sync push+pull' : 'POST /api/sync pull';
        const res = await call(u, kind, { method: 'POST', path: '/api/sync', body }, [200]);
        if (!res) return;
        if (first && changes.length && res.json.applied.length && kvRegime) u.kvUntil = e.t + opt.stateCacheTtl; // write-through
        dev.cursor = res.json.cursor;
        dev.etag = res.json.etag;
        first = false;
        if (!res.json.has_more) break;
      }
    }

    // Each event waits its mapped gap counted from the end of the previous one (the KV
    // write of a sync happens as it ends), so a slow sync never shortens the next gap.
    async function day(u, startAt) {
      u.kvUntil = -1; // the previous day's entry is long gone
      const offsets = realOffsets(u.events);
      let prevDone = null;
      for (let i = 0; i < u.events.length; i++) {
        const e = u.events[i];
        if (timed) {
          const due = i === 0 ? startAt : prevDone + (offsets[i] - offsets[i - 1]) * 1000;
          await sleep(due - performance.now());
        }
        const dev = u.devices[e.device];
        if (e.kind === 'edit') {
          dev.pending.push(...tasks(e.creates, `u${u.index}d${e.device}`, dev.made));
          dev.made += e.creates;
        } else {
          const t0 = performance.now();
          await sync(u, dev, e);
          acc.syncMs.push(performance.now() - t0);
        }
        prevDone = performance.now();
      }
    }

    const t0 = performance.now();
    if (timed) {
      if (opt.goFile) {
        const until = performance.now() + 30 * 60_000;
        while (!fs.existsSync(opt.goFile) && performance.now() < until) await sleep(200);
      }
      // Every user starts more than the real TTL after its setup wrote KV.
      const start = Math.max(performance.now(), Math.max(...users.map((u) => u.setupDone)) + LONG_GAP * 1000);
      const longest = Math.max(...users.map((u) => realOffsets(u.events).at(-1) ?? 0));
      log(`[${regime}] real-time replay: about ${Math.round((start - performance.now()) / 1000 + longest)} s`);
      const R = rng(opt.seed + 7);
      await Promise.all(users.map((u) => day(u, start + R() * 5000)));
    } else {
      let i = 0;
      await Promise.all(
        Array.from({ length: opt.concurrency }, async () => {
          while (i < users.length) await day(users[i++], 0);
        }),
      );
    }
    const seconds = (performance.now() - t0) / 1000;

    const after = await usage(base);
    const after2 = await usage(base); // the delta is one flush's own cost
    const flush = {
      rows_read: after2.rows_read - after.rows_read,
      rows_written: after2.rows_written - after.rows_written,
      d1: 1,
    };
    const counted = {
      requests: after.requests - before.requests - 1, // minus the first snapshot's own request
      rows_read: after.rows_read - before.rows_read,
      rows_written: after.rows_written - before.rows_written,
      kv_reads: after.kv_reads - before.kv_reads,
      kv_writes: after.kv_writes - before.kv_writes,
      sameDay: after.day === before.day,
    };
    const overheadWritten = counted.rows_written - acc.totals['rows-written'];
    const restores = acc.totals['kv-read'] - acc.stateReads;
    const syncSorted = acc.syncMs.sort((a, b) => a - b);
    const result = {
      regime,
      users: people.length,
      active: people.filter((p) => p.active).length,
      seconds: Number(seconds.toFixed(1)),
      timeFaithful: timed,
      totals: acc.totals,
      active_totals: acc.active,
      inactive_totals: acc.inactive,
      kinds: acc.kinds,
      syncs: acc.syncs,
      checks: acc.checks,
      restores,
      kv: kvRegime ? { hits: acc.kvHits, predictedHits: acc.predictedHits, mismatches: acc.fidelityMismatch } : null,
      syncMs: { p50: syncSorted[Math.floor(syncSorted.length / 2)] ?? 0, max: syncSorted.at(-1) ?? 0 },
      workerCounted: counted,
      flush,
      flushesDuringReplay: flush.rows_written > 0 && counted.sameDay ? Math.round(overheadWritten / flush.rows_written) : null,
      errors: acc.errors,
    };
    log(`[${regime}] ${acc.totals.requests} requests in ${result.seconds} s; totals ${JSON.stringify(acc.totals)}`);
    if (kvRegime) log(`[${regime}] KV hits ${acc.kvHits} of ${acc.checks} checks (day predicts ${acc.predictedHits}; ${acc.fidelityMismatch} differ)`);
    if (acc.errors.length) throw new Error(`[${regime}] ${acc.errors.length} failed requests: ${acc.errors.slice(0, 5).join('\n')}`);
    return result;
  } finally {
    closeAgents();
    await srv.stop();
  }
}

// ---- main -----------------------------------------------------------------------------
const modelParams = {
  isolates: opt.isolates,
  coldSyncShare: opt.coldSyncShare,
  flushRequests: opt.flushRequests,
  flushSecs: opt.flushSecs,
  degradeAt: opt.degradeAt,
  kvGuard: opt.degradeAt * 1_000,
};

let replays;
let usageModel;
if (opt.fromResults) {
  const prev = readResult('capacity');
  if (!prev) throw new Error('no bench/results/capacity.json to recompute from');
  replays = prev.replays;
  usageModel = prev.usageModel;
} else {
  const people = population();
  const per = (pred) => people.filter(pred);
  usageModel = {
    users: opt.users,
    activeShare: opt.activeShare,
    activeSyncs: opt.activeSyncs,
    inactiveSyncs: opt.inactiveSyncs,
    devices: opt.devices,
    creates: opt.creates,
    sessions: opt.sessions,
    debounceS: opt.debounceS,
    checkFirst: opt.checkFirst,
    pushOnChange: opt.pushOnChange,
    jitter: opt.jitter,
    initialRecords: opt.initialRecords,
    stateCacheTtl: opt.stateCacheTtl,
    seed: opt.seed,
    timeFaithful: opt.timeFaithful,
    quick: opt.quick,
    eventsPerUser: people.reduce((n, p) => n + p.events.length, 0) / people.length,
    activeUsers: per((p) => p.active).length,
  };
  replays = {};
  for (const regime of opt.regimes.split(',').map((s) => s.trim()).filter(Boolean)) {
    if (!['kv', 'd1'].includes(regime)) throw new Error(`unknown regime ${regime}`);
    replays[regime] = await replay(regime, people);
  }
}
if (!replays.kv || !replays.d1) throw new Error('the model needs both replays (--regimes kv,d1)');

const a = perUser(replays.kv);
const b = perUser(replays.d1);
const flush = replays.kv.flush.rows_written > 0 ? replays.kv.flush : replays.d1.flush;
const params = { ...modelParams, flush };
const cap = capacity(a, b, params);
const fmt = (n) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : 'never');
log(`per user and day with KV: ${JSON.stringify(a)}`);
log(`per user and day past the KV guard: ${JSON.stringify(b)}`);
console.log('\nresource         limit/day   users at limit: linear KV on | linear KV off | model   (brief: share at 30k)');
for (const r of cap.rows) {
  console.log(
    `${r.label.padEnd(16)} ${fmt(r.limit).padStart(10)}   ${fmt(r.linearKv).padStart(12)} | ${fmt(r.linearD1).padStart(13)} | ${fmt(r.model).padStart(7)}   (${(r.briefShare * 100).toFixed(1)}%)`,
  );
}
console.log(`binding (model): ${cap.binding}; KV fast path lost from ${fmt(cap.kvFastPathUntil)} users; brief claims ${BRIEF.users.toLocaleString('en-US')}\n`);
const file = writeResult('capacity', {
  usageModel,
  modelParams: params,
  replays,
  perUser: { kv: a, d1: b },
  capacity: cap,
  series: series(a, b, params),
});
log(`wrote ${file}`);
