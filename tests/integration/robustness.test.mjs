// Robustness (issue #9): no input panics the worker or costs other requests, a malformed
// field never deletes or changes data, and the limits hold at their exact edges.
//   - correctly signed HS256 tokens with extreme time claims → 401, and another user's
//     concurrent pushes all succeed while such tokens arrive (a panic would reset the
//     wasm instance and fail the requests in flight);
//   - `deleted_at` must be null or a positive integer: any other value is a 400 naming
//     it, on every route that takes records; a valid one deletes with the server's time;
//   - versions never pass 2^53 − 1 (a version_exhausted conflict; 409 for a full upload);
//   - a content-coded body (gzip, br, deflate, unknown) is 415 naming `identity`;
//   - every wrong JSON type for every field of every type (generated from
//     /api/openapi.json) is a 400 naming the field, on POST /api/sync, the delta push and
//     the full upload, and stores nothing;
//   - integers at and one past their documented bounds; bodies of exactly MAX_BODY_BYTES
//     and one byte more (with and without Content-Length).
import assert from 'node:assert/strict';
import { gzipSync, brotliCompressSync, deflateSync } from 'node:zlib';
import { SignJWT } from 'jose';
import { after, before, describe, test } from 'node:test';
import { startWorker, TEST_JWT_SECRET } from '../helpers/server.mjs';
import { api, newUserId, rid, show, token } from '../helpers/client.mjs';
import { hmacSigned } from '../helpers/keys.mjs';
import {
  TYPES, assertUnchanged, check, del, expectProblem, findRec, ok, pullAll, push, snapshot, task,
} from '../helpers/sync.mjs';

const MAX_SAFE = Number.MAX_SAFE_INTEGER; // 2^53 − 1
const MAX_BODY = 1_048_576;
const JSON_CT = { 'content-type': 'application/json' };

let srv;
let doc; // /api/openapi.json
before(async () => {
  srv = await startWorker();
  doc = ok(await api(srv.url, null).get('/api/openapi.json'));
});
after(async () => {
  await srv?.stop();
});

const crashed = () => /panicked|RuntimeError: unreachable|code had hung/.exec(srv.logs());

/** A user holding one live task `x` titled "keep", and a snapshot of it. */
async function keeper() {
  const u = api(srv.url, await token(newUserId('keep')));
  const p = await push(u, [task('x', { title: 'keep' })]);
  return { u, version: p.applied[0].version, before: await snapshot(u) };
}

// ---------------------------------------------------------------------------------------
// 1. Correctly signed tokens with extreme time claims
// ---------------------------------------------------------------------------------------

const enc = new TextEncoder();
/** An HS256 token over exactly `payload` (an object, signed by jose) with the test secret. */
const signed = (payload) => new SignJWT(payload).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).sign(enc.encode(TEST_JWT_SECRET));
/** The same over raw JSON text (for number spellings JSON.stringify never writes, e.g. 1e20). */
const signedText = (text) => hmacSigned({ alg: 'HS256', typ: 'JWT' }, text, TEST_JWT_SECRET);

// 2^53 − 1, the JS Date limit, a float beyond i64, −2^53, chrono's last representable
// second (+262142-12-31T23:59:59) and one past it, chrono's first second
// (−262143-01-01T00:00:00: `nbf − leeway` there overflowed and panicked the worker) and
// a few after it, and i64 edges.
const CHRONO_MIN = -8_334_601_228_800;
const EXTREME = [
  ['2^53-1', MAX_SAFE], ['8.64e15', 8.64e15], ['1e20', 1e20], ['-2^53', -(2 ** 53)],
  ['8210266876799', 8_210_266_876_799], ['8210266876800', 8_210_266_876_800], ['-8210266876799', -8_210_266_876_799],
  ['chrono min', CHRONO_MIN], ['chrono min + 1', CHRONO_MIN + 1], ['chrono min + 59', CHRONO_MIN + 59], ['chrono min - 1', CHRONO_MIN - 1],
  ['1e300', 1e300], ['-1e300', -1e300], ['2^63', 2 ** 63], ['-2^63', -(2 ** 63)],
];
const RAW_EXTREME = ['1e20', '1E+20', '9.2233720368547758e18', '-9223372036854775808', '18446744073709551616', '1e400', '-8334601228800.0'];

