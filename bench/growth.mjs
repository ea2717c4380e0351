// Cost growth: what each request kind costs (X-Sync-Ops) for one user holding 100, 1,000,
// 10,000 and 100,000 records, seeded with 1,000-change pushes: the check, the 304, an idle
// sync (POST /api/sync with the current cursor: the scheduled sync that finds nothing), a
// pull of 100, and the rows written by pushes of 10 new records and of 100 (and 1,000)
// edits of the user's oldest records (which live in buckets once the user outgrows the
// head page). Two workers get the same
// data: one as configured by default (the KV state token answers checks and 304s), and one
// with QUOTA_KV_WRITES=0, which makes the worker distrust KV (as it does past its KV write
// budget), so the check and the 304 go to D1 there: both paths are measured.
// Fails (exit 1) when the check, the 304 or a pull of 100 changes reads more rows as the
// total grows: their cost must not depend on how much the user holds.
//
//   node bench/growth.mjs [--levels 100,1000,10000,100000] [--quick]
import { startWorker } from '../tests/helpers/server.mjs';
import { token, newUserId } from '../tests/helpers/client.mjs';
import { closeAgents, expect, flags, log, parseOps, send, tasks, writeResult } from './lib/common.mjs';

const opt = flags(
  { levels: '100,1000,10000,100000', repeat: 3, quick: false },
  { levels: 'record counts to measure at', repeat: 'times each request is sent per level (costs must agree)', quick: 'levels 100,1000,10000' },
);
if (opt.quick) opt.levels = '100,1000,10000';
const levels = opt.levels.split(',').map(Number).sort((a, b) => a - b);
if (levels.some((n) => !Number.isInteger(n) || n < 100)) throw new Error(`--levels must be integers >= 100: ${opt.levels}`);

// Kinds that must not grow with the user's total (the run fails if they do), and kinds
// expected flat that are only flagged.
const MUST_BE_FLAT = ['checkKv', 'fast304Kv', 'checkD1', 'notModifiedD1', 'idleSyncKv', 'idleSyncD1', 'pull100', 'syncPull100'];

// MAX_CHANGES=1000 (a Paid-plan setting; the default is 100): the user is built in pushes
// of 1,000, and the last one's cost is reported.
const [kvSrv, d1Srv] = await Promise.all([startWorker({ vars: { MAX_CHANGES: '1000' } }), startWorker({ vars: { QUOTA_KV_WRITES: '0', MAX_CHANGES: '1000' } })]);
log(`workers: KV path ${kvSrv.url}, D1 path ${d1Srv.url}`);
const servers = { kv: kvSrv, d1: d1Srv };

