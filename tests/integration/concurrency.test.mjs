// Concurrent requests of one user: racing pushes never lose or duplicate a write, and a
// device pulling while others write still converges (the pull invariant under load).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startWorker } from '../helpers/server.mjs';
import { api, newUserId, rid, show, token } from '../helpers/client.mjs';
import { applyPull, ok, pullAll, push, task } from '../helpers/sync.mjs';

let srv;
before(async () => {
  srv = await startWorker();
});
after(async () => {
  await srv?.stop();
});

async function devices(n) {
  const userId = newUserId();
  const out = [];
  for (let i = 0; i < n; i++) out.push(api(srv.url, await token(userId)));
  return out;
}

/**
 * A racing push either succeeds (200) or is refused with a retryable problem
 * (409/429/503, problem+json); never a 500, never a silent loss.
 */
function successOrRetryable(res) {
  if (res.status === 200) return true;
  assert.ok([409, 429, 503].includes(res.status), `a racing push must succeed or be retryable: ${show(res)}`);
  assert.match(res.headers.get('content-type') ?? '', /^application\/problem\+json/, show(res));
  return false;
}

describe('racing pushes of one user', () => {
  test('8 parallel versionless edits of one record: distinct versions, the last one stored', async () => {
    const devs = await devices(8);
    const id = rid('t');
    await push(devs[0], [task(id, { title: 'start' })]);
    const results = await Promise.all(devs.map((d, i) => d.sync({ cursor: 0, changes: [task(id, { title: `edit ${i}` })] })));
    const won = [];
    results.forEach((res, i) => {
      if (successOrRetryable(res)) {
        assert.deepEqual(res.body.conflicts, [], show(res));
        assert.equal(res.body.applied.length, 1, show(res));
        won.push({ i, version: res.body.applied[0].version, rev: res.body.applied[0].rev });
      }
    });
    assert.ok(won.length >= 1, 'at least one racing push succeeds');
    const versions = won.map((w) => w.version);
    assert.equal(new Set(versions).size, versions.length, `two pushes were told they wrote the same version: ${JSON.stringify(won)}`);
    const revs = won.map((w) => w.rev);
    assert.equal(new Set(revs).size, revs.length, `two writes got the same rev: ${JSON.stringify(won)}`);
    const last = won.reduce((a, b) => (b.version > a.version ? b : a));
    const stored = ok(await devs[0].get('/api/sync/tasks')).data.find((r) => r.id === id);
    assert.equal(stored.version, last.version, `stored ${JSON.stringify(stored)} vs winners ${JSON.stringify(won)}`);
    assert.equal(stored.title, `edit ${last.i}`);
    assert.equal(stored.version, 1 + won.length, 'every successful edit bumped the version once');
  });

  test('8 parallel versioned edits from version 1: exactly one wins, the rest get stale_version', async () => {
    const devs = await devices(8);
    const id = rid('t');
    await push(devs[0], [task(id, { title: 'start', version: 1 })]);
    const results = await Promise.all(devs.map((d, i) => d.sync({ cursor: 0, changes: [task(id, { title: `edit ${i}`, version: 2 })] })));
    let applied = 0;
    let conflicts = 0;
    let winner;
    results.forEach((res, i) => {
      if (!successOrRetryable(res)) return;
      if (res.body.applied.length) {
        applied++;
        winner = i;
      }
      if (res.body.conflicts.length) {
        conflicts++;
        assert.equal(res.body.conflicts[0].reason, 'stale_version');
      }
    });
    assert.equal(applied, 1, `exactly one version-2 edit may win: ${results.map(show).join('\n')}`);
    const stored = ok(await devs[0].get('/api/sync/tasks')).data.find((r) => r.id === id);
    assert.equal(stored.title, `edit ${winner}`);
    assert.equal(stored.version, 2);
    assert.ok(conflicts >= 1);
  });

  test('8 parallel pushes creating different records: every acknowledged record is stored, revs unique', async () => {
    const devs = await devices(8);
    const perPush = 20;
    const batches = devs.map(() => Array.from({ length: perPush }, () => task(rid('c'))));
    const results = await Promise.all(devs.map((d, i) => d.sync({ cursor: 0, changes: batches[i] })));
    const acked = [];
    const revs = [];
    const refused = [];
    results.forEach((res, i) => {
      if (!successOrRetryable(res)) {
        refused.push(i);
        return;
      }
      assert.equal(res.body.applied.length, perPush);
      acked.push(...batches[i].map((c) => c.id));
      revs.push(...res.body.applied.map((a) => a.rev));
    });
    assert.ok(acked.length >= perPush, `at least one racing push succeeds: ${results.map(show).join('\n')}`);
    // refused pushes wrote nothing: what is stored now is exactly the acknowledged records
    const mid = await pullAll(devs[0], 0);
    assert.deepEqual(mid.updates.map((r) => r.id).sort(), [...acked].sort(), 'after the race: exactly the acknowledged records are stored');
    // a client retries what was refused (it is retryable): then every push is stored
    for (const i of refused) {
      const res = await devs[i].sync({ cursor: 0, changes: batches[i] });
      assert.equal(res.status, 200, `a retried push (alone) succeeds: ${show(res)}`);
      assert.equal(res.body.applied.length, perPush);
      acked.push(...batches[i].map((c) => c.id));
      revs.push(...res.body.applied.map((a) => a.rev));
    }
    assert.equal(acked.length, devs.length * perPush);
    assert.equal(new Set(revs).size, revs.length, 'revs must be unique across concurrent pushes');
    const all = await pullAll(devs[0], 0);
    const stored = new Set(all.updates.map((r) => r.id));
    for (const id of acked) assert.ok(stored.has(id), `acknowledged ${id} is missing`);
    assert.equal(all.updates.length, devs.length * perPush);
    const pulledRevs = all.updates.map((r) => r.rev);
    assert.deepEqual([...pulledRevs].sort((a, b) => a - b), [...revs].sort((a, b) => a - b), 'pulled revs are the acknowledged ones');
  });
});

describe('pulling while others write', () => {
  test('a device paging with small pages during parallel writes converges to the server state', async () => {
    const [reader, ...writers] = await devices(4);
    const ids = Array.from({ length: 12 }, () => rid('k'));
    await push(writers[0], ids.map((id) => task(id, { title: 'v0' })));
    let writing = true;
    const writerLoops = writers.map(async (w, wi) => {
      for (let round = 0; round < 6; round++) {
        const changes = [task(rid(`n${wi}`), { title: `new ${wi}.${round}` }), task(ids[(wi * 6 + round) % ids.length], { title: `w${wi} r${round}` })];
        const res = await w.sync({ cursor: 0, changes });
        successOrRetryable(res);
      }
    });
    const state = new Map();
    let cursor = 0;
    const readerLoop = (async () => {
      while (writing) {
        const b = ok(await reader.sync({ cursor, limit: 3 }));
        applyPull(state, b);
        cursor = b.cursor;
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    await Promise.all(writerLoops);
    writing = false;
    await readerLoop;
    applyPull(state, await pullAll(reader, cursor, { limit: 3 }));

    const truth = ok(await reader.get('/api/sync/tasks?limit=1000')).data;
    const mine = [...state.values()].filter((r) => !r.deleted);
    const fmt = (rs) => rs.map((r) => `${r.id}@${r.version}:${r.title}`).sort();
    assert.deepEqual(fmt(mine), fmt(truth), 'the reader\'s copy must equal the server state');
    assert.equal(truth.length, ids.length + 3 * 6);
  });
});
