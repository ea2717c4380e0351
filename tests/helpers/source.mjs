// Reads facts from the worker's source text (never runs worker code): the routing table
// of src/routes.rs, so tests can check that they cover every route the worker serves.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { ROOT } from './server.mjs';

export const readSource = (p) => fs.readFileSync(path.join(ROOT, p), 'utf8');

/**
 * The routing table: the `route("GET", "/api/health", Handler::Health, Auth::Public)`
 * entries of `ROUTES` in src/routes.rs → [{method, path, handler, auth}].
 */
export function routesFromSource() {
  const src = readSource('src/routes.rs');
  const table = src.match(/pub static ROUTES: &\[Route\] = &\[([\s\S]*?)\];/);
  assert.ok(table, 'ROUTES table not found in src/routes.rs');
  const routes = [...table[1].matchAll(/route\("([A-Z]+)",\s*"([^"]+)",\s*Handler::(\w+),\s*Auth::(\w+)\)/g)].map(
    ([, method, p, handler, auth]) => ({ method, path: p, handler, auth }),
  );
  const entries = table[1].split('\n').filter((l) => l.trim().startsWith('route(')).length;
  assert.equal(routes.length, entries, 'every route(...) line of ROUTES was parsed');
  assert.ok(routes.length >= 10, `suspiciously few routes parsed: ${routes.length}`);
  return routes;
}
