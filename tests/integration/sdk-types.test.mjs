// The committed collection types (client/src/collections.ts) are what the running worker's
// OpenAPI document generates: a field added, renamed or retyped in collections.json without
// `npm run gen-types` fails here.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, test } from 'node:test';
import { startWorker } from '../helpers/server.mjs';
import { OUT, generate } from '../../client/scripts/gen-types.mjs';

let srv;
before(async () => {
  srv = await startWorker();
});
after(async () => {
  await srv?.stop();
});

test('client/src/collections.ts equals the types generated from GET /api/openapi.json', async () => {
  const res = await fetch(`${srv.url}/api/openapi.json`);
  assert.equal(res.status, 200);
  const doc = await res.json();
  const fresh = generate(doc);
  const committed = fs.readFileSync(OUT, 'utf8');
  assert.equal(committed, fresh, 'collections.ts is out of date: run `npm run gen-types` and commit it');
  // every entity the worker serves is a collection of the SDK
  const served = Object.keys(doc.components.schemas).filter((k) => k.endsWith('Record')).length;
  assert.equal((fresh.match(/^  \w+: \{ record: /gm) ?? []).length, served);
});
