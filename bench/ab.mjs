// Two edgesync builds side by side in one run (issue #11's before/after): build/ and another
// build directory (e.g. main's, built with EDGESYNC_OUT_DIR), both without [assets] as in
// bench/floor.mjs, the same request kinds interleaved in rounds (order alternated), workerd
// CPU per request and req/s for each. Prints the medians and the ratio (other ÷ build/).
//
//   node bench/ab.mjs --other /path/to/other/build [--rounds 6] [--duration-s 3] [--kinds health,check304]
import { token } from '../tests/helpers/client.mjs';
import { closeAgents, expect, flags, log, send } from './lib/common.mjs';
import { load } from './lib/load.mjs';
import { cpuOf, startEdgesync } from './lib/workers.mjs';

const opt = flags(
  { other: '', rounds: 6, durationS: 3, warmupS: 0.5, concurrency: 8, kinds: 'health,check304' },
  { other: 'the other build directory (holding worker/shim.mjs)', rounds: 'rounds per kind', durationS: 'measured seconds per build per round', warmupS: 'unrecorded seconds first', concurrency: 'requests in flight', kinds: 'health, check304' },
);
if (!opt.other) throw new Error('--other <build dir> is required');
const median = (xs) => {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const servers = {};
await Promise.all([
  startEdgesync({ assets: false }).then((s) => (servers.this = s)),
  startEdgesync({ assets: false, mainDir: opt.other }).then((s) => (servers.other = s)),
]);
try {
  const specs = {};
  for (const [w, s] of Object.entries(servers)) {
    const tok = await token(`ab-${w}`);
    const pushed = expect(await send(s.url, { method: 'POST', path: '/api/sync', token: tok, body: { cursor: 0, changes: [{ type: 'tasks', id: 'f-1', title: 'x' }] } }), 200, `${w}: prime`);
    const etag = pushed.json.etag;
    expect(await send(s.url, { path: '/api/sync/check', token: tok, headers: { 'if-none-match': etag } }), 304, `${w}: 304 probe`);
    specs[w] = {
      health: { next: () => ({ path: '/api/health' }), ok: [200] },
      check304: { next: () => ({ path: '/api/sync/check', token: tok, headers: { 'if-none-match': etag } }), ok: [304] },
    };
  }
  for (const kind of opt.kinds.split(',')) {
    const res = { this: [], other: [] };
    for (let r = 0; r < opt.rounds; r++) {
      for (const w of r % 2 ? ['other', 'this'] : ['this', 'other']) {
        const base = { base: servers[w].url, concurrency: opt.concurrency, ...specs[w][kind] };
        await load({ ...base, durationMs: opt.warmupS * 1000, warmupMs: 0, maxRequests: 1e6 });
        const c0 = cpuOf(servers[w]);
        const x = await load({ ...base, durationMs: opt.durationS * 1000, warmupMs: 0, maxRequests: 1e6 });
        const c1 = cpuOf(servers[w]);
        res[w].push({ rps: x.rps, cpu: (c1.runtime - c0.runtime) / x.requests, errors: x.errors });
      }
    }
    const m = (w, k) => median(res[w].map((x) => x[k]));
    const per = res.this.map((x, i) => res.other[i].cpu / x.cpu);
    console.log(
      `${kind}: build/ ${m('this', 'rps').toFixed(1)} req/s, ${(m('this', 'cpu') * 1000).toFixed(0)} µs CPU; other ${m('other', 'rps').toFixed(1)} req/s, ${(m('other', 'cpu') * 1000).toFixed(0)} µs CPU; ` +
        `CPU other ÷ build/ per round: median ${median(per).toFixed(2)} [${Math.min(...per).toFixed(2)}–${Math.max(...per).toFixed(2)}]; errors ${res.this.concat(res.other).reduce((n, x) => n + x.errors, 0)}`,
    );
  }
} finally {
  closeAgents();
  await Promise.all(Object.values(servers).map((s) => s.stop()));
}
log('done');
