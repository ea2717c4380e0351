// Several devices of one user, each with its own stored cursor, exchanging every entity
// type through POST /api/sync, and the per-type endpoints seeing the same data.
// Also: client clocks are ignored (clock skew cannot hide changes from other devices).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startWorker } from '../helpers/server.mjs';
import { newUserId, rid, token, api } from '../helpers/client.mjs';
import {
  assertFields, assertSyncFields, del, findRec, list, note, ok, pullAll, push, setting, task,
} from '../helpers/sync.mjs';

let srv;
before(async () => {
  srv = await startWorker();
});
after(async () => {
  await srv?.stop();
});

/** Two devices of one user: same `sub`, separate tokens, separate cursors. */
async function devices(n = 2) {
  const userId = newUserId();
  const out = [];
  for (let i = 0; i < n; i++) {
    const c = api(srv.url, await token(userId, { claims: { device: i } }));
    out.push({ ...c, cursor: 0, name: `device-${String.fromCharCode(97 + i)}` });
  }
  return out;
}

/** POST /api/sync for a device: pushes `changes`, stores the returned cursor. */
async function syncDevice(dev, changes = [], extra = {}) {
  const b = ok(await dev.sync({ cursor: dev.cursor, changes, ...extra }));
  assert.equal(b.has_more, false, 'small pulls fit in one page');
  dev.cursor = b.cursor;
  return b;
}

