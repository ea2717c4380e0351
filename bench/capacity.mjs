// Capacity model: replays one day of a user population through the real worker (local
// workerd, D1, KV) at reduced scale, counts every resource from X-Sync-Ops and the worker's
// own usage report, and extrapolates to the Workers Free plan's daily limits. Writes
// bench/results/capacity.json.
//
//   node bench/capacity.mjs                      both mixes, 200 users each
//   node bench/capacity.mjs --mixes brief        one mix
//   node bench/capacity.mjs --help               every parameter with its default
//   node bench/capacity.mjs --from-results --isolates 300   re-run only the model
//
// A sync is ONE request: a `POST /api/sync` with the device's cursor and its pending
// changes (none for an idle sync); a reply with `has_more` is followed by more POSTs in
// the same sync. No separate check. Two usage mixes (presets; every parameter is a flag
// that overrides the preset of every mix run):
//  - "brief" (issue #10): 60% of users active, syncing 4 times a day, the others twice;
//    one device; an active user creates 7 tasks a day in 3 editing sessions, and each
//    session's push is one of their scheduled syncs (3 of the 4, chosen at random), so
//    1.8 pushes, 4.2 new records and 3.2 requests per user-day; 100 records per user
//    before the day.
//  - "two-device" (the replay before issue #10, at one request per sync): the same shares
//    and sync counts per device, 2 devices per user; each editing session's changes are
//    pushed from the device it happened on 3 s after it (a sync of its own).
//
// Two regimes, two replays per mix:
//  - "kv": the worker as configured, with the KV state token. Its KV entries live
//    STATE_CACHE_TTL (300 s), and whether a sync finds one depends on time, so this replay
//    runs in real time with each user's day compressed: gaps shorter than the TTL are scaled
//    by 60/300 against a worker with STATE_CACHE_TTL=60 (KV's minimum), longer ones become
//    63 s. An entry is then alive in the replay exactly when it would be in the day. How
//    many idle syncs were answered without D1 is counted (and compared, for information,
//    with "the user's last KV write is younger than the TTL" in the simulated day). About
//    11 minutes, mostly waiting; the mixes' replays run at the same time.
//  - "d1": the same day against a worker with QUOTA_KV_WRITES=0, which never trusts KV:
//    how the worker runs once its KV budget guard has tripped. Fast.
// Costs are never assumed: each request's X-Sync-Ops, and the usage accounting's own rows
// (one flush, measured as the difference between two admin usage reports) come from the
// worker measured.
import fs from 'node:fs';

import { startWorker, TEST_ADMIN_TOKEN } from '../tests/helpers/server.mjs';
import { token } from '../tests/helpers/client.mjs';
import { addOps, closeAgents, expect, flags, log, readResult, rng, send, sleep, tasks, writeResult, zeroOps } from './lib/common.mjs';
import { BRIEF, capacity, perUser, series } from './lib/model.mjs';

