// Operators' view of a user's records (issue #13): page bodies are deflated BLOBs, which
// SQL in the D1 console cannot read, so GET /api/admin/records?user=<id> (admin token) and
// `npm run export -- <user>` (scripts/export.mjs) print a user's current records: the head's
// copy over a bucket's, tombstones included and flagged.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { d1Files, ROOT, startWorker, TEST_ADMIN_TOKEN } from '../helpers/server.mjs';
import { api, newUserId, show, token } from '../helpers/client.mjs';
import { expectProblem, ok, task } from '../helpers/sync.mjs';

const run = promisify(execFile);

let srv;
before(async () => {
  // Pushes of up to 1,000 changes (a Paid-plan MAX_CHANGES; the default is 100): the exported user is built in pushes of 350.
  srv = await startWorker({ vars: { MAX_CHANGES: '1000' } });
});
after(async () => {
  await srv?.stop();
});

const admin = () => api(srv.url, TEST_ADMIN_TOKEN);
const exportOf = async (user) => ok(await admin().get(`/api/admin/records?user=${encodeURIComponent(user)}`));

async function pushOk(client, changes, cursor) {
  const b = ok(await client.sync({ cursor, changes }));
  assert.equal(b.applied.length, changes.length, JSON.stringify(b.conflicts).slice(0, 300));
  return b;
}

