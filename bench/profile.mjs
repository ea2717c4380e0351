// A CPU profile of the edgesync isolate under load, taken through the V8 inspector that
// `wrangler dev` exposes (`--inspector-port`) with the DevTools protocol's Profiler
// (Profiler.enable, setSamplingInterval, start; closed-loop load for N seconds; stop).
// Prints the top entries by self time (function, url or wasm function, self ms, share of
// the profile and of its busy part), a summary by origin (wasm, JS glue, runtime) and the
// isolate's busy time per request; writes the profile (open it in Chrome DevTools or
// speedscope) and the summary to bench/results/.
//
//   node bench/profile.mjs --kind health|check304|checkD1|push10 [--seconds 5] [--top 15]
//
// The worker is build/ as scripts/build.sh leaves it (worker-build keeps the wasm name
// section, so Rust functions appear by their mangled-then-demangled names).
// WebSocket: Node 20's undici client (`--experimental-websocket`; this script re-runs
// itself with the flag when `globalThis.WebSocket` is missing). No npm package needed.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

import { abbrev } from './lib/common.mjs';

if (typeof globalThis.WebSocket === 'undefined') {
  const r = spawnSync(process.execPath, ['--experimental-websocket', '--no-warnings', ...process.argv.slice(1)], { stdio: 'inherit' });
  process.exit(r.status ?? 1);
}

const { token } = await import('../tests/helpers/client.mjs');
const { RESULTS, closeAgents, expect, flags, log, send, tasks, writeResult } = await import('./lib/common.mjs');
const { load } = await import('./lib/load.mjs');
const { cpuOf, edgesyncWithColdUsers, sendLoop, startEdgesync, startFloor, startSeed } = await import('./lib/workers.mjs');

const KINDS = ['health', 'check304', 'checkD1', 'push10'];
const opt = flags(
  { kind: 'check304', worker: 'edgesync', seconds: 5, warmupS: 1, concurrency: 8, top: 15, intervalUs: 100, coldUsers: 6_000, out: '', assets: false, quick: false, loop: 0 },
  {
    kind: KINDS.join('|'),
    worker: 'edgesync, or a reference worker for comparison: floor (health, check304), seed (health, check304, checkD1)',
    seconds: 'profiled seconds of load',
    warmupS: 'load before the profiler starts (JIT warm-up)',
    concurrency: 'requests in flight',
    top: 'entries to print',
    intervalUs: 'sampling interval (µs)',
    coldUsers: 'checkD1: never-seen users (one per request; the run ends early when they run out)',
    out: 'profile file (default bench/results/profile-<kind>.cpuprofile)',
    assets: "edgesync with wrangler.toml's [assets] (the asset router in front: its CPU counts in the workerd figure, not in the isolate's profile)",
    quick: '2 s of load',
    loop: 'N > 0: no HTTP load; requests of N calls each inside the isolate (bench/inproc.mjs\'s wrapper): the profile of the worker alone',
  },
);
if (!KINDS.includes(opt.kind)) throw new Error(`--kind must be one of ${KINDS.join(', ')}`);
const REF_KINDS = { floor: ['health', 'check304'], seed: ['health', 'check304', 'checkD1'] };
if (opt.worker !== 'edgesync' && !REF_KINDS[opt.worker]?.includes(opt.kind)) throw new Error(`--worker ${opt.worker} does not serve --kind ${opt.kind}`);
if (opt.quick) {
  opt.seconds = Math.min(opt.seconds, 2);
  opt.warmupS = Math.min(opt.warmupS, 0.5);
  opt.coldUsers = Math.min(opt.coldUsers, 3_000);
}
// --loop runs are written apart: report.mjs reads profile-<kind>.json as a profile under HTTP load.
const tag = `${opt.worker === 'edgesync' ? opt.kind : `${opt.worker}-${opt.kind}`}${opt.loop > 0 ? '-loop' : ''}`;
const out = opt.out || path.join(RESULTS, `profile-${tag}.cpuprofile`);

