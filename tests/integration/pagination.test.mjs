// Paging through 1,200 records with POST /api/sync, /changes?since= and the full download;
// `since` validation; the D1 cost of a push does not grow with its size.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startWorker } from '../helpers/server.mjs';
import { api, newUserId, parseOps, rid, show, token } from '../helpers/client.mjs';
import { expectProblem, findRec, ok, pullAll, push, task } from '../helpers/sync.mjs';

let srv;
let P; // the user with 1,200 tasks
let ids; // their ids
let push1000Ops;

before(async () => {
  // Pushes of up to 1,000 changes (a Paid-plan MAX_CHANGES; the default is 100): the user is built by a push of 1,000 and one of 200, whose D1 costs are compared.
  srv = await startWorker({ vars: { MAX_CHANGES: '1000' } });
  P = api(srv.url, await token(newUserId('pager')));
  ids = Array.from({ length: 1200 }, (_, i) => `task-${String(i).padStart(5, '0')}-${rid('x')}`);
  const r1 = await P.sync({ cursor: 0, changes: ids.slice(0, 1000).map((id, i) => task(id, { title: `t${i}`, sort_order: i })) });
  assert.equal(r1.status, 200, show(r1));
  assert.equal(r1.body.applied.length, 1000);
  push1000Ops = parseOps(r1.headers.get('x-sync-ops'));
  const r2 = await P.sync({ cursor: r1.body.cursor, changes: ids.slice(1000).map((id, i) => task(id, { title: `t${1000 + i}`, sort_order: 1000 + i })) });
  assert.equal(r2.status, 200, show(r2));
  assert.equal(r2.body.applied.length, 200);
});
after(async () => {
  await srv?.stop();
});

function assertEachOnce(got, msg) {
  const seen = new Map();
  for (const id of got) seen.set(id, (seen.get(id) ?? 0) + 1);
  const dups = [...seen].filter(([, n]) => n > 1).map(([id]) => id);
  assert.deepEqual(dups, [], `${msg}: ids delivered more than once`);
  const missing = ids.filter((id) => !seen.has(id));
  assert.deepEqual(missing.slice(0, 10), [], `${msg}: ${missing.length} ids never delivered`);
  assert.equal(got.length, ids.length, msg);
}

describe('1,200 tasks, limit 500', () => {
  test('POST /api/sync paging: 3 pages, has_more true,true,false, every id exactly once', async () => {
    const { updates, deleted, pages } = await pullAll(P, 0, { limit: 500 });
    assert.deepEqual(pages.map((p) => p.has_more), [true, true, false]);
    assert.deepEqual(pages.map((p) => p.updates.length), [500, 500, 200]);
    assert.deepEqual(deleted, []);
    assertEachOnce(updates.map((r) => r.id), 'POST /api/sync pages');
    const cursors = pages.map((p) => p.cursor);
    assert.ok(cursors[0] < cursors[1] && cursors[1] < cursors[2], `cursors must advance: ${cursors}`);
    // pages end at the last row they contain
    for (const p of pages) assert.equal(p.cursor, Math.max(...p.updates.map((r) => r.rev)), 'page cursor = its last rev');
    const tail = ok(await P.sync({ cursor: cursors[2], limit: 500 }));
    assert.deepEqual(tail.updates, []);
    assert.equal(tail.has_more, false);
  });

  test('POST /api/sync without limit pages by 500 by default', async () => {
    const b = ok(await P.sync({ cursor: 0 }));
    assert.equal(b.updates.length, 500);
    assert.equal(b.has_more, true);
  });

  test('/api/sync/tasks/changes?since= paging: 3 pages, every id exactly once, since=0 valid', async () => {
    const got = [];
    const hasMore = [];
    let since = 0;
    for (let i = 0; i < 10; i++) {
      const b = ok(await P.get(`/api/sync/tasks/changes?since=${since}&limit=500`));
      assert.equal(b.success, true);
      assert.equal(b.since, since);
      const recs = [...b.changes.created, ...b.changes.updated];
      assert.deepEqual(b.changes.deleted, []);
      assert.equal(b.changes.updated.length, 0, 'every record was created after since=0');
      got.push(...recs.map((r) => r.id));
      hasMore.push(b.has_more);
      assert.ok(b.cursor > since, 'cursor must advance');
      since = b.cursor;
      if (!b.has_more) break;
    }
    assert.deepEqual(hasMore, [true, true, false]);
    assertEachOnce(got, '/changes pages');
  });

  test('/changes without limit returns at most 500; limit above 1,000 is capped or refused', async () => {
    const b = ok(await P.get('/api/sync/tasks/changes?since=0'));
    assert.equal(b.changes.created.length, 500);
    assert.equal(b.has_more, true);
    const big = await P.get('/api/sync/tasks/changes?since=0&limit=5000');
    if (big.status === 200) assert.ok(big.body.changes.created.length <= 1000, 'limit max is 1,000');
    else expectProblem(big, 400, 'invalid_field', { field: 'limit' });
    const max = ok(await P.get('/api/sync/tasks/changes?since=0&limit=1000'));
    assert.equal(max.changes.created.length, 1000);
  });

  test('POST /api/sync and full download cap limit at 1,000 (or refuse a larger one)', async () => {
    const a = await P.sync({ cursor: 0, limit: 5000 });
    if (a.status === 200) {
      assert.equal(a.body.updates.length, 1000, 'limit above the max is capped at 1,000');
      assert.equal(a.body.has_more, true);
    } else expectProblem(a, 400, 'invalid_field', { field: 'limit' });
    const b = await P.get('/api/sync/tasks?limit=5000');
    if (b.status === 200) assert.equal(b.body.data.length, 1000);
    else expectProblem(b, 400, 'invalid_field', { field: 'limit' });
    const c = ok(await P.get('/api/sync/tasks'));
    assert.equal(c.data.length, 500, 'full download default limit is 500');
    assert.equal(c.has_more, true);
  });

  test('full download paging with after=<id>: ids ascending, each once, has_more true,true,false', async () => {
    const got = [];
    const hasMore = [];
    let after;
    let firstCursor;
    for (let i = 0; i < 10; i++) {
      const q = after === undefined ? '?limit=500' : `?limit=500&after=${encodeURIComponent(after)}`;
      const b = ok(await P.get(`/api/sync/tasks${q}`));
      assert.equal(b.success, true);
      assert.equal(b.count, b.data.length);
      const pageIds = b.data.map((r) => r.id);
      assert.deepEqual(pageIds, [...pageIds].sort(), 'a page is ordered by id');
      if (after !== undefined) assert.ok(pageIds[0] > after, 'the page starts after `after`');
      if (firstCursor === undefined) firstCursor = b.cursor;
      got.push(...pageIds);
      hasMore.push(b.has_more);
      after = pageIds.at(-1);
      if (!b.has_more) break;
    }
    assert.deepEqual(hasMore, [true, true, false]);
    assertEachOnce(got, 'full download pages');
    assert.ok(Number.isInteger(firstCursor));
    const nothing = ok(await P.get(`/api/sync/tasks/changes?since=${firstCursor}`));
    assert.equal(nothing.changes.created.length + nothing.changes.updated.length + nothing.changes.deleted.length, 0,
      'pulling from the download cursor right away returns nothing');
  });
});