describe('admin export of a user\'s records', () => {
  // 700 tasks (the head spills into buckets), then edits of old ones (the head's copy
  // supersedes the bucket's), deletions of some, and one record of each other type.
  const userId = newUserId('export-ü');
  const other = newUserId('export-other');
  const expected = new Map(); // "type/id" -> { title or name, deleted }
  let cursor = 0;
  before(async () => {
    const c = api(srv.url, await token(userId));
    for (let i = 0; i < 700; i += 350) {
      const changes = Array.from({ length: 350 }, (_, k) => task(`t${i + k}`, { title: `task ${i + k} «ü»`, version: 1 }));
      cursor = (await pushOk(c, changes, cursor)).cursor;
      for (const ch of changes) expected.set(`tasks/${ch.id}`, { title: ch.title, deleted: false });
    }
    const edits = Array.from({ length: 20 }, (_, i) => task(`t${i * 7}`, { title: `edited ${i}`, version: 2 }));
    cursor = (await pushOk(c, edits, cursor)).cursor;
    for (const e of edits) expected.set(`tasks/${e.id}`, { title: e.title, deleted: false });
    const dels = ['t1', 't350', 't699'].map((id) => ({ type: 'tasks', id, deleted: true }));
    cursor = (await pushOk(c, dels, cursor)).cursor;
    for (const d of dels) expected.set(`tasks/${d.id}`, { deleted: true });
    const misc = [
      { type: 'lists', id: 'l1', name: 'Inbox 📥' },
      { type: 'notes', id: 'n1', title: 'long', body: 'x'.repeat(20_000) },
      { type: 'settings', id: 's1', value: { theme: 'dark', nested: [1, 2, { a: null }] } },
    ];
    cursor = (await pushOk(c, misc, cursor)).cursor;
    expected.set('lists/l1', { name: 'Inbox 📥', deleted: false });
    expected.set('notes/n1', { title: 'long', deleted: false });
    expected.set('settings/s1', { deleted: false });
    const o = api(srv.url, await token(other));
    await pushOk(o, [task('t1', { title: 'not yours' })], 0);
  });

  test('returns every current record once, the newest copy, tombstones flagged', async () => {
    const b = await exportOf(userId);
    assert.equal(b.user, userId);
    assert.equal(b.cursor, cursor);
    assert.equal(b.records.length, expected.size, `records: ${b.records.length}`);
    const seen = new Set();
    for (const r of b.records) {
      const key = `${r.type}/${r.id}`;
      assert.ok(!seen.has(key), `${key} twice`);
      seen.add(key);
      const want = expected.get(key);
      assert.ok(want, `unexpected ${key}`);
      assert.equal(r.deleted, want.deleted, key);
      assert.equal(r.record.id, r.id, key);
      assert.equal(typeof r.rev, 'number');
      assert.equal(r.record.rev, r.rev, key);
      if (want.title) assert.equal(r.record.title, want.title, key);
      if (want.name) assert.equal(r.record.name, want.name, key);
      if (want.deleted) assert.ok(r.record.deleted_at > 0, `${key} carries deleted_at`);
    }
    const n1 = b.records.find((r) => r.type === 'notes');
    assert.equal(n1.record.body.length, 20_000);
    assert.deepEqual(b.records.find((r) => r.type === 'settings').record.value, { theme: 'dark', nested: [1, 2, { a: null }] });
    // ordered by type, then id
    const keys = b.records.map((r) => [r.type, r.id]);
    const sorted = [...keys].sort((x, y) => (x[0] === y[0] ? (x[1] < y[1] ? -1 : x[1] > y[1] ? 1 : 0) : x[0] < y[0] ? -1 : 1));
    assert.deepEqual(keys, sorted);
    // the other user's records are its own
    const o = await exportOf(other);
    assert.equal(o.records.length, 1);
    assert.equal(o.records[0].record.title, 'not yours');
  });

  test('agrees with what the user downloads', async () => {
    const c = api(srv.url, await token(userId));
    const live = ok(await c.get('/api/sync/tasks?limit=1000')).data;
    const b = await exportOf(userId);
    const exported = b.records.filter((r) => r.type === 'tasks' && !r.deleted).map((r) => r.record);
    assert.deepEqual(exported, live);
  });

  test('a user without records exports an empty list', async () => {
    const b = await exportOf(newUserId('nobody'));
    assert.deepEqual(b.records, []);
    assert.equal(b.cursor, 0);
  });

  test('needs the admin token and a user', async () => {
    expectProblem(await api(srv.url, null).get(`/api/admin/records?user=${userId}`), 401, 'unauthorized');
    expectProblem(await api(srv.url, 'wrong-token').get(`/api/admin/records?user=${userId}`), 401, 'unauthorized');
    expectProblem(await api(srv.url, await token(userId)).get(`/api/admin/records?user=${userId}`), 401, 'unauthorized');
    expectProblem(await admin().get('/api/admin/records'), 400, 'invalid_field', { field: 'user' });
    expectProblem(await admin().get('/api/admin/records?user='), 400, 'invalid_field', { field: 'user' });
    expectProblem(await admin().get(`/api/admin/records?user=${userId}&limit=5`), 400, 'invalid_field', { field: 'limit' });
  });

  test('npm run export prints the same records (scripts/export.mjs)', async () => {
    const script = path.join(ROOT, 'scripts', 'export.mjs');
    const args = [script, userId, '--url', srv.url, '--admin-token', TEST_ADMIN_TOKEN];
    const json = JSON.parse((await run(process.execPath, [...args, '--json'], { maxBuffer: 1 << 26 })).stdout);
    assert.deepEqual(json, { ...(await exportOf(userId)), timestamp: json.timestamp });
    const lines = (await run(process.execPath, args, { maxBuffer: 1 << 26 })).stdout.trim().split('\n');
    assert.equal(lines.length, expected.size);
    const t0 = lines.find((l) => l.startsWith('tasks\tt0\t'));
    assert.match(t0, /\tlive\t\{.*"title":"edited 0"/);
    assert.match(lines.find((l) => l.startsWith('tasks\tt1\t')), /\tdeleted\t/);
    const live = (await run(process.execPath, [...args, '--live'], { maxBuffer: 1 << 26 })).stdout.trim().split('\n');
    assert.equal(live.length, expected.size - 3);
    await assert.rejects(run(process.execPath, [script, userId, '--url', srv.url, '--admin-token', 'nope']), /401/);
  });

  test('pages are stored as deflated BLOBs with their earliest tombstone in `tomb`', async (t) => {
    const file = findD1(srv.persistDir);
    try {
      await run('sqlite3', ['-version']);
    } catch {
      t.skip('no sqlite3 CLI');
      return;
    }
    const q = async (sql) => JSON.parse((await run('sqlite3', ['-json', '-readonly', file, sql])).stdout || '[]');
    const rows = await q(`SELECT page, typeof(body) AS t, length(body) AS n, tomb FROM pages WHERE user_id = '${userId.replaceAll("'", "''")}' ORDER BY page`);
    assert.ok(rows.length >= 2, `head and buckets: ${JSON.stringify(rows)}`);
    for (const r of rows) assert.equal(r.t, 'blob', show({ status: 0, headers: new Headers(), text: JSON.stringify(r) }));
    const withTomb = rows.filter((r) => r.tomb != null);
    assert.ok(withTomb.length >= 1, 'the head holds the tombstones');
    const b = await exportOf(userId);
    const earliest = Math.min(...b.records.filter((r) => r.deleted).map((r) => r.record.deleted_at));
    assert.equal(Math.min(...withTomb.map((r) => r.tomb)), earliest);
  });
});

function findD1(dir) {
  const found = d1Files(dir);
  assert.equal(found.length, 1, `one D1 file: ${found}`);
  return found[0];
}