/** A minimal DevTools protocol session over a WebSocket. */
async function devtools(wsUrl) {
  // miniflare's inspector proxy accepts only local (or DevTools) origins and wants one.
  const ws = new WebSocket(wsUrl, { headers: { origin: 'http://127.0.0.1' } });
  await new Promise((resolve, reject) => {
    ws.addEventListener('open', resolve, { once: true });
    ws.addEventListener('error', (e) => reject(new Error(`inspector ${wsUrl}: ${e.message || 'connection failed'}`)), { once: true });
  });
  let id = 0;
  const pending = new Map();
  ws.addEventListener('message', (ev) => {
    const msg = JSON.parse(typeof ev.data === 'string' ? ev.data : Buffer.from(ev.data).toString('utf8'));
    if (msg.id && pending.has(msg.id)) {
      const { resolve, reject, method } = pending.get(msg.id);
      pending.delete(msg.id);
      if (msg.error) reject(new Error(`${method}: ${msg.error.message}`));
      else resolve(msg.result);
    }
  });
  ws.addEventListener('close', () => {
    for (const p of pending.values()) p.reject(new Error('inspector closed'));
  });
  return {
    call: (method, params = {}) =>
      new Promise((resolve, reject) => {
        const i = ++id;
        pending.set(i, { resolve, reject, method });
        ws.send(JSON.stringify({ id: i, method, params }));
      }),
    close: () => ws.close(),
  };
}

