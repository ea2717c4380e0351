// Writes BENCHMARKS.md and BENCHMARKS-capacity.svg from bench/results/*.json and the
// criterion output of bench/native (scripts/bench.sh runs every producer first).
//   node bench/report.mjs [--quick]
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { capacityChart } from './chart.mjs';
import { abbrev as fold, flags, log, parseOps, readResult, ROOT } from './lib/common.mjs';

const abbrev = (name) => fold(name, 90);
import { sdkSection } from './lib/sdk-section.mjs';
import { BRIEF, LIMITS, RESOURCES, capacity, dailyUse } from './lib/model.mjs';

const opt = flags(
  { quick: false, failures: '', splice: false },
  {
    quick: 'mark the report as a quick run',
    failures: 'steps that failed (comma list), shown at the top',
    splice: 'only rewrite the reference-worker and profile part of section 1 in the existing BENCHMARKS.md (after running only bench/floor.mjs, bench/inproc.mjs and bench/profile.mjs), keeping the rest',
  },
);
const BEGIN = '<!-- bench/floor.mjs + bench/profile.mjs: begin -->';
const END = '<!-- bench/floor.mjs + bench/profile.mjs: end -->';
const CHART = 'BENCHMARKS-capacity.svg';
const BUDGET_MS = 10; // Workers Free plan CPU time per request
/** wrangler.toml's MAX_CHANGES and MAX_UPLOAD_RECORDS: the goal (issue #11) is every request up to them within 10 ms. */
const deployedLimit = (name) => Number(new RegExp(`^${name}\\s*=\\s*"(\\d+)"`, 'm').exec(fs.readFileSync(path.join(ROOT, 'wrangler.toml'), 'utf8'))?.[1] ?? NaN);
const MAX_CHANGES = deployedLimit('MAX_CHANGES');
const MAX_UPLOAD_RECORDS = deployedLimit('MAX_UPLOAD_RECORDS');
/** A request a deployment with the default limits accepts (pulls always). */
const underLimit = (t) => t.kind === 'pull' || !(t.changes > (t.kind === 'upload' ? MAX_UPLOAD_RECORDS : MAX_CHANGES));
/** The measured requests in the goal's three groups: pushes and pulls up to the default
 * MAX_CHANGES, full uploads up to MAX_UPLOAD_RECORDS, pushes above MAX_CHANGES (accepted
 * only where it is raised). */
const byLimit = (reqs) => ({
  sync: reqs.filter((r) => r.kind !== 'upload' && underLimit(r)),
  uploads: reqs.filter((r) => r.kind === 'upload' && underLimit(r)),
  above: reqs.filter((r) => !underLimit(r)),
});

const throughput = readResult('throughput');
const growth = readResult('growth');
const capacityRes = readResult('capacity');
const size = readResult('size');
const wasmSize = readResult('wasm-size');
const storage = readResult('storage');
const wasmCpu = readResult('wasm-cpu');
const floor = readResult('floor');
const inproc = readResult('inproc');
const profiles = ['check304', 'health', 'checkD1', 'push10'].map((k) => readResult(`profile-${k}`)).filter(Boolean);
const native = readCriterion(path.join(ROOT, 'bench', 'native', 'target', 'criterion'));

// ---- formatting -----------------------------------------------------------------------
const int = (n) => (n == null || !Number.isFinite(n) ? '—' : Math.round(n).toLocaleString('en-US'));
const dec = (n, d = 1) => (n == null || !Number.isFinite(n) ? '—' : n.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d }));
const users = (n) => (Number.isFinite(n) ? int(n) : 'never');
const pct = (x, d = 1) => (x == null || !Number.isFinite(x) ? '—' : `${dec(x * 100, d)}%`);
const kib = (b) => `${dec(b / 1024, 0)} KiB`;
const time = (ns) => (ns == null ? '—' : ns >= 1e6 ? `${dec(ns / 1e6, 2)} ms` : `${dec(ns / 1e3, 1)} µs`);
const table = (head, rows, align) => {
  const a = align ?? head.map((_, i) => (i === 0 ? 'l' : 'r'));
  return [
    `| ${head.join(' | ')} |`,
    `|${a.map((x) => (x === 'r' ? '---:' : '---')).join('|')}|`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ].join('\n');
};

function readCriterion(dir) {
  const out = {};
  if (!fs.existsSync(dir)) return out;
  for (const group of fs.readdirSync(dir)) {
    const gdir = path.join(dir, group);
    if (!fs.statSync(gdir).isDirectory() || group === 'report') continue;
    for (const name of fs.readdirSync(gdir)) {
      const f = path.join(gdir, name, 'new', 'estimates.json');
      if (!fs.existsSync(f)) continue;
      const e = JSON.parse(fs.readFileSync(f, 'utf8'));
      out[`${group}/${name}`] = { median: e.median.point_estimate, lo: e.median.confidence_interval.lower_bound, hi: e.median.confidence_interval.upper_bound, mtime: fs.statSync(f).mtime };
    }
  }
  return out;
}

function git(args) {
  try {
    return execFileSync('git', args, { cwd: ROOT, encoding: 'utf8' }).trim();
  } catch {
    return '';
  }
}

const md = [];
const p = (...lines) => md.push(...lines, '');

// ---- header ---------------------------------------------------------------------------
const WORKER_PATHS = ['crates', 'src', 'Cargo.toml', 'Cargo.lock', 'schema.sql', 'wrangler.toml', 'collections.json'];
const head = git(['rev-parse', '--short', 'HEAD']);
// The worker measured is the last commit that changed it (HEAD may be a benchmark-only commit).
const workerCommit = git(['log', '-1', '--format=%h', '--', ...WORKER_PATHS]);
const commitText = workerCommit && workerCommit !== head ? `\`${workerCommit}\` (last change to the worker; checkout \`${head}\`)` : `\`${head || '?'}\``;
const srcDirty = git(['status', '--porcelain', '--', ...WORKER_PATHS]) !== '';
p('# edgesync benchmarks');
p(
  `Generated by \`npm run bench\` (\`bash scripts/setup.sh && bash scripts/bench.sh\`) on ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC, ` +
    `worker at commit ${commitText}${srcDirty ? ' **with uncommitted changes to the worker**' : ''}, ` +
    `on ${os.cpus().length} cores (${os.cpus()[0]?.model?.trim() ?? 'cpu'}), Node ${process.version}. ` +
    `The worker runs in local workerd (\`wrangler dev\`, local D1 and KV, a fresh state per server) started by ` +
    '`tests/helpers/server.mjs`, like the integration tests.',
);
if (opt.quick) p('> **Quick run** (`--quick`): short load runs, fewer records and users, and a capacity replay without real-time waiting, so its KV hit/miss outcomes are not those of a real day. Not for comparison.');
if (opt.failures) p(`> **Failed steps: ${opt.failures}.** See the sections below; numbers of a failed step are missing or stale.`);
p(
  'Timings on this machine are noisy (other jobs share its two cores): compare the ratios within one run, never absolute ' +
    'timings across runs. Costs (D1 statements, rows, KV operations, from `X-Sync-Ops`) are exact and do not depend on load.',
);