async function hostileTokens() {
  const now = Math.floor(Date.now() / 1000);
  const sub = newUserId('hostile');
  const base = { sub, iat: now, exp: now + 3600 };
  const out = [];
  for (const claim of ['exp', 'nbf', 'iat']) {
    for (const [name, v] of EXTREME) out.push({ what: `${claim}=${name}`, tok: await signed({ ...base, [claim]: v }) });
    for (const raw of RAW_EXTREME) {
      const fields = { sub: JSON.stringify(sub), iat: String(now), exp: String(now + 3600), [claim]: raw };
      const text = `{${Object.entries(fields).map(([k, v]) => `"${k}":${v}`).join(',')}}`;
      out.push({ what: `${claim}=${raw} (raw JSON)`, tok: await signedText(text) });
    }
  }
  return out;
}

describe('correctly signed tokens with extreme time claims', () => {
  test('each is 401 unauthorized (problem+json, WWW-Authenticate) on a read and a write', async () => {
    const toks = await hostileTokens();
    const wrong = [];
    for (const { what, tok } of toks) {
      for (const res of [await api(srv.url, tok).get('/api/sync/check'), await api(srv.url, tok).sync({ cursor: 0, changes: [task(rid('t'))] })]) {
        try {
          expectProblem(res, 401, 'unauthorized');
          assert.match(res.headers.get('www-authenticate') ?? '', /^Bearer\b/i);
        } catch {
          wrong.push(`${what}: ${show(res).slice(0, 300)}`);
        }
      }
    }
    assert.deepEqual(wrong, [], `tokens with extreme time claims must be refused with 401:\n${wrong.join('\n')}`);
    assert.equal(crashed(), null, `the worker panicked:\n${srv.logs().slice(-3000)}`);
  });

  test('while they are sent, 8 concurrent pushes of another user all succeed and are all stored', async () => {
    const toks = await hostileTokens();
    const victim = await token(newUserId('victim'));
    for (let round = 0; round < 3; round++) {
      const pushes = Array.from({ length: 8 }, (_, i) => ({ id: `r${round}-p${i}`, changes: Array.from({ length: 5 }, (_, j) => task(`r${round}-p${i}-${j}`)) }));
      const results = await Promise.all([
        ...pushes.map((p) => api(srv.url, victim).sync({ cursor: 0, changes: p.changes })),
        ...toks.map(({ tok }, i) => (i % 2 ? api(srv.url, tok).get('/api/sync/check') : api(srv.url, tok).sync({ cursor: 0, changes: [task(rid('h'))] }))),
      ]);
      const mine = results.slice(0, 8);
      const failed = mine.map((r, i) => (r.status === 200 ? null : `push ${pushes[i].id}: ${show(r).slice(0, 300)}`)).filter(Boolean);
      assert.deepEqual(failed, [], `round ${round}: another user's pushes failed while hostile tokens were sent`);
      for (const r of results.slice(8)) assert.equal(r.status, 401, `round ${round}: hostile token: ${show(r).slice(0, 300)}`);
      const stored = new Set((await pullAll(api(srv.url, victim), 0, { limit: 1000 })).updates.map((r) => r.id));
      for (const p of pushes) for (const c of p.changes) assert.ok(stored.has(c.id), `round ${round}: acknowledged ${c.id} is not stored`);
    }
    assert.equal(crashed(), null, `the worker panicked:\n${srv.logs().slice(-3000)}`);
  });
});

// ---------------------------------------------------------------------------------------
// 2. deleted_at: null or a positive integer (ms), nothing else
// ---------------------------------------------------------------------------------------

const BAD_DELETED_AT = [false, true, '', 'no', {}, [], 1.5, 0, -5];