describe('two devices of one user', () => {
  test('create, pull, edit, pull, delete, tombstone: every type, right field values', async () => {
    const [A, B] = await devices(2);
    const ids = { t: rid('t'), t2: rid('t'), l: rid('l'), n: rid('n'), s: 'theme' };
    const taskFields = {
      title: 'Buy milk', description: 'two litres, semi-skimmed', completed: false, pinned: true,
      priority: 'high', due_date: 1767225600000, list_id: ids.l, sort_order: 3,
    };
    const listFields = { name: 'Groceries', color: '#ff8800', icon: 'cart', sort_order: 2 };
    const noteFields = { title: 'Recipe', body: 'flour, eggs,\nmilk — «ünïcödé» 🥞', pinned: false, list_id: ids.l };
    const settingValue = { mode: 'dark', size: 14, tags: ['a', 'b'], nested: { on: true, none: null }, ratio: 0.5 };

    await syncDevice(B); // B starts from an empty account
    const pushA = await syncDevice(A, [
      task(ids.t, { ...taskFields, version: 1, device_id: A.name }),
      task(ids.t2, { title: 'defaults only' }),
      list(ids.l, { ...listFields, version: 1, device_id: A.name }),
      note(ids.n, { ...noteFields, version: 1, device_id: A.name }),
      setting(ids.s, settingValue, { version: 1, device_id: A.name }),
    ]);
    assert.deepEqual(pushA.conflicts, []);
    assert.equal(pushA.applied.length, 5, JSON.stringify(pushA));
    for (const a of pushA.applied) {
      assert.ok(['tasks', 'lists', 'notes', 'settings'].includes(a.type), JSON.stringify(a));
      assert.equal(a.version, 1, JSON.stringify(a));
      assert.ok(Number.isInteger(a.rev) && a.rev > 0, JSON.stringify(a));
    }
    const revs = pushA.applied.map((a) => a.rev);
    for (const r of revs) assert.ok(Math.abs(r - Date.now()) < 30_000, `revs read as server ms timestamps: ${r} vs ${Date.now()}`);
    assert.equal(new Set(revs).size, revs.length, `every accepted change gets its own rev: ${revs}`);
    assert.deepEqual(pushA.updates, [], 'a push does not echo its own changes');
    assert.deepEqual(pushA.deleted, []);
    assert.match(pushA.etag, /^"[^"]+"$/);
    assert.ok(Number.isInteger(pushA.server_time));

    // B pulls and gets everything with the right values
    const pullB = await syncDevice(B);
    assert.equal(pullB.updates.length, 5, JSON.stringify(pullB.updates));
    const t = findRec(pullB.updates, 'tasks', ids.t);
    assertFields(t, taskFields, 'task at B');
    assertSyncFields(t, { version: 1 });
    assert.equal(t.device_id, A.name);
    assertFields(findRec(pullB.updates, 'tasks', ids.t2), {
      title: 'defaults only', description: '', completed: false, pinned: false, priority: 'medium',
      due_date: null, list_id: null, sort_order: 0,
    }, 'task defaults');
    const l = findRec(pullB.updates, 'lists', ids.l);
    assertFields(l, listFields, 'list at B');
    assertSyncFields(l, { version: 1 });
    const n = findRec(pullB.updates, 'notes', ids.n);
    assertFields(n, noteFields, 'note at B');
    assertSyncFields(n, { version: 1 });
    const s = findRec(pullB.updates, 'settings', ids.s);
    assert.deepEqual(s?.value, settingValue, `setting value must come back as the JSON sent: ${JSON.stringify(s)}`);
    assertSyncFields(s, { version: 1 });
    for (const r of pullB.updates) assert.equal(r.rev, pushA.applied.find((a) => a.id === r.id && a.type === r.type).rev);

    // nothing more for B
    const emptyB = await syncDevice(B);
    assert.deepEqual(emptyB.updates, []);
    assert.deepEqual(emptyB.deleted, []);

    // B edits the task (with version) and the setting; A pulls the edits
    const cursorBeforeEdit = B.cursor;
    const editB = await syncDevice(B, [
      task(ids.t, { ...taskFields, title: 'Buy oat milk', completed: true, version: 2, device_id: B.name }),
      setting(ids.s, 'light', { version: 2, device_id: B.name }),
    ]);
    assert.deepEqual(editB.conflicts, []);
    assert.deepEqual(editB.applied.map((a) => [a.type, a.id, a.version]).sort(),
      [['settings', ids.s, 2], ['tasks', ids.t, 2]]);
    const pullA = await syncDevice(A);
    const tA = findRec(pullA.updates, 'tasks', ids.t);
    assertFields(tA, { ...taskFields, title: 'Buy oat milk', completed: true, version: 2, device_id: B.name }, 'edited task at A');
    assert.ok(tA.rev > t.rev, 'an edit gets a newer rev');
    assert.deepEqual(findRec(pullA.updates, 'settings', ids.s)?.value, 'light');
    assert.equal(findRec(pullA.updates, 'lists', ids.l), undefined,
      'A stored the cursor of its own push (no peer changes were pending): its own unchanged records must not come back');

    // A deletes the note; B receives the tombstone
    const delA = await syncDevice(A, [del('notes', ids.n, { version: 2 })]);
    assert.deepEqual(delA.conflicts, []);
    assert.equal(delA.applied.length, 1);
    const pullB2 = await syncDevice(B);
    const tomb = pullB2.deleted.find((d) => d.type === 'notes' && d.id === ids.n);
    assert.ok(tomb, `B must get the tombstone: ${JSON.stringify(pullB2)}`);
    assert.ok(Number.isInteger(tomb.rev) && tomb.rev > n.rev);
    assert.equal(findRec(pullB2.updates, 'notes', ids.n), undefined, 'a deleted record is not in updates');

    // the per-type endpoints see the same
    const changes = ok(await B.get(`/api/sync/tasks/changes?since=${cursorBeforeEdit}`));
    assert.equal(changes.success, true);
    assert.equal(changes.since, cursorBeforeEdit);
    assert.deepEqual(changes.changes.created, [], 'the task existed before the cursor');
    const upd = changes.changes.updated.find((r) => r.id === ids.t);
    assertFields(upd, { title: 'Buy oat milk', completed: true, version: 2 }, 'changes endpoint');
    assert.equal(changes.changes.updated.length, 1);

    const fromZero = ok(await B.get('/api/sync/tasks/changes?since=0'));
    assert.deepEqual(fromZero.changes.created.map((r) => r.id).sort(), [ids.t, ids.t2].sort(),
      'since=0: records created after 0 are in created');
    assertFields(fromZero.changes.created.find((r) => r.id === ids.t), { title: 'Buy oat milk', version: 2 });

    const noteChanges = ok(await B.get('/api/sync/notes/changes?since=0'));
    assert.deepEqual(noteChanges.changes.deleted, [ids.n], 'deleted ids in changes.deleted');
    assert.equal(noteChanges.changes.created.find((r) => r.id === ids.n), undefined);
    assert.equal(noteChanges.changes.updated.find((r) => r.id === ids.n), undefined);

    for (const k of ['success', 'changes', 'cursor', 'has_more', 'since', 'timestamp', 'total_changes']) {
      assert.ok(k in changes, `/changes response must carry ${k}: ${JSON.stringify(changes).slice(0, 300)}`);
    }
    const tasksDl = ok(await B.get('/api/sync/tasks'));
    for (const k of ['success', 'data', 'count', 'cursor', 'has_more', 'timestamp']) {
      assert.ok(k in tasksDl, `full download response must carry ${k}: ${JSON.stringify(tasksDl).slice(0, 300)}`);
    }
    assert.equal(tasksDl.success, true);
    assert.equal(tasksDl.count, 2);
    assertFields(tasksDl.data.find((r) => r.id === ids.t), { ...taskFields, title: 'Buy oat milk', completed: true, version: 2 });
    const notesDl = ok(await B.get('/api/sync/notes'));
    assert.deepEqual(notesDl.data, [], 'full download holds live records only');
    const settingsDl = ok(await B.get('/api/sync/settings'));
    assert.deepEqual(settingsDl.data.map((r) => [r.id, r.value]), [[ids.s, 'light']]);
    const listsDl = ok(await B.get('/api/sync/lists'));
    assertFields(listsDl.data.find((r) => r.id === ids.l), listFields);
  });

  test('a tombstoned record can be resurrected with a higher version', async () => {
    const [A, B] = await devices(2);
    const id = rid('n');
    await syncDevice(A, [note(id, { body: 'v1', version: 1 })]);
    await syncDevice(B);
    const d = await syncDevice(A, [del('notes', id)]);
    assert.equal(d.applied[0].version, 2, `a delete bumps the version: ${JSON.stringify(d)}`);
    const p1 = await syncDevice(B);
    assert.ok(p1.deleted.some((x) => x.id === id));
    const r = await syncDevice(A, [note(id, { body: 'back', version: 3 })]);
    assert.deepEqual(r.conflicts, []);
    const p2 = await syncDevice(B);
    assertFields(findRec(p2.updates, 'notes', id), { body: 'back', version: 3, deleted_at: null });
    assert.ok(!p2.deleted.some((x) => x.id === id), 'a resurrected record is not also reported deleted');
  });

  test('delete by non-null deleted_at, and a second delete is a replay', async () => {
    const [A, B] = await devices(2);
    const id = rid('l');
    await syncDevice(A, [list(id, { version: 1 })]);
    await syncDevice(B);
    const d = await syncDevice(A, [{ type: 'lists', id, deleted_at: Date.now() }]);
    assert.deepEqual(d.conflicts, []);
    const p = await syncDevice(B);
    assert.deepEqual(p.deleted.map((x) => [x.type, x.id]), [['lists', id]]);
    const again = await syncDevice(A, [{ type: 'lists', id, deleted: true }]);
    assert.deepEqual(again.conflicts, []);
    assert.equal(again.applied.length, 1, 'deleting twice is reported applied');
    const p2 = await syncDevice(B);
    assert.deepEqual(p2.deleted, [], 'deleting twice is a replay: no new tombstone');
  });

  test('last_sync is an alias of cursor; type defaults to tasks; content is an alias of title', async () => {
    const [A, B] = await devices(2);
    await syncDevice(B);
    const id = rid('t');
    const id2 = rid('t');
    await syncDevice(A, [{ id, title: 'no type given' }, { type: 'tasks', id: id2, content: 'given as content' }]);
    const b = ok(await B.sync({ last_sync: B.cursor }));
    assertFields(findRec(b.updates, 'tasks', id), { title: 'no type given' });
    assertFields(findRec(b.updates, 'tasks', id2), { title: 'given as content' });
    const later = ok(await B.sync({ last_sync: b.cursor }));
    assert.deepEqual(later.updates, [], 'last_sync must be honoured like cursor');
  });

  test('settings values of every JSON kind come back exactly as sent', async () => {
    const [A, B] = await devices(2);
    const values = {
      'v-false': false, 'v-true': true, 'v-zero': 0, 'v-neg': -12.5, 'v-float': 0.1, 'v-big': 9007199254740991,
      'v-empty-string': '', 'v-string': 'a "quoted" \\ \u0000 \n ünïcødé 🎉', 'v-empty-obj': {}, 'v-empty-arr': [],
      'v-nested': { a: [1, { b: [null, false, 'x'] }], 'key with spaces': { '': 1 } }, 'v-null': null,
    };
    await syncDevice(B);
    await syncDevice(A, Object.entries(values).map(([id, v]) => setting(id, v)));
    const p = await syncDevice(B);
    for (const [id, v] of Object.entries(values)) {
      const r = findRec(p.updates, 'settings', id);
      assert.ok(r, `setting ${id} missing`);
      assert.deepEqual(r.value, v, `setting ${id}: sent ${JSON.stringify(v)}, got ${JSON.stringify(r.value)}`);
    }
    const dl = ok(await B.get('/api/sync/settings'));
    for (const r of dl.data) assert.deepEqual(r.value, values[r.id], `download of setting ${r.id}`);
  });

  test('ids are case-sensitive, and the same id under two types is two records', async () => {
    const [A, B] = await devices(2);
    await syncDevice(A, [task('Case', { title: 'upper' }), task('case', { title: 'lower' }), note('case', { body: 'a note' })]);
    const p = await syncDevice(B);
    assert.equal(findRec(p.updates, 'tasks', 'Case')?.title, 'upper');
    assert.equal(findRec(p.updates, 'tasks', 'case')?.title, 'lower');
    assert.equal(findRec(p.updates, 'notes', 'case')?.body, 'a note');
  });

  test('an explicit deleted:false / deleted_at:null change is a normal upsert; a versionless change resurrects a tombstone', async () => {
    const [A, B] = await devices(2);
    const id = rid('t');
    await syncDevice(A, [task(id, { title: 'x', deleted: false })]);
    await syncDevice(A, [task(id, { title: 'y', deleted_at: null })]);
    await syncDevice(A, [del('tasks', id)]);
    const r = await syncDevice(A, [task(id, { title: 'z' })]);
    assert.deepEqual(r.applied.map((a) => a.version), [4], JSON.stringify(r));
    const p = await syncDevice(B);
    assertFields(findRec(p.updates, 'tasks', id), { title: 'z', version: 4, deleted_at: null });
  });

  test('three devices converge after interleaved pushes', async () => {
    const devs = await devices(3);
    for (const d of devs) await syncDevice(d);
    const ids = [];
    for (let round = 0; round < 3; round++) {
      for (const d of devs) {
        const id = rid('t');
        ids.push(id);
        await syncDevice(d, [task(id, { title: `${d.name} r${round}` })]);
      }
    }
    const states = [];
    for (const d of devs) {
      const { updates } = await pullAll(d, 0);
      states.push(updates.map((r) => `${r.id}:${r.title}:${r.version}`).sort());
    }
    assert.equal(states[0].length, ids.length);
    assert.deepEqual(states[1], states[0]);
    assert.deepEqual(states[2], states[0]);
  });
});

