// Storage (issue #13): what a record takes in D1 once pages are deflated. For each level
// (records per user) a fresh worker gets a few users of typical tasks (typicalTasks in
// bench/lib/common.mjs: titles of 2–7 words, a third with a description, 40% with a due
// date), pushed 100 at a time, then 10% of them edited (completed) and 2% deleted; the
// worker is stopped and its local D1 file read with `sqlite3`:
//   stored      dbstat's pages of the `pages` table (leaf, interior and overflow pages,
//               their unused space included) per current record
//   compressed  the BLOB bodies' bytes per record
//   columns     what the bodies inflate to (format 2: the entries as columns, crates/codec)
//   raw JSON    a record's JSON as clients see it, and the page JSON (the entry tuples,
//               superseded bucket copies included) per record
//   as JSON text  the same rows with the inflated JSON as a TEXT body (the page format
//               before this change), in a scratch database, through dbstat too
// Capacity: users per 500 MB database (and per 5 GB account: the Free plan's ten) when
// 60% of users are active (the brief's mix) and each active user holds that many records;
// inactive users hold nothing. 500 MB = 500·10^6 bytes.
// CPU: the Rust codec is measured in wasm under V8 by bench/native (examples/wasm_cpu.rs,
// `codec/*`, in bench/results/wasm-cpu.json); here the alternative, the runtime's native
// CompressionStream / DecompressionStream ('deflate-raw', what workerd offers), on the same
// head bodies, timed by this process's CPU clock (Node's streams run zlib, like workerd).
//
//   node bench/storage.mjs [--levels 100,1000,2650] [--quick]
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';

import { d1Files, startWorker } from '../tests/helpers/server.mjs';
import { token, newUserId } from '../tests/helpers/client.mjs';
import { ROOT, closeAgents, expect, flags, log, rng, send, typicalTasks, writeResult } from './lib/common.mjs';

const opt = flags(
  { levels: '100,1000,2650', records: 6000, quick: false },
  { levels: 'records per user', records: 'records per level at least (users = records / level, at least 2)', quick: 'fewer records per level' },
);
if (opt.quick) opt.records = 2000;
const levels = opt.levels.split(',').map(Number);
const DB_BYTES = 500e6;
const ACCOUNT_DBS = 10;
const ACTIVE = 0.6;

const sqlite = (file, sql) => execFileSync('sqlite3', ['-json', file, sql], { encoding: 'utf8', maxBuffer: 1 << 30 }).trim();
const rows = (file, sql) => {
  const out = sqlite(file, sql);
  return out ? JSON.parse(out) : [];
};

function d1File(dir) {
  const found = d1Files(dir);
  if (found.length !== 1) throw new Error(`expected one D1 file under ${dir}, found ${found.length}`);
  return found[0];
}

/** A page body's entries as `[type, id, rev, created_rev, deleted, record]` tuples and their
 * JSON (format 1's text), and the bytes it inflates to (crates/codec: format 1 is
 * that JSON, format 2 the columns). A reading of the format for the figures, not the
 * worker's decoder (the export route is that). */
const decodeBody = (hex) => {
  const b = Buffer.from(hex, 'hex');
  if (b[0] !== 1 && b[0] !== 2) throw new Error(`unknown body format ${b[0]}`);
  const inflated = zlib.inflateRawSync(b.subarray(1)).toString('utf8');
  const entries = b[0] === 1 ? JSON.parse(inflated) : columnsToEntries(JSON.parse(inflated));
  return { bytes: b.length, inflatedBytes: Buffer.byteLength(inflated), entries, json: JSON.stringify(entries) };
};

function columnsToEntries(c) {
  const cols = new Map(c.k);
  for (const [key, deltas] of c.n) {
    let v = 0;
    cols.set(key, deltas.map((d) => (v += d)));
  }
  const at = new Map();
  const next = (key) => {
    const i = at.get(key) ?? 0;
    at.set(key, i + 1);
    return cols.get(key)[i];
  };
  let whole = 0;
  return c.e.map((shape, j) => {
    let type;
    let record;
    if (shape === null) {
      type = c.t[whole];
      record = c.w[whole++];
    } else {
      const [t, keys] = c.s[shape];
      type = t;
      record = Object.fromEntries(keys.map((k) => [k, next(k)]));
    }
    const rev = c.r[j] ?? record.rev;
    return [type, c.i[j] ?? record.id, rev, rev - c.c[j], c.d[j], record];
  });
}

