// The CPU one request costs inside the isolate, without the HTTP around it (issue #11): each
// of floor, seed and edgesync (as in bench/floor.mjs) runs behind a small wrapper of its
// entry (bench/lib/workers.mjs, `loop`) that, given one request with `x-bench-loop: N`,
// hands a copy of it to the worker's own entry N times in a row and answers once. The
// workerd process's CPU time over that one request, divided by N, is what a request costs
// the worker and the runtime's handling of its Request and Response objects, plus the
// local KV simulator for the 304 (the same KV read for all three), but not the TCP and HTTP
// parsing that bench/floor.mjs's req/s and CPU per request also carry. One request at a
// time and no load client running beside it. An A/A check is printed with the ratios: a
// second edgesync server of the same build, measured in the rotation like the others
// (the spread of their ratio is what this machine's noise does to any ratio here).
//
//   node bench/inproc.mjs [--rounds 7] [--calls 2000] [--kinds health,check304] [--help]
import { token } from '../tests/helpers/client.mjs';
import { closeAgents, expect, flags, log, median, send, writeResult } from './lib/common.mjs';
import { cpuOf, sendLoop, startEdgesync, startFloor, startSeed } from './lib/workers.mjs';

const opt = flags(
  { rounds: 7, calls: 3000, kinds: 'health,check304', quick: false },
  {
    rounds: 'rounds (each measures every worker once per kind, order rotated)',
    calls: 'calls of the entry per measured request of check304 (health: 6 times as many, being that much cheaper)',
    kinds: 'comma list of health, check304',
    quick: '3 rounds of 500 calls',
  },
);
if (opt.quick) Object.assign(opt, { rounds: Math.min(opt.rounds, 3), calls: Math.min(opt.calls, 500) });
const kindsWanted = opt.kinds.split(',').map((s) => s.trim()).filter(Boolean);
for (const k of kindsWanted) if (!['health', 'check304'].includes(k)) throw new Error(`unknown kind ${k}`);
const WORKERS = ['floor', 'seed', 'edgesync', 'edgesync_b'];
const fmt = (x, d = 1) => (x == null || !Number.isFinite(x) ? '—' : x.toFixed(d));

const started = Date.now();
const servers = {};
const startAll = await Promise.allSettled([
  startFloor({ log, loop: true }).then((s) => (servers.floor = s)),
  startSeed({ loop: true }).then((s) => (servers.seed = s)),
  startEdgesync({ assets: false, loop: true }).then((s) => (servers.edgesync = s)),
  startEdgesync({ assets: false, loop: true }).then((s) => (servers.edgesync_b = s)),
]);
const stopAll = () => Promise.all(Object.values(servers).map((s) => s.stop()));
const failedStart = startAll.find((r) => r.status === 'rejected');
if (failedStart) {
  await stopAll();
  throw failedStart.reason;
}