describe('clock skew', () => {
  test('changes from a device an hour behind or ahead reach a device pulling from its stored cursor', async () => {
    const [C, S] = await devices(2);
    await syncDevice(C, [task(rid('t'), { title: 'before the skewed pushes' })]);
    await syncDevice(C); // C stores a cursor covering everything so far
    const storedCursor = C.cursor;
    const hour = 3600_000;
    const past = rid('past');
    const future = rid('future');
    const now = rid('now');
    await syncDevice(S, [task(past, { title: 'from the past', created_at: Date.now() - hour, updated_at: Date.now() - hour })]);
    await syncDevice(S, [note(future, { title: 'from the future', created_at: Date.now() + hour, updated_at: Date.now() + hour })]);
    await syncDevice(S, [task(now, { title: 'on time' })]);

    const p = await syncDevice(C);
    for (const [type, id] of [['tasks', past], ['notes', future], ['tasks', now]]) {
      const r = findRec(p.updates, type, id);
      assert.ok(r, `${type}/${id} must reach C: ${JSON.stringify(p.updates)}`);
      // server time, not the client's
      assertSyncFields(r, { version: 1 });
      assert.ok(Math.abs(r.created_at - Date.now()) < 30_000, `created_at must be server time: ${JSON.stringify(r)}`);
    }
    // server order, not client clocks: the on-time push came last
    const revOf = (type, id) => findRec(p.updates, type, id).rev;
    assert.ok(revOf('tasks', past) < revOf('notes', future) && revOf('notes', future) < revOf('tasks', now));

    // the per-type delta pull from the same stored cursor sees them too
    const tasksCh = ok(await C.get(`/api/sync/tasks/changes?since=${storedCursor}`));
    assert.deepEqual(tasksCh.changes.created.map((r) => r.id).sort(), [now, past].sort());
    const notesCh = ok(await C.get(`/api/sync/notes/changes?since=${storedCursor}`));
    assert.deepEqual(notesCh.changes.created.map((r) => r.id), [future]);
  });

  test('an edit carrying an old updated_at still wins by server arrival order', async () => {
    const [A, B] = await devices(2);
    const id = rid('t');
    await syncDevice(A, [task(id, { title: 'first', version: 1 })]);
    await syncDevice(B);
    const old = Date.now() - 24 * 3600_000;
    await syncDevice(A, [task(id, { title: 'second, with an old clock', version: 2, updated_at: old, created_at: old })]);
    const p = await syncDevice(B);
    const r = findRec(p.updates, 'tasks', id);
    assertFields(r, { title: 'second, with an old clock', version: 2 });
    assert.ok(Math.abs(r.updated_at - Date.now()) < 30_000, `updated_at must be server time: ${JSON.stringify(r)}`);
  });

  test('a timestamp-style client echoing server_time back as its cursor misses nothing', async () => {
    const [A, B] = await devices(2);
    const first = await syncDevice(B);
    const echoed = first.server_time; // what a "since = last server_time" client stores
    const id = rid('t');
    await syncDevice(A, [task(id, { updated_at: Date.now() - 3600_000 })]);
    const p = ok(await B.sync({ last_sync: echoed }));
    assert.ok(findRec(p.updates, 'tasks', id), 'change must be delivered');
  });
});

