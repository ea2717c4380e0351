// Bad input: each request gets its documented 4xx problem+json error, and the user's
// stored data is unchanged afterwards (same ETag, same records). Each bad change is sent
// after a good one, so "applies nothing" is checked too.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startWorker } from '../helpers/server.mjs';
import { api, newUserId, show, token } from '../helpers/client.mjs';
import { assertUnchanged, expectProblem, ok, push, setting, snapshot, task } from '../helpers/sync.mjs';

let srv;
before(async () => {
  srv = await startWorker();
});
after(async () => {
  await srv?.stop();
});

/** A user holding some data, and a snapshot of it. */
async function seeded() {
  const u = api(srv.url, await token(newUserId()));
  await push(u, [task('base', { title: 'base task', version: 1 }), setting('theme', 'dark')]);
  return { u, before: await snapshot(u) };
}

const good = () => task('good-new', { title: 'must not be stored' });

/**
 * Sends `changes` (a good change first, then `bad`) to POST /api/sync and asserts the
 * problem response and that nothing was stored.
 */
async function rejectsChange(bad, { status = 400, code = 'invalid_field', field, mentions } = {}) {
  const { u, before } = await seeded();
  const res = await u.sync({ cursor: 0, changes: [good(), bad] });
  expectProblem(res, status, code, { field, mentions });
  await assertUnchanged(u, before, `push with ${JSON.stringify(bad).slice(0, 200)}`);
  return res;
}

/** Sends a raw request to `path` and asserts the problem response and that nothing was stored. */
async function rejectsRaw(path, body, headers, status, code, extra = {}) {
  const { u, before } = await seeded();
  const res = await u.post(path, body, { headers });
  expectProblem(res, status, code, extra);
  await assertUnchanged(u, before, `request to ${path}`);
  return res;
}

const JSON_CT = { 'content-type': 'application/json' };
const validBody = () => JSON.stringify({ cursor: 0, changes: [good()] });

describe('malformed requests to POST /api/sync', () => {
  test('malformed JSON → 400 invalid_json', async () => {
    await rejectsRaw('/api/sync', '{"cursor":0,"changes":[{"type":"tasks","id":"good-new","title":"x"},', JSON_CT, 400, 'invalid_json');
    await rejectsRaw('/api/sync', `${validBody()} trailing`, JSON_CT, 400, 'invalid_json');
    await rejectsRaw('/api/sync', "{'cursor': 0}", JSON_CT, 400, 'invalid_json');
  });

  test('empty body with a JSON content type → 400', async () => {
    const { u, before } = await seeded();
    const res = await u.post('/api/sync', '', { headers: JSON_CT });
    assert.equal(res.status, 400, show(res));
    assert.ok(['invalid_json', 'invalid_field'].includes(res.body?.error), show(res));
    await assertUnchanged(u, before);
  });

  test('a JSON body that is not an object → 400', async () => {
    for (const body of ['[]', 'null', '42', '"changes"']) {
      const { u, before } = await seeded();
      const res = await u.post('/api/sync', body, { headers: JSON_CT });
      assert.equal(res.status, 400, `${body}: ${show(res)}`);
      assert.ok(['invalid_json', 'invalid_field'].includes(res.body?.error), show(res));
      assert.match(res.headers.get('content-type') ?? '', /^application\/problem\+json/);
      await assertUnchanged(u, before);
    }
  });

  test('wrong content type (text/plain) → 415 unsupported_media_type', async () => {
    await rejectsRaw('/api/sync', validBody(), { 'content-type': 'text/plain' }, 415, 'unsupported_media_type');
  });

  test('form content type → 415; no content type → 415', async () => {
    await rejectsRaw('/api/sync', validBody(), { 'content-type': 'application/x-www-form-urlencoded' }, 415, 'unsupported_media_type');
    await rejectsRaw('/api/sync', Buffer.from(validBody()), {}, 415, 'unsupported_media_type');
  });

  test('application/json with a charset parameter is accepted (control)', async () => {
    const { u } = await seeded();
    const res = await u.post('/api/sync', validBody(), { headers: { 'content-type': 'application/json; charset=utf-8' } });
    const b = ok(res);
    assert.equal(b.applied.length, 1);
  });

  test('body over 1 MiB → 413 payload_too_large', async () => {
    // 100 individually valid changes (MAX_CHANGES), each with a title and a description of
    // their longest (1,000 and 10,000 characters): only the size is wrong
    const changes = Array.from({ length: 100 }, (_, i) => task(`big-${i}`, { title: 't'.repeat(1000), description: 'x'.repeat(10000) }));
    const body = JSON.stringify({ cursor: 0, changes });
    assert.ok(Buffer.byteLength(body) > 1048576);
    await rejectsRaw('/api/sync', body, JSON_CT, 413, 'payload_too_large');
  });

  test('body over 1 MiB made of whitespace → 413 payload_too_large', async () => {
    const body = `{"cursor":0,"changes":[${JSON.stringify(good())}]${' '.repeat(1048576)}}`;
    await rejectsRaw('/api/sync', body, JSON_CT, 413, 'payload_too_large');
  });

  test('a body just under 1 MiB of valid changes is accepted and round-trips (control)', async () => {
    const { u } = await seeded();
    const changes = Array.from({ length: 100 }, (_, i) => task(`near-${i}`, { description: `${i}:`.padEnd(10_000, 'd') }));
    const body = JSON.stringify({ cursor: 0, changes });
    assert.ok(Buffer.byteLength(body) > 1_000_000 && Buffer.byteLength(body) < 1048576, `${Buffer.byteLength(body)}`);
    const res = await u.post('/api/sync', body, { headers: JSON_CT });
    assert.equal(res.status, 200, show(res));
    assert.equal(res.body.applied.length, 100);
    const dl = ok(await u.get('/api/sync/tasks?limit=1000'));
    const near = dl.data.filter((r) => r.id.startsWith('near-'));
    assert.equal(near.length, 100);
    for (const r of near) assert.equal(r.description, `${r.id.slice(5)}:`.padEnd(10_000, 'd'));
  });

  test('MAX_CHANGES at its default: 101 changes → 413 payload_too_large saying to push in parts; 100 are accepted (control)', async () => {
    const changes = Array.from({ length: 101 }, (_, i) => task(`n-${i}`));
    await rejectsRaw('/api/sync', JSON.stringify({ cursor: 0, changes }), JSON_CT, 413, 'payload_too_large', {
      mentions: ['101 changes', 'limit is 100', 'MAX_CHANGES', 'in parts'],
    });
    const { u } = await seeded();
    const b = ok(await u.sync({ cursor: 0, changes: changes.slice(0, 100) }));
    assert.equal(b.applied.length, 100);
  });
});

