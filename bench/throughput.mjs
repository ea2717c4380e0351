// Throughput and latency of each request kind against one worker in local workerd
// (wrangler dev, local D1 + KV), with a fixed number of requests in flight, and what each
// kind costs (X-Sync-Ops of every measured response). Writes bench/results/throughput.json.
//
//   node bench/throughput.mjs [--duration-s 8] [--warmup-s 1] [--concurrency 8] [--quick]
//
// The 304 fast path runs first and last; ratios use the mean of the two, and the spread
// between them shows how much the machine's load drifted during the run.
import { startWorker } from '../tests/helpers/server.mjs';
import { token, newUserId } from '../tests/helpers/client.mjs';
import { closeAgents, expect, flags, log, send, tasks, writeResult } from './lib/common.mjs';
import { load } from './lib/load.mjs';

const opt = flags(
  { durationS: 8, warmupS: 1, concurrency: 8, maxRequests: 50_000, coldUsers: 6_000, quick: false },
  {
    durationS: 'measured seconds per kind',
    warmupS: 'unrecorded seconds before each',
    concurrency: 'requests in flight',
    maxRequests: 'cap per kind (warm-up included)',
    coldUsers: 'never-seen users minted for the cold check (caps its count)',
    quick: 'short runs for iterating (2 s per kind)',
  },
);
if (opt.quick) {
  opt.durationS = Math.min(opt.durationS, 2);
  opt.warmupS = Math.min(opt.warmupS, 0.3);
  opt.coldUsers = Math.min(opt.coldUsers, 1_500);
}

// MAX_CHANGES=1000 (a Paid-plan setting; the default is 100) for the push-of-1,000 kind.
const srv = await startWorker({ vars: { MAX_CHANGES: '1000' } });
log(`worker on ${srv.url} (started in ${srv.startupMs} ms)`);
const base = srv.url;
const post = (tok, body) => send(base, { method: 'POST', path: '/api/sync', token: tok, body });
const get = (tok, p, headers = {}) => send(base, { path: p, token: tok, headers });

