#!/usr/bin/env node
// Moves one bucket of users to another D1 database (README "More than one database"),
// through the worker's admin route, step by step:
//
//   npm run reshard -- --bucket 17 --to DB_1 [--url URL] [--admin-token TOKEN] [--grace 10]
//   npm run reshard -- --user alice --to DB_2      the bucket of user alice
//   npm run reshard -- --user alice                where is alice? (nothing moves)
//
// URL defaults to the local `npm run dev` server (http://127.0.0.1:8787), the token to
// $ADMIN_TOKEN. The bucket's users get 503 `busy` for their writes from `begin` to
// `switch` (the copy); reads go on. After `switch` the CLI waits --grace seconds (reads
// that began before it finish) and removes the copies left in the old database. Every
// step can be repeated: after a failure, run the same command again. At the end it prints
// the SHARD_MAP that says where every bucket is now: put it in wrangler.toml's [vars].
import { parseArgs } from 'node:util';

async function call(url, adminToken, body) {
  for (let attempt = 0; ; attempt++) {
    const res = await fetch(`${url}/api/admin/reshard`, {
      method: 'POST',
      headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const text = await res.text();
    let json;
    try {
      json = JSON.parse(text);
    } catch {
      json = { detail: text };
    }
    if (res.ok) return json;
    // busy: a fence pointing in a circle for a moment; retried like a client would
    if (res.status === 503 && attempt < 10) {
      await new Promise((r) => setTimeout(r, 1000 * Number(res.headers.get('retry-after') || 1)));
      continue;
    }
    throw new Error(`${body.step} failed: HTTP ${res.status} ${json.detail ?? text}`);
  }
}

/**
 * Moves `bucket` (or `user`'s bucket) to `to`. Returns what it did and cost:
 * {bucket, from, to, users, pages, busyMs, totalMs, rowsRead, rowsWritten, shardMap}.
 */
export async function reshard({ url, adminToken, bucket, user, to, grace = 10, limit = 20, log = () => {} }) {
  const which = user !== undefined ? { user } : { bucket };
  const t0 = Date.now();
  const where = await call(url, adminToken, { step: 'locate', ...which });
  bucket = where.bucket;
  const cost = { rowsRead: where.rows_read, rowsWritten: where.rows_written };
  const add = (r) => {
    cost.rowsRead += r.rows_read;
    cost.rowsWritten += r.rows_written;
    return r;
  };
  const begun = add(await call(url, adminToken, { step: 'begin', bucket, to }));
  const from = begun.from;
  log(`bucket ${bucket}: ${from} → ${to}; its users' writes wait (503 busy) until the switch`);
  let after = null;
  let users = 0;
  let pages = 0;
  do {
    const r = add(await call(url, adminToken, { step: 'copy', bucket, to, after, limit }));
    users += r.copied;
    pages += r.pages;
    after = r.next;
  } while (after !== null);
  const switched = add(await call(url, adminToken, { step: 'switch', bucket, to }));
  const busyMs = Date.now() - t0;
  log(`copied ${users} users (${pages} pages) in ${busyMs} ms; ${to} holds bucket ${bucket} now`);
  await new Promise((r) => setTimeout(r, grace * 1000));
  after = null;
  let deleted = 0;
  do {
    const r = add(await call(url, adminToken, { step: 'clean', bucket, from, after, limit }));
    deleted += r.deleted;
    after = r.next;
  } while (after !== null);
  log(`removed ${deleted} users' pages from ${from}`);
  return { bucket, from, to, users, pages, deleted, busyMs, totalMs: Date.now() - t0, ...cost, shardMap: switched.shard_map };
}

async function main() {
  const { values } = parseArgs({
    options: {
      bucket: { type: 'string' },
      user: { type: 'string' },
      to: { type: 'string' },
      url: { type: 'string', default: 'http://127.0.0.1:8787' },
      'admin-token': { type: 'string', default: process.env.ADMIN_TOKEN },
      grace: { type: 'string', default: '10' },
      limit: { type: 'string', default: '20' },
    },
  });
  const adminToken = values['admin-token'];
  if (!adminToken) throw new Error('give --admin-token or set ADMIN_TOKEN');
  if ((values.bucket === undefined) === (values.user === undefined)) throw new Error('give --bucket N or --user ID');
  const which = values.user !== undefined ? { user: values.user } : { bucket: Number(values.bucket) };
  if (!values.to) {
    console.log(JSON.stringify(await call(values.url, adminToken, { step: 'locate', ...which }), null, 2));
    return;
  }
  const r = await reshard({
    url: values.url, adminToken, ...which, to: values.to, grace: Number(values.grace), limit: Number(values.limit),
    log: (m) => console.error(m),
  });
  console.log(JSON.stringify(r, null, 2));
  console.error(`\nNow set in wrangler.toml [vars]:\nSHARD_MAP = "${r.shardMap}"`);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((e) => {
    console.error(e.message);
    process.exit(1);
  });
}