async function level(perUser, random) {
  const users = Math.max(2, Math.ceil(opt.records / perUser));
  const srv = await startWorker({ keepDir: true });
  let records = 0;
  try {
    for (let u = 0; u < users; u++) {
      const tok = await token(newUserId('storage'));
      let cursor = 0;
      const push = async (changes) => {
        const res = expect(await send(srv.url, { method: 'POST', path: '/api/sync', token: tok, body: { cursor, changes } }), 200, 'push');
        if (res.json.applied.length !== changes.length) throw new Error(`push not applied: ${res.text.slice(0, 300)}`);
        cursor = res.json.cursor;
        return res.json.applied;
      };
      const versions = new Map();
      for (let i = 0; i < perUser; i += 100) {
        const batch = typicalTasks(Math.min(100, perUser - i), 't', random);
        for (const a of await push(batch)) versions.set(a.id, { ...batch.find((t) => t.id === a.id), version: a.version });
      }
      const ids = [...versions.keys()];
      const edits = ids.filter(() => random() < 0.1).map((id) => ({ ...versions.get(id), completed: true, version: versions.get(id).version + 1 }));
      for (let i = 0; i < edits.length; i += 100) await push(edits.slice(i, i + 100));
      const deletes = ids.filter(() => random() < 0.02).map((id) => ({ type: 'tasks', id, deleted: true }));
      if (deletes.length) await push(deletes);
      records += perUser;
    }
  } finally {
    await srv.stop({ keepDir: true });
  }
  const file = d1File(srv.persistDir);
  try {
    const [st] = rows(file, "SELECT sum(pgsize) AS bytes, sum(unused) AS unused, count(*) AS pages FROM dbstat WHERE name = 'pages'");
    const pages = rows(file, 'SELECT user_id, page, rev, horizon, push_id, buckets, count, dir, tomb, hex(body) AS body FROM pages');
    let compressed = 0;
    let pageJson = 0;
    let inflatedJson = 0;
    let recordJson = 0;
    let current = 0;
    const perUserHead = [];
    const byUser = new Map();
    for (const r of pages) {
      const { bytes, inflatedBytes, entries, json } = decodeBody(r.body);
      compressed += bytes;
      pageJson += Buffer.byteLength(json);
      inflatedJson += inflatedBytes;
      r.json = json;
      const u = byUser.get(r.user_id) ?? { head: null, buckets: [] };
      if (r.page === 0) {
        u.head = entries;
        perUserHead.push({ entries: entries.length, json: Buffer.byteLength(json), deflated: bytes });
      } else u.buckets.push(entries);
      byUser.set(r.user_id, u);
    }
    for (const u of byUser.values()) {
      const seen = new Set((u.head ?? []).map((e) => `${e[0]}/${e[1]}`));
      const all = [...(u.head ?? []), ...u.buckets.flat().filter((e) => !seen.has(`${e[0]}/${e[1]}`))];
      for (const e of all) {
        current += 1;
        recordJson += Buffer.byteLength(JSON.stringify(e[5]));
      }
    }
    // The same rows with the JSON as a TEXT body (the format before this change).
    const scratch = path.join(srv.persistDir, 'as-text.sqlite');
    fs.rmSync(scratch, { force: true });
    const q = (s) => (s == null ? 'NULL' : `'${String(s).replaceAll("'", "''")}'`);
    const inserts = pages.map(
      (r) => `INSERT INTO pages VALUES (${q(r.user_id)}, ${r.page}, ${r.rev}, ${r.horizon}, ${q(r.push_id)}, ${r.buckets}, ${r.count}, ${q(r.dir)}, ${q(r.json)});`,
    );
    const ddl =
      "CREATE TABLE pages (user_id TEXT NOT NULL, page INTEGER NOT NULL, rev INTEGER NOT NULL, horizon INTEGER NOT NULL DEFAULT 0, push_id TEXT, buckets INTEGER NOT NULL DEFAULT 0, count INTEGER NOT NULL DEFAULT 0, dir TEXT NOT NULL DEFAULT '[]', body TEXT NOT NULL, PRIMARY KEY (user_id, page)) WITHOUT ROWID;";
    const sqlFile = `${scratch}.sql`;
    fs.writeFileSync(sqlFile, `${ddl}\nBEGIN;\n${inserts.join('\n')}\nCOMMIT;\n`);
    execFileSync('sqlite3', [scratch, `.read ${sqlFile}`]);
    const [asText] = rows(scratch, "SELECT sum(pgsize) AS bytes FROM dbstat WHERE name = 'pages'");
    const out = {
      perUser,
      users,
      records,
      current,
      pages: pages.length,
      dbPages: st.pages,
      storedBytes: st.bytes,
      unusedBytes: st.unused,
      asTextBytes: asText.bytes,
      compressedBytes: compressed,
      pageJsonBytes: pageJson,
      recordJsonBytes: recordJson,
      perRecord: {
        stored: st.bytes / current,
        compressed: compressed / current,
        recordJson: recordJson / current,
        pageJson: pageJson / current,
        inflated: inflatedJson / current,
        asText: asText.bytes / current,
      },
      head: perUserHead[0],
    };
    const perActiveUser = out.perRecord.stored * perUser;
    out.usersPerDb = DB_BYTES / (ACTIVE * perActiveUser);
    out.usersPerAccount = out.usersPerDb * ACCOUNT_DBS;
    out.usersPerDbAsText = DB_BYTES / (ACTIVE * out.perRecord.asText * perUser);
    // a head and a bucket of the largest user, for the CPU probe
    const sample = pages.filter((r) => r.user_id === pages[0].user_id);
    out.sample = { head: sample.find((r) => r.page === 0)?.json, bucket: sample.find((r) => r.page > 0)?.json };
    return out;
  } finally {
    if (process.env.EDGESYNC_KEEP_D1) log(`kept ${file}`);
    else fs.rmSync(srv.persistDir, { recursive: true, force: true });
  }
}

