// A panic costs only its own request. The worker is built with recoverable panics
// (scripts/build.sh: worker-build --panic-unwind), so a panicking request gets a 500 while
// other requests in flight in the same isolate complete, and the isolate keeps its memory
// (rate-limit buckets, unflushed usage counts). Under DEV_MODE (set by the test harness) a
// request with the header `X-Edgesync-Panic` panics on purpose; without DEV_MODE the
// header does nothing.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { startWorker } from '../helpers/server.mjs';
import { api, newUserId, rid, show, token } from '../helpers/client.mjs';

let srv;
before(async () => {
  srv = await startWorker({ vars: { RATE_LIMIT_BURST: '3', RATE_LIMIT_PER_MINUTE: '1' } });
});
after(async () => {
  await srv?.stop();
});

const panicking = () => fetch(`${srv.url}/api/health`, { headers: { 'X-Edgesync-Panic': '1' } });

describe('a panic costs only its own request', () => {
  test('pushes of other users in flight all complete while requests panic', async () => {
    let lost = 0;
    for (let round = 0; round < 5; round++) {
      const users = await Promise.all(Array.from({ length: 8 }, async () => api(srv.url, await token(newUserId('calm')))));
      const pushes = users.map((c) => c.sync({ cursor: 0, changes: [{ type: 'tasks', id: rid('t'), title: `round ${round}` }] }));
      const panics = Array.from({ length: 3 }, (_, i) => new Promise((r) => setTimeout(r, i * 15)).then(panicking));
      const [done, bang] = await Promise.all([Promise.all(pushes), Promise.all(panics)]);
      for (const res of bang) assert.equal(res.status, 500, 'the panicking request itself fails');
      lost += done.filter((r) => r.status !== 200).length;
      for (const [i, res] of done.entries()) {
        if (res.status !== 200) continue;
        const back = await users[i].sync({ cursor: 0 });
        assert.equal(back.body.updates.length, 1, `an acknowledged push is stored: ${show(back)}`);
      }
    }
    assert.equal(lost, 0, 'no request of another user failed because of a panic');
  });

  test('the isolate keeps its memory: a spent rate-limit bucket stays spent across a panic', async () => {
    const c = api(srv.url, await token(newUserId('bucket')));
    for (let i = 0; i < 3; i++) assert.equal((await c.get('/api/sync/check')).status, 200);
    assert.equal((await panicking()).status, 500);
    const res = await c.get('/api/sync/check');
    assert.equal(res.status, 429, `the bucket emptied before the panic is still empty: ${show(res)}`);
  });

  test('without DEV_MODE the header is ignored', async () => {
    const prod = await srv.restart({ DEV_MODE: '' });
    srv = prod;
    const res = await fetch(`${srv.url}/api/health`, { headers: { 'X-Edgesync-Panic': '1' } });
    assert.equal(res.status, 200, await res.text());
  });
});
