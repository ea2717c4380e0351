// Health, observability headers, conditional GETs (ETag / If-None-Match), routing errors,
// and the /sync aliases.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startWorker, TEST_ADMIN_TOKEN } from '../helpers/server.mjs';
import { api, newUserId, parseOps, rid, show, token, user } from '../helpers/client.mjs';
import { check, expectProblem, ok, push, task, waitFor } from '../helpers/sync.mjs';

let srv;
before(async () => {
  srv = await startWorker();
});
after(async () => {
  await srv?.stop();
});

function assertObservability(res) {
  const ops = parseOps(res.headers.get('x-sync-ops'));
  for (const k of ['d1', 'rows-read', 'rows-written', 'kv-read', 'kv-write']) {
    assert.ok(Number.isInteger(ops[k]) && ops[k] >= 0, `X-Sync-Ops must carry ${k}: ${show(res)}`);
  }
  const st = res.headers.get('server-timing');
  assert.match(st ?? '', /(^|,)\s*total;\s*dur=\d+(\.\d+)?/, `Server-Timing total;dur= missing: ${show(res)} server-timing=${st}`);
  return ops;
}

function assertPrivateNoCache(res) {
  const cc = (res.headers.get('cache-control') ?? '').toLowerCase();
  assert.ok(cc.includes('private') && (cc.includes('no-cache') || cc.includes('no-store')),
    `Cache-Control must be private, no-cache: ${show(res)}`);
}

function assertVaryAuthorization(res) {
  const vary = (res.headers.get('vary') ?? '').toLowerCase().split(',').map((s) => s.trim());
  assert.ok(vary.includes('authorization') || vary.includes('*'), `Vary must include Authorization: ${show(res)}`);
}

describe('health', () => {
  test('GET /api/health answers 200 healthy without auth', async () => {
    const res = await api(srv.url, null).get('/api/health');
    const b = ok(res);
    assert.equal(b.status, 'healthy', show(res));
    assert.ok(b.timestamp !== undefined && b.timestamp !== null, `timestamp missing: ${show(res)}`);
    assert.equal(b.degraded, false, `degraded should be false on a fresh server: ${show(res)}`);
    assert.match(res.headers.get('content-type') ?? '', /^application\/json/i);
  });
});

describe('observability headers', () => {
  test('every response carries X-Sync-Ops and Server-Timing (200, 304, 401, 404, 400)', async () => {
    const u = await user(srv.url);
    const anon = api(srv.url, null);
    const responses = [
      await anon.get('/api/health'),
      await u.get('/api/sync/check'),
      await u.sync({ cursor: 0 }),
      await u.get('/api/sync/tasks'),
      await u.get('/api/sync/tasks/changes?since=0'),
      await anon.get('/api/sync/check'),
      await anon.get('/api/definitely-not-a-route'),
      await u.post('/api/sync', '{"changes": [', { headers: { 'content-type': 'application/json' } }),
    ];
    const { etag } = await check(u);
    responses.push(await u.get('/api/sync/check', { headers: { 'if-none-match': etag } }));
    for (const res of responses) assertObservability(res);
  });

  test('X-Sync-Ops counts the D1 work of a push', async () => {
    const u = await user(srv.url);
    const res = await u.sync({ cursor: 0, changes: [task(rid('t'))] });
    ok(res);
    const ops = assertObservability(res);
    assert.ok(ops.d1 >= 1, `a push must run at least one D1 statement: ${show(res)}`);
    assert.ok(ops['rows-written'] >= 1, `a push must write at least one row: ${show(res)}`);
  });
});