try {
  // --- fixtures --------------------------------------------------------------------------
  // 304: a user whose state token is in KV (written through by its push).
  const t304 = await token(newUserId('fast'));
  const pushed = expect(await post(t304, { cursor: 0, changes: tasks(10, 'f') }), 200, 'prime 304 user');
  const etag = pushed.json.etag;
  const probe = expect(await get(t304, '/api/sync/check', { 'if-none-match': etag }), 304, '304 probe');
  if (probe.ops.d1 !== 0) throw new Error(`the primed 304 used D1: ${probe.opsHeader}`);

  // Delta pull of 100 and full download of 1,000: a user with 1,000 tasks, the last 100
  // pushed after cursor C.
  const tData = await token(newUserId('data'));
  const first = expect(await post(tData, { cursor: 0, changes: tasks(900, 'd') }), 200, 'seed 900');
  const before100 = first.json.cursor;
  expect(await post(tData, { cursor: before100, changes: tasks(100, 'd', 900) }), 200, 'seed 100');
  const pullPath = `/api/sync/tasks/changes?since=${before100}&limit=100`;
  const pulled = expect(await get(tData, pullPath), 200, 'pull probe').json;
  const nPulled = pulled.changes.created.length + pulled.changes.updated.length + pulled.changes.deleted.length;
  if (nPulled !== 100 || pulled.has_more) throw new Error(`pull probe returned ${nPulled} changes, has_more ${pulled.has_more}`);
  const downloadPath = '/api/sync/tasks?limit=1000';
  const dl = expect(await get(tData, downloadPath), 200, 'download probe').json;
  if (dl.count !== 1000 || dl.has_more) throw new Error(`download probe returned ${dl.count}, has_more ${dl.has_more}`);

  // Pushes: one user per slot (pushes of one user racing each other would measure
  // retries), each slot keeping its user's cursor.
  const slots = opt.concurrency;
  const pushUsers = async (tag) =>
    Promise.all(Array.from({ length: slots }, async (_, s) => ({ token: await token(newUserId(`${tag}${s}`)), cursor: 0, n: 0 })));
  const p10 = await pushUsers('p10-');
  const p1000 = await pushUsers('p1k-');

  // Cold check: a never-seen user per request.
  log(`minting ${opt.coldUsers} tokens for the cold check`);
  const coldTokens = await Promise.all(Array.from({ length: opt.coldUsers }, () => token(newUserId('cold'))));

  const common = {
    base,
    concurrency: opt.concurrency,
    durationMs: opt.durationS * 1000,
    warmupMs: opt.warmupS * 1000,
    maxRequests: opt.maxRequests,
  };
  const pushKind = (users, size, prefix) => ({
    next: (s) => {
      const u = users[s];
      const changes = tasks(size, `${prefix}${s}`, u.n);
      u.n += size;
      return { method: 'POST', path: '/api/sync', token: u.token, body: { cursor: u.cursor, changes } };
    },
    after: (s, res) => {
      if (res.status === 200 && res.json) users[s].cursor = res.json.cursor;
    },
    ok: [200],
  });

  const kinds = [
    {
      key: 'health',
      label: 'health (no auth, no storage)',
      request: 'GET /api/health',
      next: () => ({ path: '/api/health' }),
      ok: [200],
    },
    {
      key: 'fast304',
      label: '304 fast path',
      request: 'GET /api/sync/check, If-None-Match = current tag (in KV)',
      next: () => ({ path: '/api/sync/check', token: t304, headers: { 'if-none-match': etag } }),
      ok: [304],
    },
    {
      key: 'checkCold',
      label: 'check, cold cache',
      request: 'GET /api/sync/check by a never-seen user (no If-None-Match: D1 read)',
      next: (s, i) => ({ path: '/api/sync/check', token: coldTokens[i] }),
      ok: [200],
      maxRequests: coldTokens.length,
    },
    {
      key: 'pull100',
      label: 'delta pull of 100',
      request: 'GET /api/sync/tasks/changes?since=<before the last 100>&limit=100',
      next: () => ({ path: pullPath, token: tData }),
      ok: [200],
    },
    {
      key: 'push10',
      label: 'push of 10',
      request: 'POST /api/sync, 10 new tasks, cursor = the client\'s',
      ...pushKind(p10, 10, 'p'),
    },
    {
      key: 'push1000',
      label: 'push of 1,000',
      request: 'POST /api/sync, 1,000 new tasks, cursor = the client\'s',
      ...pushKind(p1000, 1000, 'k'),
    },
    {
      key: 'download1000',
      label: 'full download of 1,000',
      request: 'GET /api/sync/tasks?limit=1000 (1,000 live tasks)',
      next: () => ({ path: downloadPath, token: tData }),
      ok: [200],
    },
    {
      key: 'fast304b',
      label: '304 fast path (again, last)',
      request: 'as the first 304 run',
      next: () => ({ path: '/api/sync/check', token: t304, headers: { 'if-none-match': etag } }),
      ok: [304],
    },
  ];

  const results = [];
  for (const k of kinds) {
    log(`${k.label}: ${opt.durationS} s at ${opt.concurrency} in flight`);
    const r = await load({ ...common, maxRequests: Math.min(opt.maxRequests, k.maxRequests ?? Infinity), next: k.next, ok: k.ok, after: k.after });
    const fmt = (x) => (x == null ? '-' : x.toFixed(1));
    log(`  ${r.rps} req/s, p50 ${fmt(r.p50)} ms, p99 ${fmt(r.p99)} ms, errors ${r.errors}, ops ${Object.keys(r.ops).join(' | ')}`);
    results.push({ key: k.key, label: k.label, request: k.request, ...r });
  }
  const file = writeResult('throughput', {
    params: { ...opt, cpus: (await import('node:os')).cpus().length, loadavg: (await import('node:os')).loadavg() },
    worker_startup_ms: srv.startupMs,
    kinds: results,
  });
  log(`wrote ${file}`);
  const errors = results.reduce((n, r) => n + r.errors, 0);
  if (errors) {
    log(`${errors} errors: ${results.flatMap((r) => r.error_samples).join('\n')}`);
    process.exitCode = 1;
  }
} finally {
  closeAgents();
  await srv.stop();
}