/** The inspector's WebSocket URL of the worker (wrangler's inspector proxy lists it at /json). */
async function inspectorUrl(port) {
  const deadline = Date.now() + 20_000;
  let last = '';
  while (Date.now() < deadline) {
    try {
      const list = await (await fetch(`http://127.0.0.1:${port}/json`, { signal: AbortSignal.timeout(3000) })).json();
      const target = list.find((t) => t.webSocketDebuggerUrl) ?? null;
      if (target) return target.webSocketDebuggerUrl;
      last = JSON.stringify(list).slice(0, 300);
    } catch (e) {
      last = String(e.cause?.code || e.message);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`no inspector target on port ${port}: ${last}`);
}

/** Rust symbols without their crate hashes (`core[fd97c5af4268bc0c]::str` → `core::str`). */
const tidy = (name) => name.replace(/\[[0-9a-f]{16}\]/g, '').replace(/\.\d+$/, '');

/**
 * Self time per function of a V8 .cpuprofile, heaviest first, each with the caller its
 * self time mostly came from (`caller`, `callerShare`).
 */
function selfTimes(profile) {
  // scripts/build.sh moves the wasm's name section to build/wasm-names.json: name the
  // wasm frames from it (V8 calls an unnamed wasm function $funcN or wasm-function[N]).
  const namesFile = path.join(path.dirname(new URL(import.meta.url).pathname), '..', 'build', 'wasm-names.json');
  const wasmNames = fs.existsSync(namesFile) ? JSON.parse(fs.readFileSync(namesFile, 'utf8')) : {};
  for (const n of profile.nodes) {
    const cf = n.callFrame;
    const m = cf.url?.startsWith('wasm://') && /^(?:\$func(\d+)|wasm-function\[(\d+)\])$/.exec(cf.functionName);
    if (m && wasmNames[m[1] ?? m[2]]) cf.functionName = wasmNames[m[1] ?? m[2]];
  }
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map();
  const { samples, timeDeltas } = profile;
  for (let i = 0; i < samples.length; i++) {
    // a sample stands for the time until the next one
    const dt = (i + 1 < timeDeltas.length ? timeDeltas[i + 1] : 0) / 1000;
    self.set(samples[i], (self.get(samples[i]) || 0) + dt);
  }
  const frame = (cf) => `${tidy(cf.functionName || '(anonymous)')}${cf.url && !cf.url.startsWith('wasm://') ? ` (${path.basename(cf.url)}:${cf.lineNumber + 1})` : ''}`;
  const agg = new Map();
  for (const [id, ms] of self) {
    const cf = byId.get(id).callFrame;
    const key = `${cf.functionName}\0${cf.url}\0${cf.lineNumber}\0${cf.columnNumber}`;
    const a = agg.get(key) ?? { functionName: tidy(cf.functionName || '(anonymous)'), url: cf.url, line: cf.lineNumber, column: cf.columnNumber, scriptId: cf.scriptId, selfMs: 0, callers: {} };
    a.selfMs += ms;
    const pid = parent.get(id);
    const pcf = pid && byId.get(pid).callFrame.functionName !== '(root)' ? byId.get(pid).callFrame : null;
    const caller = pcf ? frame(pcf) : '—';
    const c = (a.callers[caller] ??= { ms: 0, at: pcf && { url: pcf.url, line: pcf.lineNumber, column: pcf.columnNumber, scriptId: pcf.scriptId } });
    c.ms += ms;
    agg.set(key, a);
  }
  return [...agg.values()]
    .map(({ callers, ...a }) => {
      const [caller, c] = Object.entries(callers).sort((x, y) => y[1].ms - x[1].ms)[0] ?? ['—', { ms: 0 }];
      return { ...a, caller, callerAt: c.at ?? null, callerShare: a.selfMs ? c.ms / a.selfMs : 0 };
    })
    .sort((a, b) => b.selfMs - a.selfMs);
}

const META = new Set(['(idle)', '(program)', '(garbage collector)', '(root)']);
function origin(e) {
  if (META.has(e.functionName)) return e.functionName;
  if (e.url.startsWith('wasm://')) return 'wasm';
  if (/shim\.m?js|index\.js|index_bg/.test(e.url)) return 'JS glue (build/, bundled as shim.js)';
  if (e.url.startsWith('node-internal:')) return 'node-compat internals (console formatting)';
  if (!e.url) return 'runtime builtins (no url)';
  return 'other JS';
}

// --- the worker and the load -----------------------------------------------------------
let srv;
let coldTokens = [];
const loop = opt.loop > 0;
if (loop && !['health', 'check304'].includes(opt.kind)) throw new Error('--loop serves --kind health or check304');
if (opt.worker === 'floor') srv = await startFloor({ log, loop });
else if (opt.worker === 'seed') srv = await startSeed({ loop });
else if (opt.kind === 'checkD1') {
  srv = await edgesyncWithColdUsers(opt.coldUsers + 1, 200, 'cold-', log, { assets: opt.assets });
  coldTokens = await Promise.all(Array.from({ length: opt.coldUsers + 1 }, (_, i) => token(`cold-${i}`)));
} else {
  srv = await startEdgesync({ assets: opt.assets, loop });
}
log(`${opt.worker} on ${srv.url}, inspector on ${srv.inspectorPort}`);
let session;
try {
  const base = srv.url;
  let spec;
  if (opt.kind === 'health') spec = { next: () => ({ path: '/api/health' }), ok: [200] };
  if (opt.worker === 'floor' && opt.kind === 'check304') {
    expect(await send(base, { path: '/api/sync/check' }), 200, 'floor: prime');
    spec = { next: () => ({ path: '/api/sync/check', headers: { 'if-none-match': '"s1"' } }), ok: [304] };
  } else if (opt.worker === 'seed' && opt.kind !== 'health') {
    const tok = await token('seed-user');
    const changes = Array.from({ length: 200 }, (_, i) => ({ id: `seed-${i}`, title: `task ${i}`, version: 1, updated_at: Date.now() + i }));
    expect(await send(base, { method: 'POST', path: '/api/sync', token: tok, body: { cursor: 0, changes } }), 200, 'seed: push');
    const etag = expect(await send(base, { path: '/api/sync/check', token: tok }), 200, 'seed: hash').headers.etag;
    spec = opt.kind === 'check304'
      ? { next: () => ({ path: '/api/sync/check', token: tok, headers: { 'if-none-match': etag } }), ok: [304] }
      : { next: () => ({ path: '/api/sync/check', token: tok }), ok: [200] };
  } else if (opt.worker !== 'edgesync') {
    /* health, above */
  } else if (opt.kind === 'check304') {
    const tok = await token('fast-user');
    const etag = expect(await send(base, { method: 'POST', path: '/api/sync', token: tok, body: { cursor: 0, changes: tasks(10, 'f') } }), 200, 'prime').json.etag;
    const probe = expect(await send(base, { path: '/api/sync/check', token: tok, headers: { 'if-none-match': etag } }), 304, '304 probe');
    if (probe.ops.d1 !== 0) throw new Error(`the primed 304 used D1: ${probe.opsHeader}`);
    spec = { next: () => ({ path: '/api/sync/check', token: tok, headers: { 'if-none-match': etag } }), ok: [304] };
  } else if (opt.kind === 'checkD1') {
    let next = 0;
    const p = expect(await send(base, { path: '/api/sync/check', token: coldTokens[next++] }), 200, 'cold probe');
    // as bench/floor.mjs: 1 D1 row, no KV token read or written (issue #10), the limiter's shared read at most
    if (p.ops.d1 !== 1 || p.ops['rows-read'] !== 1 || p.ops['kv-write'] !== 0 || !(p.ops['kv-read'] <= 1)) throw new Error(`the cold check probe cost ${p.opsHeader}`);
    spec = { next: () => ({ path: '/api/sync/check', token: coldTokens[Math.min(next++, coldTokens.length - 1)] }), ok: [200], cap: () => coldTokens.length - next };
  } else if (opt.kind === 'push10') {
    const users = await Promise.all(Array.from({ length: opt.concurrency }, async (_, s) => ({ token: await token(`push-${s}`), cursor: 0, n: 0 })));
    spec = {
      next: (s) => {
        const u = users[s];
        const changes = tasks(10, `p${s}`, u.n);
        u.n += 10;
        return { method: 'POST', path: '/api/sync', token: u.token, body: { cursor: u.cursor, changes } };
      },
      after: (s, res) => {
        if (res.status === 200 && res.json) users[s].cursor = res.json.cursor;
      },
      ok: [200],
    };
  }
  // --loop: one request at a time, each N calls of the entry inside the isolate.
  const runLoop = async (seconds) => {
    const until = performance.now() + seconds * 1000;
    let requests = 0;
    while (performance.now() < until) {
      await sendLoop(base, spec.next(0), opt.loop, spec.ok[0]);
      requests += opt.loop;
    }
    return { requests, errors: 0, rps: null };
  };
  const run = (seconds, cap) =>
    loop ? runLoop(seconds) : load({ base, concurrency: opt.concurrency, durationMs: seconds * 1000, warmupMs: 0, maxRequests: cap ?? 1_000_000, ...spec });

  const wsUrl = await inspectorUrl(srv.inspectorPort);
  session = await devtools(wsUrl);
  await session.call('Profiler.enable');
  await session.call('Profiler.setSamplingInterval', { interval: opt.intervalUs });
  if (opt.warmupS > 0) {
    const coldShare = opt.kind === 'checkD1' && opt.worker === 'edgesync' ? Math.floor(coldTokens.length * (opt.warmupS / (opt.warmupS + opt.seconds))) : undefined;
    await run(opt.warmupS, coldShare);
  }
  await session.call('Profiler.start');
  const t0 = performance.now();
  const cpu0 = cpuOf(srv);
  const res = await run(opt.seconds, spec.cap?.());
  const cpu1 = cpuOf(srv);
  const { profile } = await session.call('Profiler.stop');
  // The profiler samples the isolate thread's wall time: on a loaded machine, time the OS
  // gives to other processes still counts as "busy". The process's CPU time does not.
  const cpuUs = cpu0 && cpu1 && res.requests ? ((cpu1.runtime - cpu0.runtime) / res.requests) * 1000 : null;
  const wallMs = performance.now() - t0;
  await session.call('Profiler.disable');
  // The source line of each top JS entry (the bundle wrangler serves is temporary).
  const sources = new Map();
  const sourceLine = async (e) => {
    if (!e.url || e.url.startsWith('wasm://') || e.url.startsWith('node-internal:') || e.url.startsWith('cloudflare-internal:') || !e.scriptId || e.scriptId === '0') return null;
    try {
      if (!sources.has(e.scriptId)) sources.set(e.scriptId, (await session.call('Debugger.getScriptSource', { scriptId: e.scriptId })).scriptSource.split('\n'));
      const line = sources.get(e.scriptId)[e.line] ?? '';
      // minified glue: the name (a `__wbg_…` import) precedes the function it starts
      return { before: line.slice(Math.max(0, e.column - 200), e.column), after: line.slice(e.column, e.column + 40) };
    } catch {
      return null;
    }
  };
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, JSON.stringify(profile));

  const entries = selfTimes(profile);
  const total = entries.reduce((n, e) => n + e.selfMs, 0);
  const idle = entries.filter((e) => e.functionName === '(idle)').reduce((n, e) => n + e.selfMs, 0);
  const busy = total - idle;
  const byOrigin = {};
  for (const e of entries) byOrigin[origin(e)] = (byOrigin[origin(e)] || 0) + e.selfMs;
  const top = entries.filter((e) => e.functionName !== '(idle)').slice(0, opt.top);
  try {
    await session.call('Debugger.enable');
    for (const e of entries.filter((x) => x.functionName !== '(idle)').slice(0, 40)) e.source = await sourceLine(e);
    for (const e of entries.filter((x) => x.functionName !== '(idle)').slice(0, 40)) if (e.callerAt) e.callerSource = await sourceLine(e.callerAt);
    // wasm-bindgen's import shims are named `__wbg_<what>_<hash>`: the name says which JS API
    const wbg = (src) => [...(src?.before ?? '').matchAll(/(__wbg_[A-Za-z0-9_]+?)_[0-9a-f]{16}\s*:/g)].pop()?.[1] ?? null;
    const show = (src) => (src ? `${src.before.slice(-50)}${src.after}`.trim() : null);
    for (const e of entries) {
      if (e.source) [e.glue, e.source] = [wbg(e.source), show(e.source)];
      if (e.callerSource) [e.callerGlue, e.callerSource] = [wbg(e.callerSource), show(e.callerSource)];
    }
    await session.call('Debugger.disable');
  } catch (err) {
    log(`no script sources: ${err.message}`);
  }
  const short = (u) => (u.startsWith('wasm://') ? 'wasm' : u ? path.basename(u) : '');
  const fmt = (x, d = 1) => x.toFixed(d);
  const lines = [
    '',
    `${opt.worker} CPU profile, --kind ${opt.kind}: ${res.requests} requests in ${fmt(wallMs / 1000, 1)} s ${loop ? `(requests of ${opt.loop} calls inside the isolate, one at a time)` : `(${fmt(res.rps)} req/s, ${opt.concurrency} in flight, ${res.errors} errors)`}`,
    `profile ${fmt(total, 0)} ms, busy (not idle) ${fmt(busy, 0)} ms = ${fmt((busy / Math.max(1, res.requests)) * 1000, 0)} µs per request (wall time of the isolate thread); ` +
      `workerd process CPU ${cpuUs == null ? '—' : `${fmt(cpuUs, 0)} µs`} per request`,
    '',
    `${'self ms'.padStart(9)} ${'% busy'.padStart(7)}  function  (where)  ← main caller (its share of the self time)`,
    ...top.map(
      (e) =>
        `${fmt(e.selfMs).padStart(9)} ${fmt((e.selfMs / busy) * 100).padStart(6)}%  ${abbrev(e.functionName)}  (${short(e.url)}${e.url && !e.url.startsWith('wasm://') ? `:${e.line + 1}` : ''})` +
        `${e.glue ? ` = ${e.glue}` : ''}  ← ${abbrev(e.caller, 80)}${e.callerGlue ? ` = ${e.callerGlue}` : ''}${e.callerShare < 0.95 ? ` (${fmt(e.callerShare * 100, 0)}%)` : ''}` +
        (e.source ? `\n${' '.repeat(19)}| ${e.source}` : '') +
        (e.callerSource ? `\n${' '.repeat(19)}| caller: ${e.callerSource}` : ''),
    ),
    '',
    'by origin (self ms, % busy):',
    ...Object.entries(byOrigin)
      .filter(([k]) => k !== '(idle)')
      .sort((a, b) => b[1] - a[1])
      .map(([k, v]) => `${fmt(v).padStart(9)} ${fmt((v / busy) * 100).padStart(6)}%  ${k}`),
    '',
    `profile: ${path.relative(process.cwd(), out)} (Chrome DevTools → Performance → load, or speedscope)`,
  ];
  console.log(lines.join('\n'));
  writeResult(`profile-${tag}`, {
    kind: opt.kind,
    worker: opt.worker,
    params: opt,
    requests: res.requests,
    rps: res.rps,
    errors: res.errors,
    ops: res.ops,
    wall_ms: wallMs,
    profile_ms: total,
    busy_ms: busy,
    busy_us_per_request: (busy / Math.max(1, res.requests)) * 1000,
    workerd_cpu_us_per_request: cpuUs,
    by_origin: byOrigin,
    top: entries.filter((e) => e.functionName !== '(idle)').slice(0, 40).map((e) => ({ ...e, share_of_busy: e.selfMs / busy })),
    file: path.relative(path.dirname(RESULTS), out),
  });
  if (res.errors) process.exitCode = 1;
} finally {
  session?.close();
  closeAgents();
  await srv.stop();
}
