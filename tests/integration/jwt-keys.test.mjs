// JWT verification with every kind of key the worker accepts (contract §5): HS256 with
// JWT_SECRET, RS256 and ES256 with the public keys of JWT_JWKS chosen by `kid`, and
// JWT_ISSUER / JWT_AUDIENCE required. Every token is minted here with jose (or by hand
// for the attacks jose refuses to make). Valid tokens of any algorithm are the same user
// (`sub`); every invalid one is 401 `unauthorized` with `WWW-Authenticate: Bearer…` and
// writes nothing.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startWorker, TEST_JWT_SECRET } from '../helpers/server.mjs';
import { api, newUserId, rid, show } from '../helpers/client.mjs';
import { b64url, claimsFor, handSigned, hmacSigned, jwksOf, makeKey, signWith } from '../helpers/keys.mjs';
import { assertUnchanged, expectProblem, ok, push, snapshot, task, waitFor } from '../helpers/sync.mjs';

const ISSUER = 'https://issuer.edgesync.test/';
const AUDIENCE = 'edgesync-api';
const HS = { secret: TEST_JWT_SECRET, alg: 'HS256' };

let srv;
let rsa; // configured RS256 key (kid rsa-1)
let ec; // configured ES256 key (kid ec-1)
let rsaOther; // same kid as rsa, another key pair
let ecOther;
let jwks;

before(async () => {
  [rsa, ec, rsaOther, ecOther] = await Promise.all([
    makeKey('RS256', 'rsa-1'),
    makeKey('ES256', 'ec-1'),
    makeKey('RS256', 'rsa-1'),
    makeKey('ES256', 'ec-1'),
  ]);
  jwks = jwksOf(rsa, ec);
  srv = await startWorker({ vars: { JWT_JWKS: jwks, JWT_ISSUER: ISSUER, JWT_AUDIENCE: AUDIENCE } });
});
after(async () => {
  await srv?.stop();
});

const good = { iss: ISSUER, aud: AUDIENCE };
/** A valid token of `key` for `sub` (iss and aud right), with `opts` for signWith. */
const valid = (key, sub, opts = {}) => signWith(key, sub, { ...opts, claims: { ...good, ...(opts.claims ?? {}) } });

function expect401(res, what) {
  expectProblem(res, 401, 'unauthorized');
  const wa = res.headers.get('www-authenticate') ?? '';
  assert.match(wa, /^Bearer\b/i, `${what}: 401 must carry WWW-Authenticate: Bearer…: ${show(res)}`);
}

/**
 * A user with data (pushed with a valid HS256 token), for checking that rejected tokens
 * naming that user write nothing.
 */
async function owner() {
  const sub = newUserId('owner');
  const client = api(srv.url, await valid(HS, sub));
  await push(client, [task(rid('t'), { title: 'owner data' })]);
  return { sub, client, before: await snapshot(client) };
}

/** Sends `tok` to a read and a write route: both 401, nothing stored. */
async function rejected(tok, what) {
  const bad = api(srv.url, tok);
  expect401(await bad.get('/api/sync/check'), `${what}: GET /api/sync/check`);
  expect401(await bad.sync({ cursor: 0, changes: [task(rid('t'), { title: `intruder ${what}` })] }), `${what}: POST /api/sync`);
}

