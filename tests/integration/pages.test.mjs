// Packed storage (issue #10, README "Storage"): what each request kind costs in D1 rows,
// read from X-Sync-Ops, for a small user (everything in the head page) and for a user
// with several pages of records (5,000: the head plus buckets); and two devices of the
// large user editing records on different pages converge.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startWorker } from '../helpers/server.mjs';
import { api, newUserId, show, token } from '../helpers/client.mjs';
import { applyPull, check, expectOps, ok, pullAll, task } from '../helpers/sync.mjs';

// From crates/core/src/pages.rs: a spill writes at most 8 buckets and a push splits at
// most 4 (each writes 2), besides the head.
const MAX_ROWS_PER_PUSH = 1 + 8 + 2 * 4;

let srv;
before(async () => {
  // Pushes of up to 1,000 changes (a Paid-plan MAX_CHANGES; the default is 100): this file builds users of thousands of records and pushes that spill into many buckets at once.
  srv = await startWorker({ vars: { MAX_CHANGES: '1000' } });
});
after(async () => {
  await srv?.stop();
});

const mixed = (n, prefix) => Array.from({ length: n }, (_, i) => {
  const id = `${prefix}${i}`;
  switch (i % 4) {
    case 0: return task(id);
    case 1: return { type: 'lists', id, name: `list ${i}` };
    case 2: return { type: 'notes', id, title: `note ${i}`, body: 'b' };
    default: return { type: 'settings', id, value: { i } };
  }
});

async function pushOk(client, changes, cursor = 0) {
  const res = await client.sync({ cursor, changes });
  const b = ok(res);
  assert.equal(b.applied.length + b.conflicts.length, changes.length, show(res));
  return { res, body: b, ops: expectOps(res) };
}

/** A new user with `n` tasks, pushed 1,000 at a time. Returns its client and cursor. */
async function userWith(n, prefix = 't') {
  const c = api(srv.url, await token(newUserId('pages')));
  let cursor = 0;
  for (let i = 0; i < n; i += 1000) {
    const changes = Array.from({ length: Math.min(1000, n - i) }, (_, k) => task(`${prefix}${i + k}`, { title: `task ${i + k}`, version: 1 }));
    await pushOk(c, changes, cursor);
    cursor = (await check(c)).cursor;
  }
  return { c, cursor };
}

describe('a small user (100 records): one row', () => {
  test('pushes of 10 new, 100 edits and a mixed push over every collection each write exactly one row', async () => {
    const { c, cursor } = await userWith(100);
    const p10 = await pushOk(c, Array.from({ length: 10 }, (_, i) => task(`n${i}`)), cursor);
    assert.equal(p10.ops['rows-written'], 1, show(p10.res));
    const edits = Array.from({ length: 100 }, (_, i) => task(`t${i}`, { title: `edited ${i}`, version: 2 }));
    const e100 = await pushOk(c, edits, p10.body.cursor);
    assert.equal(e100.body.applied.length, 100);
    assert.equal(e100.ops['rows-written'], 1, show(e100.res));
    const m = await pushOk(c, mixed(12, 'm'), e100.body.cursor);
    assert.equal(m.body.applied.length, 12);
    assert.equal(m.ops['rows-written'], 1, show(m.res));
    assert.equal(m.ops.d1, 2, `the head read, then written: ${show(m.res)}`);
  });

  test('an idle sync and a check read at most one row and write none; a pull of 100 reads one', async () => {
    const { c, cursor } = await userWith(100);
    const idle = await c.sync({ cursor });
    ok(idle);
    assert.ok(expectOps(idle)['rows-read'] <= 1 && expectOps(idle)['rows-written'] === 0, show(idle));
    const chk = await c.get('/api/sync/check');
    ok(chk);
    assert.ok(expectOps(chk)['rows-read'] <= 1 && expectOps(chk)['rows-written'] === 0, show(chk));
    const pull = await c.sync({ cursor: 0, limit: 100 });
    assert.equal(ok(pull).updates.length, 100);
    assert.equal(expectOps(pull)['rows-read'], 1, show(pull));
  });
});

