// A real browser (headless Chromium from Debian, driven by playwright-core) on a page
// served from another loopback origin than the worker: with CORS_ORIGINS set to the
// page's origin, page JavaScript pushes (a preflighted POST with Authorization and JSON),
// makes a conditional check (If-None-Match → 304) and reads ETag, RateLimit and
// Retry-After; a page of a disallowed origin has its fetches refused by the browser while
// the same requests from Node (no CORS) work. Preflights need no auth and do not
// consume the user's rate limit.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startWorker } from '../helpers/server.mjs';
import { api, newUserId, rid, show, token } from '../helpers/client.mjs';
import { launchBrowser, servePage } from '../helpers/browser.mjs';
import { ok, task } from '../helpers/sync.mjs';

const BURST = 10;
let allowed; // page server whose origin is in CORS_ORIGINS
let other; // page server of a disallowed origin
let srv;
let browser;

before(async () => {
  [allowed, other] = await Promise.all([servePage(), servePage()]);
  // A tiny burst refilled slowly (1 token a minute), so remaining counts are exact.
  [srv, browser] = await Promise.all([
    startWorker({ vars: { CORS_ORIGINS: `https://app.example.com, ${allowed.origin}`, RATE_LIMIT_BURST: String(BURST), RATE_LIMIT_PER_MINUTE: '1' } }),
    launchBrowser(),
  ]);
  assert.notEqual(new URL(srv.url).origin, allowed.origin, 'the page and the worker are different origins');
});
after(async () => {
  await browser?.close();
  await srv?.stop();
  await allowed?.close();
  await other?.close();
});

/** Remaining tokens in a `RateLimit: "burst";r=9;t=6` header. */
function remaining(header) {
  const m = /;\s*r=(\d+)/.exec(header ?? '');
  assert.ok(m, `RateLimit header without r=: ${header}`);
  return Number(m[1]);
}

/** Count of OPTIONS requests in the worker's per-request log lines. */
const optionsLogged = () => (srv.logs().match(/"method":"OPTIONS"/g) ?? []).length;

/** Opens a page of `origin` and runs `fn(arg)` in it (page JavaScript at that origin). */
async function inPage(origin, fn, arg) {
  const page = await browser.newPage();
  try {
    await page.goto(`${origin}/index.html`);
    assert.equal(await page.evaluate(() => location.origin), origin);
    return await page.evaluate(fn, arg);
  } finally {
    await page.close();
  }
}

// Runs in the page: fetch and report what JavaScript can see of each response.
async function clientScenario({ url, tok, id }) {
  const seen = (res, body) => ({
    status: res.status,
    etag: res.headers.get('ETag'),
    rateLimit: res.headers.get('RateLimit'),
    policy: res.headers.get('RateLimit-Policy'),
    retryAfter: res.headers.get('Retry-After'),
    ops: res.headers.get('X-Sync-Ops'),
    timing: res.headers.get('Server-Timing'),
    body,
  });
  const auth = { Authorization: `Bearer ${tok}` };
  const out = {};
  let res = await fetch(`${url}/api/sync`, {
    method: 'POST',
    headers: { ...auth, 'Content-Type': 'application/json' },
    body: JSON.stringify({ cursor: 0, changes: [{ type: 'tasks', id, title: 'from the browser' }] }),
  });
  out.push = seen(res, await res.json());
  res = await fetch(`${url}/api/sync/check`, { headers: auth });
  out.check = seen(res, await res.json());
  res = await fetch(`${url}/api/sync/check`, { headers: { ...auth, 'If-None-Match': out.check.etag } });
  out.notModified = seen(res, await res.text());
  res = await fetch(`${url}/api/sync/tasks?limit=10`, { headers: { ...auth, 'If-None-Match': '"stale"' } });
  out.download = seen(res, await res.json());
  // spend the rest of the burst and one more: the 429 is readable too
  out.more = [];
  for (let i = 0; i < 20 && (out.more.at(-1)?.status ?? 200) !== 429; i++) {
    res = await fetch(`${url}/api/sync/check`, { headers: auth });
    out.more.push(seen(res, await res.json()));
  }
  return out;
}