describe('valid tokens of every configured key', () => {
  test('JWKS keys parsed without warnings (after a request has built the verifier)', async () => {
    // the verifier (and its warnings) is built on the first authenticated request
    ok(await api(srv.url, await valid(rsa, newUserId())).get('/api/sync/check'));
    await waitFor(() => /"route":"\/api\/sync\/check"/.test(srv.logs()), 'the request\'s log line');
    assert.ok(!/JWT_JWKS: /.test(srv.logs()), `the worker skipped a JWKS key:\n${srv.logs().slice(-3000)}`);
  });

  test('HS256, RS256 and ES256 tokens are accepted', async () => {
    for (const key of [HS, rsa, ec]) {
      const res = await api(srv.url, await valid(key, newUserId())).get('/api/sync/check');
      ok(res);
      assert.equal(res.body.cursor, 0, `a fresh user starts at 0: ${show(res)}`);
    }
  });

  test('the user is `sub`: data pushed with RS256 is the data of HS256 and ES256 tokens of the same sub', async () => {
    const sub = newUserId('multi');
    const byRsa = api(srv.url, await valid(rsa, sub));
    const id = rid('t');
    await push(byRsa, [task(id, { title: 'pushed with RS256' })]);
    const viaRsa = ok(await byRsa.get('/api/sync/tasks'));
    for (const key of [HS, ec]) {
      const other = api(srv.url, await valid(key, sub));
      const got = ok(await other.get('/api/sync/tasks'));
      assert.deepEqual(got.data, viaRsa.data, `${key.alg} sees the same records as RS256`);
      assert.equal(got.data.find((r) => r.id === id)?.title, 'pushed with RS256');
    }
    // ...and an ES256 edit is seen by the RS256 token
    const byEc = api(srv.url, await valid(ec, sub));
    await push(byEc, [task(id, { title: 'edited with ES256', version: 2 })]);
    const seen = ok(await byRsa.get('/api/sync/tasks')).data.find((r) => r.id === id);
    assert.equal(seen.title, 'edited with ES256');
    assert.equal(seen.version, 2);
    // another sub signed with the same key is another user
    const stranger = api(srv.url, await valid(rsa, newUserId('other')));
    assert.deepEqual(ok(await stranger.get('/api/sync/tasks')).data, []);
  });

  test('an RS256 / ES256 token without kid is tried against the keys of its algorithm', async () => {
    ok(await api(srv.url, await valid(rsa, newUserId(), { kid: null })).get('/api/sync/check'));
    ok(await api(srv.url, await valid(ec, newUserId(), { kid: null })).get('/api/sync/check'));
  });

  test('aud may be an array that contains the audience', async () => {
    const tok = await valid(rsa, newUserId(), { claims: { aud: ['someone-else', AUDIENCE] } });
    ok(await api(srv.url, tok).get('/api/sync/check'));
  });

  test('within the 60 s leeway: exp 30 s ago and nbf 30 s ahead are accepted', async () => {
    const now = Math.floor(Date.now() / 1000);
    for (const key of [HS, rsa, ec]) {
      ok(await api(srv.url, await valid(key, newUserId(), { exp: now - 30 })).get('/api/sync/check'));
      ok(await api(srv.url, await valid(key, newUserId(), { nbf: now + 30 })).get('/api/sync/check'));
    }
  });

  test('a token just under the 8 KiB cap is accepted', async () => {
    const base = await valid(HS, newUserId(), { claims: { pad: '' } });
    const pad = 'p'.repeat(Math.floor(((8 * 1024 - base.length - 64) * 3) / 4));
    const tok = await valid(HS, newUserId(), { claims: { pad } });
    assert.ok(tok.length <= 8 * 1024 && tok.length > 8 * 1024 - 200, `token length ${tok.length}`);
    ok(await api(srv.url, tok).get('/api/sync/check'));
  });
});

