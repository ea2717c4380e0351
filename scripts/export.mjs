#!/usr/bin/env node
// Prints a user's current records (README "Storage": page bodies are deflated, so SQL in
// the D1 console cannot read them) from GET /api/admin/records?user=<user>, which needs
// the deployment's ADMIN_TOKEN.
//   npm run export -- <user> [--url http://127.0.0.1:8787] [--admin-token T] [--json] [--live]
// --url: the worker (default $EDGESYNC_URL, else http://127.0.0.1:8787, `npm run dev`);
// --admin-token: default $ADMIN_TOKEN, else ADMIN_TOKEN from .dev.vars;
// --json: the reply as it is; --live: leave tombstones out.
// Otherwise one line a record: type, id, rev, "deleted" for a tombstone, and its JSON.
import { readFileSync } from 'node:fs';

const args = process.argv.slice(2);
const value = (name) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const valued = new Set(['--url', '--admin-token']);
const user = args.find((a, i) => !a.startsWith('--') && !valued.has(args[i - 1]));
const unknown = args.filter((a) => a.startsWith('--') && !valued.has(a) && a !== '--json' && a !== '--live');
if (!user || unknown.length) {
  console.error('usage: npm run export -- <user> [--url URL] [--admin-token TOKEN] [--json] [--live]');
  process.exit(2);
}

function adminToken() {
  const given = value('--admin-token') ?? process.env.ADMIN_TOKEN;
  if (given) return given;
  try {
    const vars = readFileSync(new URL('../.dev.vars', import.meta.url), 'utf8');
    const line = vars.split('\n').find((l) => l.startsWith('ADMIN_TOKEN='));
    if (line) return line.slice('ADMIN_TOKEN='.length).trim();
  } catch {
    /* no .dev.vars */
  }
  console.error('no admin token: pass --admin-token, set ADMIN_TOKEN, or run npm run setup (.dev.vars)');
  process.exit(2);
}

const base = (value('--url') ?? process.env.EDGESYNC_URL ?? 'http://127.0.0.1:8787').replace(/\/+$/, '');
const res = await fetch(`${base}/api/admin/records?user=${encodeURIComponent(user)}`, {
  headers: { authorization: `Bearer ${adminToken()}` },
});
const text = await res.text();
if (res.status !== 200) {
  console.error(`GET /api/admin/records: ${res.status} ${text.slice(0, 500)}`);
  process.exit(1);
}
const body = JSON.parse(text);
if (args.includes('--live')) body.records = body.records.filter((r) => !r.deleted);
if (args.includes('--json')) {
  console.log(JSON.stringify(body, null, 2));
} else {
  for (const r of body.records) console.log(`${r.type}\t${r.id}\t${r.rev}\t${r.deleted ? 'deleted' : 'live'}\t${JSON.stringify(r.record)}`);
  console.error(`${body.user}: ${body.records.length} records (cursor ${body.cursor}, purge horizon ${body.purge_horizon})`);
}