try {
  const uid = newUserId('growth');
  const tok = await token(uid);
  // Per server: the user's cursor (always current: the seeding pushes carry it).
  const state = { kv: { cursor: 0 }, d1: { cursor: 0 } };
  let total = 0;
  const push = async (which, changes) => {
    const s = state[which];
    const res = expect(
      await send(servers[which].url, { method: 'POST', path: '/api/sync', token: tok, body: { cursor: s.cursor, changes } }),
      200,
      `push to ${which}`,
    );
    if (res.json.applied.length !== changes.length || res.json.conflicts.length) throw new Error(`push not fully applied: ${res.text.slice(0, 300)}`);
    s.cursor = res.json.cursor;
    s.etag = res.json.etag;
    return res;
  };
  const both = (fn) => Promise.all([fn('kv'), fn('d1')]);
  // Returns the last full 1,000-change push (its cost is reported as "push of 1,000 new").
  let lastFull = null;
  const seedTo = async (target) => {
    while (total < target) {
      const n = Math.min(1000, target - total);
      const changes = tasks(n, 'g', total);
      const [kvRes, d1Res] = await both((w) => push(w, changes));
      if (n === 1000) lastFull = { d1: d1Res, kv: kvRes, at: total };
      total += n;
    }
    return lastFull;
  };

  const rows = [];
  for (const level of levels) {
    const t0 = Date.now();
    const seedPush = await seedTo(level - 100);
    const before = { kv: state.kv.cursor, d1: state.d1.cursor };
    await both((w) => push(w, tasks(100, 'g', total)));
    total += 100;
    log(`${total} records (seeded in ${((Date.now() - t0) / 1000).toFixed(1)} s)`);

    const url = (w) => servers[w].url;
    const measures = {
      checkKv: { label: 'check, KV state token', run: () => send(url('kv'), { path: '/api/sync/check', token: tok }), ok: 200 },
      fast304Kv: {
        label: '304, KV fast path',
        run: () => send(url('kv'), { path: '/api/sync/check', token: tok, headers: { 'if-none-match': state.kv.etag } }),
        ok: 304,
      },
      checkD1: { label: 'check, from D1', run: () => send(url('d1'), { path: '/api/sync/check', token: tok }), ok: 200 },
      notModifiedD1: {
        label: '304, from D1',
        run: () => send(url('d1'), { path: '/api/sync/check', token: tok, headers: { 'if-none-match': state.d1.etag } }),
        ok: 304,
      },
      idleSyncKv: {
        label: 'idle sync (POST /api/sync, current cursor, no changes), KV trusted',
        run: () => send(url('kv'), { method: 'POST', path: '/api/sync', token: tok, body: { cursor: state.kv.cursor } }),
        ok: 200,
        check: (r) => r.json.updates.length === 0 && r.json.deleted.length === 0 && !r.json.has_more,
      },
      idleSyncD1: {
        label: 'idle sync (POST /api/sync, current cursor, no changes), KV distrusted',
        run: () => send(url('d1'), { method: 'POST', path: '/api/sync', token: tok, body: { cursor: state.d1.cursor } }),
        ok: 200,
        check: (r) => r.json.updates.length === 0 && r.json.deleted.length === 0 && !r.json.has_more,
      },
      pull100: {
        label: 'pull of 100 (GET …/tasks/changes?since=&limit=100)',
        run: () => send(url('d1'), { path: `/api/sync/tasks/changes?since=${before.d1}&limit=100`, token: tok }),
        ok: 200,
        check: (r) => r.json.total_changes === 100 && !r.json.has_more,
      },
      syncPull100: {
        label: 'pull of 100 (POST /api/sync, limit 100)',
        run: () => send(url('d1'), { method: 'POST', path: '/api/sync', token: tok, body: { cursor: before.d1, limit: 100 } }),
        ok: 200,
        check: (r) => r.json.updates.length === 100 && !r.json.has_more,
      },
      download1000: {
        label: 'full download, first page of 1,000',
        run: () => send(url('d1'), { path: '/api/sync/tasks?limit=1000', token: tok }),
        ok: 200,
        check: (r) => r.json.count === Math.min(1000, total),
      },
    };
    const row = { records: total, kinds: {} };
    for (const [key, m] of Object.entries(measures)) {
      const seen = [];
      for (let i = 0; i < opt.repeat; i++) {
        const r = expect(await m.run(), m.ok, `${m.label} at ${total}`);
        if (m.check && !m.check(r)) throw new Error(`${m.label} at ${total}: unexpected body ${r.text.slice(0, 300)}`);
        seen.push(r.opsHeader);
      }
      const distinct = [...new Set(seen)];
      row.kinds[key] = { label: m.label, ops: distinct.length === 1 ? distinct[0] : distinct, opsParsed: parseOps(seen[seen.length - 1]) };
    }
    // Writes: 10 new records (the total grows by 10), then edits of the user's oldest
    // records (the count stays).
    const new10 = tasks(10, 'n', total);
    const [n10kv, n10d1] = await both((w) => push(w, new10));
    total += 10;
    row.kinds.push10new = { label: 'push of 10 new (POST /api/sync)', ops: n10d1.opsHeader, opsParsed: n10d1.ops, opsKvServer: n10kv.opsHeader };
    const editN = async (n, tag) => {
      const changes = tasks(n, 'g').map((c) => ({ ...c, title: `${c.title} ${tag}` }));
      const [kvRes, d1Res] = await both((w) => push(w, changes));
      return { kv: kvRes.opsHeader, d1: d1Res.opsHeader, parsed: d1Res.ops };
    };
    const e100 = await editN(100, `edit-a-${level}`);
    row.kinds.push100 = { label: 'push of 100 edits of the oldest records (POST /api/sync)', ops: e100.d1, opsParsed: e100.parsed, opsKvServer: e100.kv };
    if (total >= 1000) {
      const e1000 = await editN(1000, `edit-b-${level}`);
      row.kinds.push1000 = { label: 'push of 1,000 edits of the oldest records (POST /api/sync)', ops: e1000.d1, opsParsed: e1000.parsed, opsKvServer: e1000.kv };
    }
    if (seedPush && level >= 2000) {
      row.kinds.seed1000 = {
        label: `push of 1,000 new (the last seeding push, into ${seedPush.at} records)`,
        ops: seedPush.d1.opsHeader,
        opsParsed: seedPush.d1.ops,
        opsKvServer: seedPush.kv.opsHeader,
      };
    }
    for (const [k, v] of Object.entries(row.kinds)) log(`  ${k.padEnd(14)} ${Array.isArray(v.ops) ? v.ops.join(' / ') : v.ops}`);
    rows.push(row);
  }

  // Flatness: rows read (and statements) of the must-be-flat kinds at every level equal the
  // smallest level's.
  const violations = [];
  const flagged = [];
  const allKinds = [...new Set(rows.flatMap((r) => Object.keys(r.kinds)))];
  for (const key of allKinds) {
    // A first page of 1,000 is only comparable once the user holds 1,000 records.
    const comparable = (r) => key !== 'download1000' || r.records >= 1000;
    const present = rows.filter((r) => r.kinds[key] && !Array.isArray(r.kinds[key].ops) && comparable(r));
    const varying = rows.filter((r) => r.kinds[key] && Array.isArray(r.kinds[key].ops));
    if (varying.length && MUST_BE_FLAT.includes(key)) violations.push(`${key}: cost differs between repeats at ${varying.map((r) => r.records).join(', ')}`);
    if (present.length < 2) continue;
    const first = present[0].kinds[key].opsParsed;
    for (const r of present.slice(1)) {
      const o = r.kinds[key].opsParsed;
      // Exact for the must-be-flat kinds; the others may read one more row (a page's
      // `limit + 1` probe finds a next record once the user holds more than a page).
      const slack = MUST_BE_FLAT.includes(key) ? 0 : 1;
      const grew = o['rows-read'] > first['rows-read'] + slack || o.d1 > first.d1;
      if (!grew) continue;
      const msg = `${key}: rows-read ${first['rows-read']} at ${present[0].records} records -> ${o['rows-read']} at ${r.records} (d1 ${first.d1} -> ${o.d1})`;
      (MUST_BE_FLAT.includes(key) ? violations : flagged).push(msg);
    }
  }
  const file = writeResult('growth', { params: opt, levels, mustBeFlat: MUST_BE_FLAT, rows, violations, flagged });
  log(`wrote ${file}`);
  if (flagged.length) log(`grows (not required flat): ${flagged.join('; ')}`);
  if (violations.length) {
    console.error(`\n*** COST REGRESSION: these must stay flat as the user's data grows ***\n${violations.join('\n')}\n`);
    process.exitCode = 1;
  } else {
    log(`flat: ${MUST_BE_FLAT.join(', ')} read the same rows at ${levels.join(', ')} records`);
  }
} finally {
  closeAgents();
  await Promise.all([kvSrv.stop(), d1Srv.stop()]);
}
