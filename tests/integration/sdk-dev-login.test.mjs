// The development sign-in route (POST /api/dev/login) exists only when the worker var
// DEV_MODE is "1", which `npm run dev` (scripts/dev.sh) passes and wrangler.toml never sets:
// without it the route is a 404 not_found like any unknown path, so it cannot reach a
// deployment. With it, any name gets a token the worker accepts.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ROOT, startWorker } from '../helpers/server.mjs';
import { api } from '../helpers/client.mjs';

const login = (url, user) =>
  fetch(`${url}/api/dev/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ user }) });

test('wrangler.toml does not enable DEV_MODE; npm run dev does', () => {
  const toml = fs.readFileSync(path.join(ROOT, 'wrangler.toml'), 'utf8');
  assert.doesNotMatch(toml.replace(/#.*$/gm, ''), /DEV_MODE/, 'DEV_MODE must not be set in wrangler.toml');
  assert.match(fs.readFileSync(path.join(ROOT, 'scripts', 'dev.sh'), 'utf8'), /--var DEV_MODE:1/);
});

describe('without DEV_MODE', () => {
  let srv;
  before(async () => {
    // the test harness turns DEV_MODE on by default: off here, as in a deployment
    srv = await startWorker({ vars: { DEV_MODE: '' } });
  });
  after(async () => {
    await srv?.stop();
  });
  test('POST /api/dev/login is a 404 not_found (empty DEV_MODE, and "0")', async () => {
    const zero = await srv.restart({ DEV_MODE: '0' });
    try {
      const res = await login(zero.url, 'alice');
      assert.equal(res.status, 404);
      assert.equal((await res.json()).error, 'not_found');
    } finally {
      srv = await zero.restart({ DEV_MODE: '' });
    }
    for (const method of ['POST', 'GET']) {
      const res = await fetch(`${srv.url}/api/dev/login`, { method, headers: { 'content-type': 'application/json' }, body: method === 'POST' ? '{"user":"alice"}' : undefined });
      const body = await res.json();
      assert.equal(res.status, 404, JSON.stringify(body));
      assert.equal(body.error, 'not_found');
      assert.equal(body.token, undefined);
    }
  });
});

describe('with DEV_MODE=1', () => {
  let srv;
  before(async () => {
    srv = await startWorker({ vars: { DEV_MODE: '1' } });
  });
  after(async () => {
    await srv?.stop();
  });
  test('any name signs in, and the token works for that user', async () => {
    const res = await login(srv.url, 'alice');
    const body = await res.json();
    assert.equal(res.status, 200, JSON.stringify(body));
    assert.equal(body.user, 'alice');
    assert.ok(body.expires_at > Date.now());
    const sync = await api(srv.url, body.token).sync({ cursor: 0, changes: [{ type: 'tasks', id: 't1', title: 'hi' }] });
    assert.equal(sync.status, 200, sync.text);
  });
});