// Runs in the page: each request's outcome, or the error the browser raised.
async function tryFetches({ url, tok, id }) {
  const attempt = async (what, input, init) => {
    try {
      const res = await fetch(input, init);
      return { what, status: res.status, text: await res.text() };
    } catch (e) {
      return { what, error: e.name, message: String(e.message) };
    }
  };
  const auth = { Authorization: `Bearer ${tok}` };
  return [
    await attempt('push', `${url}/api/sync`, {
      method: 'POST',
      headers: { ...auth, 'Content-Type': 'application/json' },
      body: JSON.stringify({ cursor: 0, changes: [{ type: 'tasks', id, title: 'cross-origin push' }] }),
    }),
    await attempt('check', `${url}/api/sync/check`, { headers: auth }),
    await attempt('health (simple request)', `${url}/api/health`),
  ];
}

describe('browser on an allowed origin', () => {
  test('pushes, makes a conditional check and reads ETag / RateLimit / Retry-After from JavaScript', async () => {
    const userId = newUserId('web');
    const tok = await token(userId);
    const id = rid('t');
    const optionsBefore = optionsLogged();
    const out = await inPage(allowed.origin, clientScenario, { url: srv.url, tok, id });

    assert.equal(out.push.status, 200, JSON.stringify(out.push));
    assert.deepEqual(out.push.body.conflicts, []);
    assert.equal(out.push.body.applied[0].id, id);
    assert.ok(out.push.ops && out.push.timing, `X-Sync-Ops and Server-Timing are exposed: ${JSON.stringify(out.push)}`);
    assert.match(out.push.policy ?? '', /q=10\b/, 'RateLimit-Policy is exposed');

    assert.equal(out.check.status, 200);
    assert.ok(out.check.etag, `ETag must be readable from JavaScript: ${JSON.stringify(out.check)}`);
    assert.equal(out.check.etag, out.check.body.etag);
    assert.equal(out.check.etag, out.push.body.etag, 'the push returned the state token that check now reports');

    assert.equal(out.notModified.status, 304, `If-None-Match with the current ETag: ${JSON.stringify(out.notModified)}`);
    assert.equal(out.notModified.body, '');
    assert.equal(out.notModified.etag, out.check.etag, 'a 304 carries the ETag, readable from JavaScript');

    assert.equal(out.download.status, 200);
    assert.equal(out.download.etag, out.check.etag);
    assert.deepEqual(out.download.body.data.map((r) => [r.id, r.title]), [[id, 'from the browser']]);

    // RateLimit counts down by one per actual request, whatever the preflights.
    const counts = [out.push, out.check, out.notModified, out.download, ...out.more].map((r) => r.rateLimit && remaining(r.rateLimit));
    const last = out.more.at(-1);
    assert.equal(last.status, 429, `the burst of ${BURST} runs out: ${JSON.stringify(out.more)}`);
    assert.equal(last.body.error, 'rate_limited');
    assert.ok(Number(last.retryAfter) >= 1, `Retry-After readable from JavaScript: ${JSON.stringify(last)}`);
    const allowedCounts = counts.slice(0, -1);
    assert.deepEqual(allowedCounts, Array.from({ length: BURST }, (_, i) => BURST - 1 - i), `RateLimit remaining per request: ${counts}`);
    assert.equal(remaining(last.rateLimit), 0);

    // The browser did send preflights (POST with JSON and Authorization; GETs with Authorization).
    assert.ok(optionsLogged() - optionsBefore >= 2, `expected preflights in the worker log, saw ${optionsLogged() - optionsBefore}`);

    // The user's bucket is empty now, for Node too (one bucket per user, not per origin).
    const res = await api(srv.url, await token(userId)).get('/api/sync/check');
    assert.equal(res.status, 429, show(res));
  });

  test('preflights (OPTIONS) need no auth and do not consume the user\'s rate limit', async () => {
    const userId = newUserId('pre');
    const tok = await token(userId);
    const preflight = (headers) =>
      fetch(`${srv.url}/api/sync`, {
        method: 'OPTIONS',
        headers: { origin: allowed.origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type', ...headers },
      });
    for (let i = 0; i < BURST * 2; i++) {
      const res = await preflight(i % 2 ? { authorization: `Bearer ${tok}` } : {});
      await res.arrayBuffer();
      assert.ok(res.status === 204 || res.status === 200, `preflight ${i}: ${res.status}`);
      assert.equal(res.headers.get('access-control-allow-origin'), allowed.origin);
      assert.equal(res.headers.get('ratelimit'), null, 'a preflight does not touch the rate limiter');
    }
    const bad = await preflight({ authorization: 'Bearer garbage' });
    assert.equal(bad.status, 204, 'a preflight with a bad token is still answered');
    const pre = await preflight({});
    const allowHeaders = (pre.headers.get('access-control-allow-headers') ?? '').toLowerCase();
    for (const h of ['authorization', 'content-type', 'if-none-match']) assert.ok(allowHeaders.includes(h), `Allow-Headers: ${allowHeaders}`);
    const methods = (pre.headers.get('access-control-allow-methods') ?? '').toUpperCase();
    for (const m of ['GET', 'POST']) assert.ok(methods.includes(m), `Allow-Methods: ${methods}`);
    const expose = (await fetch(`${srv.url}/api/health`, { headers: { origin: allowed.origin } })).headers.get('access-control-expose-headers') ?? '';
    for (const h of ['ETag', 'Retry-After', 'RateLimit', 'RateLimit-Policy', 'Server-Timing', 'X-Sync-Ops']) {
      assert.ok(expose.split(/\s*,\s*/).includes(h), `Access-Control-Expose-Headers must include ${h}: ${expose}`);
    }

    // 2 × burst preflights later, the user's first real request still has a full bucket.
    const res = await api(srv.url, tok).get('/api/sync/check', { headers: { origin: allowed.origin } });
    ok(res);
    assert.equal(remaining(res.headers.get('ratelimit')), BURST - 1, show(res));
    assert.equal(res.headers.get('access-control-allow-origin'), allowed.origin);
  });
});

describe('browser on a disallowed origin', () => {
  test('the browser refuses the responses; the same requests from Node work', async () => {
    const userId = newUserId('evil');
    const tok = await token(userId);
    const id = rid('t');
    const results = await inPage(other.origin, tryFetches, { url: srv.url, tok, id });
    for (const r of results) {
      assert.equal(r.error, 'TypeError', `the browser must refuse ${r.what} from ${other.origin}: ${JSON.stringify(r)}`);
    }
    // The preflight failed, so the push was never sent: nothing stored.
    const c = api(srv.url, tok);
    assert.deepEqual(ok(await c.get('/api/sync/tasks')).data, [], 'a push refused at preflight stores nothing');

    // Node has no CORS: the same requests with the same Origin header go through, and
    // the worker simply leaves the CORS headers out.
    const push = await c.sync({ cursor: 0, changes: [task(id, { title: 'cross-origin push' })] }, { headers: { origin: other.origin } });
    ok(push);
    assert.equal(push.body.applied[0].id, id);
    assert.equal(push.headers.get('access-control-allow-origin'), null, show(push));
    const chk = await c.get('/api/sync/check', { headers: { origin: other.origin } });
    ok(chk);
    assert.equal(chk.headers.get('access-control-allow-origin'), null);
    const pre = await fetch(`${srv.url}/api/sync`, { method: 'OPTIONS', headers: { origin: other.origin, 'access-control-request-method': 'POST' } });
    assert.equal(pre.headers.get('access-control-allow-origin'), null, 'no preflight approval for a disallowed origin');
    assert.match(pre.headers.get('vary') ?? '', /origin/i, 'answers that depend on Origin say so');
  });

  test('a page of the allowed origin still works after the refused one (the allow-list is exact)', async () => {
    const tok = await token(newUserId('ok'));
    const results = await inPage(allowed.origin, tryFetches, { url: srv.url, tok, id: rid('t') });
    for (const r of results) assert.equal(r.status, 200, JSON.stringify(r));
  });
});

describe('CORS_ORIGINS = *', () => {
  test('any origin may call the API from a page', async () => {
    const any = await startWorker({ vars: { CORS_ORIGINS: '*' } });
    try {
      const results = await inPage(other.origin, tryFetches, { url: any.url, tok: await token(newUserId('any')), id: rid('t') });
      for (const r of results) assert.equal(r.status, 200, JSON.stringify(r));
      const res = await fetch(`${any.url}/api/health`, { headers: { origin: other.origin } });
      assert.equal(res.headers.get('access-control-allow-origin'), '*');
    } finally {
      await any.stop();
    }
  });
});
