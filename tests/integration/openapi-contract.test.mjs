// GET /api/openapi.json against what the worker really serves: every route of the routing
// table (crates/core/src/endpoints.rs, read as text here) is a path + method of the document and nothing
// else is; each collection of the declaration (collections.json) has schemas with exactly its
// fields; the document is OpenAPI 3.1 with security schemes and resolvable references;
// the Problem `error` enum is exactly the worker's error codes (crates/core/src/error.rs) and covers
// every code the other test files expect; each operation documents the statuses the
// worker can answer it with; live error responses have the documented shape.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ROOT, startWorker } from '../helpers/server.mjs';
import { collectionNames, collectionsFromSource, readSource as read, routesFromSource } from '../helpers/source.mjs';
import { api, newUserId, show, token } from '../helpers/client.mjs';
import { ok } from '../helpers/sync.mjs';

let srv;
let doc;
before(async () => {
  srv = await startWorker();
  const res = await api(srv.url, null).get('/api/openapi.json');
  doc = ok(res);
});
after(async () => {
  await srv?.stop();
});

/** code → HTTP status, from ApiError::code() and ApiError::status() in crates/core/src/error.rs. */
function errorCodesFromSource() {
  const src = read('crates/core/src/error.rs');
  const body = (fn) => {
    const m = src.match(new RegExp(`pub fn ${fn}\\(&self\\)[^{]*\\{([\\s\\S]*?)\\n    \\}`));
    assert.ok(m, `fn ${fn} not found in crates/core/src/error.rs`);
    return m[1];
  };
  const codes = new Map(); // variant -> code
  for (const [, variant, code] of body('code').matchAll(/ApiError::(\w+)[^=]*=>\s*"([a-z_]+)"/g)) codes.set(variant, code);
  const status = new Map(); // code -> status
  for (const [, lhs, st] of body('status').matchAll(/((?:ApiError::\w+[^|=]*\|?\s*)+)=>\s*(\d{3})/g)) {
    for (const [, variant] of lhs.matchAll(/ApiError::(\w+)/g)) status.set(codes.get(variant), Number(st));
  }
  assert.ok(codes.size >= 10, `parsed ${codes.size} error codes from crates/core/src/error.rs`);
  for (const c of codes.values()) assert.ok(status.has(c), `no status parsed for ${c}`);
  return status;
}

/** Error codes the other integration test files expect from the worker. */
function codesExpectedByTests() {
  const dir = path.join(ROOT, 'tests', 'integration');
  const seen = new Map(); // code -> files
  for (const f of fs.readdirSync(dir).filter((x) => x.endsWith('.test.mjs') && x !== path.basename(import.meta.url))) {
    const text = fs.readFileSync(path.join(dir, f), 'utf8');
    // expectProblem(res, 401, 'unauthorized') and the like: a status then a code
    for (const [, code] of text.matchAll(/\b[1-5]\d\d,\s*'([a-z_]+)'/g)) {
      if (!seen.has(code)) seen.set(code, new Set());
      seen.get(code).add(f);
    }
    // res.body.error === 'busy', error: 'rate_limited', ['invalid_json', 'invalid_field'].includes(res.body?.error)
    const found = [...text.matchAll(/error\S{0,3}\s*(?:===|==|,|:)\s*'([a-z_]+)'/g)].map((m) => m[1]);
    for (const [, items] of text.matchAll(/\[((?:'[a-z_]+',?\s*)+)\]\.includes\([^)]*error/g)) {
      found.push(...[...items.matchAll(/'([a-z_]+)'/g)].map((m) => m[1]));
    }
    for (const code of found) {
      if (!seen.has(code)) seen.set(code, new Set());
      seen.get(code).add(f);
    }
  }
  return seen;
}