describe('deleted_at of a wrong type or value is a 400 and changes nothing', () => {
  test('POST /api/sync: {id, title, deleted_at: V} → 400 invalid_field changes[0].deleted_at, the record unchanged', async () => {
    const { u, before } = await keeper();
    const wrong = [];
    for (const v of BAD_DELETED_AT) {
      const res = await u.sync({ cursor: 0, changes: [{ id: 'x', title: 'keep', deleted_at: v }] });
      try {
        expectProblem(res, 400, 'invalid_field', { field: 'changes[0].deleted_at' });
      } catch {
        wrong.push(`deleted_at ${JSON.stringify(v)}: ${show(res).slice(0, 400)}`);
      }
      // also when the change says what type it is, and without a title (a delete's shape)
      const res2 = await u.sync({ cursor: 0, changes: [{ type: 'tasks', id: 'x', deleted_at: v }] });
      if (res2.status !== 400 || res2.body?.field !== 'changes[0].deleted_at') wrong.push(`{type, id, deleted_at: ${JSON.stringify(v)}}: ${show(res2).slice(0, 400)}`);
    }
    await assertUnchanged(u, before, 'push with a bad deleted_at');
    assert.deepEqual(wrong, [], `a deleted_at that is not null or a positive integer must be refused:\n${wrong.join('\n')}`);
  });

  test('delta push: a bad deleted_at in created, updated or deleted objects → 400 naming it; nothing changes', async () => {
    const { u, before } = await keeper();
    const wrong = [];
    for (const v of BAD_DELETED_AT) {
      const cases = {
        'changes.created[0].deleted_at': { created: [{ id: 'x', title: 'keep', deleted_at: v }] },
        'changes.updated[0].deleted_at': { updated: [{ id: 'x', title: 'keep', deleted_at: v }] },
        'changes.deleted[0].deleted_at': { deleted: [{ id: 'x', deleted_at: v }] },
      };
      for (const [field, changes] of Object.entries(cases)) {
        const res = await u.post('/api/sync/tasks/delta', { changes });
        if (res.status !== 400 || res.body?.error !== 'invalid_field' || res.body?.field !== field) {
          wrong.push(`${field} = ${JSON.stringify(v)}: ${show(res).slice(0, 400)}`);
        }
      }
    }
    await assertUnchanged(u, before, 'delta push with a bad deleted_at');
    assert.deepEqual(wrong, [], wrong.join('\n'));
  });

  test('full upload: a bad deleted_at → 400 data[0].deleted_at; nothing changes', async () => {
    const { u, before } = await keeper();
    const wrong = [];
    for (const v of BAD_DELETED_AT) {
      const res = await u.post('/api/sync/tasks', { cursor: before.cursor, data: [{ id: 'x', title: 'keep', deleted_at: v }] });
      if (res.status !== 400 || res.body?.error !== 'invalid_field' || res.body?.field !== 'data[0].deleted_at') {
        wrong.push(`deleted_at ${JSON.stringify(v)}: ${show(res).slice(0, 400)}`);
      }
    }
    await assertUnchanged(u, before, 'full upload with a bad deleted_at');
    assert.deepEqual(wrong, [], wrong.join('\n'));
  });

  test('a positive deleted_at still deletes, and the tombstone carries the server\'s time, not the client\'s', async () => {
    for (const clientTime of [12345, 4_102_444_800_000 /* 2100 */, Date.now() - 30 * 86_400_000]) {
      const { u, version } = await keeper();
      const t0 = Date.now();
      const d = ok(await u.sync({ cursor: 0, changes: [{ id: 'x', title: 'keep', deleted_at: clientTime }] }));
      assert.deepEqual(d.applied.map((a) => [a.id, a.version]), [['x', version + 1]], JSON.stringify(d));
      assert.deepEqual(ok(await u.get('/api/sync/tasks')).data, [], 'the record is tombstoned');
      // a stale edit shows the tombstone as the server holds it
      const c = ok(await u.sync({ cursor: 0, changes: [task('x', { title: 'stale', version })] }));
      const server = c.conflicts[0]?.server;
      assert.ok(server && Number.isInteger(server.deleted_at), `the conflict carries the tombstone: ${JSON.stringify(c)}`);
      assert.ok(server.deleted_at >= t0 - 60_000 && server.deleted_at <= Date.now() + 60_000,
        `deleted_at is the server's time (client sent ${clientTime}): ${JSON.stringify(server)}`);
    }
  });
});

// ---------------------------------------------------------------------------------------
// 3. Versions stop at 2^53 − 1
// ---------------------------------------------------------------------------------------