// ---- headline -------------------------------------------------------------------------
const capMixes = capacityRes?.mixes ?? null;
const MIX_LABEL = { brief: "the brief's mix (1 device)", 'two-device': 'the two-device mix' };
const mixLabel = (m) => MIX_LABEL[m] ?? m;
const limitsLine = (c) =>
  c.rows.map((r) => `${r.label} ${r.key === 'kv_writes' && !Number.isFinite(r.model) ? 'never (guarded)' : users(r.model)}${r.key === c.binding ? ' ←' : ''}`).join(', ');
if (capMixes || growth || wasmCpu) {
  p('## Headline');
  const bullets = [];
  for (const [name, m] of Object.entries(capMixes ?? {})) {
    const c = m.capacity;
    const d = m.capacityD1;
    const b1 = c.rows.find((r) => r.key === c.binding);
    const b2 = d.rows.find((r) => r.key === d.binding);
    bullets.push(
      `- **${mixLabel(name)}** (${dec(m.perUser.kv.requests, 2)} requests, ${dec(m.replays.kv.pushes / m.replays.kv.users, 2)} pushes per user-day, one request per sync): ` +
        `**${users(b1.model)} users, bound by ${b1.label}** with KV trusted; **${users(b2.model)}, bound by ${b2.label}** with KV distrusted (\`QUOTA_KV_WRITES=0\`). ` +
        `Users at each limit, KV trusted: ${limitsLine(c)}; KV distrusted: ${limitsLine(d)}.`,
    );
  }
  if (growth) {
    const last = growth.rows.at(-1);
    const rr = (k) => last.kinds[k]?.opsParsed?.['rows-read'];
    const rw = (k) => last.kinds[k]?.opsParsed?.['rows-written'];
    bullets.push(
      `- **Storage** (packed pages; [section 3](#3-cost-growth-with-the-users-data)): at ${int(last.records)} records a check reads ${int(rr('checkD1'))} row, an idle sync ${int(rr('idleSyncD1'))}, a pull of 100 ${int(rr('syncPull100'))}; ` +
        `a push of 10 new writes ${int(rw('push10new'))} row(s), 100 edits of old records ${int(rw('push100'))}. ` +
        (growth.violations.length ? '**The flat-cost check FAILED, see section 3.**' : `The check, the 304, the idle sync and a pull of 100 read the same rows at ${growth.levels.map(int).join(', ')} records.`),
    );
  }
  if (floor?.ratios?.length) {
    bullets.push(
      '- Against the reference workers (issue #11, same run, [section 1](#1-throughput-and-latency)): ' +
        floor.ratios.map((r) => `${r.name} **${dec(r.value, 2)}×** in req/s${r.cpu ? `, ${dec(r.cpu.value, 2)}× in CPU per request` : ''} (goal ≥ ${r.goal})`).join('; ') +
        '.',
    );
  }
  const reqs = wasmCpu?.requests?.filter((r) => r.ms != null);
  if (reqs?.length) {
    const worstOf = (list) => list.reduce((m, r) => (r.ms > m.ms ? r : m));
    const { sync, uploads, above } = byLimit(reqs);
    const part = (list, what, why = '') => {
      if (!list.length) return '';
      const over = list.filter((r) => !r.within);
      const worst = worstOf(list);
      return `${over.length ? `**${over.length} of ${list.length} ${what} over the Free plan's 10 ms**` : `**all ${list.length} ${what} within the Free plan's 10 ms**`} (the largest: ${cpuWhat(worst)}, ${dec(worst.ms, 2)} ms, ${pct(worst.ms / BUDGET_MS, 0)} of 10 ms)${why}`;
    };
    bullets.push(
      `- **CPU** (pure path of a request in wasm under V8, [section 4](#4-size-and-cpu)): ` +
        [
          part(sync, `kinds of push and pull up to \`MAX_CHANGES\` (${int(MAX_CHANGES)}, the default)`),
          part(uploads, `full uploads up to \`MAX_UPLOAD_RECORDS\` (${int(MAX_UPLOAD_RECORDS)})`, ", as a full upload's CPU grows with the type's stored records, which no limit bounds"),
          above.length ? `pushes above the default \`MAX_CHANGES\` (accepted only where it is raised, a Paid-plan setting): ${above.filter((r) => !r.within).length} of ${above.length} over, the largest ${cpuWhat(worstOf(above))} at ${dec(worstOf(above).ms, 2)} ms` : '',
        ].filter(Boolean).join('; ') + '.',
    );
  }
  p(...bullets);
}

function cpuWhat(t) {
  if (t.kind === 'pull') return `a pull of ${int(t.rows)} from a head of ${int(t.head_records)}`;
  if (t.kind === 'upload') return `a full upload of ${int(t.changes)} records over a user of ${int(t.user_records)} records`;
  return `a push of ${int(t.changes)} ${t.deletes ? 'deletes' : t.edits ? 'edits' : 'new records'} into a user of ${int(t.user_records)} records`;
}

// ---- 1. throughput --------------------------------------------------------------------
p('## 1. Throughput and latency');
if (floor || inproc || profiles.length) {
  p(BEGIN);
  if (floor) floorSection(floor);
  if (inproc) inprocSection(inproc);
  if (profiles.length) profileSection(profiles);
  p(END);
  p('### Request kinds of edgesync');
}
if (opt.splice) {
  // Only the part between the markers: the rest of BENCHMARKS.md stays as the last full run left it.
  const file = path.join(ROOT, 'BENCHMARKS.md');
  const old = fs.readFileSync(file, 'utf8');
  const i = md.indexOf(BEGIN);
  const j = md.indexOf(END);
  if (i < 0) throw new Error('--splice: no bench/floor.mjs, bench/inproc.mjs or bench/profile.mjs results in bench/results/');
  const when = `_This part regenerated on its own (\`node bench/report.mjs --splice\`) on ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC, worker at commit ${commitText}${opt.quick ? ', **quick run**' : ''}; the rest of this file is from the run named at the top._`;
  const part = [BEGIN, '', when, '', ...md.slice(i + 1, j), END].join('\n').replace(/\n{3,}/g, '\n\n');
  let text;
  if (old.includes(BEGIN) && old.includes(END)) text = old.slice(0, old.indexOf(BEGIN)) + part + old.slice(old.indexOf(END) + END.length);
  else {
    const h = old.indexOf('## 1. Throughput and latency');
    if (h < 0) throw new Error('--splice: BENCHMARKS.md has no section 1');
    const after = old.indexOf('\n', h) + 1;
    text = `${old.slice(0, after)}\n${part}\n\n### Request kinds of edgesync\n${old.slice(after)}`;
  }
  fs.writeFileSync(file, text.replace(/\n{3,}/g, '\n\n'));
  log('wrote section 1 (reference workers, profiles) of BENCHMARKS.md');
  process.exit(0);
}
if (!throughput) p('_Not measured in this run._');
else {
  const k = Object.fromEntries(throughput.kinds.map((x) => [x.key, x]));
  const a = k.fast304;
  const b = k.fast304b;
  const base = { rps: (a.rps + b.rps) / 2, p50: (a.p50 + b.p50) / 2, p99: (a.p99 + b.p99) / 2, server_p50: (a.server_p50 + b.server_p50) / 2 };
  p(
    `A closed-loop load client (\`bench/lib/load.mjs\`, Node's \`http\` with keep-alive) keeps **${throughput.params.concurrency} requests in flight** ` +
      `for ${throughput.params.durationS} s per kind after ${throughput.params.warmupS} s of warm-up, bounded by ${int(throughput.params.maxRequests)} requests. ` +
      'Latency is measured at the client; "server p50" is the worker\'s own `Server-Timing: total`. ' +
      `Ratios are to the mean of the two 304 runs (first and last: ${dec(a.rps)} and ${dec(b.rps)} req/s, which shows the drift of the machine's load during the run). ` +
      '`scripts/bench.sh` runs this while the capacity replay (section 5, another worker) is set up and idle: its day starts afterwards.',
  );
  const rows = throughput.kinds
    .filter((x) => x.key !== 'fast304b')
    .map((x) => [
      `${x.label}${x.key === 'fast304' ? ' (mean of the first and last run)' : ''}<br><sub>${x.request}</sub>`,
      dec(x.key === 'fast304' ? base.rps : x.rps),
      dec(x.key === 'fast304' ? base.p50 : x.p50),
      dec(x.key === 'fast304' ? base.p99 : x.p99),
      dec(x.key === 'fast304' ? base.server_p50 : x.server_p50),
      int(x.errors),
      x.key === 'fast304' ? '1' : dec(x.rps / base.rps, 2),
      x.key === 'fast304' ? '1' : dec(x.p50 / base.p50, 1),
    ]);
  p(table(['kind', 'req/s', 'p50 ms', 'p99 ms', 'server p50 ms', 'errors', 'req/s ÷ 304', 'p50 ÷ 304'], rows));
  p(
    '- The **cold check** sends each request as a user the worker has never seen, without `If-None-Match`: D1 is asked for the sequence (1 statement; ' +
      '0 rows because the user has no row yet, a known user reads 1). Since issue #10 no KV state token is read or written on it (a KV value is never handed out as a tag, ' +
      "and tokens are written only ahead of commits); the rate limiter reads its shared set of throttled users at most once a minute per isolate (section 2 has the exact costs).",
    '- Pushes use one user per in-flight slot, each pushing new tasks with its current cursor (pushes of one user would race and retry).',
  );
}

