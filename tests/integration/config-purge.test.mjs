// A server with non-default configuration: small request limits, a state-token TTL of
// 120 s, and a tombstone retention of 0 days so the cron purge (fired with wrangler's
// --test-scheduled) removes every tombstone, which must turn delta pulls from before
// the purge into 410s.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import path from 'node:path';
import { ROOT, baseEnv, run, startWorker, testConfig } from '../helpers/server.mjs';
import { api, newUserId, parseOps, rid, show, token } from '../helpers/client.mjs';
import { check, del, expectProblem, ok, pullAll, push, snapshot, assertUnchanged, task, waitFor, waitForServerClock } from '../helpers/sync.mjs';

let srv;
before(async () => {
  srv = await startWorker({
    vars: { MAX_CHANGES: '5', MAX_UPLOAD_RECORDS: '7', MAX_BODY_BYTES: '8192', TOMBSTONE_RETENTION_DAYS: '0', ADMIN_TOKEN: '', STATE_CACHE_TTL: '120' },
    extraArgs: ['--test-scheduled'],
  });
});
after(async () => {
  await srv?.stop();
});

async function runCron() {
  const res = await fetch(`${srv.url}/__scheduled?cron=${encodeURIComponent('0 3 * * *')}`);
  const text = await res.text();
  assert.equal(res.status, 200, `the scheduled handler must succeed: HTTP ${res.status} ${text}\n${srv.logs().slice(-3000)}`);
}

describe('configured request limits', () => {
  test('MAX_CHANGES=5: 6 changes → 413, 5 are accepted', async () => {
    const u = api(srv.url, await token(newUserId()));
    await push(u, [task('seed')]);
    const before = await snapshot(u);
    const res = await u.sync({ cursor: 0, changes: Array.from({ length: 6 }, () => task(rid('t'))) });
    expectProblem(res, 413, 'payload_too_large');
    await assertUnchanged(u, before, '6-change push');
    await push(u, Array.from({ length: 5 }, () => task(rid('t'))));
  });

  test('MAX_CHANGES=5 holds on the delta push too (6 → 413, 5 accepted); the full upload has MAX_UPLOAD_RECORDS=7 (8 → 413, 7 accepted)', async () => {
    const u = api(srv.url, await token(newUserId()));
    await push(u, [task('seed')]);
    const before = await snapshot(u);
    const eight = Array.from({ length: 8 }, () => ({ id: rid('t'), title: 'x' }));
    const six = eight.slice(0, 6);
    expectProblem(await u.post('/api/sync/tasks/delta', { changes: { created: six } }), 413, 'payload_too_large', { mentions: ['MAX_CHANGES'] });
    expectProblem(await u.post('/api/sync/tasks/delta', { changes: { created: six.slice(0, 3), updated: six.slice(3, 5), deleted: ['seed'] } }), 413, 'payload_too_large');
    expectProblem(await u.post('/api/sync/tasks', { cursor: before.cursor, data: eight }), 413, 'payload_too_large', { mentions: ['MAX_UPLOAD_RECORDS'] });
    await assertUnchanged(u, before, '6-change delta and 8-record upload');
    assert.deepEqual(ok(await u.post('/api/sync/tasks/delta', { changes: { created: six.slice(0, 5) } })).processed, { created: 5, updated: 0, deleted: 0 });
    const up = ok(await u.post('/api/sync/tasks', { cursor: (await check(u)).cursor, data: eight.slice(0, 7) }));
    assert.equal(up.uploaded, 7, JSON.stringify(up));
  });

  test('MAX_BODY_BYTES=8192: exactly 8,192 bytes are accepted, 8,193 → 413', async () => {
    const u = api(srv.url, await token(newUserId()));
    const json = JSON.stringify({ cursor: 0, changes: [task(rid('t'), { description: 'x'.repeat(7000) })] });
    const at = json + ' '.repeat(8192 - Buffer.byteLength(json));
    const before = await snapshot(u);
    expectProblem(await u.post('/api/sync', `${at} `, { headers: { 'content-type': 'application/json' } }), 413, 'payload_too_large');
    await assertUnchanged(u, before, 'body of MAX_BODY_BYTES + 1');
    assert.equal((await u.post('/api/sync', at, { headers: { 'content-type': 'application/json' } })).status, 200);
  });

  test('MAX_BODY_BYTES=8192: a 9,000-byte body → 413, a 7,000-byte one is accepted', async () => {
    const u = api(srv.url, await token(newUserId()));
    const big = JSON.stringify({ cursor: 0, changes: [task(rid('t'), { description: 'x'.repeat(9000) })] });
    expectProblem(await u.post('/api/sync', big, { headers: { 'content-type': 'application/json' } }), 413, 'payload_too_large');
    const fits = JSON.stringify({ cursor: 0, changes: [task(rid('t'), { description: 'x'.repeat(7000) })] });
    const res = await u.post('/api/sync', fits, { headers: { 'content-type': 'application/json' } });
    assert.equal(res.status, 200, show(res));
  });
});