describe('bad changes in POST /api/sync → 400 invalid_field naming the field, nothing applied', () => {
  test('unknown entity type in a change', async () => {
    await rejectsChange({ type: 'widgets', id: 'w1', title: 'x' }, { field: 'changes[1].type' });
    await rejectsChange({ type: 'tasks; DROP TABLE tasks', id: 'w1', title: 'x' }, { field: 'changes[1].type' });
    await rejectsChange({ type: 'user_state', id: 'w1' }, { field: 'changes[1].type' });
  });

  test('unknown field (the detail names it)', async () => {
    await rejectsChange(task('t1', { colour: 'red' }), { field: 'changes[1].colour', mentions: ['colour'] });
    await rejectsChange(task('t1', { "title = 'x', user_id": 'y' }), { mentions: ["title = 'x', user_id"] });
    await rejectsChange(task('t1', { user_id: 'someone-else' }), { field: 'changes[1].user_id', mentions: ['user_id'] });
    await rejectsChange({ type: 'lists', id: 'l1', name: 'n', body: 'notes only' }, { field: 'changes[1].body' });
  });

  test('wrong field types', async () => {
    await rejectsChange(task('t1', { completed: 'yes' }), { field: 'changes[1].completed' });
    await rejectsChange(task('t1', { pinned: 1 }), { field: 'changes[1].pinned' });
    await rejectsChange(task('t1', { title: 5 }), { field: 'changes[1].title' });
    await rejectsChange(task('t1', { priority: 'urgent' }), { field: 'changes[1].priority' });
    await rejectsChange(task('t1', { due_date: 'tomorrow' }), { field: 'changes[1].due_date' });
    await rejectsChange(task('t1', { sort_order: 1.5 }), { field: 'changes[1].sort_order' });
    await rejectsChange(task('t1', { list_id: 'a b' }), { field: 'changes[1].list_id' });
    await rejectsChange(task('t1', { deleted: 'yes' }), { field: 'changes[1].deleted' });
    await rejectsChange({ type: 'lists', id: 'l1', name: ['x'] }, { field: 'changes[1].name' });
  });

  test('bad ids: with a space, empty, 129 chars, slash, non-ASCII, missing, not a string', async () => {
    for (const id of ['a b', '', 'x'.repeat(129), 'a/b', 'ü', 5, null]) {
      await rejectsChange({ type: 'tasks', id, title: 'x' }, { field: 'changes[1].id' });
    }
    await rejectsChange({ type: 'tasks', title: 'no id' }, { field: 'changes[1].id' });
  });

  test('an id of exactly 128 allowed characters is accepted (control)', async () => {
    const { u } = await seeded();
    const id = 'Az09_.:-'.repeat(16);
    assert.equal(id.length, 128);
    await push(u, [task(id)]);
  });

  test('missing required field', async () => {
    await rejectsChange({ type: 'tasks', id: 't1', description: 'no title' }, { field: 'changes[1].title' });
    await rejectsChange({ type: 'lists', id: 'l1', color: 'red' }, { field: 'changes[1].name' });
  });

  test('values over their maximum length', async () => {
    await rejectsChange(task('t1', { title: 'x'.repeat(1001) }), { field: 'changes[1].title' });
    await rejectsChange(task('t1', { description: 'x'.repeat(10_001) }), { field: 'changes[1].description' });
    await rejectsChange({ type: 'lists', id: 'l1', name: 'x'.repeat(201) }, { field: 'changes[1].name' });
    await rejectsChange({ type: 'notes', id: 'n1', body: 'x'.repeat(100_001) }, { field: 'changes[1].body' });
    await rejectsChange(setting('s1', 'x'.repeat(16 * 1024 + 1)), { field: 'changes[1].value' });
    await rejectsChange(task('t1', { device_id: 'd'.repeat(129) }), { field: 'changes[1].device_id' });
  });

  test('a title of exactly 1,000 characters is accepted (control)', async () => {
    const { u } = await seeded();
    await push(u, [task('long', { title: 'é'.repeat(1000) })]);
    const rec = ok(await u.get('/api/sync/tasks')).data.find((r) => r.id === 'long');
    assert.equal(rec.title, 'é'.repeat(1000));
  });

  test('integers beyond 2^53 are refused, not rounded', async () => {
    const { u, before } = await seeded();
    const raw = `{"cursor":0,"changes":[${JSON.stringify(good())},{"type":"tasks","id":"t1","title":"x","due_date":9007199254740993}]}`;
    expectProblem(await u.post('/api/sync', raw, { headers: JSON_CT }), 400, 'invalid_field', { field: 'changes[1].due_date' });
    const raw2 = `{"cursor":0,"changes":[${JSON.stringify(good())},{"type":"tasks","id":"t1","title":"x","version":1e300}]}`;
    expectProblem(await u.post('/api/sync', raw2, { headers: JSON_CT }), 400, 'invalid_field', { field: 'changes[1].version' });
    await assertUnchanged(u, before);
  });

  test('bad versions', async () => {
    for (const version of [0, -1, '2', 1.5]) {
      await rejectsChange(task('t1', { version }), { field: 'changes[1].version' });
    }
  });

  test('a change that is not an object', async () => {
    await rejectsChange(5, { field: 'changes[1]' });
    await rejectsChange('tasks', { field: 'changes[1]' });
  });

  test('the error names the position of the bad change', async () => {
    const { u, before } = await seeded();
    const changes = [task('a'), task('b'), task('c'), task('d', { foo: 1 }), task('e')];
    const res = await u.sync({ cursor: 0, changes });
    expectProblem(res, 400, 'invalid_field', { field: 'changes[3].foo' });
    await assertUnchanged(u, before);
  });
});

