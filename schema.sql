-- edgesync D1 schema. Idempotent: applied on every `npm run dev` / test start and by
--   npx wrangler d1 execute edgesync --remote --file schema.sql
-- Every key starts with user_id: no statement can reach another user's rows.

-- Records are packed into a few rows per user ("pages"; design in README "Storage"),
-- because D1 counts rows written, not bytes: a push writes one row for a user with up
-- to 500 records. Page 0, the head, holds the user's state and recent records:
--   rev      the user's sequence (last rev handed out); on a bucket, its newest rev
--   horizon  tombstone purge horizon (a delta pull from before it gets 410)
--   push_id  id of the last write; a write applies only over the head it was planned on
--   buckets, count, dir  the buckets (pages 1..buckets): how many, their entries in
--            total, and each one's newest rev (a pull reads only buckets changed after it)
--   tomb     the earliest deleted_at of a tombstone in this page, NULL when none (kept by
--            every write; the daily purge finds its users by it without reading bodies)
--   body     the page's records as columns (format 2; format 1, still read, was a JSON
--            array of [type, id, rev, created_rev, deleted, record]), raw-deflated behind a
--            one-byte format tag (crates/codec/src/lib.rs):
--            not readable with SQL; operators read a user's records with
--            `npm run export -- <user>` (GET /api/admin/records?user=<user>).
-- A database made with the TEXT body of earlier builds is not migrated (as the table per
-- collection before it): drop `pages` (export first) or start a new database.
CREATE TABLE IF NOT EXISTS pages (
  user_id TEXT NOT NULL,
  page    INTEGER NOT NULL,
  rev     INTEGER NOT NULL,
  horizon INTEGER NOT NULL DEFAULT 0,
  push_id TEXT,
  buckets INTEGER NOT NULL DEFAULT 0,
  count   INTEGER NOT NULL DEFAULT 0,
  dir     TEXT NOT NULL DEFAULT '[]',
  tomb    INTEGER,
  body    BLOB NOT NULL,
  PRIMARY KEY (user_id, page)
) WITHOUT ROWID;

-- Buckets of users (crates/core/src/shards.rs) that are leaving this database or have
-- left it (`npm run reshard`): while `moving`, their users' writes here are refused;
-- once `moved`, every read and write here is sent on to `target`. Empty with one database.
-- Every read and write of a user looks its bucket up here: WITHOUT ROWID, because D1
-- counts a lookup that finds nothing in a rowid table as a row read, and nothing here.
CREATE TABLE IF NOT EXISTS shard_fences (
  bucket INTEGER PRIMARY KEY,
  state  TEXT NOT NULL,   -- 'moving' | 'moved'
  target TEXT NOT NULL,   -- the binding the bucket goes to
  since  INTEGER NOT NULL -- ms
) WITHOUT ROWID;

-- The operators' view of the earlier JSON bodies (it cannot read deflated ones).
DROP VIEW IF EXISTS records;

-- The worker's own use per UTC day (day = ms / 86400000), summed over isolates; each
-- isolate adds its counts in one upsert when what it holds nears its share of the error
-- the totals may have (crates/core/src/accounting.rs), at the latest after
-- USAGE_FLUSH_REQUESTS requests or about USAGE_FLUSH_SECS seconds. kv_hits / kv_misses:
-- conditional GETs answered from KV / D1. A database made before the flushes / isolates /
-- declared_* columns needs them added (or the table dropped: it holds only counters).
CREATE TABLE IF NOT EXISTS usage_daily (
  day          INTEGER PRIMARY KEY,
  requests     INTEGER NOT NULL DEFAULT 0,
  rows_read    INTEGER NOT NULL DEFAULT 0,
  rows_written INTEGER NOT NULL DEFAULT 0,
  kv_reads     INTEGER NOT NULL DEFAULT 0,
  kv_writes    INTEGER NOT NULL DEFAULT 0,
  kv_hits      INTEGER NOT NULL DEFAULT 0,
  kv_misses    INTEGER NOT NULL DEFAULT 0,
  -- the day's upserts (accounting's own rows written) and the isolates that made them
  flushes      INTEGER NOT NULL DEFAULT 0,
  isolates     INTEGER NOT NULL DEFAULT 0,
  -- per limit, the sum over isolates of each one's declared flush size: what the others
  -- hold unflushed is estimated from it (crates/core/src/accounting.rs)
  declared_requests     INTEGER NOT NULL DEFAULT 0,
  declared_rows_read    INTEGER NOT NULL DEFAULT 0,
  declared_rows_written INTEGER NOT NULL DEFAULT 0,
  declared_kv_reads     INTEGER NOT NULL DEFAULT 0,
  declared_kv_writes    INTEGER NOT NULL DEFAULT 0
);