// Presets of the usage mixes; a flag given on the command line overrides them.
const MIXES = {
  brief: { devices: 1, sessionsOnSyncs: true, pushOnChange: false },
  'two-device': { devices: 2, sessionsOnSyncs: false, pushOnChange: true },
};
const DEFAULTS = {
    mixes: 'brief,two-device',
    users: 200,
    activeShare: 0.6,
    activeSyncs: 4,
    inactiveSyncs: 2,
    devices: 2,
    creates: 7,
    sessions: 3,
    debounceS: 3,
    sessionsOnSyncs: false,
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
    flushRequests: 5000, // the worker's default cap (wrangler.toml USAGE_FLUSH_REQUESTS)
    flushSecs: 14400, // the worker's default cap (wrangler.toml USAGE_FLUSH_SECS)
    degradeAt: 0.9,
    fromResults: false,
    readyFile: '',
    goFile: '',
    quick: false,
};
const opt = flags(
  DEFAULTS,
  {
    mixes: `usage mixes to replay (presets: ${Object.keys(MIXES).join(', ')}); flags override every preset`,
    users: 'simulated users per mix (the reduced scale)',
    activeShare: 'share of active users',
    activeSyncs: 'scheduled syncs per day per device of an active user',
    inactiveSyncs: 'scheduled syncs per day per device of an inactive user',
    devices: 'devices per user (preset)',
    creates: 'task creations per active user per day',
    sessions: 'editing sessions per active user per day (one push each)',
    debounceS: 'seconds from a session\'s last change to its push',
    sessionsOnSyncs: 'each editing session\'s push is one of the user\'s scheduled syncs (distinct ones, at random) (preset)',
    pushOnChange: 'push a session\'s changes after the debounce, a sync of its own (false: at the device\'s next scheduled sync) (preset)',
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
// Flags given explicitly (they override the presets).
const given = new Set(
  process.argv.slice(2).filter((a) => a.startsWith('--')).map((a) => a.slice(2).split('=')[0].replace(/-([a-z0-9])/g, (_, c) => c.toUpperCase())),
);
const mixOpt = (mix) => {
  const preset = MIXES[mix];
  if (!preset) throw new Error(`unknown mix ${mix} (presets: ${Object.keys(MIXES).join(', ')})`);
  const o = { ...opt };
  for (const [k, v] of Object.entries(preset)) if (!given.has(k)) o[k] = v;
  return o;
};
if (opt.quick) {
  opt.users = Math.min(opt.users, 40);
  opt.timeFaithful = false;
}
const DAY = 86_400;
const REAL_TTL = 60; // STATE_CACHE_TTL of the kv replay's worker (KV's minimum)
const LONG_GAP = REAL_TTL + 3; // real seconds standing for a gap >= the day's TTL (3 s margin)
const SCALE = REAL_TTL / opt.stateCacheTtl; // real seconds per simulated second below the TTL

// ---- the simulated day ------------------------------------------------------------------
function population(o) {
  const R = rng(o.seed);
  const nActive = Math.round(o.users * o.activeShare);
  const users = [];
  for (let u = 0; u < o.users; u++) {
    const active = u < nActive;
    const syncs = active ? o.activeSyncs : o.inactiveSyncs;
    const events = [];
    for (let d = 0; d < o.devices; d++) {
      const period = DAY / syncs;
      const phase = R() * period;
      for (let k = 0; k < syncs; k++) {
        const t = Math.min(DAY - 1, Math.max(0, phase + k * period + (R() * 2 - 1) * o.jitter * period));
        events.push({ t, device: d, kind: 'scheduled', creates: 0 });
      }
    }
    if (active && o.sessions > 0) {
      // creates spread over the sessions as evenly as possible, the remainder at random
      const counts = Array.from({ length: o.sessions }, () => Math.floor(o.creates / o.sessions));
      for (let i = 0; i < o.creates % o.sessions; i++) counts[Math.floor(R() * o.sessions)]++;
      if (o.sessionsOnSyncs) {
        // each session's push is one of the user's scheduled syncs, distinct ones while
        // there are enough (Fisher-Yates over the syncs)
        const order = events.map((_, i) => i);
        for (let i = order.length - 1; i > 0; i--) {
          const j = Math.floor(R() * (i + 1));
          [order[i], order[j]] = [order[j], order[i]];
        }
        counts.forEach((n, i) => {
          if (n) events[order[i % order.length]].creates += n;
        });
      } else {
        for (const n of counts) {
          if (!n) continue;
          const t = Math.min(DAY - 1, R() * DAY);
          const device = Math.floor(R() * o.devices);
          if (o.pushOnChange) events.push({ t: Math.min(DAY - 1, t + o.debounceS), device, kind: 'local', creates: n });
          else events.push({ t, device, kind: 'edit', creates: n }); // rides the next scheduled sync
        }
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

let setupsPending = 0;
async function replay(mix, o, regime, people) {
  const kvRegime = regime === 'kv';
  const timed = kvRegime && o.timeFaithful;
  const vars = kvRegime ? { STATE_CACHE_TTL: String(REAL_TTL) } : { QUOTA_KV_WRITES: '0' };
  const srv = await startWorker({ vars });
  const base = srv.url;
  const tag = `[${mix} ${regime}]`;
  log(`${tag} worker ${base}, ${people.length} users, ${o.devices} device(s) each`);
  try {
    // Setup (not counted): each user's initial records pushed from device 0, the other
    // devices pulled to the same state.
    const users = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: o.concurrency }, async () => {
        while (next < people.length) {
          const p = people[next++];
          const tok = await token(`cap-${mix}-${o.seed}-${regime}-${p.index}`);
          const devices = Array.from({ length: o.devices }, () => ({ cursor: 0, pending: [], made: 0 }));
          const first = expect(await send(base, { method: 'POST', path: '/api/sync', token: tok, body: { cursor: 0, changes: tasks(o.initialRecords, `init-${p.index}`) } }), 200, 'setup push');
          devices[0].cursor = first.json.cursor;
          for (const d of devices.slice(1)) {
            for (;;) {
              const r = expect(await send(base, { method: 'POST', path: '/api/sync', token: tok, body: { cursor: d.cursor, limit: 1000 } }), 200, 'setup pull');
              d.cursor = r.json.cursor;
              if (!r.json.has_more) break;
            }
          }
          users[p.index] = { ...p, token: tok, devices, setupDone: performance.now() };
        }
      }),
    );
    const before = await usage(base);
    if (kvRegime && --setupsPending === 0 && o.readyFile) fs.writeFileSync(o.readyFile, 'setup done\n');

    const acc = {
      totals: { requests: 0, ...zeroOps() },
      active: { requests: 0, ...zeroOps() },
      inactive: { requests: 0, ...zeroOps() },
      kinds: {},
      syncs: 0,
      pushes: 0,
      idle: 0, // syncs without changes that found nothing new
      idleNoD1: 0, // of those, answered without a D1 statement (the KV token)
      predictedHits: 0,
      fidelityMismatch: 0,
      stateReads: 0, // requests that read KV (counted as one state-token read each)
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
      if (res.ops?.['kv-read'] >= 1) acc.stateReads++;
      // The simulated day's KV entry: alive for the TTL after the worker last wrote it.
      if (kvRegime && res.ops?.['kv-write'] >= 1) u.kvUntil = u.now + o.stateCacheTtl;
    };

    // One sync: one POST /api/sync with the device's cursor and pending changes, then more
    // POSTs while the reply says has_more.
    async function sync(u, dev, e) {
      acc.syncs++;
      u.now = e.t;
      let changes = [];
      if (e.creates) changes = tasks(e.creates, `u${u.index}d${e.device}`, (dev.made += e.creates) - e.creates);
      if (dev.pending.length) changes = dev.pending.splice(0).concat(changes);
      if (changes.length) acc.pushes++;
      const predicted = kvRegime && e.t < u.kvUntil;
      let first = true;
      for (;;) {
        const body = { cursor: dev.cursor, ...(first && changes.length ? { changes } : {}) };
        const res = await send(base, { method: 'POST', path: '/api/sync', body, token: u.token });
        if (res.status !== 200) {
          acc.errors.push(`POST /api/sync: HTTP ${res.status} ${res.text.slice(0, 200)}`);
          return;
        }
        const got = res.json.updates.length + res.json.deleted.length;
        let kind;
        if (!first) kind = 'sync, next page (has_more)';
        else if (changes.length) kind = 'sync with a push';
        else if (got) kind = 'sync, pull only';
        else {
          kind = 'idle sync';
          acc.idle++;
          const noD1 = res.ops?.d1 === 0;
          if (noD1) acc.idleNoD1++;
          if (kvRegime) {
            if (predicted) acc.predictedHits++;
            if (predicted !== noD1) acc.fidelityMismatch++;
          }
        }
        if (kvRegime && res.ops) kind += res.ops.d1 === 0 ? ' (no D1)' : '';
        count(u, kind, res);
        dev.cursor = res.json.cursor;
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
      if (o.goFile) {
        const until = performance.now() + 30 * 60_000;
        while (!fs.existsSync(o.goFile) && performance.now() < until) await sleep(200);
      }
      // Every user starts more than the real TTL after its setup wrote KV.
      const start = Math.max(performance.now(), Math.max(...users.map((u) => u.setupDone)) + LONG_GAP * 1000);
      const longest = Math.max(...users.map((u) => realOffsets(u.events).at(-1) ?? 0));
      log(`${tag} real-time replay: about ${Math.round((start - performance.now()) / 1000 + longest)} s`);
      const R = rng(o.seed + 7);
      await Promise.all(users.map((u) => day(u, start + R() * 5000)));
    } else {
      let i = 0;
      await Promise.all(
        Array.from({ length: o.concurrency }, async () => {
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
    const restores = Math.max(0, acc.totals['kv-read'] - acc.stateReads);
    const syncSorted = acc.syncMs.sort((a, b) => a - b);
    const result = {
      mix,
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
      pushes: acc.pushes,
      idle: acc.idle,
      idleNoD1: acc.idleNoD1,
      restores,
      kv: kvRegime ? { idle: acc.idle, idleNoD1: acc.idleNoD1, predictedHits: acc.predictedHits, mismatches: acc.fidelityMismatch } : null,
      syncMs: { p50: syncSorted[Math.floor(syncSorted.length / 2)] ?? 0, max: syncSorted.at(-1) ?? 0 },
      workerCounted: counted,
      flush,
      flushesDuringReplay: flush.rows_written > 0 && counted.sameDay ? Math.round(overheadWritten / flush.rows_written) : null,
      errors: acc.errors,
    };
    log(`${tag} ${acc.totals.requests} requests for ${acc.syncs} syncs in ${result.seconds} s; totals ${JSON.stringify(acc.totals)}`);
    if (kvRegime) log(`${tag} idle syncs answered without D1: ${acc.idleNoD1} of ${acc.idle} (the day's KV entries predict ${acc.predictedHits}; ${acc.fidelityMismatch} differ)`);
    if (acc.errors.length) throw new Error(`${tag} ${acc.errors.length} failed requests: ${acc.errors.slice(0, 5).join('\n')}`);
    return result;
  } finally {
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
const regimes = opt.regimes.split(',').map((s) => s.trim()).filter(Boolean);
for (const r of regimes) if (!['kv', 'd1'].includes(r)) throw new Error(`unknown regime ${r}`);
if (!regimes.includes('kv') || !regimes.includes('d1')) throw new Error('the model needs both replays (--regimes kv,d1)');
const mixNames = opt.mixes.split(',').map((s) => s.trim()).filter(Boolean);

async function runMix(mix) {
  const o = mixOpt(mix);
  const people = population(o);
  const usageModel = {
    mix,
    users: o.users,
    activeShare: o.activeShare,
    activeSyncs: o.activeSyncs,
    inactiveSyncs: o.inactiveSyncs,
    devices: o.devices,
    creates: o.creates,
    sessions: o.sessions,
    debounceS: o.debounceS,
    sessionsOnSyncs: o.sessionsOnSyncs,
    pushOnChange: o.pushOnChange,
    requestsPerSync: 1,
    jitter: o.jitter,
    initialRecords: o.initialRecords,
    stateCacheTtl: o.stateCacheTtl,
    seed: o.seed,
    timeFaithful: o.timeFaithful,
    quick: o.quick,
    eventsPerUser: people.reduce((n, p) => n + p.events.filter((e) => e.kind !== 'edit').length, 0) / people.length,
    pushesPerUser: people.reduce((n, p) => n + p.events.filter((e) => e.creates).length, 0) / people.length,
    activeUsers: people.filter((p) => p.active).length,
  };
  // The timed kv replay first (it waits for the go file), then the fast d1 replay.
  const replays = {};
  replays.kv = await replay(mix, o, 'kv', people);
  replays.d1 = await replay(mix, o, 'd1', people);
  return { usageModel, replays };
}

let runs;
if (opt.fromResults) {
  const prev = readResult('capacity');
  if (!prev?.mixes) throw new Error('no bench/results/capacity.json (with mixes) to recompute from');
  runs = Object.fromEntries(Object.entries(prev.mixes).map(([k, m]) => [k, { usageModel: m.usageModel, replays: m.replays }]));
} else {
  setupsPending = mixNames.length;
  // The mixes replay side by side (each against its own workers): the timed day is mostly idle.
  const done = await Promise.all(mixNames.map((m) => runMix(m)));
  closeAgents();
  runs = Object.fromEntries(mixNames.map((m, i) => [m, done[i]]));
}

const fmt = (n) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : 'never');
const mixes = {};
for (const [mix, { usageModel, replays }] of Object.entries(runs)) {
  const a = perUser(replays.kv);
  const b = perUser(replays.d1);
  const flush = replays.kv.flush.rows_written > 0 ? replays.kv.flush : replays.d1.flush;
  const params = { ...modelParams, flush };
  const cap = capacity(a, b, params);
  const capD1 = capacity(b, b, { ...params, kvGuard: 0 });
  log(`[${mix}] per user and day with KV: ${JSON.stringify(a)}`);
  log(`[${mix}] per user and day with KV distrusted: ${JSON.stringify(b)}`);
  console.log(`\n[${mix}] resource   limit/day   users at limit: linear KV on | linear KV off | model KV trusted | model KV distrusted`);
  for (const r of cap.rows) {
    const r2 = capD1.rows.find((x) => x.key === r.key);
    console.log(
      `${r.label.padEnd(16)} ${fmt(r.limit).padStart(10)}   ${fmt(r.linearKv).padStart(12)} | ${fmt(r.linearD1).padStart(13)} | ${fmt(r.model).padStart(16)} | ${fmt(r2.model).padStart(19)}`,
    );
  }
  console.log(`[${mix}] binds first: ${cap.binding} (KV trusted), ${capD1.binding} (KV distrusted); KV fast path lost from ${fmt(cap.kvFastPathUntil)} users\n`);
  mixes[mix] = { usageModel, replays, perUser: { kv: a, d1: b }, modelParams: params, capacity: cap, capacityD1: capD1, series: series(a, b, params), seriesD1: series(b, b, { ...params, kvGuard: 0 }) };
}
const file = writeResult('capacity', { modelParams, mixes });
log(`wrote ${file}`);
