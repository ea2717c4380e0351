// BENCHMARKS.md §5's part on the SDK: the requests per user-day the shipped client makes
// under the brief's mix, from bench/results/sdk-day.json (bench/sdk-day.mjs).
const f = (x, d = 2) => Number(x).toFixed(d);
const n = (x) => Math.round(x).toLocaleString('en-US');

export function sdkSection(r) {
  const s = r.usageModel.schedule;
  const h = (ms) => `${ms / 3600_000} h`;
  const u = r.perUserDay;
  return [
    '### The SDK\'s own schedule',
    '',
    `The same mix driven by the client SDK itself (\`bench/sdk-day.mjs\`): ${r.usageModel.users} users × ${r.usageModel.devices} devices, each device a real SDK client ` +
      '(`client/dist/edgesync.js`, memory storage) whose own scheduler runs on one virtual clock against the real worker, every request counted over one UTC day. ' +
      `The SDK syncs with one \`POST /api/sync\` per sync (push and pull together, no check first), pushes ${s.debounceMs / 1000} s after the last local change, ` +
      `polls every ${h(s.activeIntervalMs)} while the user is active and every ${h(s.inactiveIntervalMs)} after ${s.inactiveAfterMs / 86_400_000} days without a change; apps stay open all day, no focus events.`,
    '',
    '| per user and day | requests | pushes | polls | D1 rows read | D1 rows written | KV reads | KV writes |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
    `| SDK (all users) | **${f(u.requests)}** | ${f(u.pushes)} | ${f(u.pulls)} | ${f(u.rows_read)} | ${f(u.rows_written)} | ${f(u.kv_reads)} | ${f(u.kv_writes)} |`,
    '',
    `An active user makes ${f(r.activeUserDay)} requests a day, an inactive one ${f(r.inactiveUserDay)}. At ${f(u.requests)} requests per user-day the request quota alone holds ` +
      `${n(r.usersAtRequestLimit)} users; D1 rows written (${f(u.rows_written)} a user-day before the usage flushes) ` +
      `${r.usersAtRowsWrittenLimit < r.usersAtRequestLimit ? 'bind first' : 'allow more'}, ${n(r.usersAtRowsWrittenLimit)} users linearly. \`node bench/sdk-day.mjs\` (${r.seconds} s of replay).`,
    ...(r.devRestarts
      ? ['', `${n(r.devRestarts)} of the ${n(r.requests)} requests got the local dev server's own \`503 Your worker restarted mid-request\` (wrangler's proxy, when its socket to workerd breaks under concurrent local KV writes; not an answer of the worker, and retried by the SDK like any transient failure); they are counted above as requests.`]
      : []),
  ];
}