describe('push response', () => {
  test('updates/deleted carry peer changes but not the request\'s own, and the cursor is safe to store', async () => {
    const [A, B] = await devices(2);
    await syncDevice(A);
    await syncDevice(B);
    const fromB = rid('b');
    await syncDevice(B, [task(fromB, { title: 'from B' })]);
    const own = rid('a');
    const r = await syncDevice(A, [task(own, { title: 'from A' })]);
    assert.deepEqual(r.updates.map((x) => x.id), [fromB], 'A gets B\'s change, not its own');
    // storing the returned cursor: nothing is missed, nothing of B's is repeated
    const r2 = await syncDevice(A);
    assert.ok(!r2.updates.some((x) => x.id === fromB), 'B\'s change was already delivered');
    const all = await pullAll(A, 0);
    assert.deepEqual(all.updates.map((x) => x.id).sort(), [fromB, own].sort());
  });

  test('a push whose pull part is paged (limit 1) leaves a cursor from which every unseen peer change arrives', async () => {
    const [A, B] = await devices(2);
    await syncDevice(A);
    const peer = [];
    for (let i = 0; i < 3; i++) {
      const id = rid('peer');
      peer.push(id);
      await syncDevice(B, [task(id)]);
    }
    // A pushes with a tiny limit: it must not be told a cursor beyond what it received
    const r = ok(await A.sync({ cursor: A.cursor, changes: [task(rid('own'))], limit: 1 }));
    const got = new Set(r.updates.map((x) => x.id));
    let c = r.cursor;
    let more = r.has_more;
    for (let i = 0; more && i < 10; i++) {
      const p = ok(await A.sync({ cursor: c, limit: 1 }));
      p.updates.forEach((x) => got.add(x.id));
      c = p.cursor;
      more = p.has_more;
    }
    assert.deepEqual([...got].filter((x) => peer.includes(x)).sort(), [...peer].sort(), 'every peer change is received');
  });
});