function floorSection(f) {
  const W = ['floor', 'seed', 'edgesync'];
  const kinds = Object.entries(f.kinds);
  p('### Against the reference workers (issue #11)');
  p(
    `The two reference workers of \`../shared/reference/\` run beside edgesync in this run (\`bench/floor.mjs\`, built and started by \`bench/lib/workers.mjs\`): ` +
      '**floor**, a bare workers-rs worker (same `worker` version and release profile, built with `worker-build --release` and the project\'s `Cargo.lock`), ' +
      "and **seed**, the brief's JavaScript worker (HS256 by Web Crypto, KV hash cache, `COUNT/MAX/SUM` over the user's tasks). " +
      `Each under \`wrangler dev\` on its own port; the closed-loop client keeps ${f.params.concurrency} requests in flight for ${f.params.durationS} s per worker ` +
      `(after ${f.params.warmupS} s of warm-up), in ${f.params.rounds} rounds that run every worker in turn (the order rotated each round), ` +
      'so that the machine\'s load drift hits all alike. Cells: median req/s over the rounds [min–max]. Ratios are taken per round (the workers measured ' +
      `seconds apart) and then their median [min–max over the rounds]. Measured at ${String(f.generated ?? '').slice(11, 16)} UTC.`,
  );
  const cell = (w) => (w ? `${dec(w.rps)} <sub>[${int(w.min)}–${int(w.max)}]</sub>` : '—');
  const hasCpu = kinds.some(([, k]) => Object.values(k.workers).some((w) => w.cpu_runtime_ms != null));
  const us = (ms) => (ms == null ? '—' : `${int(ms * 1000)} µs`);
  p(
    table(
      ['path', ...W.map((w) => `${w} req/s`), ...(hasCpu ? W.map((w) => `${w} CPU/req`) : [])],
      kinds.map(([, k]) => [k.label, ...W.map((w) => cell(k.workers[w])), ...(hasCpu ? W.map((w) => us(k.workers[w]?.cpu_runtime_ms)) : [])]),
    ),
  );
  if (hasCpu) {
    p(
      "CPU/req: user + system CPU time of the worker's own workerd process (the one with the inspector, which also serves the local KV and D1) during the measured period, " +
        "divided by the requests answered (Linux `/proc`, 10 ms ticks), median over the rounds. Unlike req/s it does not depend on how busy the machine's cores are with other work. " +
        "wrangler's proxy workerd and its node process are not counted (they forward every worker's requests alike).",
    );
  }
  if (f.ratios?.length) {
    const cpuCell = (r) => (r.cpu ? `**${dec(r.cpu.value, 2)}** <sub>[${dec(r.cpu.min, 2)}–${dec(r.cpu.max, 2)}]</sub> ${r.cpu.met ? 'met' : '**not met**'}` : '—');
    p(
      table(
        ['ratio (issue #11 goal)', 'req/s: median', 'rounds min–max', '', ...(hasCpu ? ['from CPU/req (theirs ÷ edgesync\'s) [min–max]'] : []), 'goal'],
        f.ratios.map((r) => [r.name, `**${dec(r.value, 2)}**`, `${dec(r.min, 2)}–${dec(r.max, 2)}`, r.met ? 'met' : '**not met**', ...(hasCpu ? [cpuCell(r)] : []), `≥ ${r.goal}`]),
        ['l', 'r', 'r', 'l', ...(hasCpu ? ['r'] : []), 'r'],
      ),
    );
  }
  const opsOf = (k, w) => Object.entries(f.kinds[k]?.workers[w]?.ops ?? {}).sort((a, b) => b[1] - a[1]).map(([o, n]) => `\`${o}\` (${int(n)})`).join(', ');
  const errs = kinds.flatMap(([key, k]) => W.filter((w) => k.workers[w]?.errors).map((w) => `${w} ${key}: ${k.workers[w].errors}`));
  p(
    '- **304 state check from KV**: floor reads one KV key and compares it with `If-None-Match` (no auth); seed verifies the HS256 token with Web Crypto and reads one KV key; ' +
      `edgesync answers from its KV state token (JWT, rate limit, one KV read; its responses: ${opsOf('check304', 'edgesync') || '—'}).`,
    `- **Check answered from D1**: seed's hash check (no \`If-None-Match\`) reads its KV entry, scans the user's ${f.params.tasks} tasks (\`COUNT/MAX/SUM\`) and writes KV, awaited. ` +
      `edgesync's is a check without \`If-None-Match\` by a user new to the isolate: every request is another user holding ${f.params.tasks} tasks (one seeded through the API by a worker that writes nothing to KV, ` +
      'then cloned in D1 before the measured worker started); such a check always asks D1 (a KV value is never handed out as a tag, issue #10): ' +
      `D1 reads 1 row, no KV token is read or written (the rate limiter reads its shared set at most once a minute; its responses: ${opsOf('checkD1', 'edgesync') || '—'}). floor has no such path.`,
    `- Errors: ${errs.length ? errs.join(', ') : 'none'}. Load average at the start: ${f.params.loadavg.map((x) => dec(x, 2)).join(', ')}; the step took ${int(f.seconds)} s.`,
  );
}