describe('bad top-level members of POST /api/sync', () => {
  async function rejectsBody(body, field) {
    const { u, before } = await seeded();
    const res = await u.sync(body);
    expectProblem(res, 400, 'invalid_field', { field });
    await assertUnchanged(u, before);
  }

  test('cursor not a non-negative integer', async () => {
    await rejectsBody({ cursor: 'abc', changes: [good()] }, 'cursor');
    await rejectsBody({ cursor: -1, changes: [good()] }, 'cursor');
    await rejectsBody({ last_sync: 'yesterday', changes: [good()] }, 'last_sync');
  });

  test('changes not an array', async () => {
    await rejectsBody({ cursor: 0, changes: { 0: good() } }, 'changes');
  });

  test('limit not a positive integer', async () => {
    await rejectsBody({ cursor: 0, changes: [good()], limit: 'all' }, 'limit');
  });

  test('unknown top-level member', async () => {
    await rejectsBody({ cursor: 0, changez: [good()] }, 'changez');
  });
});

describe('bad input on the per-type routes', () => {
  test('delta push: malformed JSON, text/plain, unknown field', async () => {
    await rejectsRaw('/api/sync/tasks/delta', '{"changes":{"created":[', JSON_CT, 400, 'invalid_json');
    await rejectsRaw('/api/sync/tasks/delta', JSON.stringify({ changes: { created: [{ id: 'x', title: 'x' }] } }),
      { 'content-type': 'text/plain' }, 415, 'unsupported_media_type');
    await rejectsRaw('/api/sync/tasks/delta', JSON.stringify({ changes: { created: [{ id: 'x', title: 'x' }], updated: [{ id: 'base', title: 'b', version: 2, colour: 'red' }] } }),
      JSON_CT, 400, 'invalid_field', { mentions: ['colour'] });
  });

  test('full upload: malformed JSON, unknown field, bad cursor', async () => {
    await rejectsRaw('/api/sync/tasks', '{"data":[', JSON_CT, 400, 'invalid_json');
    await rejectsRaw('/api/sync/tasks', JSON.stringify({ data: [{ id: 'base', title: 'x', foo: 1 }], cursor: Number.MAX_SAFE_INTEGER }),
      JSON_CT, 400, 'invalid_field', { field: 'data[0].foo' });
    await rejectsRaw('/api/sync/tasks', JSON.stringify({ data: [], cursor: 'abc' }), JSON_CT, 400, 'invalid_field', { field: 'cursor' });
    await rejectsRaw('/api/sync/tasks', JSON.stringify({ data: [{ id: 'a b', title: 'x' }], cursor: Number.MAX_SAFE_INTEGER }),
      JSON_CT, 400, 'invalid_field', { field: 'data[0].id' });
  });
});

