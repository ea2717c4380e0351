// The brief's usage mix driven by the SDK itself: every device is a real SDK client
// (client/dist/edgesync.js, memory storage) whose own scheduler (debounced pushes,
// activity-based polls, backoff) runs on one virtual clock, against the real worker
// (local workerd, D1, KV). Every request is counted with its X-Sync-Ops over one simulated
// UTC day, so the result is the requests per user-day the shipped client makes. Writes
// bench/results/sdk-day.json.
//
//   node bench/sdk-day.mjs                 100 users, the brief's mix
//   node bench/sdk-day.mjs --help          every parameter
//
// Mix (as bench/capacity.mjs): 60% of users active (7 task creations a day in 3 editing
// sessions, each session on one device, its creations a few seconds apart), 2 devices per
// user, apps running all day, no focus or visibility events. Inactive users made their
// last edit 8 days ago (past the SDK's 7-day inactivity threshold); active users edited
// within the last day. The SDK's default schedule decides when to sync.
import { createClient, DEFAULT_SCHEDULE, memoryStorage, virtualClock } from '../client/dist/edgesync.js';
import { startWorker } from '../tests/helpers/server.mjs';
import { token } from '../tests/helpers/client.mjs';
import { parseOps } from '../tests/helpers/client.mjs';
import fs from 'node:fs';
import path from 'node:path';

import { RESULTS, flags, log, rng, writeResult } from './lib/common.mjs';

const opt = flags(
  { users: 100, activeShare: 0.6, devices: 2, creates: 7, sessions: 3, editGapS: 2, initialRecords: 100, seed: 1 },
  {
    users: 'simulated users',
    activeShare: 'share of active users',
    devices: 'devices per user (each an SDK client, app open all day)',
    creates: 'task creations per active user per day',
    sessions: 'editing sessions per active user per day',
    editGapS: 'seconds between the creations of one session',
    initialRecords: 'tasks each user holds before the day',
    seed: 'PRNG seed',
  },
);

const DAY = 86_400_000;
const T0 = Date.UTC(2026, 5, 1); // the measured day starts at a UTC midnight
const R = rng(opt.seed);
const srv = await startWorker();
const clock = virtualClock(T0 - 8 * DAY);
let measuring = false;
const errorSamples = [];
const acc = { requests: 0, pushes: 0, pulls: 0, d1: 0, 'rows-read': 0, 'rows-written': 0, 'kv-read': 0, 'kv-write': 0, errors: 0, devRestarts: 0 };
const per = { active: { requests: 0, users: 0 }, inactive: { requests: 0, users: 0 } };

function counted(user) {
  return async (url, init) => {
    const res = await fetch(url, init);
    if (measuring) {
      acc.requests++;
      per[user.active ? 'active' : 'inactive'].requests++;
      const body = init?.body ? JSON.parse(init.body) : null;
      if (body?.changes?.length) acc.pushes++;
      else acc.pulls++;
      if (res.status !== 200) {
        // what went wrong, for the log (the body read from a clone: the SDK reads its own)
        const text = await res.clone().text().catch((e) => `(unreadable: ${e})`);
        // wrangler dev's own proxy (not the worker: its 503s are problem+json) answers this
        // when its socket to workerd breaks under concurrent local KV writes; the SDK
        // retries it like any transient failure (tests/helpers/client.mjs explains)
        if (res.status === 503 && /^text\/plain/.test(res.headers.get('content-type') || '') && text.startsWith('Your worker restarted mid-request')) {
          acc.devRestarts++;
        } else {
          acc.errors++;
          errorSamples.push(`${init?.method ?? 'GET'} ${new URL(url).pathname} → ${res.status} ${text.slice(0, 300)}`);
        }
      }
      const ops = parseOps(res.headers.get('x-sync-ops'));
      for (const k of ['d1', 'rows-read', 'rows-written', 'kv-read', 'kv-write']) acc[k] += ops[k] ?? 0;
    }
    return res;
  };
}

const clients = [];
const settle = async () => {
  for (let i = 0; i < 2; i++) {
    await Promise.all(clients.map((c) => c.client.idle()));
    await new Promise((r) => setImmediate(r));
  }
};
const advanceTo = async (end) => {
  for (let next = clock.next(); next != null && next <= end; next = clock.next()) {
    clock.advanceTo(next);
    await settle();
  }
  clock.advanceTo(end);
};

