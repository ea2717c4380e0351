// An added collection works end to end from the declaration file alone (issue #10): a
// test build of the worker from collections.json plus one more collection, `habits`
// (no SQL, no Rust), serves it on every route: the OpenAPI document, push, pull, delta
// pull, download, validation; the shipped collections keep working beside it.
//
// The build: EDGESYNC_COLLECTIONS=<file> EDGESYNC_OUT_DIR=.tmp/build-extra bash scripts/build.sh
// (only the two crates recompile; a few minutes).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ROOT, run, startWorker } from '../helpers/server.mjs';
import { api, newUserId, show, token } from '../helpers/client.mjs';
import { expectOps, expectProblem, findRec, ok, task } from '../helpers/sync.mjs';

const OUT = path.join(ROOT, '.tmp', 'build-extra');
const FILE = path.join(ROOT, '.tmp', 'collections-extra.json');

const HABITS = {
  name: 'habits',
  fields: [
    { name: 'label', kind: 'string', max: 100, required: true },
    { name: 'level', kind: 'enum', values: ['easy', 'hard'], default: 'easy' },
    { name: 'done', kind: 'bool' },
    { name: 'streak', kind: 'int' },
  ],
};

let srv;
before(async () => {
  const shipped = JSON.parse(fs.readFileSync(path.join(ROOT, 'collections.json'), 'utf8'));
  const extra = { ...shipped, collections: [...shipped.collections, HABITS] };
  fs.mkdirSync(path.dirname(FILE), { recursive: true });
  const text = JSON.stringify(extra, null, 2);
  const built = path.join(OUT, 'worker', 'shim.mjs');
  const stamp = path.join(OUT, '.collections.json');
  const fresh = fs.existsSync(built) && fs.existsSync(stamp) && fs.readFileSync(stamp, 'utf8') === text
    && fs.statSync(stamp).mtimeMs >= fs.statSync(path.join(ROOT, 'build', 'worker', 'shim.mjs')).mtimeMs;
  if (!fresh) {
    fs.writeFileSync(FILE, text);
    await run('bash', ['scripts/build.sh'], {
      cwd: ROOT,
      env: { ...process.env, EDGESYNC_SKIP_BUILD: '', EDGESYNC_COLLECTIONS: FILE, EDGESYNC_OUT_DIR: OUT },
    });
    fs.writeFileSync(stamp, text);
  }
  srv = await startWorker({ extraArgs: [built] });
}, { timeout: 1_200_000 });
after(async () => {
  await srv?.stop();
});

describe('a collection added in the declaration file', () => {
  test('is in the OpenAPI document with its fields', async () => {
    const doc = ok(await api(srv.url, null).get('/api/openapi.json'));
    for (const p of ['/api/sync/habits', '/api/sync/habits/changes', '/api/sync/habits/delta']) {
      assert.ok(doc.paths[p], `${p} in the document: ${Object.keys(doc.paths).join(', ')}`);
    }
    const text = JSON.stringify(doc.components?.schemas ?? {});
    for (const f of ['label', 'level', 'streak']) assert.ok(text.includes(`"${f}"`), `field ${f} in the schemas`);
    assert.ok(text.includes('"hard"'), 'the enum values are in the schemas');
  });

  test('push, pull, delta pull and download it; defaults and validation follow the file', async () => {
    const u = api(srv.url, await token(newUserId('habits')));
    const push = await u.sync({ cursor: 0, changes: [
      { type: 'habits', id: 'h1', label: 'run', level: 'hard', done: true, streak: 3 },
      { type: 'habits', id: 'h2', label: 'read' },
      task('t1', { title: 'a task beside them' }),
    ] });
    const b = ok(push);
    assert.deepEqual(b.applied.map((a) => [a.type, a.id]), [['habits', 'h1'], ['habits', 'h2'], ['tasks', 't1']], show(push));
    assert.equal(expectOps(push)['rows-written'], 1, `packed with the rest of the user's records: ${show(push)}`);

    const pull = ok(await u.sync({ cursor: 0 }));
    const h1 = findRec(pull.updates, 'habits', 'h1');
    assert.deepEqual([h1.label, h1.level, h1.done, h1.streak, h1.version], ['run', 'hard', true, 3, 1], JSON.stringify(h1));
    const h2 = findRec(pull.updates, 'habits', 'h2');
    assert.deepEqual([h2.label, h2.level, h2.done, h2.streak], ['read', 'easy', false, 0], `declared defaults: ${JSON.stringify(h2)}`);
    assert.ok(findRec(pull.updates, 'tasks', 't1'));

    const ch = ok(await u.get('/api/sync/habits/changes?since=0'));
    assert.deepEqual(ch.changes.created.map((r) => r.id).sort(), ['h1', 'h2'], JSON.stringify(ch));
    const dl = ok(await u.get('/api/sync/habits'));
    assert.deepEqual(dl.data.map((r) => r.id), ['h1', 'h2'], JSON.stringify(dl));

    const del = ok(await u.sync({ cursor: pull.cursor, changes: [{ type: 'habits', id: 'h1', deleted: true, version: 2 }] }));
    assert.deepEqual(del.applied.map((a) => a.id), ['h1']);
    assert.deepEqual(ok(await u.get('/api/sync/habits')).data.map((r) => r.id), ['h2']);

    expectProblem(await u.sync({ cursor: 0, changes: [{ type: 'habits', id: 'h3', label: 'x', level: 'medium' }] }), 400, 'invalid_field', { field: 'changes[0].level' });
    expectProblem(await u.sync({ cursor: 0, changes: [{ type: 'habits', id: 'h4' }] }), 400, 'invalid_field', { field: 'changes[0].label' });
    expectProblem(await u.sync({ cursor: 0, changes: [{ type: 'widgets', id: 'w1' }] }), 400, 'invalid_field', { field: 'changes[0].type' });
  });
});