describe('invalid tokens → 401 unauthorized with WWW-Authenticate, nothing written', () => {
  const now = () => Math.floor(Date.now() / 1000);

  /** Runs `cases` (name → async (sub) => token) against one owner, then checks the owner's data. */
  async function allRejected(cases) {
    const o = await owner();
    for (const [name, make] of Object.entries(cases)) {
      await rejected(await make(o.sub), name);
    }
    await assertUnchanged(o.client, o.before, 'request with a rejected token');
  }

  test('expired beyond the leeway, not yet valid beyond the leeway (every algorithm)', async () => {
    const cases = {};
    for (const key of [HS, rsa, ec]) {
      cases[`${key.alg} expired 120 s ago`] = (sub) => valid(key, sub, { exp: now() - 120 });
      cases[`${key.alg} nbf 120 s ahead`] = (sub) => valid(key, sub, { nbf: now() + 120 });
    }
    await allRejected(cases);
  });

  test('wrong or missing issuer and audience', async () => {
    const cases = {};
    for (const key of [HS, rsa, ec]) {
      cases[`${key.alg} wrong iss`] = (sub) => valid(key, sub, { claims: { iss: 'https://evil.example/' } });
      cases[`${key.alg} iss without trailing slash`] = (sub) => valid(key, sub, { claims: { iss: ISSUER.slice(0, -1) } });
      cases[`${key.alg} no iss`] = (sub) => signWith(key, sub, { claims: { aud: AUDIENCE } });
      cases[`${key.alg} wrong aud`] = (sub) => valid(key, sub, { claims: { aud: 'other-api' } });
      cases[`${key.alg} aud array without ours`] = (sub) => valid(key, sub, { claims: { aud: ['a', 'b'] } });
      cases[`${key.alg} no aud`] = (sub) => signWith(key, sub, { claims: { iss: ISSUER } });
    }
    await allRejected(cases);
  });

  test('missing exp, missing sub, empty sub', async () => {
    const cases = {};
    for (const key of [HS, rsa, ec]) {
      cases[`${key.alg} no exp`] = (sub) => valid(key, sub, { exp: null });
      cases[`${key.alg} no sub`] = () => valid(key, null);
      cases[`${key.alg} empty sub`] = () => valid(key, '');
    }
    await allRejected(cases);
  });

  test('wrong key with the right kid, unknown kid', async () => {
    await allRejected({
      'RS256 by another RSA key under kid rsa-1': (sub) => valid(rsaOther, sub),
      'ES256 by another EC key under kid ec-1': (sub) => valid(ecOther, sub),
      'RS256 by another RSA key, no kid': (sub) => valid(rsaOther, sub, { kid: null }),
      'ES256 by another EC key, no kid': (sub) => valid(ecOther, sub, { kid: null }),
      'RS256 by the right key, unknown kid': (sub) => valid(rsa, sub, { kid: 'rsa-2' }),
      'ES256 by the right key, unknown kid': (sub) => valid(ec, sub, { kid: 'nope' }),
      'RS256 under the EC key\'s kid': (sub) => valid(rsa, sub, { kid: 'ec-1' }),
      'ES256 under the RSA key\'s kid': (sub) => valid(ec, sub, { kid: 'rsa-1' }),
      'HS256 with another secret': (sub) => valid({ secret: 'another-secret-0123456789abcdef0123456789' }, sub),
    });
  });

  test('alg:none in every spelling, with and without a kid and a signature', async () => {
    const cases = {};
    for (const alg of ['none', 'None', 'NONE', 'nOnE']) {
      cases[`alg ${alg}`] = (sub) => `${b64url({ alg, typ: 'JWT' })}.${b64url(claimsFor(sub, good))}.`;
      cases[`alg ${alg} kid rsa-1`] = (sub) => `${b64url({ alg, kid: 'rsa-1' })}.${b64url(claimsFor(sub, good))}.`;
    }
    cases['alg none keeping an RS256 signature'] = async (sub) => {
      const sig = (await valid(rsa, sub)).split('.')[2];
      return `${b64url({ alg: 'none', kid: 'rsa-1' })}.${b64url(claimsFor(sub, good))}.${sig}`;
    };
    cases['no alg at all'] = (sub) => `${b64url({ typ: 'JWT', kid: 'rsa-1' })}.${b64url(claimsFor(sub, good))}.`;
    await allRejected(cases);
  });

  test('HS256 keyed with a public key (PEM / SPKI text, JWK JSON, JWKS) never verifies', async () => {
    const cases = {};
    const secrets = {
      'RSA PEM': rsa.pem,
      'RSA PEM without final newline': rsa.pem.trimEnd(),
      'RSA JWK JSON': JSON.stringify(rsa.jwk),
      'RSA modulus n': rsa.jwk.n,
      'EC PEM': ec.pem,
      'EC JWK JSON': JSON.stringify(ec.jwk),
      'whole JWKS text': jwks,
      'RSA SPKI DER': Buffer.from(rsa.pem.replace(/-----[^-]+-----|\s/g, ''), 'base64'),
    };
    for (const [what, secret] of Object.entries(secrets)) {
      for (const kid of [undefined, 'rsa-1', 'ec-1']) {
        const header = { alg: 'HS256', typ: 'JWT', ...(kid ? { kid } : {}) };
        cases[`HS256 keyed with ${what}${kid ? ` (kid ${kid})` : ''}`] = (sub) => hmacSigned(header, claimsFor(sub, good), secret);
      }
    }
    await allRejected(cases);
  });

  test('algorithm confusion between RS256 and ES256 signatures', async () => {
    await allRejected({
      'RS256 header (kid ec-1) on an ES256 signature': (sub) => handSigned({ alg: 'RS256', kid: 'ec-1' }, claimsFor(sub, good), ec.privateKey),
      'RS256 header (kid rsa-1) on an ES256 signature': (sub) => handSigned({ alg: 'RS256', kid: 'rsa-1' }, claimsFor(sub, good), ec.privateKey),
      'RS256 header (no kid) on an ES256 signature': (sub) => handSigned({ alg: 'RS256' }, claimsFor(sub, good), ec.privateKey),
      'ES256 header (kid rsa-1) on an RS256 signature': (sub) => handSigned({ alg: 'ES256', kid: 'rsa-1' }, claimsFor(sub, good), rsa.privateKey),
      'ES256 header (kid ec-1) on an RS256 signature': (sub) => handSigned({ alg: 'ES256', kid: 'ec-1' }, claimsFor(sub, good), rsa.privateKey),
      'RS512 header on an RS256 signature': (sub) => handSigned({ alg: 'RS512', kid: 'rsa-1' }, claimsFor(sub, good), rsa.privateKey),
      'PS256 header on an RS256 signature': (sub) => handSigned({ alg: 'PS256', kid: 'rsa-1' }, claimsFor(sub, good), rsa.privateKey),
      'ES384 header on an ES256 signature': (sub) => handSigned({ alg: 'ES384', kid: 'ec-1' }, claimsFor(sub, good), ec.privateKey),
      'HS256 header on an RS256 signature': (sub) => handSigned({ alg: 'HS256', kid: 'rsa-1' }, claimsFor(sub, good), rsa.privateKey),
    });
  });

  test('payload swapped under a valid RS256 / ES256 signature', async () => {
    const swap = async (key, sub) => {
      const [h, , s] = (await valid(key, newUserId('someone'))).split('.');
      return `${h}.${b64url(claimsFor(sub, good))}.${s}`;
    };
    await allRejected({
      'RS256 payload swapped': (sub) => swap(rsa, sub),
      'ES256 payload swapped': (sub) => swap(ec, sub),
    });
  });

  test('truncated and garbage tokens', async () => {
    const cases = {};
    for (const key of [HS, rsa, ec]) {
      cases[`${key.alg} last 5 characters cut`] = async (sub) => (await valid(key, sub)).slice(0, -5);
      cases[`${key.alg} signature removed`] = async (sub) => (await valid(key, sub)).replace(/[^.]+$/, '');
      cases[`${key.alg} signature segment missing`] = async (sub) => (await valid(key, sub)).split('.').slice(0, 2).join('.');
      cases[`${key.alg} cut in the header`] = async (sub) => (await valid(key, sub)).slice(0, 10);
      cases[`${key.alg} one extra segment`] = async (sub) => `${await valid(key, sub)}.AAAA`;
      cases[`${key.alg} signature bit flipped`] = async (sub) => {
        const t = await valid(key, sub);
        const sig = Buffer.from(t.split('.')[2], 'base64url');
        sig[sig.length >> 1] ^= 1;
        return t.replace(/[^.]+$/, sig.toString('base64url'));
      };
    }
    cases['ES256 signature in DER instead of r||s'] = async (sub) => {
      const t = await valid(ec, sub);
      const raw = Buffer.from(t.split('.')[2], 'base64url');
      const int = (b) => {
        let x = b;
        while (x.length > 1 && x[0] === 0 && x[1] < 0x80) x = x.subarray(1);
        if (x[0] >= 0x80) x = Buffer.concat([Buffer.from([0]), x]);
        return Buffer.concat([Buffer.from([2, x.length]), x]);
      };
      const body = Buffer.concat([int(raw.subarray(0, 32)), int(raw.subarray(32))]);
      return t.replace(/[^.]+$/, Buffer.concat([Buffer.from([0x30, body.length]), body]).toString('base64url'));
    };
    Object.assign(cases, {
      'garbage word': () => 'garbage',
      'three dots': () => '...',
      'a.b.c': () => 'a.b.c',
      'not base64': () => '!!!.@@@.###',
      'JSON header not encoded': (sub) => `{"alg":"HS256"}.${b64url(claimsFor(sub, good))}.x`,
      'header is not an object': (sub) => `${b64url('"HS256"')}.${b64url(claimsFor(sub, good))}.x`,
      'payload is not JSON': () => `${b64url({ alg: 'HS256' })}.${b64url('not json')}.x`,
      'latin-1 bytes': () => 'tøkén.ünïcødé.x',
    });
    await allRejected(cases);
  });

  test('an over-long token (> 8 KiB) is refused, even when validly signed', async () => {
    const cases = {};
    for (const key of [HS, rsa, ec]) {
      cases[`${key.alg} 9 KiB`] = (sub) => valid(key, sub, { claims: { pad: 'p'.repeat(7 * 1024) } });
      cases[`${key.alg} 64 KiB`] = (sub) => valid(key, sub, { claims: { pad: 'p'.repeat(48 * 1024) } });
    }
    cases['8 KiB + 1 byte'] = async (sub) => {
      const base = await valid(HS, sub, { claims: { pad: '' } });
      for (let n = Math.floor(((8 * 1024 - base.length) * 3) / 4) - 8; ; n++) {
        const t = await valid(HS, sub, { claims: { pad: 'p'.repeat(n) } });
        if (t.length > 8 * 1024) return t;
      }
    };
    const o = await owner();
    for (const [name, make] of Object.entries(cases)) {
      const tok = await make(o.sub);
      assert.ok(tok.length > 8 * 1024, `${name}: ${tok.length}`);
      const res = await api(srv.url, tok).get('/api/sync/check');
      expect401(res, name);
      assert.match(res.body.detail, /too long/, show(res));
      expect401(await api(srv.url, tok).sync({ cursor: 0, changes: [task(rid('t'))] }), `${name} push`);
    }
    await assertUnchanged(o.client, o.before, 'over-long token');
  });
});

