// Seeded convergence fuzz: several SDK clients of one user against the reference server
// over HTTP, random puts and deletes on a small shared id pool (so edits collide), random
// network failures (refused before the server applies, lost after it applied, 503, 429,
// malformed answers), reloads (a new client on the same storage, as after a crash) and a
// tombstone purge (pulls from older cursors get 410). Then the network heals: every client
// must hold exactly the server's live records, with an empty outbox, and no edit a put()
// or delete() acknowledged (resolved) may be lost: each client's last edit of each record
// was applied by the server, or the client reported a conflict or a rejection for it.
//   EDGESYNC_SEED=<n> node --test tests/client/convergence-fuzz.test.mjs   replays one seed
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Reference, fields, problem } from './helpers/reference.mjs';
import { scriptedServer, seeded } from './helpers/scripted.mjs';

const { createClient, memoryStorage, virtualClock } = await import(process.env.EDGESYNC_SDK ?? '../../client/dist/edgesync.js');

const SEEDS = process.env.EDGESYNC_SEED ? [Number(process.env.EDGESYNC_SEED)] : [11, 12, 13];
const CLIENTS = 4;
const STEPS = Number(process.env.STEPS ?? 300);

for (const seed0 of SEEDS) {
  test(`${CLIENTS} clients converge under failures, reloads and a purge (seed ${seed0})`, async (t) => {
    const R = seeded(seed0);
    t.diagnostic(`seed ${R.seed} (replay: EDGESYNC_SEED=${R.seed})`);
    const ref = new Reference();
    const clock = virtualClock(Date.UTC(2026, 2, 1, 8));
    let failing = true;
    const stats = {};
    const srv = await scriptedServer((req) => {
      const roll = failing ? R.next() : 1;
      const kind = roll < 0.06 ? 'refuse' : roll < 0.12 ? 'lost' : roll < 0.16 ? '503' : roll < 0.2 ? '429' : roll < 0.23 ? 'malformed' : 'ok';
      stats[kind] = (stats[kind] ?? 0) + 1;
      if (kind === 'refuse') return 'reset';
      if (kind === '503') return { ...problem(503, 'busy'), headers: { 'retry-after': '1' } };
      if (kind === '429') return { ...problem(429, 'rate_limited'), headers: { 'retry-after': String(1 + R.int(30)) } };
      if (kind === 'malformed') return { status: 200, body: '{"applied":[{"type":' };
      const answer = ref.answer(req);
      return kind === 'lost' ? 'reset' : answer;
    });

    if (process.env.TRACE) setInterval(() => console.error('REQS', srv.requests.length, stats), 1000).unref();
    const devices = Array.from({ length: CLIENTS }, (_, i) => ({ i, storage: memoryStorage(), last: new Map(), reported: new Map(), client: null }));
    const make = (d) => {
      const c = createClient({
        url: srv.url,
        getToken: () => 'token',
        storage: d.storage,
        clock,
        random: R.next,
        deviceId: `dev-${d.i}`,
        schedule: { pageLimit: 1 + R.int(5), maxChanges: 1 + R.int(8) },
      });
      // conflicts and rejections count as "the app was told" for that record
      c.on('conflict', (e) => d.reported.set(`${e.type}:${e.id}`, clock.now()));
      c.on('reject', (e) => d.reported.set(`${e.type}:${e.id}`, clock.now()));
      d.client = c;
    };
    devices.forEach(make);
    const settle = async () => {
      for (let k = 0; k < 3; k++) {
        for (const d of devices) await d.client.idle();
        await new Promise((r) => setImmediate(r));
      }
    };
    const advance = async (ms) => {
      const end = clock.now() + ms;
      for (let next = clock.next(); next != null && next <= end; next = clock.next()) {
        clock.advanceTo(next);
        await settle();
      }
      clock.advanceTo(end);
    };
    await settle();

    const ids = ['a', 'b', 'c', 'd', 'e', 'f'];
    let n = 0;
    let purged = 0;
    for (let step = 0; step < STEPS; step++) {
      const d = R.pick(devices);
      const roll = R.next();
      if (process.env.TRACE) console.error('step', step, d.i, roll.toFixed(3), srv.requests.length, clock.now());
      if (roll < 0.45) {
        const type = R.pick(['tasks', 'lists']);
        const id = R.pick(ids);
        const col = d.client.collection(type);
        const when = clock.now();
        if (R.next() < 0.25) {
          await col.delete(id);
          d.last.set(`${type}:${id}`, { at: when, deleted: true });
        } else {
          const rec = type === 'tasks' ? { id, title: `t${++n}`, completed: R.next() < 0.5 } : { id, name: `l${++n}` };
          await col.put(rec);
          d.last.set(`${type}:${id}`, { at: when, fields: fields(rec) });
        }
      } else if (roll < 0.8) {
        await advance(R.int(20_000));
      } else if (roll < 0.88) {
        void d.client.sync();
      } else if (roll < 0.95) {
        d.client.close();
        await settle();
        make(d);
      } else if (roll < 0.97 && purged < 2) {
        ref.purge();
        purged++;
      } else {
        await advance(R.int(6 * 3600_000));
      }
      await settle();
    }

    // Heal the network; let every client sync a few times.
    failing = false;
    for (let round = 0; round < 4; round++) {
      await advance(10 * 60_000);
      for (const d of devices) await d.client.sync();
      await settle();
    }
    t.diagnostic(`${srv.requests.length} requests ${JSON.stringify(stats)}; purges ${purged}; server seq ${ref.seq}`);

    const live = ref.live();
    for (const d of devices) {
      assert.equal(d.client.status.pending, 0, `seed ${R.seed}: device ${d.i} outbox empty: ${JSON.stringify(d.client.status)}`);
      for (const type of ['tasks', 'lists']) {
        const mine = Object.fromEntries(d.client.collection(type).list().map((r) => [r.id, { ...fields(r), version: r.version }]));
        const theirs = Object.fromEntries(Object.entries(live[type] ?? {}).map(([id, r]) => [id, { ...fields(r), version: r.version }]));
        assert.deepEqual(mine, theirs, `seed ${R.seed}: device ${d.i} ${type} equals the server`);
      }
      // No acknowledged edit lost: the last edit of each record was applied or reported.
      for (const [key, edit] of d.last) {
        const reported = (d.reported.get(key) ?? -1) >= edit.at;
        const history = ref.history.get(key) ?? [];
        const applied = history.some((h) => (edit.deleted ? h.deleted : !h.deleted && JSON.stringify(sorted(h.fields)) === JSON.stringify(sorted(edit.fields))));
        const neverExisted = edit.deleted && !history.length; // created and deleted offline: nothing to send
        assert.ok(applied || reported || neverExisted, `seed ${R.seed}: device ${d.i}'s last edit of ${key} (${JSON.stringify(edit)}) was neither applied nor reported`);
      }
    }
    for (const d of devices) d.client.close();
    await srv.close();
  });
}

function sorted(o) {
  return Object.fromEntries(Object.entries(o ?? {}).sort());
}