// README "Staleness bound": a state token in KV that is stale (a lost or reordered
// write, another location) is corrected when it expires, STATE_CACHE_TTL seconds after it
// was written. Waiting that long is not needed to test the bound: the entry's
// expiration, read from the persisted local KV (wrangler kv key list), is the bound.
describe('STATE_CACHE_TTL=120', () => {
  async function kvExpiration(userId) {
    const out = await run(path.join(ROOT, 'node_modules', '.bin', 'wrangler'),
      ['kv', 'key', 'list', '--config', testConfig(), '--binding', 'CACHE', '--local', '--persist-to', srv.persistDir, '--prefix', `st:${userId}`], { cwd: ROOT, env: baseEnv() });
    const keys = JSON.parse(out.slice(out.indexOf('[')));
    const k = keys.find((x) => x.name === `st:${userId}`);
    return k?.expiration ?? null;
  }

  test('every state token written to KV (ahead of a push\'s commit) expires STATE_CACHE_TTL seconds after it is written; a read writes none', async () => {
    const id = newUserId();
    const u = api(srv.url, await token(id));
    const t0 = Date.now();
    const p = await push(u, [task('t')]);
    // the token is written ahead of the commit, so it is there once the push is answered
    const fast = await u.get('/api/sync/check', { headers: { 'if-none-match': p.etag } });
    assert.deepEqual([fast.status, parseOps(fast.headers.get('x-sync-ops')).d1], [304, 0], show(fast));
    const t1 = Date.now();
    const exp = await kvExpiration(id);
    assert.ok(Number.isInteger(exp), `the KV state token carries an expiration: ${exp}`);
    assert.ok(exp >= Math.floor(t0 / 1000) + 120 - 1 && exp <= Math.ceil(t1 / 1000) + 120 + 1,
      `expiration ${exp} is 120 s after the write (written between ${t0 / 1000} and ${t1 / 1000})`);

    // a user who never pushed: reads (a check, a conditional check, a pull) write no token
    // (the contract changed here, issue #10 item 5: tokens are written when the state
    // changes, never on a read miss)
    const id2 = newUserId();
    const v = api(srv.url, await token(id2));
    ok(await v.sync({ cursor: 0 }));
    const miss = await v.get('/api/sync/check');
    const cond = await v.get('/api/sync/check', { headers: { 'if-none-match': '"s1"' } });
    for (const r of [miss, cond]) assert.equal(parseOps(r.headers.get('x-sync-ops'))['kv-write'], 0, show(r));
    assert.equal(await kvExpiration(id2), null, 'no state token in KV for a user whose state never changed');
  });
});

describe('admin routes without ADMIN_TOKEN', () => {
  test('/api/admin/usage is 404 when ADMIN_TOKEN is unset', async () => {
    expectProblem(await api(srv.url, null).get('/api/admin/usage'), 404, 'not_found');
    expectProblem(await api(srv.url, '').get('/api/admin/usage', { headers: { authorization: 'Bearer ' } }), 404, 'not_found');
  });
});

describe('tombstone purge and reset_required', () => {
  test('after the purge, a delta pull from before it → 410 reset_required; full download + pull from its cursor recovers', async () => {
    const A = api(srv.url, await token(newUserId()));
    await push(A, [task('keep', { version: 1 }), task('gone1', { version: 1 }), task('gone2', { version: 1 })]);
    const oldCursor = (await check(A)).cursor;
    await push(A, [del('tasks', 'gone1'), del('tasks', 'gone2')]);
    const afterDeletes = (await check(A)).cursor;
    await waitForServerClock(srv.url, afterDeletes); // retention 0: purged once older than now
    await runCron();

    expectProblem(await A.get(`/api/sync/tasks/changes?since=${oldCursor}`), 410, 'reset_required');
    // since=0 is a fresh client: it holds nothing that a purged tombstone could delete
    const fromZero = ok(await A.get('/api/sync/tasks/changes?since=0'));
    assert.deepEqual(fromZero.changes.created.map((r) => r.id), ['keep']);
    // a cursor at or after the purge horizon still works
    const fresh = ok(await A.get(`/api/sync/tasks/changes?since=${afterDeletes}`));
    assert.equal(fresh.changes.created.length + fresh.changes.updated.length + fresh.changes.deleted.length, 0);

    // recovery: full download, then pull from the cursor it returned
    const dl = ok(await A.get('/api/sync/tasks'));
    assert.deepEqual(dl.data.map((r) => r.id), ['keep']);
    await push(A, [task('after-reset', { version: 1 })]);
    const delta = ok(await A.get(`/api/sync/tasks/changes?since=${dl.cursor}`));
    assert.deepEqual(delta.changes.created.map((r) => r.id), ['after-reset']);
  });

  test('after the purge, POST /api/sync from a cursor before it is also refused with 410 (else deletions are silently lost)', async () => {
    const A = api(srv.url, await token(newUserId()));
    await push(A, [task('keep'), task('gone')]);
    const old = (await check(A)).cursor;
    const d = await push(A, [del('tasks', 'gone')]);
    await waitForServerClock(srv.url, d.applied[0].rev);
    await runCron();
    const res = await A.sync({ cursor: old });
    expectProblem(res, 410, 'reset_required');
  });

  test('users without purged tombstones are not affected by the purge', async () => {
    const A = api(srv.url, await token(newUserId()));
    await push(A, [task('live-1'), task('live-2')]);
    await runCron();
    const ch = ok(await A.get('/api/sync/tasks/changes?since=0'));
    assert.equal(ch.changes.created.length, 2);
    const p = await pullAll(A, 0);
    assert.equal(p.updates.length, 2);
  });
});