function resolveRef(ref) {
  assert.match(ref, /^#\//, `only local $refs: ${ref}`);
  return ref
    .slice(2)
    .split('/')
    .reduce((node, key) => (node == null ? undefined : node[key.replace(/~1/g, '/').replace(/~0/g, '~')]), doc);
}

function walk(node, visit, at = '#') {
  if (Array.isArray(node)) node.forEach((x, i) => walk(x, visit, `${at}/${i}`));
  else if (node && typeof node === 'object') {
    visit(node, at);
    for (const [k, v] of Object.entries(node)) walk(v, visit, `${at}/${k}`);
  }
}

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

/** The entity types, from the collections declaration (collections.json). */
const entityNames = () => collectionNames();

/** A route of the table as the document describes it: a `{type}` route once per type. */
function concrete(r) {
  return r.path.includes('{type}') ? entityNames().map((t) => ({ ...r, path: r.path.replace('{type}', t) })) : [r];
}

describe('the OpenAPI document matches the routing table', () => {
  test('every route of crates/core/src/endpoints.rs is an operation of the document (per type), and vice versa', () => {
    const served = routesFromSource().flatMap(concrete).map((r) => `${r.method} ${r.path}`).sort();
    const described = [];
    for (const [p, item] of Object.entries(doc.paths)) {
      for (const m of Object.keys(item).filter((k) => METHODS.includes(k))) described.push(`${m.toUpperCase()} ${p}`);
    }
    described.sort();
    assert.deepEqual(described, served, 'document operations vs ROUTES');
  });

  test('openapi 3.1.x, info, security schemes, operation security matches route auth', () => {
    assert.match(String(doc.openapi), /^3\.1\.\d+$/, `openapi is ${doc.openapi}`);
    assert.equal(typeof doc.info?.title, 'string');
    assert.equal(typeof doc.info?.version, 'string');
    const schemes = doc.components?.securitySchemes ?? {};
    assert.ok(Object.keys(schemes).length >= 1, 'securitySchemes must not be empty');
    const bearer = Object.entries(schemes).filter(([, s]) => s.type === 'http' && /^bearer$/i.test(s.scheme));
    assert.ok(bearer.length >= 1, `a bearer scheme is declared: ${JSON.stringify(schemes)}`);
    const jwtScheme = bearer.find(([, s]) => s.bearerFormat === 'JWT');
    assert.ok(jwtScheme, 'the user scheme says bearerFormat JWT');
    for (const r of routesFromSource().flatMap(concrete)) {
      const op = doc.paths[r.path][r.method.toLowerCase()];
      const sec = op.security ?? doc.security ?? [];
      const names = sec.flatMap((s) => Object.keys(s));
      for (const n of names) assert.ok(schemes[n], `${r.method} ${r.path} uses undeclared scheme ${n}`);
      if (r.auth === 'Public') assert.deepEqual(names, [], `${r.method} ${r.path} is public`);
      if (r.auth === 'User') assert.deepEqual(names, [jwtScheme[0]], `${r.method} ${r.path} needs the JWT`);
      if (r.auth === 'Admin') {
        assert.equal(names.length, 1, `${r.method} ${r.path} needs the admin token`);
        assert.notEqual(names[0], jwtScheme[0], 'the admin route is not open to user JWTs');
      }
    }
  });

  test('operation ids are unique; path templates declare their parameters; the type enum is the entity list', () => {
    const ids = new Set();
    const entities = entityNames();
    assert.deepEqual(entities.sort(), ['lists', 'notes', 'settings', 'tasks']);
    for (const [p, item] of Object.entries(doc.paths)) {
      const templated = [...p.matchAll(/\{(\w+)\}/g)].map((m) => m[1]);
      for (const m of Object.keys(item).filter((k) => METHODS.includes(k))) {
        const op = item[m];
        assert.ok(op.operationId && !ids.has(op.operationId), `duplicate or missing operationId at ${m} ${p}`);
        ids.add(op.operationId);
        const params = (op.parameters ?? []).map((x) => (x.$ref ? resolveRef(x.$ref) : x));
        for (const name of templated) {
          const prm = params.find((x) => x.in === 'path' && x.name === name);
          assert.ok(prm?.required === true, `${m} ${p} declares required path parameter ${name}`);
          if (name === 'type') assert.deepEqual([...prm.schema.enum].sort(), entities);
        }
        assert.ok(op.responses && Object.keys(op.responses).length > 0, `${m} ${p} has responses`);
      }
    }
  });

  test('each collection of the declaration (collections.json) is documented with exactly its fields', () => {
    const { enums, collections } = collectionsFromSource();
    const values = new Map(enums.map((e) => [e.name, e.values]));
    const schemas = doc.components.schemas;
    const title = (n) => n[0].toUpperCase() + n.slice(1);
    const sync = new Set(['id', 'version', 'rev', 'created_at', 'updated_at', 'deleted_at', 'device_id', 'type', 'deleted']);
    const own = (schema) => Object.keys(schema.properties).filter((k) => !sync.has(k)).sort();
    assert.deepEqual(Object.keys(schemas).filter((k) => k.endsWith('Record')).sort(),
      collections.map((c) => `${title(c.name)}Record`).sort(), 'one <Type>Record per declared collection');
    for (const c of collections) {
      const [rec, change, live] = ['Record', 'Change', 'Live'].map((s) => schemas[`${title(c.name)}${s}`]);
      assert.ok(rec && change && live, `${c.name}: Record, Change and Live schemas`);
      assert.deepEqual(own(rec), c.fields.map((f) => f.name).sort(), `${c.name}Record fields`);
      const keys = c.fields.flatMap((f) => [f.name, ...(f.aliases ?? [])]).sort();
      assert.deepEqual(own(change), keys, `${c.name}Change fields and aliases`);
      assert.deepEqual(own(live), keys, `${c.name}Live fields and aliases`);
      const required = c.fields.filter((f) => f.required).map((f) => f.name);
      assert.deepEqual(change.anyOf.at(-1).required, required, `${c.name}Change: required fields of a non-delete`);
      assert.deepEqual(live.required, ['id', ...required], `${c.name}Live: required fields`);
      for (const f of c.fields) {
        const at = `${c.name}.${f.name}`;
        for (const s of [rec.properties[f.name], ...(f.aliases ?? []).map((a) => change.properties[a])]) {
          switch (f.kind) {
            case 'string': assert.deepEqual([s.type, s.maxLength], ['string', f.max], at); break;
            case 'bool': assert.equal(s.type, 'boolean', at); break;
            case 'int': assert.equal(s.type, 'integer', at); break;
            case 'nullable_int': assert.deepEqual(s.type, ['integer', 'null'], at); break;
            case 'nullable_id': assert.deepEqual(s.oneOf?.map((o) => o.type), ['string', 'null'], at); break;
            case 'enum': assert.deepEqual(s.enum, typeof f.values === 'string' ? values.get(f.values) : f.values, at); break;
            case 'json': assert.match(s.description, new RegExp(`at most ${f.max_bytes} bytes`), at); break;
            default: assert.fail(`${at}: kind ${f.kind}`);
          }
        }
      }
    }
  });

  test('the request limits at their defaults: a push takes 100 changes (MAX_CHANGES), a full upload 1,000 records (MAX_UPLOAD_RECORDS)', () => {
    const s = doc.components.schemas;
    assert.equal(s.SyncRequest.properties.changes.maxItems, 100);
    for (const list of ['created', 'updated', 'deleted']) assert.equal(s.TasksDeltaPush.properties.changes.properties[list].maxItems, 100, list);
    assert.equal(s.TasksFullUpload.properties.data.maxItems, 1000);
  });

  test('every $ref resolves', () => {
    const refs = [];
    walk(doc, (node, at) => {
      if (typeof node.$ref === 'string') refs.push([node.$ref, at]);
    });
    assert.ok(refs.length > 20, `only ${refs.length} $refs`);
    for (const [ref, at] of refs) assert.ok(resolveRef(ref) !== undefined, `unresolved ${ref} at ${at}`);
  });
});

describe('errors in the document', () => {
  test('the Problem error enum is exactly the worker\'s codes, and covers the contract\'s and the tests\'', () => {
    const problem = doc.components.schemas.Problem;
    assert.ok(problem, 'components.schemas.Problem');
    for (const k of ['title', 'status', 'detail', 'error', 'timestamp']) {
      assert.ok(problem.required.includes(k), `Problem requires ${k}`);
    }
    const documented = new Set(problem.properties.error.enum);
    const worker = errorCodesFromSource();
    assert.deepEqual([...documented].sort(), [...worker.keys()].sort(), 'Problem.error enum vs ApiError::code()');

    const contract = ['invalid_json', 'invalid_field', 'unauthorized', 'not_found', 'method_not_allowed',
      'payload_too_large', 'sync_conflict', 'reset_required', 'rate_limited', 'degraded', 'internal',
      'unsupported_media_type', 'busy'];
    for (const c of contract) assert.ok(documented.has(c), `contract code ${c} is documented`);

    const byTests = codesExpectedByTests();
    assert.ok(byTests.size >= 8, `found only ${[...byTests.keys()]} in the test files`);
    for (const [code, files] of byTests) {
      assert.ok(documented.has(code), `${code} (expected by ${[...files].join(', ')}) is not in the Problem enum`);
    }
  });

  test('each operation documents the statuses the worker can answer it with', () => {
    const status = errorCodesFromSource();
    for (const r of routesFromSource().flatMap(concrete)) {
      const op = doc.paths[r.path][r.method.toLowerCase()];
      const have = new Set(Object.keys(op.responses));
      const need = ['200', '500'];
      if (r.auth === 'User') {
        need.push(...['400', '401', '429', '503'].map(String));
        need.push(String(status.get('rate_limited')), String(status.get('busy')), String(status.get('unauthorized')));
        if (r.method === 'GET') need.push('304');
        if (r.method === 'POST') need.push('413', '415');
        if (r.path.startsWith('/api/sync/') && r.handler !== 'Check') need.push('404');
        if (r.handler === 'Changes' || r.handler === 'Sync') need.push(String(status.get('reset_required')));
        if (r.handler === 'Upload') need.push(String(status.get('sync_conflict')));
      }
      if (r.auth === 'Admin') need.push('401', '404');
      for (const s of need) assert.ok(have.has(s), `${r.method} ${r.path} does not document ${s}: has ${[...have]}`);
      for (const [code, resp] of Object.entries(op.responses)) {
        if (Number(code) >= 400) {
          const schema = resp.content?.['application/problem+json']?.schema;
          assert.equal(schema?.$ref, '#/components/schemas/Problem', `${r.method} ${r.path} ${code} is a Problem`);
        }
      }
    }
  });

  test('live error responses carry the documented Problem shape and a documented code', async () => {
    const problem = doc.components.schemas.Problem;
    const u = api(srv.url, await token(newUserId()));
    const anon = api(srv.url, null);
    const cases = [
      [await anon.get('/api/sync/check'), 401],
      [await u.get('/api/sync/widgets'), 404],
      [await u.get('/api/sync/tasks/changes'), 400],
      [await u.get('/api/sync/tasks/changes?since=0&sinse=1'), 400],
      [await u.post('/api/sync', '{', { headers: { 'content-type': 'application/json' } }), 400],
      [await u.post('/api/sync', '{}', { headers: { 'content-type': 'text/plain' } }), 415],
      [await u.delete('/api/sync'), 405],
    ];
    for (const [res, st] of cases) {
      assert.equal(res.status, st, show(res));
      assert.match(res.headers.get('content-type') ?? '', /^application\/problem\+json/, show(res));
      for (const k of problem.required) assert.ok(k in res.body, `${k} missing in ${show(res)}`);
      assert.ok(problem.properties.error.enum.includes(res.body.error), show(res));
      assert.equal(res.body.status, st);
      for (const [k, v] of Object.entries(res.body)) {
        const t = problem.properties[k]?.type;
        if (t === 'string') assert.equal(typeof v, 'string', `${k} of ${show(res)}`);
        if (t === 'integer') assert.ok(Number.isInteger(v), `${k} of ${show(res)}`);
      }
    }
  });
});