try {
  const url = Object.fromEntries(WORKERS.map((w) => [w, servers[w].url]));
  const get = (w, p, tok, headers = {}) => send(url[w], { path: p, token: tok, headers });
  // The fixtures of bench/floor.mjs: floor's KV key, seed's user and hash, edgesync's user
  // whose state token is in KV.
  expect(await get('floor', '/api/sync/check'), 200, 'floor: prime');
  const floorTag = '"s1"';
  const seedTok = await token('seed-user');
  expect(await send(url.seed, { method: 'POST', path: '/api/sync', token: seedTok, body: { cursor: 0, changes: [{ id: 'seed-0', title: 'task', version: 1, updated_at: Date.now() }] } }), 200, 'seed: push');
  const seedTag = expect(await get('seed', '/api/sync/check', seedTok), 200, 'seed: hash check').headers.etag;
  const esTok = await token('fast-user');
  const esTag = {};
  for (const w of ['edgesync', 'edgesync_b']) {
    const pushed = expect(await send(url[w], { method: 'POST', path: '/api/sync', token: esTok, body: { cursor: 0, changes: [{ type: 'tasks', id: 'f-1', title: 'x' }] } }), 200, `${w}: prime 304`);
    esTag[w] = pushed.json.etag;
  }
  const kinds = {
    health: {
      label: 'GET /api/health',
      ok: 200,
      calls: opt.calls * 6,
      req: { floor: { path: '/api/health' }, seed: { path: '/api/health' }, edgesync: { path: '/api/health' }, edgesync_b: { path: '/api/health' } },
    },
    check304: {
      label: '304 state check from KV',
      ok: 304,
      calls: opt.calls,
      before: { seed: async () => expect(await get('seed', '/api/sync/check', seedTok), 200, 'seed: refresh hash') },
      req: {
        floor: { path: '/api/sync/check', headers: { 'if-none-match': floorTag } },
        seed: { path: '/api/sync/check', token: seedTok, headers: { 'if-none-match': seedTag } },
        edgesync: { path: '/api/sync/check', token: esTok, headers: { 'if-none-match': esTag.edgesync } },
        edgesync_b: { path: '/api/sync/check', token: esTok, headers: { 'if-none-match': esTag.edgesync_b } },
      },
    },
  };
  // One measured request: `n` calls of the entry; µs of workerd CPU per call.
  const measure = async (w, kind, n) => {
    const cpu0 = cpuOf(servers[w]);
    await sendLoop(url[w], kinds[kind].req[w], n, kinds[kind].ok);
    const cpu1 = cpuOf(servers[w]);
    return cpu0 && cpu1 ? ((cpu1.runtime - cpu0.runtime) * 1000) / n : null;
  };
  const results = {};
  for (const key of kindsWanted) {
    const kind = kinds[key];
    // warm-up: the JIT, and edgesync's verified-token and rate-limit state
    for (const w of WORKERS) {
      await kind.before?.[w]?.();
      await measure(w, key, Math.ceil(kind.calls / 4));
    }
    const rounds = Object.fromEntries(WORKERS.map((w) => [w, []]));
    for (let r = 0; r < opt.rounds; r++) {
      const order = WORKERS.map((_, i) => WORKERS[(i + r) % WORKERS.length]);
      const line = [];
      for (const w of order) {
        await kind.before?.[w]?.();
        const us = await measure(w, key, kind.calls);
        rounds[w].push(us);
        line.push(`${w} ${fmt(us)}`);
      }
      log(`${key} round ${r + 1}/${opt.rounds}: ${line.join(', ')} µs of workerd CPU per call`);
    }
    // The finite values' median and range (cpuOf is null off Linux: such rounds count nowhere).
    const spread = (raw) => {
      const xs = raw.filter(Number.isFinite);
      return { median: median(xs), min: xs.length ? Math.min(...xs) : null, max: xs.length ? Math.max(...xs) : null };
    };
    const per = (a, b) => rounds[a].map((x, i) => x / rounds[b][i]);
    const ratio = (xs) => {
      const { median: value, min, max } = spread(xs);
      return { value, min, max };
    };
    results[key] = {
      label: kind.label,
      calls: kind.calls,
      us: Object.fromEntries(Object.entries(rounds).map(([w, xs]) => [w, { ...spread(xs), rounds: xs }])),
      // theirs ÷ edgesync's, per round: as bench/floor.mjs's "from CPU per request"
      ratios: {
        floor: ratio(per('floor', 'edgesync')),
        seed: ratio(per('seed', 'edgesync')),
        aa: ratio(per('edgesync_b', 'edgesync')),
      },
    };
  }
  const out = { calls: opt.calls, rounds: opt.rounds, measured_at: new Date().toISOString(), seconds: Math.round((Date.now() - started) / 1000), kinds: results };
  writeResult('inproc', out);
  console.log('\nworkerd CPU per call of the entry, inside the isolate (median of the rounds [min–max]):');
  for (const [key, r] of Object.entries(results)) {
    const cell = (w) => `${fmt(r.us[w].median)} [${fmt(r.us[w].min)}–${fmt(r.us[w].max)}] µs`;
    console.log(`${r.label.padEnd(26)} floor ${cell('floor')}   seed ${cell('seed')}   edgesync ${cell('edgesync')} (again: ${cell('edgesync_b')})`);
    const rr = (x) => `${fmt(x.value, 2)} [${fmt(x.min, 2)}–${fmt(x.max, 2)}]`;
    console.log(`${''.padEnd(26)} floor ÷ edgesync ${rr(r.ratios.floor)}, seed ÷ edgesync ${rr(r.ratios.seed)}, A/A (a second edgesync ÷ edgesync) ${rr(r.ratios.aa)}`);
  }
} finally {
  closeAgents();
  await stopAll();
}