describe('conditional GET on /api/sync/check', () => {
  test('200 carries a strong quoted ETag equal to the body etag, cursor and server_time', async () => {
    const u = await user(srv.url);
    const res = await u.get('/api/sync/check');
    const b = ok(res);
    const etag = res.headers.get('etag');
    assert.match(etag ?? '', /^"[^"]+"$/, `ETag must be a strong quoted tag: ${show(res)}`);
    assert.equal(b.etag, etag, `body etag must equal the ETag header: ${show(res)}`);
    assert.ok(Number.isInteger(b.cursor) && b.cursor >= 0, `cursor: ${show(res)}`);
    assert.ok(Number.isInteger(b.server_time), `server_time: ${show(res)}`);
    assert.ok(Math.abs(b.server_time - Date.now()) < 30_000, `server_time should be server ms time: ${show(res)}`);
    assertPrivateNoCache(res);
  });

  test('matching If-None-Match → 304 with the same ETag, Cache-Control and Vary, no body', async () => {
    const u = await user(srv.url);
    await push(u, [task(rid('t'))]);
    const { etag } = await check(u);
    const res = await u.get('/api/sync/check', { headers: { 'if-none-match': etag } });
    assert.equal(res.status, 304, show(res));
    assert.equal(res.text, '', '304 must have no body');
    assert.equal(res.headers.get('etag'), etag, show(res));
    assertPrivateNoCache(res);
    assertVaryAuthorization(res);
  });

  test('If-None-Match: * → 304', async () => {
    const u = await user(srv.url);
    const res = await u.get('/api/sync/check', { headers: { 'if-none-match': '*' } });
    assert.equal(res.status, 304, show(res));
    assert.ok(res.headers.get('etag'), `304 must carry the ETag: ${show(res)}`);
  });

  test('weak W/ form of the tag → 304 (weak comparison)', async () => {
    const u = await user(srv.url);
    await push(u, [task(rid('t'))]);
    const { etag } = await check(u);
    const res = await u.get('/api/sync/check', { headers: { 'if-none-match': `W/${etag}` } });
    assert.equal(res.status, 304, show(res));
    assert.equal(res.headers.get('etag'), etag);
  });

  test('a list of tags containing the current one → 304; a list without it → 200', async () => {
    const u = await user(srv.url);
    await push(u, [task(rid('t'))]);
    const { etag } = await check(u);
    const hit = await u.get('/api/sync/check', { headers: { 'if-none-match': `"nope-1", ${etag}, "nope-2"` } });
    assert.equal(hit.status, 304, show(hit));
    const miss = await u.get('/api/sync/check', { headers: { 'if-none-match': '"nope-1", W/"nope-2"' } });
    assert.equal(miss.status, 200, show(miss));
    assert.equal(miss.headers.get('etag'), etag);
  });

  test('the ETag is stable while nothing changes (including across pure pulls)', async () => {
    const u = await user(srv.url);
    await push(u, [task(rid('t'))]);
    const a = await check(u);
    const pull = ok(await u.sync({ cursor: 0 }));
    assert.equal(pull.etag, a.etag, 'POST /api/sync etag must equal the check ETag');
    const b = await check(u);
    assert.equal(b.etag, a.etag, 'a pure pull must not change the ETag');
  });

  test('POST never answers 304, even with a matching If-None-Match', async () => {
    const u = await user(srv.url);
    const { etag } = await check(u);
    const res = await u.sync({ cursor: 0 }, { headers: { 'if-none-match': etag } });
    assert.equal(res.status, 200, show(res));
    const res2 = await u.sync({ cursor: 0 }, { headers: { 'if-none-match': '*' } });
    assert.equal(res2.status, 200, show(res2));
  });

  test('after a push the old tag gives 200 with a new ETag, and the new tag gives 304', async () => {
    const u = await user(srv.url);
    await push(u, [task(rid('t'))]);
    const { etag: oldTag } = await check(u);
    const pushed = await push(u, [task(rid('t'))]);
    assert.notEqual(pushed.etag, oldTag, 'push response etag must change');
    const res = await u.get('/api/sync/check', { headers: { 'if-none-match': oldTag } });
    assert.equal(res.status, 200, show(res));
    const newTag = res.headers.get('etag');
    assert.notEqual(newTag, oldTag);
    assert.equal(newTag, pushed.etag, 'the push response etag must be the new state token');
    const again = await u.get('/api/sync/check', { headers: { 'if-none-match': newTag } });
    assert.equal(again.status, 304, show(again));
  });

  test('another user\'s push does not change my ETag', async () => {
    const a = await user(srv.url);
    const b = await user(srv.url);
    await push(a, [task(rid('t'))]);
    const before = await check(a);
    await push(b, [task(rid('t')), task(rid('t'))]);
    const afterB = await check(a);
    assert.equal(afterB.etag, before.etag);
  });

  test('every authenticated GET sends the ETag and honours If-None-Match', async () => {
    const u = await user(srv.url);
    await push(u, [task(rid('t'))]);
    const { etag } = await check(u);
    for (const p of ['/api/sync/tasks', '/api/sync/tasks/changes?since=0', '/api/sync/notes']) {
      const res = await u.get(p);
      ok(res);
      assert.equal(res.headers.get('etag'), etag, `GET ${p} ETag: ${show(res)}`);
      assertPrivateNoCache(res);
      const cond = await u.get(p, { headers: { 'if-none-match': etag } });
      assert.equal(cond.status, 304, `GET ${p} with matching If-None-Match: ${show(cond)}`);
      assert.equal(cond.headers.get('etag'), etag);
    }
  });

  test('HEAD /api/sync/check: 200 with the ETag and no body; 304 with a matching If-None-Match', async () => {
    const u = await user(srv.url);
    await push(u, [task(rid('t'))]);
    const { etag } = await check(u);
    const head = await u.head('/api/sync/check');
    assert.equal(head.status, 200, show(head));
    assert.equal(head.text, '');
    assert.equal(head.headers.get('etag'), etag, show(head));
    const cond = await u.head('/api/sync/check', { headers: { 'if-none-match': etag } });
    assert.equal(cond.status, 304, show(cond));
  });

  test('fast path: a matching conditional check is answered without D1 once the tag is cached', async () => {
    const u = await user(srv.url);
    await push(u, [task(rid('t'))]);
    const { etag } = await check(u);
    // the first conditional request may populate the cache; the second must hit it
    await u.get('/api/sync/check', { headers: { 'if-none-match': etag } });
    const res = await u.get('/api/sync/check', { headers: { 'if-none-match': etag } });
    assert.equal(res.status, 304, show(res));
    const ops = parseOps(res.headers.get('x-sync-ops'));
    assert.equal(ops.d1, 0, `304 fast path must not touch D1: ${show(res)}`);
  });
});