describe('a user with several pages (5,000 records)', () => {
  let big;
  before(async () => {
    big = await userWith(5000);
  });

  test('pushes write the head and at most the few buckets a spill touches; reads stay small', async () => {
    const { c } = big;
    let cursor = big.cursor;
    const written = [];
    for (let round = 0; round < 5; round++) {
      const p = await pushOk(c, Array.from({ length: 10 }, (_, i) => task(`new${round}-${i}`)), cursor);
      written.push(p.ops['rows-written']);
      cursor = p.body.cursor;
    }
    const edits = Array.from({ length: 100 }, (_, i) => task(`t${i * 47}`, { title: `edit ${i}`, version: 2 }));
    const e = await pushOk(c, edits, cursor);
    assert.equal(e.body.applied.length, 100, show(e.res));
    written.push(e.ops['rows-written']);
    const m = await pushOk(c, mixed(40, 'bm'), e.body.cursor);
    written.push(m.ops['rows-written']);
    cursor = m.body.cursor;
    for (const w of written) assert.ok(w >= 1 && w <= MAX_ROWS_PER_PUSH, `rows written per push: ${written.join(', ')}`);
    assert.ok(written.filter((w) => w === 1).length >= 3, `most small pushes write only the head: ${written.join(', ')}`);

    const idle = await c.sync({ cursor });
    assert.deepEqual(ok(idle).updates, []);
    assert.ok(expectOps(idle)['rows-read'] <= 1 && expectOps(idle)['rows-written'] === 0, show(idle));
    const chk = await c.get('/api/sync/check');
    ok(chk);
    assert.ok(expectOps(chk)['rows-read'] <= 1, show(chk));
    // pulling the last push's 40 changes reads the head, plus at most the buckets the
    // last two pushes spilled into (a spill moves whole bucket groups out of the head)
    const recent = await c.sync({ cursor: e.body.cursor });
    assert.equal(ok(recent).updates.length, 40, show(recent));
    assert.ok(expectOps(recent)['rows-read'] <= 1 + 2 * 8, show(recent));

    // a push of 1,000 new records spills into many buckets: their writes are split so no
    // parameter passes D1's 2 MB value limit (it was one parameter: SQLITE_TOOBIG, a 500)
    const many = await pushOk(c, Array.from({ length: 1000 }, (_, i) => task(`bulk${i}`, { title: `bulk task ${i} with a longer title`, description: 'd'.repeat(200) })), cursor);
    assert.ok(many.ops['rows-written'] >= 2, show(many.res));
  });

  test('a small push into the large user sees the old records it names, and its pull misses none', async () => {
    // A push reads the buckets its keys address but decodes them only as far as it must
    // (README "Storage"): the stored records must still be found (the version rule, the
    // server's copy in a conflict) and its pull must still read through those buckets.
    const { c } = await userWith(3000, 'q');
    const before = ok(await c.sync({ cursor: 0, limit: 1000 }));
    assert.equal(before.updates.length, 1000);
    const changes = [
      task('q5', { title: 'stale', version: 1 }), // q5 is at version 1: not above it
      task('q9', { title: 'edited' }), // no version: one above the stored one
      task('q-new', { title: 'new' }),
    ];
    const res = await c.sync({ cursor: 0, limit: 999, changes });
    const p = ok(res);
    assert.deepEqual(p.conflicts.map((x) => [x.id, x.reason]), [['q5', 'stale_version']], show(res));
    assert.equal(p.conflicts[0].server?.title, 'task 5', show(res));
    const applied = Object.fromEntries(p.applied.map((a) => [a.id, a.version]));
    assert.deepEqual(applied, { q9: 2, 'q-new': 1 }, show(res));
    // Its pull from 0 (its own changes left out) is the first page as before, q9 gone from it.
    const ids = (b) => b.updates.map((r) => r.id);
    assert.deepEqual(ids(p), ids(before).filter((id) => id !== 'q9').slice(0, 999), 'the push\'s pull from 0');
  });

  test('two devices editing records on different pages converge, nothing acknowledged lost', async () => {
    const userId = newUserId('pages2');
    const A = api(srv.url, await token(userId, { claims: { device: 'a' } }));
    const B = api(srv.url, await token(userId, { claims: { device: 'b' } }));
    let seed = 0;
    for (let i = 0; i < 5000; i += 1000) {
      seed = (await pushOk(A, Array.from({ length: 1000 }, (_, k) => task(`r${i + k}`, { title: `seed ${i + k}`, version: 1 })))).body.cursor;
    }
    const state = { A: new Map(), B: new Map() };
    const cursor = { A: 0, B: 0 };
    for (const [name, client] of [['A', A], ['B', B]]) {
      const all = await pullAll(client, 0, { limit: 1000, maxPages: 20 });
      applyPull(state[name], all);
      cursor[name] = all.cursor;
    }
    assert.equal(state.A.size, 5000);
    assert.ok(cursor.A >= seed);
    const expected = new Map(); // id → title the server must hold
    // interleaved rounds: A edits ids ≡ 0 (mod 7), B ids ≡ 3 (mod 7), spread over every bucket
    for (let round = 0; round < 6; round++) {
      for (const [name, client, off] of [['A', A, 0], ['B', B, 3]]) {
        const ids = Array.from({ length: 60 }, (_, i) => `r${(round * 420 + i * 7 + off) % 5000}`);
        const changes = ids.map((id) => {
          const cur = state[name].get(`tasks/${id}`);
          return task(id, { title: `${name}${round} ${id}`, version: cur.version + 1 });
        });
        const p = await pushOk(client, changes, cursor[name]);
        assert.deepEqual(p.body.conflicts, [], `disjoint edits never conflict: ${JSON.stringify(p.body.conflicts).slice(0, 300)}`);
        for (const id of ids) expected.set(id, `${name}${round} ${id}`);
        for (const a of p.body.applied) {
          const c = changes.find((x) => x.id === a.id);
          state[name].set(`tasks/${a.id}`, { ...c, type: 'tasks', version: a.version, rev: a.rev });
        }
        applyPull(state[name], p.body);
        cursor[name] = p.body.cursor;
        if (p.body.has_more) {
          const rest = await pullAll(client, cursor[name], { limit: 1000 });
          applyPull(state[name], rest);
          cursor[name] = rest.cursor;
        }
      }
    }
    for (const [name, client] of [['A', A], ['B', B]]) {
      const rest = await pullAll(client, cursor[name], { limit: 1000 });
      applyPull(state[name], rest);
    }
    // the server's live set, by download
    const server = new Map();
    let after = '';
    for (;;) {
      const q = new URLSearchParams({ limit: '1000', ...(after ? { after } : {}) });
      const b = ok(await A.get(`/api/sync/tasks?${q}`));
      for (const r of b.data) server.set(r.id, r);
      if (!b.has_more) break;
      after = b.data.at(-1).id;
    }
    assert.equal(server.size, 5000);
    for (const [id, title] of expected) assert.equal(server.get(id)?.title, title, `acknowledged edit of ${id}`);
    for (const name of ['A', 'B']) {
      const mine = [...state[name].values()].filter((r) => !r.deleted);
      assert.equal(mine.length, 5000, `${name} holds every record`);
      for (const r of mine) {
        const s = server.get(r.id);
        assert.deepEqual([r.version, r.rev, r.title], [s.version, s.rev, s.title], `${name}'s copy of ${r.id}`);
      }
    }
  });
});