try {
  const users = [];
  for (let u = 0; u < opt.users; u++) {
    const user = { index: u, active: u < Math.round(opt.users * opt.activeShare), token: await token(`sdk-day-${opt.seed}-${u}`), devices: [] };
    per[user.active ? 'active' : 'inactive'].users++;
    for (let d = 0; d < opt.devices; d++) {
      const dev = { user, storage: memoryStorage() };
      dev.open = () => {
        dev.client = createClient({ url: srv.url, getToken: () => user.token, storage: dev.storage, clock, random: R, fetch: counted(user), deviceId: `u${u}d${d}` });
        return dev.client;
      };
      user.devices.push(dev);
    }
    users.push(user);
  }
  // Setup, 8 days before: each user's records from device 0, every device synced.
  log(`[sdk-day] worker ${srv.url}; setup of ${opt.users} users x ${opt.devices} devices`);
  for (const user of users) {
    for (const dev of user.devices) clients.push({ client: dev.open() });
    const tasks = user.devices[0].client.collection('tasks');
    for (let i = 0; i < opt.initialRecords; i++) await tasks.put({ id: `init-${i}`, title: `initial task ${i}` });
    await user.devices[0].client.sync();
    for (const dev of user.devices.slice(1)) await dev.client.sync();
  }
  // The apps restart an hour before the day (their startup syncs are not counted);
  // active users make an edit then, so they count as active.
  for (const c of clients) c.client.close();
  clients.length = 0;
  clock.advanceTo(T0 - 3600_000);
  for (const user of users) for (const dev of user.devices) clients.push({ client: dev.open() });
  await settle();
  for (const user of users) if (user.active) await user.devices[0].client.collection('tasks').put({ id: 'yesterday', title: 'edited yesterday' });
  await advanceTo(T0 - 1);

  // The day's edits: sessions at random times on a random device.
  const edits = [];
  for (const user of users) {
    if (!user.active) continue;
    const counts = Array.from({ length: opt.sessions }, () => Math.floor(opt.creates / opt.sessions));
    for (let i = 0; i < opt.creates % opt.sessions; i++) counts[Math.floor(R() * opt.sessions)]++;
    let made = 0;
    for (const n of counts) {
      const at = T0 + Math.floor(R() * (DAY - 600_000));
      const dev = user.devices[Math.floor(R() * user.devices.length)];
      for (let k = 0; k < n; k++) edits.push({ at: at + k * opt.editGapS * 1000, dev, id: `day-${made++}` });
    }
  }
  edits.sort((a, b) => a.at - b.at);

  measuring = true;
  const started = performance.now();
  for (const e of edits) {
    await advanceTo(e.at);
    await e.dev.client.collection('tasks').put({ id: e.id, title: `task ${e.id}` });
  }
  await advanceTo(T0 + DAY - 1);
  measuring = false;
  const seconds = (performance.now() - started) / 1000;

  const n = opt.users;
  const result = {
    usageModel: { ...opt, schedule: DEFAULT_SCHEDULE },
    requests: acc.requests,
    errors: acc.errors,
    devRestarts: acc.devRestarts,
    error_samples: errorSamples.slice(0, 10),
    seconds: Number(seconds.toFixed(1)),
    perUserDay: {
      requests: acc.requests / n,
      pushes: acc.pushes / n,
      pulls: acc.pulls / n,
      d1: acc.d1 / n,
      rows_read: acc['rows-read'] / n,
      rows_written: acc['rows-written'] / n,
      kv_reads: acc['kv-read'] / n,
      kv_writes: acc['kv-write'] / n,
    },
    activeUserDay: per.active.requests / Math.max(1, per.active.users),
    inactiveUserDay: per.inactive.requests / Math.max(1, per.inactive.users),
  };
  result.usersAtRequestLimit = Math.floor(100_000 / result.perUserDay.requests);
  result.usersAtRowsWrittenLimit = Math.floor(100_000 / result.perUserDay.rows_written);
  const f = (x) => x.toFixed(2);
  console.log(`\nSDK schedule, brief's mix: ${f(result.perUserDay.requests)} requests per user-day (${f(result.perUserDay.pushes)} pushes, ${f(result.perUserDay.pulls)} polls); active user ${f(result.activeUserDay)}, inactive ${f(result.inactiveUserDay)}`);
  console.log(`per user-day: D1 rows read ${f(result.perUserDay.rows_read)}, rows written ${f(result.perUserDay.rows_written)}, KV reads ${f(result.perUserDay.kv_reads)}, KV writes ${f(result.perUserDay.kv_writes)}; ${acc.errors} non-200 answers of the worker, ${acc.devRestarts} dev-server proxy resets (retried by the SDK)`);
  console.log(`linear: the request quota holds ${result.usersAtRequestLimit.toLocaleString('en-US')} users, D1 rows written ${result.usersAtRowsWrittenLimit.toLocaleString('en-US')} (before usage-flush and rate-limiter overheads, see BENCHMARKS.md §5)`);
  log(`[sdk-day] wrote ${writeResult('sdk-day', result)} (${result.seconds} s)`);
  if (acc.errors) {
    for (const e of errorSamples.slice(0, 10)) log(`[sdk-day] non-200: ${e}`);
    fs.writeFileSync(path.join(RESULTS, 'sdk-day-worker.log'), srv.logs());
    const lines = srv.logs().split('\n').filter((l) => /error|panic|restart|reload|exceeded|✘|change|updat/i.test(l));
    for (const l of lines.slice(-40)) log(`[sdk-day] worker log: ${l.slice(0, 400)}`);
    process.exitCode = 1;
  }
} finally {
  for (const c of clients) c.client.close();
  await srv.stop();
}