describe('paging while another device writes', () => {
  test('a change made between pages of a full download arrives when pulling from the first page cursor', async () => {
    const U = api(srv.url, await token(newUserId()));
    const mine = Array.from({ length: 30 }, (_, i) => `k${String(i).padStart(3, '0')}`);
    await push(U, mine.map((id) => task(id, { version: 1 })));
    const p1 = ok(await U.get('/api/sync/tasks?limit=10'));
    // another device edits a record of page 1 and one of page 3, and deletes one of page 2
    await push(U, [task('k001', { title: 'edited', version: 2 }), task('k025', { title: 'edited too', version: 2 }), { type: 'tasks', id: 'k015', deleted: true }]);
    let after = p1.data.at(-1).id;
    for (let more = p1.has_more; more;) {
      const b = ok(await U.get(`/api/sync/tasks?limit=10&after=${after}`));
      if (!b.data.length) break;
      after = b.data.at(-1).id;
      more = b.has_more;
    }
    const delta = ok(await U.get(`/api/sync/tasks/changes?since=${p1.cursor}`));
    const upd = [...delta.changes.created, ...delta.changes.updated];
    assert.equal(upd.find((r) => r.id === 'k001')?.title, 'edited');
    assert.equal(upd.find((r) => r.id === 'k025')?.title, 'edited too');
    assert.deepEqual(delta.changes.deleted, ['k015']);
  });

  test('POST /api/sync paging interleaved with peer writes loses nothing', async () => {
    const userId = newUserId();
    const W = api(srv.url, await token(userId));
    const R = api(srv.url, await token(userId));
    const first = Array.from({ length: 25 }, () => rid('a'));
    await push(W, first.map((id) => task(id)));
    const state = new Map();
    let cursor = 0;
    let round = 0;
    const later = [];
    for (let more = true; more; round++) {
      const b = ok(await R.sync({ cursor, limit: 10 }));
      for (const r of b.updates) state.set(r.id, r);
      cursor = b.cursor;
      more = b.has_more;
      if (round < 3) {
        // the writer edits an already-delivered record and adds a new one between pages
        const id = rid('b');
        later.push(id);
        await push(W, [task(id), task(first[round], { title: `edit ${round}` })]);
        more = true;
      }
      assert.ok(round < 20);
    }
    for (const id of [...first, ...later]) assert.ok(state.has(id), `${id} missed`);
    for (let i = 0; i < 3; i++) assert.equal(state.get(first[i]).title, `edit ${i}`);
  });
});