describe('versions never pass 2^53 − 1', () => {
  async function atMax() {
    const u = api(srv.url, await token(newUserId('max')));
    const p = await push(u, [task('x', { title: 'at max', version: MAX_SAFE })]);
    assert.equal(p.applied[0].version, MAX_SAFE);
    return { u, before: await snapshot(u) };
  }
  /** Asserts a version_exhausted conflict for x carrying the stored record at 2^53 − 1. */
  function exhausted(conflicts, what) {
    assert.equal(conflicts.length, 1, `${what}: one conflict: ${JSON.stringify(conflicts)}`);
    const c = conflicts[0];
    assert.equal(c.id, 'x', what);
    assert.equal(c.reason, 'version_exhausted', `${what}: ${JSON.stringify(c)}`);
    assert.equal(c.server?.version, MAX_SAFE, `${what}: the conflict carries the stored record: ${JSON.stringify(c)}`);
  }

  test('a versionless edit of a record at 2^53 − 1 is a version_exhausted conflict, never version 2^53; the rest of the push applies', async () => {
    const { u, before } = await atMax();
    const res = ok(await u.sync({ cursor: 0, changes: [task('x', { title: 'one more' })] }));
    assert.deepEqual(res.applied, [], JSON.stringify(res));
    exhausted(res.conflicts, 'POST /api/sync edit');
    await assertUnchanged(u, before, 'versionless edit at the maximum version');
    assert.equal(ok(await u.get('/api/sync/tasks')).data[0].version, MAX_SAFE);
    // an identical versionless change is a replay, not a new version: still fine
    const replay = ok(await u.sync({ cursor: 0, changes: [task('x', { title: 'at max' })] }));
    assert.deepEqual([replay.applied.map((a) => a.version), replay.conflicts], [[MAX_SAFE], []], JSON.stringify(replay));
    // the other changes of the same push are applied
    const mixed = ok(await u.sync({ cursor: 0, changes: [task('x', { title: 'again' }), task('y', { title: 'fine' })] }));
    assert.deepEqual(mixed.applied.map((a) => [a.id, a.version]), [['y', 1]], JSON.stringify(mixed));
    exhausted(mixed.conflicts, 'mixed push');
    const stored = ok(await u.get('/api/sync/tasks')).data;
    assert.deepEqual(stored.map((r) => [r.id, r.version, r.title]), [['x', MAX_SAFE, 'at max'], ['y', 1, 'fine']]);
  });

  test('the same for a versionless delete and the delta push; a full upload that would need 2^53 is 409 version_exhausted', async () => {
    const { u, before } = await atMax();
    exhausted(ok(await u.sync({ cursor: 0, changes: [del('tasks', 'x')] })).conflicts, 'POST /api/sync delete');
    const du = ok(await u.post('/api/sync/tasks/delta', { changes: { updated: [{ id: 'x', title: 'one more' }] } }));
    assert.deepEqual(du.processed, { created: 0, updated: 0, deleted: 0 }, JSON.stringify(du));
    exhausted(du.conflicts, 'delta update');
    const dd = ok(await u.post('/api/sync/tasks/delta', { changes: { deleted: ['x'] } }));
    assert.deepEqual(dd.processed, { created: 0, updated: 0, deleted: 0 }, JSON.stringify(dd));
    exhausted(dd.conflicts, 'delta delete');
    for (const [what, data] of [['changed', [{ id: 'x', title: 'changed' }]], ['left out (a tombstone)', []]]) {
      const res = await u.post('/api/sync/tasks', { cursor: before.cursor, data });
      const p = expectProblem(res, 409, 'version_exhausted');
      assert.match(`${p.detail} ${JSON.stringify(p)}`, /9007199254740991|2\^53/, `full upload, x ${what}: the problem names the limit: ${show(res)}`);
    }
    await assertUnchanged(u, before, 'writes past the maximum version');
  });
});

// ---------------------------------------------------------------------------------------
// 4. Content-Encoding
// ---------------------------------------------------------------------------------------