function inprocSection(r) {
  const W = ['floor', 'seed', 'edgesync'];
  p('### Inside the isolate, without HTTP');
  p(
    '`bench/inproc.mjs`: each worker behind a small wrapper of its own entry (`bench/lib/workers.mjs`, `loop`) that hands one request to the entry N times in a row ' +
      'inside the isolate; the workerd process\'s CPU time over that one request ÷ N is what a request costs the worker and the runtime\'s handling of its `Request` and ' +
      '`Response`, plus the local KV simulator on the 304 (the same KV read for all three), without the TCP and HTTP parsing that the table above also carries and ' +
      'without a load client beside it. A class entry (workers-rs\'s, the floor\'s) is constructed per call, as workerd does per request. ' +
      `Cells: µs per call, median of ${r.rounds} rounds [min–max] (order rotated per round). **A/A** is a second edgesync server of the same build in the rotation: ` +
      'its ratio to the first is what this machine\'s noise does to any ratio here.',
  );
  const kinds = Object.values(r.kinds);
  const cell = (x) => (x ? `${dec(x.median)} <sub>[${dec(x.min)}–${dec(x.max)}]</sub>` : '—');
  const ratio = (x) => `**${dec(x.value, 2)}** <sub>[${dec(x.min, 2)}–${dec(x.max, 2)}]</sub>`;
  p(
    table(
      ['path', 'calls per measured request', ...W.map((w) => `${w} µs/call`), 'floor ÷ edgesync', 'seed ÷ edgesync', 'A/A'],
      kinds.map((k) => [k.label, int(k.calls), ...W.map((w) => cell(k.us[w])), ratio(k.ratios.floor), ratio(k.ratios.seed), ratio(k.ratios.aa)]),
    ),
  );
}