describe('since validation', () => {
  test('since=abc, negative, fractional or missing → 400 invalid_field naming since', async () => {
    for (const q of ['since=abc', 'since=-1', 'since=1.5', '', 'since=']) {
      const res = await P.get(`/api/sync/tasks/changes?${q}`);
      expectProblem(res, 400, 'invalid_field', { field: 'since' });
    }
  });

  test('limit=abc → 400 invalid_field naming limit', async () => {
    expectProblem(await P.get('/api/sync/tasks/changes?since=0&limit=abc'), 400, 'invalid_field', { field: 'limit' });
    expectProblem(await P.get('/api/sync/tasks?limit=abc'), 400, 'invalid_field', { field: 'limit' });
  });

  test('since beyond the current cursor returns nothing', async () => {
    const b = ok(await P.get(`/api/sync/tasks/changes?since=${Number.MAX_SAFE_INTEGER}`));
    assert.equal(b.changes.created.length + b.changes.updated.length + b.changes.deleted.length, 0);
    assert.equal(b.has_more, false);
  });
});

describe('D1 cost', () => {
  // Records are packed into pages (README "Storage"): a push rewrites the user's head
  // page, and one whose records outgrow the head (500) also spills into a few buckets.
  test('a 1,000-change push costs a few D1 statements, like a 10-change push, and writes a few rows', async () => {
    const U = api(srv.url, await token(newUserId()));
    const r10 = await U.sync({ cursor: 0, changes: Array.from({ length: 10 }, () => task(rid('t'))) });
    assert.equal(r10.status, 200, show(r10));
    const ops10 = parseOps(r10.headers.get('x-sync-ops'));
    // both pushes are the first push of a fresh user, creating new records
    assert.equal(ops10.d1, 2, `the head read and written: ${JSON.stringify(ops10)}`);
    assert.equal(ops10['rows-written'], 1, `a small user's push writes one row: ${JSON.stringify(ops10)}`);
    assert.ok(push1000Ops.d1 <= 4, `d1 statements: 1,000-change push ${push1000Ops.d1} vs 10-change push ${ops10.d1}`);
    assert.ok(push1000Ops['rows-written'] >= 2 && push1000Ops['rows-written'] <= 13, `the head and at most 8 spilled + 2 split buckets: ${JSON.stringify(push1000Ops)}`);
  });

  test('an edit push of 1,000 existing records costs the same as one of 10', async () => {
    const U = api(srv.url, await token(newUserId()));
    const many = Array.from({ length: 1000 }, (_, i) => `m${i}`);
    await push(U, many.map((id) => task(id, { version: 1 })));
    const r10 = await U.sync({ cursor: 0, changes: many.slice(0, 10).map((id) => task(id, { title: 'e', version: 2 })) });
    const r1000 = await U.sync({ cursor: 0, changes: many.map((id) => task(id, { title: 'f', version: 3 })) });
    assert.equal(r10.status, 200, show(r10));
    assert.equal(r1000.status, 200, show(r1000));
    assert.equal(r1000.body.applied.length, 1000);
    const d10 = parseOps(r10.headers.get('x-sync-ops')).d1;
    const d1000 = parseOps(r1000.headers.get('x-sync-ops')).d1;
    assert.ok(d10 <= 4 && d1000 <= 5, `edit push d1 statements: 1,000 → ${d1000}, 10 → ${d10}`);
    const w10 = parseOps(r10.headers.get('x-sync-ops'))['rows-written'];
    const w1000 = parseOps(r1000.headers.get('x-sync-ops'))['rows-written'];
    assert.ok(w10 <= 2, `10 edits write the head (and at most the one bucket they spill): ${w10}`);
    assert.ok(w1000 <= 14, `1,000 edits write the head and the buckets they touch: ${w1000}`);
  });

  test('a 1,000-change push mixing all four types costs a few statements, like a 10-change mixed push', async () => {
    const mixed = (n) => Array.from({ length: n }, (_, i) => {
      const id = rid('m');
      switch (i % 4) {
        case 0: return task(id);
        case 1: return { type: 'lists', id, name: 'l' };
        case 2: return { type: 'notes', id, body: 'n' };
        default: return { type: 'settings', id, value: { i } };
      }
    });
    const r10 = await api(srv.url, await token(newUserId())).sync({ cursor: 0, changes: mixed(12) });
    const r1000 = await api(srv.url, await token(newUserId())).sync({ cursor: 0, changes: mixed(1000) });
    assert.equal(r10.status, 200, show(r10));
    assert.equal(r1000.status, 200, show(r1000));
    const d10 = parseOps(r10.headers.get('x-sync-ops')).d1;
    const d1000 = parseOps(r1000.headers.get('x-sync-ops')).d1;
    assert.equal(d10, 2, `a small mixed push: the head read and written: ${d10}`);
    assert.ok(d1000 <= 4, `a 1,000-change mixed push stays a few statements, got ${d1000}`);
  });

  test('pull side: the 1,000-record pull of a page costs no more statements than a 10-record one', async () => {
    const a = await P.sync({ cursor: 0, limit: 1000 });
    const b = await P.sync({ cursor: 0, limit: 10 });
    assert.equal(a.status, 200);
    assert.equal(b.status, 200);
    const da = parseOps(a.headers.get('x-sync-ops')).d1;
    const db = parseOps(b.headers.get('x-sync-ops')).d1;
    assert.equal(da, db, `pull d1: limit 1000 → ${da}, limit 10 → ${db}`);
    assert.ok(findRec(a.body.updates, 'tasks', ids[0]));
  });
});