describe('a content-coded request body', () => {
  const body = () => JSON.stringify({ cursor: 0, changes: [task('coded', { title: 'must not be stored' })] });
  const codings = {
    gzip: (b) => gzipSync(b),
    br: (b) => brotliCompressSync(b),
    deflate: (b) => deflateSync(b),
    'x-unknown': (b) => Buffer.from(b),
    'gzip, identity': (b) => gzipSync(b),
  };

  test('gzip, br, deflate or an unknown coding → 415 unsupported_media_type naming identity, with Accept-Encoding: identity', async () => {
    const { u, before } = await keeper();
    for (const [coding, encode] of Object.entries(codings)) {
      for (const [path, payload] of [
        ['/api/sync', body()],
        ['/api/sync/tasks/delta', JSON.stringify({ changes: { created: [{ id: 'coded', title: 'x' }] } })],
        ['/api/sync/tasks', JSON.stringify({ cursor: before.cursor, data: [] })],
      ]) {
        const res = await u.post(path, encode(payload), { headers: { ...JSON_CT, 'content-encoding': coding } });
        const p = expectProblem(res, 415, 'unsupported_media_type');
        assert.match(p.detail, /identity/, `${coding} ${path}: the detail names the accepted coding: ${show(res)}`);
        assert.equal(res.headers.get('accept-encoding'), 'identity', `${coding} ${path}: Accept-Encoding response header (RFC 9110 §12.5.3): ${show(res)}`);
      }
    }
    await assertUnchanged(u, before, 'content-coded bodies');
  });

  test('Content-Encoding: identity is accepted (control)', async () => {
    const { u } = await keeper();
    const res = await u.post('/api/sync', body(), { headers: { ...JSON_CT, 'content-encoding': 'identity' } });
    assert.deepEqual(ok(res).applied.map((a) => a.id), ['coded'], show(res));
  });
});

// ---------------------------------------------------------------------------------------
// 5. Every wrong JSON type for every field, from the OpenAPI document
// ---------------------------------------------------------------------------------------

const KINDS = {
  null: null, boolean: true, integer: 7, number: 1.5, string: 'str', array: [], object: {},
};
const kindsOf = (v) => {
  if (v === null) return ['null'];
  if (Array.isArray(v)) return ['array'];
  if (typeof v === 'number') return Number.isInteger(v) ? ['integer', 'number'] : ['number'];
  return [typeof v];
};

/** The JSON kinds a property schema allows, or null when it does not constrain the type. */
function allowedKinds(schema, resolve) {
  if (schema.$ref) return allowedKinds(resolve(schema.$ref), resolve);
  if (schema.oneOf || schema.anyOf) {
    const parts = (schema.oneOf ?? schema.anyOf).map((s) => allowedKinds(s, resolve));
    if (parts.some((p) => p === null)) return null;
    return [...new Set(parts.flat())];
  }
  if ('const' in schema) return kindsOf(schema.const);
  if (schema.enum) return [...new Set(schema.enum.flatMap(kindsOf))];
  if (schema.type) {
    const types = [].concat(schema.type);
    return types.flatMap((t) => (t === 'number' ? ['number', 'integer'] : [t]));
  }
  return null;
}

/** A valid base record of `type` for schema `name` (`…Change` or `…Live`). */
function baseRecord(type, withType) {
  const r = { tasks: { title: 'base' }, lists: { name: 'base' }, notes: { title: 'base' }, settings: { value: 1 } }[type];
  return { ...(withType ? { type } : {}), id: `wt-${type}`, ...r };
}

function wrongTypeCases(schemaName, type, withType) {
  const schemas = doc.components.schemas;
  const resolve = (ref) => ref.replace('#/components/schemas/', '').split('/').reduce((o, k) => o[k], schemas);
  const schema = schemas[schemaName];
  assert.ok(schema?.properties, `${schemaName} in /api/openapi.json`);
  const cases = [];
  for (const [prop, ps] of Object.entries(schema.properties)) {
    const allowed = allowedKinds(ps, resolve);
    if (allowed === null) continue; // documented as any value (settings value, ignored fields)
    const aliasOf = /^alias of (\w+)$/.exec(ps.description ?? '')?.[1];
    for (const [kind, value] of Object.entries(KINDS)) {
      if (allowed.includes(kind)) continue;
      const rec = baseRecord(type, withType);
      if (aliasOf) delete rec[aliasOf];
      rec[prop] = value;
      cases.push({ prop, kind, rec });
    }
  }
  return cases;
}

