// The collection types: tsc --noEmit on a fixture whose misspelt fields, missing required
// fields, wrong enum values and unknown collections are marked @ts-expect-error (so each
// must be an error, or tsc reports the unused directive), and on the SDK's own sources.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const TSC = path.join(ROOT, 'node_modules', '.bin', 'tsc');
const tsc = (args) => {
  try {
    return { code: 0, out: execFileSync(TSC, args, { cwd: ROOT, encoding: 'utf8' }) };
  } catch (e) {
    return { code: e.status, out: `${e.stdout}${e.stderr}` };
  }
};
const STRICT = ['--noEmit', '--strict', '--target', 'ES2022', '--module', 'ES2022', '--moduleResolution', 'bundler', '--lib', 'ES2022,DOM', '--skipLibCheck'];

test('the SDK sources type-check', () => {
  const r = tsc(['-p', 'client', '--noEmit']);
  assert.equal(r.code, 0, r.out);
});

test('misspelt fields and collections fail to type-check (every @ts-expect-error is needed)', () => {
  const r = tsc([...STRICT, 'tests/client/fixtures/typed-usage.ts']);
  assert.equal(r.code, 0, `tsc: ${r.out}`);
});

test('without the directives the same lines are errors, naming the field', () => {
  const src = fs.readFileSync(path.join(ROOT, 'tests/client/fixtures/typed-usage.ts'), 'utf8').replace(/\/\/ @ts-expect-error.*\n/g, '');
  const tmp = path.join(ROOT, 'tests/client/fixtures/.untyped-usage.ts');
  fs.writeFileSync(tmp, src);
  try {
    const r = tsc([...STRICT, tmp]);
    assert.notEqual(r.code, 0);
    assert.match(r.out, /'titel' does not exist/);
    assert.match(r.out, /Property 'title' is missing/);
    assert.match(r.out, /"urgent"/);
    assert.match(r.out, /"widgets"/);
    assert.equal((r.out.match(/error TS/g) ?? []).length, 6, r.out);
  } finally {
    fs.rmSync(tmp, { force: true });
  }
});
