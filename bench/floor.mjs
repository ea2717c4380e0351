// edgesync side by side with the two reference workers of ../shared/reference/ (issue #11):
// `floor` (a bare workers-rs worker: the least Rust/wasm can do), `seed` (the brief's JS
// worker) and edgesync, all three under `wrangler dev` in this one run, on the same request
// kinds, interleaved (several short rounds, each running every worker in turn, the order
// rotated per round) so that the drift of the machine's load hits all alike. Prints the
// requests/s side by side, the ratios issue #11's goals name and their spread over the
// rounds, and writes bench/results/floor.json (BENCHMARKS.md §1 via bench/report.mjs).
//
//   node bench/floor.mjs [--rounds 5] [--duration-s 3] [--quick] [--build-only] [--help]
//
// Kinds:
//   health   GET /api/health (no auth, no storage) — floor, seed, edgesync
//   check304 GET /api/sync/check with If-None-Match = the current tag, answered from KV —
//            floor (one KV read, no auth), seed (HS256 by Web Crypto + one KV read),
//            edgesync (its 304 fast path: JWT, rate limit, one KV read)
//   checkD1  a check answered from D1 for a user with 200 tasks — seed: its hash check
//            (KV read, COUNT/MAX/SUM over the user's 200 tasks, KV write, awaited);
//            edgesync: a check without If-None-Match by a user new to the isolate, which
//            the KV state token cannot answer (issue #10): 1 D1 row, no KV token read or
//            written (the limiter's shared set is read at most once a minute per isolate).
//            Each edgesync request is another such user:
//            one user is seeded with 200 tasks through the API by a worker that writes
//            nothing to KV (QUOTA_KV_WRITES=0), then cloned in D1 (its pages: state
//            and 200 tasks) before the measured worker starts on that D1.
import os from 'node:os';

import { token } from '../tests/helpers/client.mjs';
import { closeAgents, expect, flags, log, median, send, writeResult } from './lib/common.mjs';
import { load } from './lib/load.mjs';
import { buildFloor, cpuOf, edgesyncWithColdUsers, startEdgesync, startFloor, startSeed } from './lib/workers.mjs';

const opt = flags(
  { rounds: 5, durationS: 3, warmupS: 0.5, concurrency: 8, tasks: 200, coldPerRound: 1_200, kinds: 'health,check304,checkD1', assets: false, quick: false, buildOnly: false },
  {
    rounds: 'rounds per kind (each runs every worker once, order rotated)',
    durationS: 'measured seconds per worker per round',
    warmupS: 'unrecorded seconds before each measured period',
    concurrency: 'requests in flight (closed loop, bench/lib/load.mjs)',
    tasks: "tasks of the checkD1 user (seed's scan; edgesync's cloned users)",
    coldPerRound: 'edgesync checkD1: never-seen users per round (a run ends early when they run out)',
    kinds: 'comma list of health, check304, checkD1',
    assets: "edgesync with wrangler.toml's [assets] (wrangler dev's asset router in front, ~1 ms of workerd CPU per request here; the reference workers have none)",
    quick: 'short runs for iterating: 3 rounds of 1.5 s',
    buildOnly: 'only build the floor reference worker (scripts/bench.sh does it with the build)',
  },
);
if (opt.buildOnly) {
  await buildFloor({ log });
  process.exit(0);
}
if (opt.quick) {
  opt.rounds = Math.min(opt.rounds, 3);
  opt.durationS = Math.min(opt.durationS, 1.5);
  opt.warmupS = Math.min(opt.warmupS, 0.3);
  opt.coldPerRound = Math.min(opt.coldPerRound, 600);
}
const kindsWanted = opt.kinds.split(',').map((s) => s.trim()).filter(Boolean);
for (const k of kindsWanted) if (!['health', 'check304', 'checkD1'].includes(k)) throw new Error(`unknown kind ${k}`);
const WORKERS = ['floor', 'seed', 'edgesync'];
const fmt = (x, d = 1) => (x == null || !Number.isFinite(x) ? '—' : x.toFixed(d));