// Contract §1: "A non-delete change carries the record's full field set: missing optional
// fields take their defaults" — also on an edit of a record that had them set.
describe('an edit leaving out optional fields', () => {
  const DEFAULTS = {
    tasks: { description: '', completed: false, pinned: false, priority: 'medium', due_date: null, list_id: null, sort_order: 0 },
    lists: { color: '', icon: '', sort_order: 0 },
    notes: { title: '', body: '', pinned: false, list_id: null },
    settings: { value: null },
  };
  const FULL = {
    tasks: { title: 'full', description: 'd', completed: true, pinned: true, priority: 'high', due_date: 1_767_225_600_000, list_id: 'l1', sort_order: 9 },
    lists: { name: 'full', color: '#123456', icon: 'star', sort_order: 4 },
    notes: { title: 'full', body: 'b', pinned: true, list_id: 'l1' },
    settings: { value: { a: 1 } },
  };
  const MINIMAL = { tasks: { title: 'only the title' }, lists: { name: 'only the name' }, notes: {}, settings: {} };

  for (const versioned of [true, false]) {
    test(`resets them to their defaults, for every type (${versioned ? 'with version' : 'versionless'}), on every route's view`, async () => {
      const [A, B] = await devices(2);
      const types = Object.keys(FULL);
      await syncDevice(A, types.map((type) => ({ type, id: `${type}-1`, ...FULL[type], ...(versioned ? { version: 1 } : {}) })));
      await syncDevice(B);
      const edit = await syncDevice(A, types.map((type) => ({ type, id: `${type}-1`, ...MINIMAL[type], ...(versioned ? { version: 2 } : {}) })));
      assert.deepEqual(edit.applied.map((a) => a.version), [2, 2, 2, 2], JSON.stringify(edit));
      const pulled = await syncDevice(B);
      for (const type of types) {
        const want = { ...DEFAULTS[type], ...MINIMAL[type], version: 2 };
        assertFields(findRec(pulled.updates, type, `${type}-1`), want, `(${type} after an edit without its optional fields, pulled)`);
        const dl = ok(await B.get(`/api/sync/${type}`)).data.find((r) => r.id === `${type}-1`);
        assertFields(dl, want, `(${type}, full download)`);
      }
    });
  }

  test('the same through the delta push (updated) and the full upload', async () => {
    const [A] = await devices(1);
    await syncDevice(A, [{ type: 'tasks', id: 'd1', ...FULL.tasks }, { type: 'tasks', id: 'u1', ...FULL.tasks }]);
    ok(await A.post('/api/sync/tasks/delta', { changes: { updated: [{ id: 'd1', title: 'delta minimal' }] } }));
    const { cursor } = ok(await A.get('/api/sync/check'));
    ok(await A.post('/api/sync/tasks', { cursor, data: [{ id: 'd1', title: 'delta minimal' }, { id: 'u1', title: 'upload minimal' }] }));
    const dl = ok(await A.get('/api/sync/tasks')).data;
    assertFields(dl.find((r) => r.id === 'd1'), { ...DEFAULTS.tasks, title: 'delta minimal', version: 2 }, '(delta update)');
    assertFields(dl.find((r) => r.id === 'u1'), { ...DEFAULTS.tasks, title: 'upload minimal', version: 2 }, '(full upload)');
  });
});