describe('every wrong JSON type for every field (from /api/openapi.json) → 400 naming the field, nothing stored', () => {
  const capitalized = (t) => t[0].toUpperCase() + t.slice(1);

  async function run(route, schemaSuffix, send, fieldOf) {
    const u = api(srv.url, await token(newUserId('types')));
    await push(u, TYPES.map((t) => baseRecord(t, true)));
    const before = await snapshot(u);
    const wrong = [];
    let n = 0;
    for (const type of TYPES) {
      const cases = wrongTypeCases(`${capitalized(type)}${schemaSuffix}`, type, schemaSuffix === 'Change');
      assert.ok(cases.length >= 10, `${type}: only ${cases.length} wrong-type cases generated`);
      for (const c of cases) {
        n++;
        const res = await send(u, type, c.rec, before.cursor);
        const field = fieldOf(c.prop);
        if (res.status !== 400 || res.body?.error !== 'invalid_field' || res.body?.field !== field || !/problem\+json/.test(res.headers.get('content-type') ?? '')) {
          wrong.push(`${type}.${c.prop} = ${JSON.stringify(KINDS[c.kind])} (${c.kind}): expected 400 invalid_field ${field}, got ${show(res).slice(0, 300)}`);
        }
      }
      assert.equal((await check(u)).etag, before.etag, `${route} ${type}: a refused request changed the state`);
    }
    await assertUnchanged(u, before, `${route} with wrong field types`);
    // a non-null deleted_at / deleted: true in a live record (delta created / updated,
    // full upload) is also checked by its own test below (it was a gap: the record was
    // named instead of the field)
    const isDeleteField = (w) => /^\w+\.deleted(_at)? = /.test(w) && schemaSuffix === 'Live';
    deleteFieldGaps.push(...wrong.filter(isDeleteField).map((w) => `${route}: ${w}`));
    const strict = wrong.filter((w) => !isDeleteField(w));
    assert.deepEqual(strict, [], `${strict.length} of ${n} wrong-type changes were not refused as documented:\n${strict.join('\n')}`);
    assert.equal(crashed(), null);
  }
  const deleteFieldGaps = [];

  test('POST /api/sync (…Change schemas)', () =>
    run('POST /api/sync', 'Change', (u, type, rec) => u.sync({ cursor: 0, changes: [rec] }), (p) => `changes[0].${p}`));

  test('POST /api/sync/{type}/delta, created and updated (…Live schemas)', async () => {
    await run('delta created', 'Live', (u, type, rec) => u.post(`/api/sync/${type}/delta`, { changes: { created: [rec] } }), (p) => `changes.created[0].${p}`);
    await run('delta updated', 'Live', (u, type, rec) => u.post(`/api/sync/${type}/delta`, { changes: { updated: [rec] } }), (p) => `changes.updated[0].${p}`);
  });

  test('POST /api/sync/{type} full upload (…Live schemas)', () =>
    run('full upload', 'Live', (u, type, rec, cursor) => u.post(`/api/sync/${type}`, { cursor, data: [rec] }), (p) => `data[0].${p}`));

  test('…and a live record\'s deleted_at / deleted of a wrong type names that field', () => {
    assert.deepEqual(deleteFieldGaps, [], deleteFieldGaps.join('\n'));
  });
});

// ---------------------------------------------------------------------------------------
// 6. Integers at and past their bounds; bodies at and past MAX_BODY_BYTES
// ---------------------------------------------------------------------------------------