// A second server: no JWT_SECRET (HS256 off, contract §9) and a JWKS with one good key and
// two it cannot use. The bad keys are reported in the log once the verifier is built
// (the positive control of the "parsed without warnings" test above); the good key works.
describe('without JWT_SECRET, with unusable JWKS entries', () => {
  let other;
  before(async () => {
    const set = JSON.stringify({ keys: [rsa.jwk, { kty: 'RSA', kid: 'broken', alg: 'RS256', n: '!!', e: 'AQAB' }, { kty: 'oct', kid: 'sym', k: 'c2VjcmV0' }] });
    other = await startWorker({ vars: { JWT_SECRET: '', JWT_JWKS: set, JWT_ISSUER: ISSUER, JWT_AUDIENCE: AUDIENCE } });
  });
  after(async () => {
    await other?.stop();
  });

  test('HS256 is refused when JWT_SECRET is unset, even signed with the usual test secret; RS256 still works', async () => {
    const o = api(other.url, await valid(rsa, newUserId('rs')));
    await push(o, [task(rid('t'))]);
    const before = await snapshot(o);
    for (const secret of [TEST_JWT_SECRET, '']) {
      const tok = await hmacSigned({ alg: 'HS256', typ: 'JWT' }, claimsFor(newUserId('hs'), good), secret || 'x');
      const bad = api(other.url, tok);
      for (const res of [await bad.get('/api/sync/check'), await bad.sync({ cursor: 0, changes: [task(rid('t'))] })]) {
        expect401(res, `HS256 without JWT_SECRET (secret ${secret ? 'test' : 'x'})`);
      }
    }
    // the owner's own token of another algorithm is unaffected, and nothing was written
    await assertUnchanged(o, before, 'HS256 token without JWT_SECRET');
  });

  test('the unusable JWKS entries are logged as JWT_JWKS warnings once a request builds the verifier', async () => {
    ok(await api(other.url, await valid(rsa, newUserId())).get('/api/sync/check'));
    const logs = await waitFor(() => (/JWT_JWKS: /.test(other.logs()) ? other.logs() : false), 'a JWT_JWKS warning in the log');
    assert.ok((logs.match(/JWT_JWKS: /g) ?? []).length >= 2, `one warning per unusable key:\n${logs.slice(-3000)}`);
  });
});