describe('cache headers', () => {
  test('every authenticated response is private, no-cache (GETs, POSTs, errors)', async () => {
    const u = await user(srv.url);
    const responses = [
      await u.get('/api/sync/check'),
      await u.sync({ cursor: 0, changes: [task(rid('t'))] }),
      await u.get('/api/sync/tasks'),
      await u.get('/api/sync/tasks/changes?since=0'),
      await u.post('/api/sync/tasks/delta', { changes: { created: [task(rid('t'))] } }),
      await u.sync({ cursor: 0, changes: [task(rid('t'), { colour: 1 })] }),
    ];
    for (const res of responses) assertPrivateNoCache(res);
  });
});

describe('openapi and admin', () => {
  test('GET /api/openapi.json describes the API (OpenAPI 3.1), without auth', async () => {
    const res = await api(srv.url, null).get('/api/openapi.json');
    const b = ok(res);
    assert.match(String(b.openapi), /^3\.1/, show(res));
    const paths = Object.keys(b.paths ?? {});
    for (const p of ['/api/health', '/api/sync', '/api/sync/check', '/api/sync/{type}', '/api/sync/{type}/changes', '/api/sync/{type}/delta']) {
      // a per-type route is described once per type (each with its own schemas)
      const re = new RegExp(`^${p.replace(/[/.]/g, '\\$&').replace('{type}', '(tasks|lists|notes|settings)')}$`);
      assert.ok(paths.some((x) => re.test(x)), `openapi paths must include ${p}: ${paths.join(', ')}`);
    }
  });

  test('GET /api/admin/usage needs the admin token', async () => {
    const ok200 = await api(srv.url, TEST_ADMIN_TOKEN).get('/api/admin/usage');
    const b = ok(ok200);
    // the degradation state of a fresh server, and every quota with the configured limit
    assert.equal(b.degraded, false, `usage must report the degradation state: ${show(ok200)}`);
    assert.equal(b.mode, 'normal', show(ok200));
    assert.equal(b.kv_trusted, true, show(ok200));
    const limits = {
      requests: srv.vars.QUOTA_REQUESTS, d1_rows_read: srv.vars.QUOTA_D1_ROWS_READ,
      d1_rows_written: srv.vars.QUOTA_D1_ROWS_WRITTEN, kv_reads: srv.vars.QUOTA_KV_READS, kv_writes: srv.vars.QUOTA_KV_WRITES,
    };
    for (const [k, limit] of Object.entries(limits)) {
      const q = b.usage?.[k];
      assert.ok(q && Number.isInteger(q.used) && q.used >= 0, `usage.${k}: ${show(ok200)}`);
      assert.equal(q.limit, Number(limit), `usage.${k}.limit: ${show(ok200)}`);
      assert.ok(q.percent >= 0 && q.percent < 90, `usage.${k}.percent: ${show(ok200)}`);
    }
    assert.ok(b.usage.requests.used >= 1, `the requests of this file are counted: ${show(ok200)}`);
    assert.equal(ok(await api(srv.url, null).get('/api/health')).degraded, b.degraded, 'health and admin agree');
    expectProblem(await api(srv.url, null).get('/api/admin/usage'), 401, 'unauthorized');
    expectProblem(await api(srv.url, 'wrong-admin-token').get('/api/admin/usage'), 401, 'unauthorized');
    const asUser = await (await user(srv.url)).get('/api/admin/usage');
    assert.ok([401, 403].includes(asUser.status), `a user JWT is not the admin token: ${show(asUser)}`);
  });
});

