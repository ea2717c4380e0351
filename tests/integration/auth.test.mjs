// JWT verification: only valid HS256 tokens signed with JWT_SECRET get in; everything else
// is 401 unauthorized with WWW-Authenticate, and writes nothing.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startWorker } from '../helpers/server.mjs';
import { api, newUserId, noneToken, rid, show, token } from '../helpers/client.mjs';
import { expectProblem, ok, snapshot, assertUnchanged, task } from '../helpers/sync.mjs';

let srv;
before(async () => {
  srv = await startWorker();
});
after(async () => {
  await srv?.stop();
});

function expect401(res, what) {
  expectProblem(res, 401, 'unauthorized');
  const wa = res.headers.get('www-authenticate') ?? '';
  assert.match(wa, /^Bearer\b/i, `${what}: 401 must carry WWW-Authenticate: Bearer…: ${show(res)}`);
}

/**
 * Creates a user with data, then sends the bad credential `makeAuth(userId)` (an
 * Authorization value, or null for none) for that user to every read and write route:
 * each must be 401 and the user's stored data must be unchanged.
 */
async function assertRejected(makeAuth, what) {
  const owner = newUserId();
  const good = api(srv.url, await token(owner));
  ok(await good.sync({ cursor: 0, changes: [task(rid('t'), { title: 'existing' })] }));
  const before = await snapshot(good);
  const authorization = await makeAuth(owner);
  const headers = authorization === null ? {} : { authorization };
  const bad = api(srv.url, null);
  expect401(await bad.get('/api/sync/check', { headers }), `${what} GET /api/sync/check`);
  expect401(await bad.get('/api/sync/tasks', { headers }), `${what} GET /api/sync/tasks`);
  expect401(await bad.get('/api/sync/tasks/changes?since=0', { headers }), `${what} GET changes`);
  expect401(await bad.post('/api/sync', { cursor: 0, changes: [task(rid('t'), { title: 'intruder' })] }, { headers }),
    `${what} POST /api/sync`);
  expect401(await bad.post('/api/sync/tasks', { data: [], cursor: Number.MAX_SAFE_INTEGER }, { headers }),
    `${what} POST /api/sync/tasks`);
  expect401(await bad.post('/api/sync/tasks/delta', { changes: { created: [task(rid('t'))] } }, { headers }),
    `${what} POST delta`);
  await assertUnchanged(good, before, `${what} request`);
}

describe('rejected credentials → 401 unauthorized with WWW-Authenticate, nothing written', () => {
  test('missing Authorization header', async () => {
    await assertRejected(() => null, 'missing token');
  });

  test('malformed bearer values', async () => {
    await assertRejected(() => 'Bearer', 'empty bearer');
    await assertRejected(() => 'Bearer not.a.jwt', 'garbage token');
    await assertRejected(() => 'Bearer abc', 'garbage token 2');
  });

  test('non-Bearer scheme carrying a valid token', async () => {
    await assertRejected(async (u) => `Basic ${await token(u)}`, 'Basic scheme');
  });

  test('expired token (beyond the 60 s leeway)', async () => {
    await assertRejected(async (u) => `Bearer ${await token(u, { ttl: -120 })}`, 'expired');
  });

  test('forged token (signed with another secret)', async () => {
    await assertRejected(async (u) => `Bearer ${await token(u, { secret: 'not-the-server-secret-0123456789abcdef' })}`, 'forged');
  });

  test('alg:none token (unsigned)', async () => {
    await assertRejected((u) => `Bearer ${noneToken(u)}`, 'alg none');
  });

  test('alg:none token that keeps a valid signature part', async () => {
    await assertRejected(async (u) => {
      const sig = (await token(u)).split('.')[2];
      return `Bearer ${noneToken(u)}${sig}`;
    }, 'alg none with signature');
  });

  test('tampered payload (sub swapped to the victim, original signature kept)', async () => {
    await assertRejected(async (victim) => {
      const [h, p, s] = (await token(newUserId())).split('.');
      const payload = JSON.parse(Buffer.from(p, 'base64url').toString());
      payload.sub = victim;
      return `Bearer ${h}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.${s}`;
    }, 'tampered');
  });

  test('token without exp', async () => {
    await assertRejected(async (u) => `Bearer ${await token(u, { exp: null })}`, 'no exp');
  });

  test('token without sub', async () => {
    await assertRejected(async () => `Bearer ${await token(null)}`, 'no sub');
  });

  test('sub longer than 128 characters', async () => {
    await assertRejected(async () => `Bearer ${await token('s'.repeat(129))}`, 'long sub');
  });

  test('nbf in the future (beyond the leeway)', async () => {
    const now = Math.floor(Date.now() / 1000);
    await assertRejected(async (u) => `Bearer ${await token(u, { nbf: now + 600 })}`, 'nbf future');
  });

  test('HMAC algorithm outside the allow-list (HS512 with the right secret)', async () => {
    await assertRejected(async (u) => `Bearer ${await token(u, { alg: 'HS512' })}`, 'HS512');
  });
});

describe('accepted credentials', () => {
  test('a valid HS256 token gets in', async () => {
    const res = await api(srv.url, await token(newUserId())).get('/api/sync/check');
    ok(res);
  });

  test('a token expired by less than the 60 s leeway is still accepted', async () => {
    const res = await api(srv.url, await token(newUserId(), { ttl: -20 })).get('/api/sync/check');
    ok(res);
  });

  test('a sub of exactly 128 characters is accepted', async () => {
    const res = await api(srv.url, await token('x'.repeat(128))).get('/api/sync/check');
    ok(res);
  });

  test('the auth scheme is case-insensitive (RFC 9110 §11.1)', async () => {
    const t = await token(newUserId());
    const res = await api(srv.url, null).get('/api/sync/check', { headers: { authorization: `bearer ${t}` } });
    ok(res);
  });

  test('/api/health needs no token, and ignores a bad one', async () => {
    ok(await api(srv.url, null).get('/api/health'));
    const res = await api(srv.url, null).get('/api/health', { headers: { authorization: 'Bearer garbage' } });
    ok(res);
  });
});