const started = Date.now();
const needCold = kindsWanted.includes('checkD1');
const coldN = needCold ? opt.rounds * opt.coldPerRound + 1 : 0;
const coldPrefix = 'cold-';
log(`starting floor, seed and edgesync${needCold ? ` (with ${coldN} cold users of ${opt.tasks} tasks)` : ''}`);
const servers = {};
const startAll = await Promise.allSettled([
  startFloor({ log }).then((s) => (servers.floor = s)),
  startSeed().then((s) => (servers.seed = s)),
  (needCold ? edgesyncWithColdUsers(coldN, opt.tasks, coldPrefix, log, { assets: opt.assets }) : startEdgesync({ assets: opt.assets })).then((s) => (servers.edgesync = s)),
]);
const stopAll = () => Promise.all(Object.values(servers).map((s) => s.stop()));
const failedStart = startAll.find((r) => r.status === 'rejected');
if (failedStart) {
  await stopAll();
  throw failedStart.reason;
}
for (const w of WORKERS) log(`${w} on ${servers[w].url} (started in ${servers[w].startupMs} ms)`);

try {
  const url = Object.fromEntries(WORKERS.map((w) => [w, servers[w].url]));
  const get = (w, p, tok, headers = {}) => send(url[w], { path: p, token: tok, headers });

  // --- fixtures --------------------------------------------------------------------------
  // floor: its first non-health request writes the KV key "s1".
  expect(await get('floor', '/api/sync/check'), 200, 'floor: prime');
  const floorTag = '"s1"';
  expect(await get('floor', '/api/sync/check', null, { 'if-none-match': floorTag }), 304, 'floor: 304 probe');

  // seed: one user with `tasks` tasks (its push binds one statement per task).
  const seedTok = await token('seed-user');
  const seedTasks = Array.from({ length: opt.tasks }, (_, i) => ({ id: `seed-${i}`, title: `task ${i}`, version: 1, updated_at: Date.now() + i }));
  expect(await send(url.seed, { method: 'POST', path: '/api/sync', token: seedTok, body: { cursor: 0, changes: seedTasks } }), 200, 'seed: push');
  const seedCheck = expect(await get('seed', '/api/sync/check', seedTok), 200, 'seed: hash check');
  const seedTag = seedCheck.headers.etag;
  if (!seedTag?.startsWith(`"${opt.tasks}-`)) throw new Error(`seed: hash ${seedTag} does not count ${opt.tasks} tasks`);
  expect(await get('seed', '/api/sync/check', seedTok, { 'if-none-match': seedTag }), 304, 'seed: 304 probe');

  // edgesync: a user whose state token is in KV (written through by its push, trusted by
  // the isolate), as bench/throughput.mjs primes it.
  const esTok = await token('fast-user');
  const pushed = expect(await send(url.edgesync, { method: 'POST', path: '/api/sync', token: esTok, body: { cursor: 0, changes: [{ type: 'tasks', id: 'f-1', title: 'x' }] } }), 200, 'edgesync: prime 304');
  const esTag = pushed.json.etag;
  const probe = expect(await get('edgesync', '/api/sync/check', esTok, { 'if-none-match': esTag }), 304, 'edgesync: 304 probe');
  if (probe.ops.d1 !== 0) throw new Error(`edgesync: the primed 304 used D1: ${probe.opsHeader}`);

  // edgesync cold users: tokens minted up front (jose, HS256), one per request.
  let coldTokens = [];
  let coldNext = 0;
  if (needCold) {
    coldTokens = await Promise.all(Array.from({ length: coldN }, (_, i) => token(`${coldPrefix}${i}`)));
    const p = expect(await get('edgesync', '/api/sync/check', coldTokens[coldNext++]), 200, 'edgesync: cold check probe');
    // A check without If-None-Match never consults the KV state token (nothing the client
    // holds for it to confirm) and writes none (tokens are written ahead of commits only):
    // 1 D1 row. The limiter reads its shared KV set at most once a minute per isolate, for
    // a user it has no bucket for, so a cold user may cost that 1 KV read.
    const want = { d1: 1, 'rows-read': 1, 'kv-write': 0 };
    const bad = Object.entries(want).some(([k, v]) => p.ops[k] !== v) || !(p.ops['kv-read'] <= 1);
    if (bad) throw new Error(`edgesync: the cold check probe cost ${p.opsHeader}, expected ${JSON.stringify(want)} and kv-read ≤ 1`);
  }

  // --- the kinds -------------------------------------------------------------------------
  const kinds = {
    health: {
      label: 'GET /api/health',
      workers: {
        floor: { next: () => ({ path: '/api/health' }), ok: [200] },
        seed: { next: () => ({ path: '/api/health' }), ok: [200] },
        edgesync: { next: () => ({ path: '/api/health' }), ok: [200] },
      },
    },
    check304: {
      label: '304 state check from KV',
      workers: {
        floor: { next: () => ({ path: '/api/sync/check', headers: { 'if-none-match': floorTag } }), ok: [304] },
        seed: {
          // its KV entry lives 300 s: refresh it before each run
          before: async () => expect(await get('seed', '/api/sync/check', seedTok), 200, 'seed: refresh hash'),
          next: () => ({ path: '/api/sync/check', token: seedTok, headers: { 'if-none-match': seedTag } }),
          ok: [304],
        },
        edgesync: { next: () => ({ path: '/api/sync/check', token: esTok, headers: { 'if-none-match': esTag } }), ok: [304] },
      },
    },
    checkD1: {
      label: `check answered from D1 (${opt.tasks} tasks)`,
      workers: {
        seed: { next: () => ({ path: '/api/sync/check', token: seedTok }), ok: [200] },
        edgesync: {
          next: () => ({ path: '/api/sync/check', token: coldTokens[Math.min(coldNext++, coldTokens.length - 1)] }),
          ok: [200],
          maxRequests: () => Math.min(opt.coldPerRound, coldTokens.length - coldNext),
        },
      },
    },
  };

  const results = {};
  for (const key of kindsWanted) {
    const kind = kinds[key];
    const names = WORKERS.filter((w) => kind.workers[w]);
    results[key] = { label: kind.label, workers: Object.fromEntries(names.map((w) => [w, { rounds: [] }])) };
    for (let r = 0; r < opt.rounds; r++) {
      const order = names.map((_, i) => names[(i + r) % names.length]);
      const line = [];
      for (const w of order) {
        const spec = kind.workers[w];
        if (spec.before) await spec.before();
        const cap = spec.maxRequests ? spec.maxRequests() : 1_000_000;
        const base = { base: url[w], concurrency: opt.concurrency, next: spec.next, ok: spec.ok };
        // warm-up as a run of its own, so that the CPU counted below is the measured period's
        const warm = await load({ ...base, durationMs: opt.warmupS * 1000, warmupMs: 0, maxRequests: Math.ceil(cap / 5) });
        const cpu0 = cpuOf(servers[w]);
        const res = await load({ ...base, durationMs: opt.durationS * 1000, warmupMs: 0, maxRequests: Math.max(1, cap - warm.requests - warm.errors) });
        const cpu1 = cpuOf(servers[w]);
        // CPU per answered request: robust to the machine's load, which throughput is not
        const cpu = cpu0 && cpu1 && res.requests ? { runtime_ms: (cpu1.runtime - cpu0.runtime) / res.requests, total_ms: (cpu1.total - cpu0.total) / res.requests } : null;
        results[key].workers[w].rounds.push({ round: r, position: order.indexOf(w), ...res, cpu });
        line.push(`${w} ${fmt(res.rps)}${cpu ? ` (${fmt(cpu.runtime_ms * 1000, 0)} µs)` : ''}${res.errors ? ` (${res.errors} errors)` : ''}${res.capped ? ' (capped)' : ''}`);
      }
      log(`${key} round ${r + 1}/${opt.rounds}: ${line.join(', ')} req/s (workerd CPU per request)`);
    }
    for (const w of names) {
      const rs = results[key].workers[w].rounds;
      const rps = rs.map((x) => x.rps);
      Object.assign(results[key].workers[w], {
        rps: median(rps),
        min: Math.min(...rps),
        max: Math.max(...rps),
        errors: rs.reduce((n, x) => n + x.errors, 0),
        requests: rs.reduce((n, x) => n + x.requests, 0),
        p50: median(rs.map((x) => x.p50)),
        cpu_runtime_ms: median(rs.map((x) => x.cpu?.runtime_ms)),
        cpu_total_ms: median(rs.map((x) => x.cpu?.total_ms)),
        ops: rs.reduce((acc, x) => {
          for (const [k, v] of Object.entries(x.ops)) acc[k] = (acc[k] || 0) + v;
          return acc;
        }, {}),
      });
    }
  }

  // --- ratios: per round (same moment), then their median and range -----------------------
  const GOALS = [
    { kind: 'check304', of: 'floor', goal: 0.9, name: '304 check: edgesync / floor' },
    { kind: 'check304', of: 'seed', goal: 0.9, name: '304 check: edgesync / seed' },
    { kind: 'health', of: 'floor', goal: 0.9, name: 'health: edgesync / floor' },
    { kind: 'checkD1', of: 'seed', goal: 1.5, name: 'check from D1: edgesync (cold, 1 row) / seed hash check (scans the tasks)' },
  ];
  const ratios = [];
  for (const g of GOALS) {
    const k = results[g.kind];
    if (!k?.workers[g.of] || !k.workers.edgesync) continue;
    const per = k.workers.edgesync.rounds.map((x, i) => x.rps / k.workers[g.of].rounds[i].rps);
    const value = median(per);
    // the same ratio from CPU per request (theirs ÷ edgesync's): what throughput would be if the worker's CPU were the bound
    const perCpu = k.workers.edgesync.rounds.map((x, i) => (x.cpu && k.workers[g.of].rounds[i].cpu ? k.workers[g.of].rounds[i].cpu.runtime_ms / x.cpu.runtime_ms : NaN)).filter(Number.isFinite);
    const cpu = perCpu.length ? { value: median(perCpu), min: Math.min(...perCpu), max: Math.max(...perCpu), met: median(perCpu) >= g.goal } : null;
    ratios.push({ ...g, value, min: Math.min(...per), max: Math.max(...per), rounds: per.map((x) => Number(x.toFixed(3))), met: value >= g.goal, cpu });
  }

  // --- print -------------------------------------------------------------------------------
  const pad = (s, n) => String(s).padEnd(n);
  const lpad = (s, n) => String(s).padStart(n);
  const cell = (w) => (w ? `${fmt(w.rps)} [${fmt(w.min, 0)}–${fmt(w.max, 0)}]` : '—');
  const cpuCell = (w) => (w?.cpu_runtime_ms != null ? `${fmt(w.cpu_runtime_ms * 1000, 0)} µs` : '—');
  const lines = [
    '',
    `requests/s, median of ${opt.rounds} rounds [min–max], ${opt.concurrency} in flight, ${opt.durationS} s per worker per round:`,
    `${pad('path', 40)}${WORKERS.map((w) => lpad(w, 24)).join('')}`,
    ...kindsWanted.map((k) => `${pad(results[k].label, 40)}${WORKERS.map((w) => lpad(cell(results[k].workers[w]), 24)).join('')}`),
    '',
    "CPU per request of the worker's workerd (median of the rounds):",
    ...kindsWanted.map((k) => `${pad(results[k].label, 40)}${WORKERS.map((w) => lpad(cpuCell(results[k].workers[w]), 24)).join('')}`),
    '',
    'ratios (per round, then median [min–max]), from req/s and from CPU per request (theirs ÷ edgesync\'s):',
    ...ratios.map(
      (r) =>
        `${pad(r.name, 76)} req/s ${lpad(fmt(r.value, 2), 5)} [${fmt(r.min, 2)}–${fmt(r.max, 2)}]` +
        `${r.cpu ? `   CPU ${lpad(fmt(r.cpu.value, 2), 5)} [${fmt(r.cpu.min, 2)}–${fmt(r.cpu.max, 2)}]` : ''}  goal ≥ ${r.goal}  ${r.met ? 'met' : 'NOT met'}${r.cpu ? ` / ${r.cpu.met ? 'met' : 'NOT met'}` : ''}`,
    ),
    '',
  ];
  console.log(lines.join('\n'));

  const file = writeResult('floor', {
    params: { ...opt, cpus: os.cpus().length, loadavg: os.loadavg() },
    seconds: Math.round((Date.now() - started) / 1000),
    workers: Object.fromEntries(WORKERS.map((w) => [w, { startup_ms: servers[w].startupMs }])),
    kinds: results,
    ratios,
  });
  log(`wrote ${file}`);
  const errors = Object.values(results).reduce((n, k) => n + Object.values(k.workers).reduce((m, w) => m + w.errors, 0), 0);
  if (errors) {
    log(`${errors} errors`);
    for (const k of Object.values(results)) for (const [w, x] of Object.entries(k.workers)) for (const r of x.rounds) if (r.error_samples.length) log(`${w}: ${r.error_samples.join(' | ')}`);
    process.exitCode = 1;
  }
} finally {
  closeAgents();
  await stopAll();
}