describe('routing', () => {
  test('unknown routes → 404 not_found', async () => {
    const u = await user(srv.url);
    expectProblem(await u.get('/api/nope'), 404, 'not_found');
    expectProblem(await api(srv.url, null).get('/nope'), 404, 'not_found');
    expectProblem(await u.get('/api/sync/tasks/changes/extra'), 404, 'not_found');
  });

  test('unknown entity type in the path → 404 not_found', async () => {
    const u = await user(srv.url);
    expectProblem(await u.get('/api/sync/widgets'), 404, 'not_found');
    expectProblem(await u.get('/api/sync/widgets/changes?since=0'), 404, 'not_found');
    expectProblem(await u.post('/api/sync/widgets', { data: [], cursor: 0 }), 404, 'not_found');
    expectProblem(await u.post('/api/sync/widgets/delta', { changes: { created: [] } }), 404, 'not_found');
  });

  test('wrong method on a known route → 405 method_not_allowed', async () => {
    const u = await user(srv.url);
    expectProblem(await u.delete('/api/sync'), 405, 'method_not_allowed');
    expectProblem(await u.get('/api/sync'), 405, 'method_not_allowed');
    expectProblem(await u.put('/api/sync/tasks', { data: [] }), 405, 'method_not_allowed');
    expectProblem(await u.delete('/api/sync/tasks/changes?since=0'), 405, 'method_not_allowed');
    expectProblem(await u.post('/api/sync/check', {}), 405, 'method_not_allowed');
    expectProblem(await api(srv.url, null).post('/api/health', {}), 405, 'method_not_allowed');
  });

  test('405 names the allowed methods in Allow (RFC 9110 §15.5.6)', async () => {
    const u = await user(srv.url);
    const res = await u.delete('/api/sync');
    assert.equal(res.status, 405, show(res));
    assert.match(res.headers.get('allow') ?? '', /\bPOST\b/, `Allow header: ${show(res)}`);
  });
});

describe('aliases', () => {
  test('/sync and /sync/check behave like /api/sync and /api/sync/check', async () => {
    const u = await user(srv.url);
    const id = rid('t');
    const b = ok(await u.post('/sync', { cursor: 0, changes: [task(id, { title: 'via alias' })] }));
    assert.equal(b.applied.length, 1, JSON.stringify(b));
    const viaApi = await check(u);
    const viaAlias = await u.get('/sync/check');
    ok(viaAlias);
    assert.equal(viaAlias.headers.get('etag'), viaApi.etag);
    const rec = ok(await u.get('/api/sync/tasks')).data.find((r) => r.id === id);
    assert.equal(rec?.title, 'via alias');
  });
});

// Contract §7: one structured JSON log line per request, with a hash of the user id, never
// the id itself (the log goes to Workers Logs, readable by more people than the data).
describe('the log line', () => {
  const lines = (text) => text.split('\n').map((l) => l.slice(l.indexOf('{"'))).filter((l) => l.startsWith('{"')).flatMap((l) => {
    try {
      const j = JSON.parse(l);
      return j && typeof j === 'object' && 'route' in j ? [j] : [];
    } catch {
      return [];
    }
  });
  /** Sends `send()` and returns the log line(s) it produced (this file's requests run one at a time). */
  async function loggedBy(send, n = 1) {
    const mark = lines(srv.logs()).length;
    await send();
    return waitFor(() => {
      const now = lines(srv.logs());
      return now.length >= mark + n ? now.slice(mark) : false;
    }, 'the request\'s log line');
  }

  test('one JSON line per request: method, route, status, ops, duration, and a hash of the user id', async () => {
    const id = newUserId();
    const a1 = api(srv.url, await token(id, { claims: { device: 1 } }));
    const a2 = api(srv.url, await token(id, { claims: { device: 2 } }));
    const [l1] = await loggedBy(() => a1.get('/api/sync/check'));
    assert.equal(l1.method, 'GET', JSON.stringify(l1));
    assert.equal(l1.status, 200, JSON.stringify(l1));
    assert.match(String(l1.route), /check/, JSON.stringify(l1));
    assert.match(String(l1.ops), /d1=\d+/, JSON.stringify(l1));
    assert.equal(typeof l1.ms, 'number', JSON.stringify(l1));
    assert.equal(typeof l1.user, 'string', JSON.stringify(l1));
    assert.ok(l1.user.length >= 8 && !l1.user.includes(id), `the user field is a hash, not the id: ${JSON.stringify(l1)}`);
    const [l2] = await loggedBy(() => a2.sync({ cursor: 0, changes: [task(rid('t'))] }));
    assert.equal(l2.user, l1.user, 'the same user (another device) has the same hash');
    const [l3] = await loggedBy(async () => (await user(srv.url)).get('/api/sync/check'));
    assert.notEqual(l3.user, l1.user, 'another user has another hash');
    const [anon] = await loggedBy(() => api(srv.url, null).get('/api/health'));
    assert.equal(anon.user ?? null, null, JSON.stringify(anon));
  });

  test('no user id of this file ever appears in the log (only hashes)', () => {
    const log = srv.logs();
    assert.ok(lines(log).length >= 20, 'the log holds this file\'s request lines');
    const leaked = log.match(/u-[0-9a-f]{16}/g);
    assert.equal(leaked, null, `raw user ids in the log: ${[...new Set(leaked ?? [])].slice(0, 5)}`);
  });
});
