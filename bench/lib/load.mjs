// A closed-loop load generator: `concurrency` slots, each sending its next request as soon
// as its previous answer is read, over keep-alive connections (one per slot). Bounded in
// both time and count. Latencies of the warm-up period are not recorded.
import { quantile, send } from './common.mjs';

/**
 * @param {object} o
 * @param {string} o.base            worker URL
 * @param {number} o.concurrency     requests in flight
 * @param {number} o.durationMs      measured period (after warm-up)
 * @param {number} o.warmupMs        unrecorded period first
 * @param {number} o.maxRequests     hard cap on requests sent (warm-up included)
 * @param {(slot:number, i:number) => object|Promise<object>} o.next   the request (for send())
 * @param {number[]} o.ok            statuses that count as success
 * @param {(slot:number, res:object) => void} [o.after]   sees every response (e.g. to advance a cursor)
 */
export async function load({ base, concurrency, durationMs, warmupMs, maxRequests, next, ok, after }) {
  const start = performance.now();
  const measureFrom = start + warmupMs;
  const end = measureFrom + durationMs;
  let issued = 0;
  const lat = [];
  const server = [];
  const statuses = {};
  const ops = {};
  const errors = [];
  let measured = 0;
  let firstMeasured = null;
  let lastDone = null;

  async function slot(s) {
    for (;;) {
      const now = performance.now();
      if (now >= end || issued >= maxRequests) return;
      const i = issued++;
      const req = await next(s, i);
      const sentAt = performance.now();
      let res;
      try {
        res = await send(base, { ...req, maxSockets: concurrency });
      } catch (e) {
        if (sentAt >= measureFrom) errors.push(String(e.message || e));
        continue;
      }
      const doneAt = performance.now();
      if (after) after(s, res);
      if (sentAt < measureFrom) continue;
      firstMeasured ??= sentAt;
      lastDone = doneAt;
      measured++;
      statuses[res.status] = (statuses[res.status] || 0) + 1;
      if (!ok.includes(res.status)) {
        if (errors.length < 20) errors.push(`HTTP ${res.status}: ${res.text.slice(0, 200)}`);
        else errors.push(`HTTP ${res.status}`);
        continue;
      }
      lat.push(res.ms);
      if (res.serverMs != null) server.push(res.serverMs);
      const key = res.opsHeader ?? '(none)';
      ops[key] = (ops[key] || 0) + 1;
    }
  }

  await Promise.all(Array.from({ length: concurrency }, (_, s) => slot(s)));
  lat.sort((a, b) => a - b);
  server.sort((a, b) => a - b);
  const seconds = firstMeasured == null ? 0 : (lastDone - firstMeasured) / 1000;
  const failed = errors.length;
  return {
    concurrency,
    requests: measured,
    seconds: Number(seconds.toFixed(3)),
    rps: seconds > 0 ? Number((lat.length / seconds).toFixed(1)) : 0,
    p50: quantile(lat, 0.5),
    p90: quantile(lat, 0.9),
    p99: quantile(lat, 0.99),
    max: lat.length ? lat[lat.length - 1] : null,
    server_p50: quantile(server, 0.5),
    server_p99: quantile(server, 0.99),
    errors: failed,
    error_samples: errors.slice(0, 5),
    statuses,
    ops,
    capped: issued >= maxRequests,
  };
}
