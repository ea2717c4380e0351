// Reads facts from the worker's source text (never runs worker code): the endpoint table
// of crates/core/src/endpoints.rs, so tests can check that they cover every route the
// worker serves, and the collections declaration (collections.json) the worker is built from.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { ROOT } from './server.mjs';

export const readSource = (p) => fs.readFileSync(path.join(ROOT, p), 'utf8');

/**
 * The endpoint table: the `endpoint("GET", "/api/health", Handler::Health, Auth::Public)`
 * entries of `ENDPOINTS` in crates/core/src/endpoints.rs, each followed by its builder
 * calls (`.alias(&["/sync/check"])` adds a path) → [{method, path, handler, auth}], one
 * entry per path.
 */
export function routesFromSource() {
  const file = 'crates/core/src/endpoints.rs';
  const src = readSource(file);
  const table = src.match(/pub static ENDPOINTS: &\[Endpoint\] = &\[([\s\S]*?)\n\];/);
  assert.ok(table, `ENDPOINTS table not found in ${file}`);
  const entries = table[1].split(/(?=\bendpoint\()/).filter((e) => e.trim().startsWith('endpoint('));
  const routes = [];
  for (const entry of entries) {
    const m = entry.match(/^endpoint\("([A-Z]+)",\s*"([^"]+)",\s*Handler::(\w+),\s*Auth::(\w+)\)/);
    assert.ok(m, `unparsed endpoint: ${entry.slice(0, 80)}`);
    const [, method, p, handler, auth] = m;
    const aliases = [...(entry.match(/\.alias\(&\[([^\]]*)\]\)/)?.[1] ?? '').matchAll(/"([^"]+)"/g)].map((a) => a[1]);
    for (const path of [p, ...aliases]) routes.push({ method, path, handler, auth });
  }
  assert.equal(entries.length, (table[1].match(/\bendpoint\(/g) ?? []).length, 'every endpoint(...) of ENDPOINTS was parsed');
  assert.ok(routes.length >= 10, `suspiciously few routes parsed: ${routes.length}`);
  return routes;
}

/**
 * The collections declaration the worker is built from: collections.json at the repository
 * root, or the file EDGESYNC_COLLECTIONS names (absolute, or relative to the root), as
 * crates/core/build.rs reads it → {file, enums: [{name, values}], collections: [{name, fields}]}.
 * build.rs validates it; this only reads it.
 */
export function collectionsFromSource() {
  const env = process.env.EDGESYNC_COLLECTIONS;
  const file = env ? path.resolve(ROOT, env) : path.join(ROOT, 'collections.json');
  const decl = JSON.parse(fs.readFileSync(file, 'utf8'));
  assert.ok(Array.isArray(decl.collections), `no collections array in ${file}`);
  for (const c of decl.collections) assert.ok(typeof c.name === 'string' && Array.isArray(c.fields), `unparsed collection in ${file}`);
  return { file, enums: decl.enums ?? [], collections: decl.collections };
}

/** The collection (entity type) names, in declaration order. */
export const collectionNames = () => collectionsFromSource().collections.map((c) => c.name);
