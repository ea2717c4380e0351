// The capacity model: from what one user costs per day in the replay (bench/capacity.mjs),
// the daily use of N users, each resource's share of its Workers Free plan limit, and the
// number of users at which each runs out. Pure functions of the replay's numbers and the
// model's parameters.

export const LIMITS = Object.freeze({
  requests: 100_000,
  rows_read: 5_000_000,
  rows_written: 100_000,
  kv_reads: 100_000,
  kv_writes: 1_000,
});

export const RESOURCES = Object.freeze([
  { key: 'requests', label: 'Requests', color: '#1f77b4' },
  { key: 'rows_read', label: 'D1 rows read', color: '#2ca02c' },
  { key: 'rows_written', label: 'D1 rows written', color: '#d62728' },
  { key: 'kv_reads', label: 'KV reads', color: '#9467bd' },
  { key: 'kv_writes', label: 'KV writes', color: '#ff7f0e' },
]);

// The brief's "Final Resource Usage (30,000 Users)" table
// (shared/seeds/v1-and-final-architecture.md).
export const BRIEF = Object.freeze({
  users: 30_000,
  syncsPerUserDay: 3.2,
  perDay: { requests: 96_000, rows_read: 19_200, rows_written: 9_600, kv_reads: 76_800, kv_writes: 480 },
});

/** Per-user-day use of one replay regime, from its totals. */
export function perUser(regime) {
  const n = regime.users;
  const t = regime.totals;
  return {
    requests: t.requests / n,
    d1: t.d1 / n,
    rows_read: t['rows-read'] / n,
    rows_written: t['rows-written'] / n,
    kv_reads: t['kv-read'] / n,
    kv_writes: t['kv-write'] / n,
    syncs: regime.syncs / n,
    // KV reads by the rate limiter restoring a user's bucket in an isolate that has not
    // seen the user (every KV read that is not the state token's).
    restores: regime.restores / n,
  };
}

/**
 * Usage flushes per day (crates/core/src/accounting.rs). Two parts:
 * - the caps: an isolate flushes at the latest every `flushRequests` requests or at its
 *   first request `flushSecs` after its last flush (with R requests a day spread evenly
 *   over the isolates, r per second each: every `flushRequests` requests when those come
 *   within `flushSecs`, else about every flushSecs + 1/r seconds);
 * - the adaptive flushes: an isolate also flushes when what it holds for a limit reaches
 *   about tolerance/√N, so they grow like √N per day near the limits. The constant is
 *   fitted to the policy's own simulation at 100 isolates serving 100,000 requests
 *   (`cargo test -p edgesync-core accounting_sim -- --nocapture`: 837–979 flushes a day
 *   over seeds and mixes, of which the caps are about 600): 38·√N, rounded up.
 */
export const ADAPTIVE_FLUSHES_PER_SQRT_ISOLATE = 38;
export function flushesPerDay(requestsPerDay, { isolates, flushRequests, flushSecs }) {
  if (requestsPerDay <= 0) return 0;
  const r = requestsPerDay / (isolates * 86_400);
  const caps = r * flushSecs >= flushRequests
    ? requestsPerDay / flushRequests
    : Math.min(requestsPerDay, (isolates * 86_400) / (flushSecs + 1 / r));
  return Math.min(requestsPerDay, caps + ADAPTIVE_FLUSHES_PER_SQRT_ISOLATE * Math.sqrt(isolates));
}

/**
 * Daily use of `users` users.
 * @param {object} a  per-user-day with the KV fast path (perUser of the KV replay)
 * @param {object} b  per-user-day without it (the worker past its KV write guard)
 * @param {object} p  {isolates, flushRequests, flushSecs, coldSyncShare, flush: {d1, rows_read,
 *                    rows_written}, kvGuard (KV writes at which the worker stops using KV)}
 */
export function dailyUse(users, a, b, p) {
  // Uniform traffic over the day: the KV fast path works until the day's KV writes reach
  // the guard, then the worker answers from D1 for the rest of the day.
  const kvDay = users * a.kv_writes;
  const f = kvDay > p.kvGuard ? p.kvGuard / kvDay : 1;
  const mix = (k) => users * (f * a[k] + (1 - f) * b[k]);
  const requests = mix('requests');
  const flushes = flushesPerDay(requests, p);
  // The replay ran in one warm isolate; in production a sync that lands on an isolate that
  // has not seen the user costs one more KV read (the rate limiter restoring its bucket).
  const restoreReads = Math.max(0, users * (p.coldSyncShare * a.syncs - (f * a.restores + (1 - f) * b.restores)));
  return {
    users,
    kvShare: f,
    flushes,
    // the usage accounting's own D1 rows (its flushes), included in the totals below
    accounting_rows_written: flushes * p.flush.rows_written,
    accounting_rows_read: flushes * p.flush.rows_read,
    requests,
    d1: mix('d1') + flushes * p.flush.d1,
    rows_read: mix('rows_read') + flushes * p.flush.rows_read,
    rows_written: mix('rows_written') + flushes * p.flush.rows_written,
    kv_reads: mix('kv_reads') + restoreReads,
    kv_writes: mix('kv_writes'),
  };
}

/** Smallest user count at which resource `key` reaches `fraction` of its limit (Infinity if never). */
export function usersAt(key, fraction, use) {
  const target = LIMITS[key] * fraction;
  let hi = 1;
  while (use(hi)[key] < target) {
    hi *= 2;
    if (hi > 1e9) return Infinity;
  }
  let lo = Math.floor(hi / 2);
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (use(mid)[key] >= target) hi = mid;
    else lo = mid;
  }
  return hi;
}

/** The capacity table: per resource, users at the limit (and at the degrade threshold). */
export function capacity(a, b, p) {
  const use = (n) => dailyUse(n, a, b, p);
  const rows = RESOURCES.map((r) => ({
    ...r,
    limit: LIMITS[r.key],
    linearKv: a[r.key] > 0 ? LIMITS[r.key] / a[r.key] : Infinity,
    linearD1: b[r.key] > 0 ? LIMITS[r.key] / b[r.key] : Infinity,
    model: usersAt(r.key, 1, use),
    modelDegrade: r.key === 'kv_writes' ? Infinity : usersAt(r.key, p.degradeAt, use),
    briefPerUser: BRIEF.perDay[r.key] / BRIEF.users,
    briefShare: BRIEF.perDay[r.key] / LIMITS[r.key],
  }));
  const hard = rows.filter((r) => r.key !== 'kv_writes');
  const binding = hard.reduce((m, r) => (r.model < m.model ? r : m));
  const bindingLinear = rows.reduce((m, r) => (r.linearKv < m.linearKv ? r : m));
  // The KV write guard: past it the worker stops writing (and trusting) KV, so this limit
  // is never exceeded; it only ends the fast path.
  const kvFastPathUntil = a.kv_writes > 0 ? Math.floor(p.kvGuard / a.kv_writes) : Infinity;
  const at = (n) => use(n);
  return { rows, binding: binding.key, bindingLinear: bindingLinear.key, kvFastPathUntil, at30k: at(BRIEF.users) };
}

/** Each resource's share of its limit over a log grid of user counts (for the chart). */
export function series(a, b, p, from = 10, to = 100_000, steps = 120) {
  const pts = [];
  for (let i = 0; i <= steps; i++) {
    const n = from * Math.pow(to / from, i / steps);
    const u = dailyUse(n, a, b, p);
    pts.push({ users: n, share: Object.fromEntries(RESOURCES.map((r) => [r.key, u[r.key] / LIMITS[r.key]])) });
  }
  return pts;
}