describe('hostile input never crashes the worker', () => {
  test('deep nesting, invalid UTF-8, lone surrogates, huge numbers, odd query values → 4xx problem+json', async () => {
    const { u, before } = await seeded();
    const deep = '['.repeat(100_000) + ']'.repeat(100_000);
    const cases = [
      ['deeply nested value', '/api/sync', `{"cursor":0,"changes":[{"type":"settings","id":"s","value":${deep}}]}`],
      ['deeply nested body', '/api/sync', `{"cursor":0,"changes":${deep}}`],
      ['invalid UTF-8', '/api/sync', Buffer.concat([Buffer.from('{"cursor":0,"changes":[{"type":"tasks","id":"x","title":"'), Buffer.from([0xff, 0xfe, 0xc3]), Buffer.from('"}]}')])],
      ['lone surrogate', '/api/sync', '{"cursor":0,"changes":[{"type":"tasks","id":"x","title":"\\ud800"}]}'],
      ['huge number', '/api/sync', `{"cursor":${'9'.repeat(400)},"changes":[]}`],
      ['huge exponent', '/api/sync', '{"cursor":1e999999,"changes":[]}'],
      ['NaN literal', '/api/sync', '{"cursor":NaN}'],
      ['delta with odd shape', '/api/sync/tasks/delta', '{"changes":[1,2,3]}'],
      ['full upload with odd shape', '/api/sync/tasks', '{"data":{"id":"x"},"cursor":0}'],
    ];
    for (const [what, path, body] of cases) {
      const res = await u.post(path, body, { headers: JSON_CT });
      assert.ok(res.status >= 400 && res.status < 500, `${what}: ${show(res)}`);
      assert.match(res.headers.get('content-type') ?? '', /^application\/problem\+json/, `${what}: ${show(res)}`);
    }
    const queries = [
      '/api/sync/tasks/changes?since=99999999999999999999999', '/api/sync/tasks/changes?since=0&limit=-1',
      '/api/sync/tasks/changes?since=0x10', '/api/sync/tasks/changes?since=%00', '/api/sync/tasks?after=%FF%FE',
      '/api/sync/tasks?limit=1e3', '/api/sync/tasks/changes?since=0&since=abc',
    ];
    for (const q of queries) {
      const res = await u.get(q);
      assert.ok(res.status === 200 || (res.status >= 400 && res.status < 500), `${q}: ${show(res)}`);
      if (res.status !== 200) assert.match(res.headers.get('content-type') ?? '', /^application\/problem\+json/, `${q}: ${show(res)}`);
    }
    const longAuth = await api(srv.url, null).get('/api/sync/check', { headers: { authorization: `Bearer ${'a'.repeat(8000)}.${'b'.repeat(8000)}.c` } });
    assert.equal(longAuth.status, 401, show(longAuth));
    await assertUnchanged(u, before, 'hostile requests');
  });
});

describe('robustness', () => {
  test('the worker still serves normally after all of the above', async () => {
    const res = await api(srv.url, null).get('/api/health');
    ok(res);
    const { u } = await seeded();
    ok(await u.get('/api/sync/check'));
  });
});