// Contract §2 / §4.2: pulls are ordered by rev — not by id, not by creation. The records
// below are created in one order, their ids sort in another, and their last changes
// happen in a third; every pull must list them in the third.
describe('pulls are ordered by rev', () => {
  test('POST /api/sync updates / deleted and /changes created / updated / deleted come in rev order', async () => {
    const [A, B] = await devices(2);
    // creation order c, b, a, d; then edits a, c and deletes d, b: rev order of the last
    // changes: a, c (updates), d, b (deletes)
    for (const id of ['c', 'b', 'a', 'd']) await syncDevice(A, [task(id)]);
    const mid = await syncDevice(B);
    await syncDevice(A, [task('a', { title: 'a edited' })]);
    await syncDevice(A, [task('c', { title: 'c edited' })]);
    await syncDevice(A, [task('e', { title: 'created after' })]);
    await syncDevice(A, [del('tasks', 'd')]);
    await syncDevice(A, [del('tasks', 'b')]);
    const p = ok(await B.sync({ cursor: mid.cursor }));
    assert.deepEqual(p.updates.map((r) => r.id), ['a', 'c', 'e'], `updates in rev order: ${JSON.stringify(p.updates.map((r) => [r.id, r.rev]))}`);
    assert.deepEqual(p.deleted.map((r) => r.id), ['d', 'b'], `deleted in rev order: ${JSON.stringify(p.deleted)}`);
    const ch = ok(await B.get(`/api/sync/tasks/changes?since=${mid.cursor}`));
    assert.deepEqual(ch.changes.updated.map((r) => r.id), ['a', 'c'], JSON.stringify(ch.changes));
    assert.deepEqual(ch.changes.created.map((r) => r.id), ['e'], JSON.stringify(ch.changes));
    assert.deepEqual(ch.changes.deleted, ['d', 'b'], 'tombstones in rev order');
    // from 0 the creation order is not the order either: the last change is
    const all = ok(await B.get('/api/sync/tasks/changes?since=0'));
    assert.deepEqual(all.changes.created.map((r) => r.id), ['a', 'c', 'e'], JSON.stringify(all.changes));
    // and paged by one, the same order
    const paged = await pullAll(B, mid.cursor, { limit: 1 });
    assert.deepEqual(paged.updates.map((r) => r.id), ['a', 'c', 'e']);
    assert.deepEqual(paged.deleted.map((r) => r.id), ['d', 'b']);
  });
});