describe('extreme numbers', () => {
  test('integer fields at ±(2^53 − 1) round-trip exactly; one past (and 1e300, 1e21) is a 400 naming the field', async () => {
    const u = api(srv.url, await token(newUserId('num')));
    const fields = { sort_order: [-MAX_SAFE, MAX_SAFE], due_date: [-MAX_SAFE, MAX_SAFE] };
    for (const [f, edges] of Object.entries(fields)) {
      for (const v of edges) {
        const id = rid('n');
        await push(u, [task(id, { [f]: v })]);
        const rec = ok(await u.get('/api/sync/tasks?limit=1000')).data.find((r) => r.id === id);
        assert.equal(rec[f], v, `${f} = ${v} must round-trip: ${JSON.stringify(rec)}`);
      }
    }
    const before = await snapshot(u);
    for (const f of ['sort_order', 'due_date', 'version']) {
      for (const raw of ['9007199254740992', '-9007199254740992', '1e300', '-1e300', '1e21', '18446744073709551616']) {
        if (f === 'version' && raw.startsWith('-')) continue;
        const text = `{"cursor":0,"changes":[{"type":"tasks","id":"big","title":"x","${f}":${raw}}]}`;
        expectProblem(await u.post('/api/sync', text, { headers: JSON_CT }), 400, 'invalid_field', { field: `changes[0].${f}` });
      }
    }
    await assertUnchanged(u, before, 'out-of-range integers');
  });

  test('cursors and since: 2^53 − 1 is valid, 2^53 and beyond are a 400 naming the parameter', async () => {
    const u = api(srv.url, await token(newUserId('cur')));
    await push(u, [task(rid('t'))]);
    const at = ok(await u.sync({ cursor: MAX_SAFE }));
    assert.deepEqual([at.updates, at.deleted], [[], []]);
    ok(await u.get(`/api/sync/tasks/changes?since=${MAX_SAFE}`));
    for (const v of ['9007199254740992', '1e300', '18446744073709551616']) {
      expectProblem(await u.post('/api/sync', `{"cursor":${v}}`, { headers: JSON_CT }), 400, 'invalid_field', { field: 'cursor' });
      expectProblem(await u.get(`/api/sync/tasks/changes?since=${v}`), 400, 'invalid_field', { field: 'since' });
    }
  });
});

describe(`bodies at and one byte past MAX_BODY_BYTES (${MAX_BODY})`, () => {
  /** `json` padded with trailing whitespace (valid JSON) to exactly `size` bytes. */
  const padded = (json, size) => {
    const n = size - Buffer.byteLength(json);
    assert.ok(n >= 0);
    return json + ' '.repeat(n);
  };
  const routes = (cursor) => [
    ['/api/sync', JSON.stringify({ cursor: 0, changes: [task('edge', { title: 'edge' })] })],
    ['/api/sync/tasks/delta', JSON.stringify({ changes: { created: [{ id: 'edge', title: 'edge' }] } })],
    ['/api/sync/notes', JSON.stringify({ cursor, data: [{ id: 'edge', title: 'edge' }] })],
  ];

  test('exactly MAX_BODY_BYTES is accepted on every write route; one byte more is 413 and stores nothing', async () => {
    for (const [path] of routes(0)) {
      const u = api(srv.url, await token(newUserId('body')));
      const { cursor } = await check(u);
      const j = routes(cursor).find(([p]) => p === path)[1];
      const before = await snapshot(u);
      const over = padded(j, MAX_BODY + 1);
      expectProblem(await u.post(path, over, { headers: JSON_CT }), 413, 'payload_too_large');
      await assertUnchanged(u, before, `${path} body of MAX_BODY_BYTES + 1`);
      const res = await u.post(path, padded(j, MAX_BODY), { headers: JSON_CT });
      assert.equal(res.status, 200, `${path}: a body of exactly ${MAX_BODY} bytes: ${show(res).slice(0, 400)}`);
    }
  });

  test('a chunked body one byte past the limit is 413 payload_too_large', async () => {
    const tok = await token(newUserId('chunk'));
    const u = api(srv.url, tok);
    const before = await snapshot(u);
    const over = Buffer.from(padded(JSON.stringify({ cursor: 0, changes: [task('edge')] }), MAX_BODY + 1));
    const res = await fetch(`${srv.url}/api/sync`, {
      method: 'POST',
      headers: { ...JSON_CT, authorization: `Bearer ${tok}` },
      body: new ReadableStream({
        start(c) {
          for (let i = 0; i < over.length; i += 65_536) c.enqueue(over.subarray(i, i + 65_536));
          c.close();
        },
      }),
      duplex: 'half',
    });
    const text = await res.text();
    const parsed = { status: res.status, headers: res.headers, body: JSON.parse(text || 'null'), text };
    expectProblem(parsed, 413, 'payload_too_large');
    await assertUnchanged(u, before, 'chunked body over the limit');
  });
});

describe('after all of the above', () => {
  test('no panic in the log, and the worker serves normally', async () => {
    assert.equal(crashed(), null, `the worker panicked:\n${srv.logs().slice(-3000)}`);
    ok(await api(srv.url, null).get('/api/health'));
    const u = api(srv.url, await token(newUserId()));
    const p = await push(u, [task('fine')]);
    assert.equal(findRec((await pullAll(u, 0)).updates, 'tasks', 'fine')?.rev, p.applied[0].rev);
  });
});
