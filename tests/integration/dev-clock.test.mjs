// The worker's clock (contract §2, §4.4, README "Test-only: DEV_CLOCK_OFFSET_MS"), on one
// persisted D1/KV state restarted with other clock settings:
//   1. revs stay strictly increasing when the server clock steps back an hour
//      (DEV_CLOCK_OFFSET_MS < 0): rev = max(now, previous + 1);
//   2. tombstones younger than TOMBSTONE_RETENTION_DAYS survive the purge, older ones go
//      (the clock stepped two days ahead);
//   3. DEV_CLOCK_OFFSET_MS is ignored unless DEV_MODE is "1": a stray variable in
//      production cannot shift revs and quota days.
// The tests run in order and share the state.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startWorker } from '../helpers/server.mjs';
import { api, newUserId, show, token } from '../helpers/client.mjs';
import {
  assertRevOrder, check, del, expectProblem, ok, pullAll, push, task,
} from '../helpers/sync.mjs';

const HOUR = 3_600_000;
const DAY = 86_400_000;

let srv;
before(async () => {
  srv = await startWorker({ vars: { TOMBSTONE_RETENTION_DAYS: '1' }, extraArgs: ['--test-scheduled'] });
});
after(async () => {
  await srv?.stop();
});

const health = async () => ok(await api(srv.url, null).get('/api/health'));

async function runCron() {
  const res = await fetch(`${srv.url}/__scheduled?cron=${encodeURIComponent('17 3 * * *')}`);
  const text = await res.text();
  assert.equal(res.status, 200, `the scheduled handler must succeed: HTTP ${res.status} ${text}`);
}

const A = { id: newUserId('clock') };
const revs = []; // every rev A was told, in push order

async function client() {
  return api(srv.url, await token(A.id));
}

describe('the server clock steps back', () => {
  test('revs keep increasing after a restart with the clock an hour behind', async () => {
    let a = await client();
    const p1 = await push(a, [task('t1'), task('t2')]);
    revs.push(...p1.applied.map((x) => x.rev));
    const edited = await push(a, [task('t1', { title: 'edited before the step' })], p1.cursor);
    revs.push(edited.applied[0].rev);
    const top = Math.max(...revs);
    assert.ok(Math.abs(top - Date.now()) < 60_000, `revs read as server ms: ${top}`);

    srv = await srv.restart({ DEV_CLOCK_OFFSET_MS: String(-HOUR) });
    const h = await health();
    assert.ok(Math.abs(h.timestamp - (Date.now() - HOUR)) < 60_000, `the server clock is an hour behind: ${JSON.stringify(h)}`);
    a = await client();
    const c = ok(await a.get('/api/sync/check'));
    assert.ok(Math.abs(c.server_time - (Date.now() - HOUR)) < 60_000, `server_time follows the offset: ${JSON.stringify(c)}`);
    assert.equal(c.cursor, top, 'the cursor is where it was');

    // pushes in the past hour: each rev is previous + 1, never the (earlier) clock
    let cursor = c.cursor;
    for (let i = 0; i < 3; i++) {
      const p = await push(a, [task(`back-${i}`), task('t2', { title: `edit ${i} after the step` })], cursor);
      for (const x of p.applied) {
        assert.ok(x.rev > Math.max(...revs), `rev ${x.rev} after the clock stepped back must exceed every earlier rev (${Math.max(...revs)})`);
        revs.push(x.rev);
      }
      cursor = p.cursor;
    }
    assertRevOrder(revs.map((rev) => ({ rev })), 'revs in push order');
    // a device pulling from before the step gets every change, in rev order
    const all = await pullAll(a, 0);
    assertRevOrder(all.updates, 'pull from 0');
    assert.deepEqual(all.updates.map((r) => r.id), ['t1', 'back-0', 'back-1', 'back-2', 't2'], 'each record once, at its last rev');
    const since = ok(await a.get(`/api/sync/tasks/changes?since=${top}`));
    assert.deepEqual([...since.changes.created, ...since.changes.updated].map((r) => r.id).sort(), ['back-0', 'back-1', 'back-2', 't2']);
    A.cursor = cursor;
  });
});

describe('tombstone retention (TOMBSTONE_RETENTION_DAYS=1)', () => {
  test('a tombstone younger than the retention survives the purge; two days later it is purged', async () => {
    srv = await srv.restart({ DEV_CLOCK_OFFSET_MS: '0' });
    let a = await client();
    const before = (await check(a)).cursor;
    const d = await push(a, [del('tasks', 'back-0')], before);
    const tombRev = d.applied[0].rev;
    await runCron();
    // still there: a pull from before the delete lists it, no 410
    const ch = ok(await a.get(`/api/sync/tasks/changes?since=${before}`));
    assert.deepEqual(ch.changes.deleted, ['back-0'], `a young tombstone survives the purge: ${JSON.stringify(ch)}`);
    const p = ok(await a.sync({ cursor: before }));
    assert.deepEqual(p.deleted.map((x) => x.id), ['back-0'], JSON.stringify(p));

    // two days later the same purge removes it and raises the horizon to its rev; a
    // tombstone made on that day survives
    srv = await srv.restart({ DEV_CLOCK_OFFSET_MS: String(2 * DAY) });
    a = await client();
    const cur = (await check(a)).cursor;
    const young = await push(a, [del('tasks', 'back-1')], cur);
    await runCron();
    const gone = expectProblem(await a.get(`/api/sync/tasks/changes?since=${before}`), 410, 'reset_required');
    assert.equal(gone.purge_horizon, tombRev, JSON.stringify(gone));
    const kept = ok(await a.get(`/api/sync/tasks/changes?since=${cur}`));
    assert.deepEqual(kept.changes.deleted, ['back-1'], `the tombstone of the shifted day is younger than a day: ${JSON.stringify(kept)}`);
  });
});

describe('DEV_CLOCK_OFFSET_MS needs DEV_MODE=1', () => {
  test('with DEV_MODE unset, a large offset is ignored: timestamps and server_time are the real time', async () => {
    srv = await srv.restart({ DEV_MODE: '', DEV_CLOCK_OFFSET_MS: String(400 * DAY) });
    const h = await health();
    assert.ok(Math.abs(h.timestamp - Date.now()) < 60_000, `GET /api/health timestamp is the real time without DEV_MODE: ${JSON.stringify(h)}`);
    const a = await client();
    const c = ok(await a.get('/api/sync/check'));
    assert.ok(Math.abs(c.server_time - Date.now()) < 60_000, `server_time is the real time: ${JSON.stringify(c)}`);
    // revs: the previous (two days ahead) revs are above the real clock, so a push gets
    // previous + 1; it never jumps 400 days
    const p = await push(a, [task('real-time')], c.cursor);
    assert.ok(p.applied[0].rev > c.cursor, JSON.stringify(p));
    assert.ok(p.applied[0].rev < Date.now() + 3 * DAY, `no 400-day jump: ${p.applied[0].rev}`);
    const err = await a.get('/api/sync/tasks/changes?since=abc');
    assert.ok(Math.abs(err.body.timestamp - Date.now()) < 60_000, `problem timestamps are the real time too: ${show(err)}`);
    // (the control, DEV_MODE=1 honouring an offset, is the first test of this file)
  });
});