/** CPU time per call of an async op (this process's user + system CPU, zlib's threads included). */
async function cpuPerCall(fn, minMs) {
  await fn();
  let n = 0;
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  while (performance.now() - t0 < minMs || n < 20) {
    await fn();
    n += 1;
  }
  const c = process.cpuUsage(c0);
  return { cpu_us: (c.user + c.system) / n, wall_us: ((performance.now() - t0) * 1000) / n, calls: n };
}

async function viaStream(Stream, input) {
  const out = new Blob([input]).stream().pipeThrough(new Stream('deflate-raw'));
  return new Uint8Array(await new Response(out).arrayBuffer());
}

async function nativeCodec(json) {
  const input = Buffer.from(json);
  const packed = await viaStream(CompressionStream, input);
  const back = Buffer.from(await viaStream(DecompressionStream, packed));
  if (!back.equals(input)) throw new Error('CompressionStream round trip differs');
  const ms = opt.quick ? 300 : 1500;
  return {
    json_bytes: input.length,
    deflated_bytes: packed.length,
    deflate: await cpuPerCall(() => viaStream(CompressionStream, input), ms),
    inflate: await cpuPerCall(() => viaStream(DecompressionStream, packed), ms),
    zlib_level1: { deflated_bytes: zlib.deflateRawSync(input, { level: 1 }).length, ...(await cpuPerCall(async () => zlib.deflateRawSync(input, { level: 1 }), ms)) },
    zlib_level6: { deflated_bytes: zlib.deflateRawSync(input, { level: 6 }).length, ...(await cpuPerCall(async () => zlib.deflateRawSync(input, { level: 6 }), ms)) },
  };
}

try {
  const random = rng(13);
  const results = [];
  for (const n of levels) {
    const t0 = Date.now();
    const r = await level(n, random);
    log(
      `${n} records/user (${r.users} users, ${r.pages} pages): stored ${r.perRecord.stored.toFixed(1)} B/record ` +
        `(as JSON text ${r.perRecord.asText.toFixed(1)}), deflated body ${r.perRecord.compressed.toFixed(1)}, record JSON ${r.perRecord.recordJson.toFixed(1)}, ` +
        `page JSON ${r.perRecord.pageJson.toFixed(1)}, columns JSON ${r.perRecord.inflated.toFixed(1)}; users per 500 MB ${Math.round(r.usersPerDb)}, per 5 GB ${Math.round(r.usersPerAccount)} ` +
        `(${((Date.now() - t0) / 1000).toFixed(0)} s)`,
    );
    results.push(r);
  }
  // CPU of the native alternative on the largest level's head and a bucket.
  const big = results[results.length - 1];
  const cpu = {};
  for (const [what, json] of Object.entries(big.sample)) {
    if (!json) continue;
    cpu[what] = await nativeCodec(json);
    const c = cpu[what];
    log(
      `CompressionStream on a ${what} of ${c.json_bytes} B JSON (-> ${c.deflated_bytes} B): deflate ${c.deflate.cpu_us.toFixed(0)} µs CPU, ` +
        `inflate ${c.inflate.cpu_us.toFixed(0)} µs; zlib level 1 ${c.zlib_level1.cpu_us.toFixed(0)} µs (-> ${c.zlib_level1.deflated_bytes} B), level 6 ${c.zlib_level6.cpu_us.toFixed(0)} µs`,
    );
  }
  for (const r of results) delete r.sample;
  const file = writeResult('storage', {
    params: opt,
    dbBytes: DB_BYTES,
    accountDbs: ACCOUNT_DBS,
    activeShare: ACTIVE,
    levels: results,
    nativeCpu: cpu,
    engine: `Node ${process.version} (zlib ${process.versions.zlib})`,
  });
  log(`wrote ${file}`);
  const over = results.filter((r) => r.perRecord.stored > 60);
  if (over.length) log(`over 60 B per record stored at: ${over.map((r) => r.perUser).join(', ')}`);
} finally {
  closeAgents();
}