function profileSection(list) {
  p('### CPU profile of the edgesync isolate');
  p(
    '`bench/profile.mjs` drives the DevTools protocol\'s `Profiler` over the V8 inspector of `wrangler dev` while the load client runs one request kind, ' +
      'and sums self time per function (`bench/results/profile-<kind>.cpuprofile` opens in Chrome DevTools or speedscope). ' +
      '"busy" is the profile minus `(idle)`. V8 samples the isolate thread\'s wall time: on a loaded machine the time the OS gives other processes still lands on ' +
      'whatever function was running, so the shares are the useful part, and the workerd process\'s CPU time (from `/proc`) is the measure of cost. ' +
      '`__wbg_*` names are the wasm-bindgen imports of the JS glue the entry runs in or is called from (e.g. `__wbg_log`: `console.log`).',
  );
  for (const pr of list) {
    const origins = Object.entries(pr.by_origin).filter(([k]) => k !== '(idle)').sort((a, b) => b[1] - a[1]);
    p(
      `**${pr.kind}**: ${int(pr.requests)} requests at ${dec(pr.rps)} req/s, busy ${dec(pr.busy_ms, 0)} ms of ${dec(pr.profile_ms, 0)} ms profiled = ${int(pr.busy_us_per_request)} µs per request of the isolate thread's wall time` +
        `${pr.workerd_cpu_us_per_request != null ? ` (the workerd process's CPU: **${int(pr.workerd_cpu_us_per_request)} µs per request**)` : ''}; ` +
        `by origin: ${origins.map(([k, v]) => `${k} ${pct(v / pr.busy_ms, 0)}`).join(', ')}.`,
    );
    const short = (u) => (u?.startsWith('wasm://') ? 'wasm' : u ? path.basename(u) : 'builtin');
    const code = (x) => `\`${abbrev(x).replace(/\|/g, '\\|')}\``;
    p(
      table(
        ['function', 'where', 'main caller (share)', 'self ms', '% busy'],
        pr.top.slice(0, 15).map((e) => [
          code(e.functionName),
          `${short(e.url)}${e.glue ? ` ${code(e.glue)}` : ''}`,
          `${e.caller === '—' ? '—' : code(e.caller)}${e.callerGlue ? ` = ${code(e.callerGlue)}` : ''}${e.callerShare < 0.95 ? ` (${pct(e.callerShare, 0)})` : ''}`,
          dec(e.selfMs),
          pct(e.share_of_busy),
        ]),
        ['l', 'l', 'l', 'r', 'r'],
      ),
    );
  }
}

// ---- 2. cost per kind -----------------------------------------------------------------
p('## 2. Cost per request kind');
if (throughput) {
  const KEYS = ['d1', 'rows-read', 'rows-written', 'kv-read', 'kv-write'];
  const cell = (hist, key) => {
    const byVal = {};
    let n = 0;
    for (const [h, c] of Object.entries(hist)) {
      const v = parseOps(h)[key];
      byVal[v] = (byVal[v] || 0) + c;
      n += c;
    }
    const vals = Object.keys(byVal).map(Number).sort((x, y) => x - y);
    if (vals.length === 1) return int(vals[0]);
    return vals.map((v) => `${int(v)} (${pct(byVal[v] / n, 0)})`).join(' / ');
  };
  const rows = throughput.kinds.filter((x) => x.key !== 'fast304b').map((x) => [x.label, ...KEYS.map((key) => cell(x.ops, key)), int(x.requests)]);
  if (growth) {
    const last = growth.rows.at(-1);
    for (const [key, label] of [
      ['checkD1', 'check from D1 (KV missed or distrusted), user with data'],
      ['notModifiedD1', '304 from D1'],
      ['idleSyncKv', 'idle sync (POST /api/sync, current cursor), KV trusted'],
      ['idleSyncD1', 'idle sync (POST /api/sync, current cursor), KV distrusted'],
      ['syncPull100', 'pull of 100 via POST /api/sync (limit 100)'],
    ]) {
      const o = last.kinds[key]?.opsParsed;
      if (o) rows.push([`${label}²`, ...KEYS.map((kk) => int(o[kk])), '—']);
    }
  }
  p(
    'Exact values from `X-Sync-Ops` of every measured response of section 1 (where a value varied, each value with its share). ' +
      'KV writes of the state token happen after the response (`waitUntil`) and are counted in the request that causes them.',
  );
  p(table(['kind', 'D1 statements', 'rows read', 'rows written', 'KV reads', 'KV writes', 'responses'], rows));
  p(
    '² from the cost-growth run (section 3), at its largest user.',
    '',
    '- Records are packed into per-user pages (README, "Storage: records packed into pages"): a push of a user whose records fit the head page writes 1 row whatever its size, ' +
      'a larger user\'s push writes 1 + the bucket pages it touches (section 3 has rows per push at each size).',
  );
}

// ---- 3. growth ------------------------------------------------------------------------
p('## 3. Cost growth with the user\'s data');
if (!growth) p('_Not measured in this run._');
else {
  p(
    `One user seeded to ${growth.levels.map(int).join(', ')} tasks with pushes of 1,000 (\`MAX_CHANGES=1000\`, a Paid-plan setting; the default is 100) into two workers (one as configured otherwise, where KV answers checks and 304s, ` +
      'and one with `QUOTA_KV_WRITES=0`, where the worker distrusts KV and answers from D1). Each cell: rows read (D1 statements; rows written when any). ' +
      `Every request ran ${growth.params.repeat} times and cost the same each time unless shown otherwise.`,
  );
  const kinds = [...new Set(growth.rows.flatMap((r) => Object.keys(r.kinds)))];
  const rows = kinds.map((key) => {
    const label = growth.rows.find((r) => r.kinds[key])?.kinds[key].label ?? key;
    const flat = growth.mustBeFlat.includes(key);
    return [
      `${label}${flat ? ' ✱' : ''}`,
      ...growth.rows.map((r) => {
        const k = r.kinds[key];
        if (!k) return '—';
        if (Array.isArray(k.ops)) return `varies: ${k.ops.join(' / ')}`;
        const o = k.opsParsed;
        return `${int(o['rows-read'])} (${o.d1}${o['rows-written'] ? `; ${int(o['rows-written'])} w` : ''})`;
      }),
    ];
  });
  p(table(['request', ...growth.levels.map((n) => `${int(n)} records`)], rows));
  p('✱ must not grow with the total: `scripts/bench.sh` fails when one does.');
  if (growth.violations.length) p('**Regression — these grew:**', ...growth.violations.map((v) => `- ${v}`));
  else p(`Result: **flat** — ${growth.mustBeFlat.length} request kinds read the same rows at every size.`);
  if (growth.flagged.length) p('Grew (not required to be flat):', ...growth.flagged.map((v) => `- ${v}`));
}

// ---- 4. size and CPU ------------------------------------------------------------------
p('## 4. Size and CPU');
if (size) {
  p(
    table(
      ['artifact', 'raw', 'gzip -9'],
      [
        ['`build/index_bg.wasm`', `${int(size.wasm.raw)} B (${kib(size.wasm.raw)})`, `${int(size.wasm.gzip9)} B (${kib(size.wasm.gzip9)})`],
        ['wasm + JS glue (`index.js`, `shim.mjs`)', `${int(size.total.raw)} B`, `${int(size.total.gzip9)} B (${pct(size.total.gzip9 / (3 * 1024 * 1024))} of the former 3 MB Free limit)`],
      ],
      ['l', 'r', 'r'],
    ),
  );
}
if (wasmSize) {
  const kb = (b) => `${dec(b / 1000, 1)} KB`;
  p(
    `Where the bytes are (\`node bench/wasm-size.mjs\`, from the module's function names): code ${kb(wasmSize.code.raw)} raw, ${kb(wasmSize.code.gzip9)} gzipped alone; data ${kb(wasmSize.data.raw)} raw, ${kb(wasmSize.data.gzip9)} gzipped alone. ` +
      'A function counts for the crate its name starts with, so the `edgesync` crate\'s async functions hold everything inlined into them (serde derives, workers-rs calls). "gzip saved" is what the code section loses in gzip without that crate\'s functions.',
  );
  p(
    table(
      ['crate', 'functions', 'raw', 'gzip saved'],
      wasmSize.crates.slice(0, 12).map((c) => [c.crate, int(c.fns), int(c.raw), c.gzipSaved == null ? '—' : int(c.gzipSaved)]),
      ['l', 'r', 'r', 'r'],
    ),
  );
  p(
    table(
      ['largest functions', 'raw'],
      [...wasmSize.functions].sort((a, b) => b.raw - a.raw).slice(0, 8).map((f) => [`\`${f.name.length > 100 ? `${f.name.slice(0, 97)}...` : f.name}\``, int(f.raw)]),
      ['l', 'r'],
    ),
  );
}
const JWT_OPS = [
  ['jwt/hs256_verify', 'JWT HS256 verification'],
  ['jwt/rs256_verify', 'JWT RS256 verification (2048-bit key from a JWKS)'],
  ['jwt/es256_verify', 'JWT ES256 verification (P-256 key from a JWKS)'],
  ['jwt/rs256_repeated', 'the same RS256 token again (the isolate\'s token cache: no signature check)'],
  ['jwt/es256_repeated', 'the same ES256 token again (the isolate\'s token cache)'],
  ['jwt/verifier_from_jwks', 'verifier built from a JWKS (once per isolate, cached)'],
];
const STEP_LABEL = {
  parse_validate: 'body → JSON → `parse_sync`',
  parse_head: 'the head\'s `hex(body)` decoded, inflated, parsed (`codec::decode_hex`)',
  current_plan: 'buckets read, `Pages::current`, `plan::plan`',
  apply_spill: '`Pages::apply`, `spill_needed` / `spill`',
  serialize: 'head (and spilled buckets) serialized and deflated (`codec::encode`)',
  pull_reply: '`Pages::changes` + reply serialized',
};
const wasmBy = Object.fromEntries((wasmCpu?.results ?? []).map((r) => [r.id, r]));
if (Object.keys(native).length || wasmCpu) {
  p(
    'The pure path of a request as the worker runs it over the packed pages, measured by `bench/native` (`crates/core` as a path dependency; ' +
      '`fixtures::push_request` / `pull_request`, the same calls as `crates/worker` store.rs `try_push` / `pull` and handlers.rs `sync`): ' +
      'the request body parsed and validated, the head page\'s body parsed (`codec::decode_hex`), the buckets the pushed keys need parsed, `Pages::current`, `plan::plan`, `Pages::apply`, ' +
      '`spill_needed` / `spill` when due (with its buckets), the head (and any changed bucket) serialized for the write batch, the pull of the same transaction and the reply serialized. ' +
      `Timed as wasm32 in V8 (${wasmCpu?.engine ?? 'not run'}; \`bench/wasm-cpu.mjs\`), the engine workerd runs the worker in, and natively with criterion. Both use the worker's release settings ` +
      '(`opt-level = "z"`, miniz_oxide and the page codec `edgesync-codec` at 3, fat LTO, one codegen unit). Medians; the share is of the Free plan\'s **10 ms CPU per request**. ' +
      (wasmCpu?.results?.every((r) => r.clock === 'cpu')
        ? 'The wasm times are the thread\'s CPU time (WASI\'s CPU-time clock; the wall-time medians are in `bench/results/wasm-cpu.json`), so other work on the machine inflates them far less than wall time. '
        : 'The wasm times are wall time (this Node\'s WASI gave no CPU-time clock): on a loaded machine they overstate the CPU. ') +
      'Users are built by pushes of 100 tasks with every field set (≈400 bytes each) through the same pure path, so their pages are what the worker makes of them. ' +
      'Not included: the JS↔wasm copies of the request body and of the page bodies D1 returns, V8\'s JSON work in the glue, JWT verification (below) and the rest of the request pipeline.',
  );
  const reqs = wasmCpu?.requests ?? [];
  const nat = (t) => native[t.kind === 'pull' ? `pull/${t.case}` : `push/${t.case}`];
  if (reqs.length) {
    p(
      table(
        ['request', 'head / buckets before', 'spill (buckets written)', 'wasm in V8', 'of 10 ms', 'native', ...Object.keys(STEP_LABEL).map((k) => `${k} (wasm)`)],
        reqs.map((t) => [
          cpuWhat(t),
          `${int(t.head_records)} / ${int(t.buckets)}`,
          t.kind === 'pull' ? '—' : t.spilled ? `yes (${int(t.buckets_written)})` : 'no',
          `**${t.ms == null ? '—' : `${dec(t.ms, 2)} ms`}**`,
          t.ms == null ? '—' : `${pct(t.ms / BUDGET_MS, 0)}${t.within ? '' : underLimit(t) ? ' **over**' : ' over (above `MAX_CHANGES`)'}`,
          nat(t) ? time(nat(t).median) : '—',
          ...Object.keys(STEP_LABEL).map((k) => (t.steps?.[k] != null ? dec(t.steps[k], 2) : '—')),
        ]),
      ),
    );
    p(`Steps (ms in wasm, each timed alone on its own input): ${Object.entries(STEP_LABEL).map(([k, v]) => `*${k}*: ${v}`).join('; ')}.`);
    const groups = byLimit(reqs.filter((r) => r.ms != null && !r.within));
    const [over, overUploads, above] = [groups.sync, groups.uploads, groups.above];
    p(
      `**Against the Free plan's 10 ms of CPU per request** (issue #11: every request up to \`MAX_CHANGES\`, ${int(MAX_CHANGES)} by default, within it): ` +
        (over.length ? `**over** for ${over.map((t) => `${cpuWhat(t)} (${dec(t.ms, 2)} ms)`).join('; ')}.` : `every kind of push and pull up to ${int(MAX_CHANGES)} changes is within it.`) +
        (overUploads.length ? ` **Full uploads over it** (up to \`MAX_UPLOAD_RECORDS\`, ${int(MAX_UPLOAD_RECORDS)}, but a full upload reads every page of the user and deletes every record it leaves out, so its CPU grows with the type's stored records): ${overUploads.map((t) => `${cpuWhat(t)} (${dec(t.ms, 2)} ms)`).join('; ')}.` : '') +
        (above.length ? ` Over 10 ms but refused by a deployment with the default \`MAX_CHANGES\` (413: the client pushes ${int(MAX_CHANGES)} at a time): ${above.map((t) => `${cpuWhat(t)} (${dec(t.ms, 2)} ms)`).join('; ')}; a deployment that raises \`MAX_CHANGES\` (the Paid plan's 30 s of CPU) accepts them.` : ''),
    );
  }
  const steps = Object.keys(native).filter((k) => k.includes('_steps/'));
  if (steps.length) {
    p('Native steps of the two largest pushes (criterion):');
    p(table(['step', 'native (95% CI)'], steps.map((k) => [k, `${time(native[k].median)} <sub>[${time(native[k].lo)}–${time(native[k].hi)}]</sub>`])));
  }
  p(
    table(
      ['JWT', 'native (95% CI)', 'wasm in V8', 'of 10 ms'],
      JWT_OPS.map(([id, label]) => {
        const n = native[id];
        const w = wasmBy[id];
        return [label, n ? `${time(n.median)} <sub>[${time(n.lo)}–${time(n.hi)}]</sub>` : '—', w ? time(w.median_ns) : '—', w ? pct(w.median_ns / 1e6 / BUDGET_MS, 1) : '—'];
      }),
    ),
  );
}

// ---- 5. capacity ----------------------------------------------------------------------
p('## 5. Capacity model');
if (!capMixes) p('_Not measured in this run._');
else {
  p(
    'A day of a user population replayed through the real worker for each usage mix (`bench/capacity.mjs --mixes brief,two-device`; every parameter is a flag, ' +
      '`node bench/capacity.mjs --help`), every request\'s `X-Sync-Ops` summed, then scaled per user. **A sync is one request**: a `POST /api/sync` with the device\'s cursor ' +
      'and its pending changes (none for an idle sync), followed by more only when the reply says `has_more`; there is no separate check. Two replays per mix: *KV trusted*, the worker as configured ' +
      '(in real time with the day compressed so KV entries expire as in the day), and *KV distrusted*, a worker with `QUOTA_KV_WRITES=0` — how the worker runs past its KV budget. ' +
      'Costs are the worker\'s own: nothing is assumed about what a request kind costs.',
  );
  const mixNames = Object.keys(capMixes);
  const um = (m) => capMixes[m].usageModel;
  p(
    table(
      ['parameter', ...mixNames.map(mixLabel), 'flag'],
      [
        ['users in the replay', ...mixNames.map((m) => int(um(m).users)), '`--users`'],
        ['active users', ...mixNames.map((m) => `${pct(um(m).activeShare, 0)} (${int(um(m).activeUsers)})`), '`--active-share`'],
        ['scheduled syncs per device per day: active / inactive', ...mixNames.map((m) => `${um(m).activeSyncs} / ${um(m).inactiveSyncs}`), '`--active-syncs`, `--inactive-syncs`'],
        ['devices per user', ...mixNames.map((m) => um(m).devices), '`--devices`'],
        ['task creations per active user per day, in editing sessions', ...mixNames.map((m) => `${um(m).creates} in ${um(m).sessions}`), '`--creates`, `--sessions`'],
        [
          "a session's push",
          ...mixNames.map((m) => (um(m).sessionsOnSyncs ? 'one of the scheduled syncs (distinct ones)' : um(m).pushOnChange ? `a sync of its own, ${um(m).debounceS} s after the session` : 'at the next scheduled sync')),
          '`--sessions-on-syncs`, `--push-on-change`',
        ],
        ['records per user before the day', ...mixNames.map((m) => int(um(m).initialRecords)), '`--initial-records`'],
        ['syncs (= requests, bar `has_more` pages) per user per day', ...mixNames.map((m) => dec(um(m).eventsPerUser, 2)), ''],
        ['pushes per user per day', ...mixNames.map((m) => dec(um(m).pushesPerUser, 2)), ''],
        ['KV state token lifetime (`STATE_CACHE_TTL`)', ...mixNames.map((m) => `${um(m).stateCacheTtl} s`), '`--state-cache-ttl`'],
      ],
      ['l', ...mixNames.map(() => 'l'), 'l'],
    ),
  );
  if (mixNames.some((m) => !um(m).timeFaithful)) p('> Quick run: the KV-trusted replays did not run in real time, so whether a KV entry was alive at a sync is not as in the day.');
  const res = [
    ['requests', 'requests'],
    ['rows_read', 'rows-read'],
    ['rows_written', 'rows-written'],
    ['kv_reads', 'kv-read'],
    ['kv_writes', 'kv-write'],
  ];
  for (const name of mixNames) {
    const m = capMixes[name];
    const kv = m.replays.kv;
    const a = m.perUser.kv;
    const b = m.perUser.d1;
    const mp = m.modelParams;
    p(`### ${mixLabel(name)}`);
    p(
      `KV-trusted replay: ${int(kv.totals.requests)} requests for ${int(kv.syncs)} syncs in ${int(kv.seconds)} s; ${int(kv.kv.idleNoD1)} of ${int(kv.kv.idle)} idle syncs were answered without D1 ` +
        `(the simulated day's KV entries, alive ${um(name).stateCacheTtl} s after the worker last wrote one for the user, predict ${int(kv.kv.predictedHits)}; ${int(kv.kv.mismatches)} differ).`,
    );
    const kinds = (rep) => Object.entries(rep.kinds);
    p(
      table(
        ['request (replay)', 'count', 'per user/day', 'D1 stmts', 'rows read', 'rows written', 'KV reads', 'KV writes'],
        [
          ...kinds(kv).map(([k, t]) => [`${k}, KV trusted`, int(t.requests), dec(t.requests / kv.users, 2), int(t.d1), int(t['rows-read']), int(t['rows-written']), int(t['kv-read']), int(t['kv-write'])]),
          ...kinds(m.replays.d1).map(([k, t]) => [`${k}, KV distrusted`, int(t.requests), dec(t.requests / m.replays.d1.users, 2), int(t.d1), int(t['rows-read']), int(t['rows-written']), int(t['kv-read']), int(t['kv-write'])]),
        ],
      ),
    );
    p(
      table(
        ['per user and day', 'KV trusted', 'KV distrusted', 'active user (KV trusted)', 'inactive user (KV trusted)', 'brief (Final table)'],
        res.map(([k, h]) => [
          RESOURCES.find((r) => r.key === k).label,
          dec(a[k], 2),
          dec(b[k], 2),
          dec(kv.active_totals[h] / Math.max(1, kv.active), 2),
          dec(kv.inactive_totals[h] / Math.max(1, kv.users - kv.active), 2),
          dec(BRIEF.perDay[k] / BRIEF.users, 3),
        ]),
      ),
    );
    const c = m.capacity;
    const d = m.capacityD1;
    const acct = c.rows.find((r) => r.key === c.binding);
    const atBind = (cc) => {
      const r = cc.rows.find((x) => x.key === cc.binding);
      return Number.isFinite(r.model) ? dailyUseAt(m, cc === d, r.model) : null;
    };
    p('Users at which each Free-plan limit runs out (model):');
    p(
      table(
        ['resource', 'limit / day', 'linear, KV trusted', 'linear, KV distrusted', 'model, KV trusted', 'model, KV distrusted', 'reads pause (90%), KV trusted'],
        c.rows.map((r) => {
          const r2 = d.rows.find((x) => x.key === r.key);
          const cell = (row, cc) => (row.key === 'kv_writes' ? (Number.isFinite(row.model) ? `${users(row.model)} (guarded)` : 'never') : `**${users(row.model)}**${row.key === cc.binding ? ' ← binds first' : ''}`);
          return [r.label, int(r.limit), users(r.linearKv), users(r.linearD1), cell(r, c), cell(r2, d), r.key === 'kv_writes' ? '—' : users(r.modelDegrade)];
        }),
      ),
    );
    const u1 = atBind(c);
    p(
      '- *linear*: the limit divided by the replay\'s per-user-day use, nothing added. *model* (`bench/lib/model.mjs`): with KV trusted, the KV fast path until the day\'s KV writes reach the guard ' +
        `(${int(mp.kvGuard)} writes: from ${users(c.kvFastPathUntil)} users on), then as distrusted; plus the usage accounting's own rows and the rate limiter's KV reads on cold isolates (below).`,
      `- **Usage accounting**: one flush costs ${mp.flush.rows_read} rows read and ${mp.flush.rows_written} written (measured: two admin usage reports in a row); each of **${int(mp.isolates)} isolates** (\`--isolates\`) flushes every ${mp.flushRequests} requests or at its first request ${mp.flushSecs} s after its last flush` +
        (u1 ? `: at ${users(acct.model)} users that is ${int(u1.flushes)} flushes, ${int(u1.accounting_rows_written)} rows written a day (${pct(u1.accounting_rows_written / LIMITS.rows_written)} of the quota).` : '.'),
      `- **Rate limiter**: a sync landing on an isolate that has not seen the user costs one KV read (its bucket restored); the replay's one warm isolate knew every user, so the model adds it for ${pct(mp.coldSyncShare, 0)} of syncs (\`--cold-sync-share\`).`,
    );
  }
  p(`![share of each Free-plan limit by number of users, both mixes](${CHART})`);
  p(
    'The chart: each resource\'s share of its daily limit by users, KV trusted (the worker as configured, KV fast path until the guard), ' +
      `solid for ${mixLabel(mixNames[0])}${mixNames[1] ? `, dashed for ${mixLabel(mixNames[1])}` : ''}.`,
  );
  const sens = [];
  for (const name of mixNames) {
    const m = capMixes[name];
    const alt = (over) => capacity(m.perUser.kv, m.perUser.d1, { ...m.modelParams, ...over });
    for (const [label, c] of [
      ['as above', m.capacity],
      ['1 isolate, no cold-isolate KV reads', alt({ isolates: 1, coldSyncShare: 0 })],
      ['1,000 isolates', alt({ isolates: 1000 })],
      ['no cold-isolate KV reads (a limiter that reads KV about once per isolate a minute)', alt({ coldSyncShare: 0 })],
    ]) {
      const bnd = c.rows.find((r) => r.key === c.binding);
      sens.push([`${mixLabel(name)}: ${label}`, ...c.rows.filter((r) => r.key !== 'kv_writes').map((r) => users(r.model)), `${bnd.label} (${users(bnd.model)})`]);
    }
  }
  p('Sensitivity of the model (KV trusted) to its production assumptions:');
  p(table(['assumption', ...RESOURCES.filter((r) => r.key !== 'kv_writes').map((r) => r.label), 'binds first'], sens, ['l', 'r', 'r', 'r', 'r', 'l']));
}

function dailyUseAt(m, distrusted, n) {
  const a = distrusted ? m.perUser.d1 : m.perUser.kv;
  return dailyUse(n, a, m.perUser.d1, distrusted ? { ...m.modelParams, kvGuard: 0 } : m.modelParams);
}

const sdkDay = readResult('sdk-day');
if (sdkDay) p(...sdkSection(sdkDay));

// ---- 6. storage -----------------------------------------------------------------------
p('## 6. Storage');
if (!storage) p('_Not measured in this run._');
else {
  p(
    'Bytes per record in the local D1 file (`bench/storage.mjs`): per level, a fresh worker gets users of typical tasks (`typicalTasks` in `bench/lib/common.mjs`: ' +
      'titles of 2–7 words, a third with a description, 40% with a due date; ids as the demo makes them), pushed 100 at a time, then 10% edited and 2% deleted; ' +
      'the worker is stopped and the file read with `sqlite3`. *Stored* is dbstat\'s pages of the `pages` table (leaf, interior and overflow pages, unused space included) ' +
      'per current record; *deflated* the BLOB bodies\' bytes; *record JSON* a record as clients see it, *page JSON* the entry tuples the pages hold (superseded bucket copies included; format 1 stored this, deflated); *columns* what the bodies inflate to (format 2: the same entries as columns, `crates/codec`); ' +
      '*as JSON text* the same rows with a TEXT body of that JSON (the page format before compression), through dbstat too. ' +
      `Users per database: ${int(storage.dbBytes / 1e6)} MB / (${pct(storage.activeShare, 0)} active × records × stored bytes per record): inactive users hold nothing; per account: ${storage.accountDbs} databases (the Free plan's 5 GB). Goal (issue #13): **≤ 60 bytes per record stored**.`,
  );
  p(
    table(
      ['records per user', 'users', 'record JSON', 'page JSON', 'columns', 'deflated body', '**stored**', 'as JSON text', 'users per 500 MB', 'per 5 GB account', 'as JSON text: per 500 MB'],
      storage.levels.map((l) => [
        int(l.perUser),
        int(l.users),
        `${dec(l.perRecord.recordJson)} B`,
        `${dec(l.perRecord.pageJson)} B`,
        l.perRecord.inflated == null ? '—' : `${dec(l.perRecord.inflated)} B`,
        `${dec(l.perRecord.compressed)} B`,
        `**${dec(l.perRecord.stored)} B**${l.perRecord.stored > 60 ? ' (over 60)' : ''}`,
        `${dec(l.perRecord.asText)} B`,
        int(l.usersPerDb),
        int(l.usersPerAccount),
        int(l.usersPerDbAsText),
      ]),
    ),
  );
  const codec = wasmCpu?.codec ?? [];
  const nat = storage.nativeCpu ?? {};
  const rows = [];
  for (const c of codec) {
    const hex = c.from_hex_ms == null ? '' : ` (+ hex ${dec(c.from_hex_ms, 3)} ms)`;
    rows.push([`Rust: columns, \`miniz_oxide\` level ${c.level}, wasm in V8 (\`codec/*\`, bench/native)`, `${c.codec} (${int(c.entries)} records)`, int(c.json_bytes), int(c.deflated_bytes), c.encode_ms == null ? '—' : `${dec(c.encode_ms, 3)} ms`, c.decode_ms == null ? '—' : `${dec(c.decode_ms, 3)} ms${hex}`]);
    rows.push([`(format 1: the JSON tuples, the same level)`, c.codec, int(c.json_bytes), int(c.format1_bytes), c.encode1_ms == null ? '—' : `${dec(c.encode1_ms, 3)} ms`, c.decode1_ms == null ? '—' : `${dec(c.decode1_ms, 3)} ms`]);
  }
  for (const [what, c] of Object.entries(nat)) {
    rows.push([`native \`CompressionStream('deflate-raw')\` (${storage.engine})`, `${what} of the ${int(storage.levels.at(-1).perUser)}-record user`, int(c.json_bytes), int(c.deflated_bytes), `${dec(c.deflate.cpu_us / 1000, 3)} ms`, `${dec(c.inflate.cpu_us / 1000, 3)} ms`]);
    rows.push([`(zlib level 1, the same input, sync)`, what, int(c.json_bytes), int(c.zlib_level1.deflated_bytes), `${dec(c.zlib_level1.cpu_us / 1000, 3)} ms`, '—']);
  }
  if (rows.length) {
    p(
      'CPU of the codec per page (a push encodes the head, and on a spill the buckets it writes; every read decodes the head, a pull also the buckets it reads). ' +
        '*encode* is the entries to the stored bytes, *decode* the stored bytes to the entries (for the native streams: deflate and inflate of the format-1 JSON alone). ' +
        'The Rust codec in wasm is timed on the fixtures\' pages (tasks with every field set), the native streams on the typical user\'s pages by this process\'s CPU clock; compare per KB.',
    );
    p(table(['codec', 'page', 'JSON bytes', 'stored bytes', 'encode', 'decode'], rows));
  }
}

// ---- how to run -----------------------------------------------------------------------
p('## How to run');
p(
  '```sh',
  'npm run bench                 # setup, build, every measurement, this file and the chart (~13 min; ~17 from a clean clone)',
  'bash scripts/bench.sh --quick # short runs for iterating (~2 min); marks the report as quick',
  'node bench/throughput.mjs --help; node bench/growth.mjs --help; node bench/capacity.mjs --help',
  'node bench/floor.mjs --quick   # edgesync beside the reference workers: the issue #11 ratios',
  'node bench/inproc.mjs --quick  # the same, inside the isolate (no HTTP), with an A/A check',
  'node bench/profile.mjs --kind check304 --loop 2000   # a CPU profile of the isolate alone (no HTTP load)',
  'node bench/profile.mjs --kind check304   # CPU profile of the isolate (health, check304, checkD1, push10)',
  'node bench/capacity.mjs --mixes brief --quick   # one usage mix (presets: brief, two-device), no real-time waiting',
  'node bench/capacity.mjs --from-results --isolates 300 --cold-sync-share 0   # re-run only the model',
  'node bench/storage.mjs --quick # section 6: bytes per record in the local D1 file',
  '```',
  '',
  '| file | what |',
  '|---|---|',
  '| `scripts/bench.sh` | runs everything below; fails when a step fails or a flat cost grows |',
  '| `bench/floor.mjs`, `bench/lib/workers.mjs` | section 1: edgesync beside the reference workers (floor, seed), interleaved rounds, the issue #11 ratios |',
  '| `bench/inproc.mjs` | section 1: the same workers\' CPU per request inside the isolate (no HTTP, no load client), with an A/A check |',
  '| `bench/profile.mjs` | section 1: CPU profile of the isolate through the V8 inspector (DevTools `Profiler`) |',
  '| `bench/throughput.mjs`, `bench/lib/load.mjs` | sections 1–2: fixed-concurrency keep-alive load per request kind |',
  '| `bench/growth.mjs` | section 3: costs at 100 … 100,000 records; the flatness check |',
  '| `bench/size.mjs`, `bench/wasm-size.mjs`, `bench/native/` (criterion: `benches/hot_paths.rs`; wasm: `examples/wasm_cpu.rs`, inputs and the pure path in `src/fixtures.rs`), `bench/wasm-cpu.mjs` | section 4 |',
  '| `bench/capacity.mjs`, `bench/lib/model.mjs` | section 5: the replayed day and the model |',
  '| `bench/sdk-day.mjs`, `bench/lib/sdk-section.mjs` | section 5: the same day driven by the client SDK\'s own scheduler |',
  '| `bench/storage.mjs` | section 6: bytes per record (dbstat), users per database, the native codec\'s CPU |',
  '| `bench/report.mjs`, `bench/chart.mjs` | this file and `' + CHART + '` |',
  '| `bench/results/*.json` | the raw numbers of the last run (not committed) |',
);

fs.writeFileSync(path.join(ROOT, 'BENCHMARKS.md'), md.join('\n').replace(/\n{3,}/g, '\n\n'));
log('wrote BENCHMARKS.md');
if (capMixes) {
  const names = Object.keys(capMixes);
  const svg = capacityChart({
    mixes: names.map((n) => ({
      label: mixLabel(n),
      series: capMixes[n].series,
      rows: capMixes[n].capacity.rows,
      binding: capMixes[n].capacity.binding,
      kvFastPathUntil: capMixes[n].capacity.kvFastPathUntil,
    })),
    subtitle: `model from replayed days (${names.map((n) => `${mixLabel(n)}: ${capMixes[n].usageModel.users} users, ${capMixes[n].usageModel.devices} device(s)`).join('; ')}), one request per sync, ${capacityRes.modelParams.isolates} isolates, KV trusted${opt.quick ? ' — QUICK RUN' : ''}`,
  });
  fs.writeFileSync(path.join(ROOT, CHART), svg);
  log(`wrote ${CHART}`);
}
