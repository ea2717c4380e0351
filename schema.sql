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
--   body     JSON array of records: [type, id, rev, created_rev, deleted, record]
CREATE TABLE IF NOT EXISTS pages (
  user_id TEXT NOT NULL,
  page    INTEGER NOT NULL,
  rev     INTEGER NOT NULL,
  horizon INTEGER NOT NULL DEFAULT 0,
  push_id TEXT,
  buckets INTEGER NOT NULL DEFAULT 0,
  count   INTEGER NOT NULL DEFAULT 0,
  dir     TEXT NOT NULL DEFAULT '[]',
  body    TEXT NOT NULL,
  PRIMARY KEY (user_id, page)
) WITHOUT ROWID;

-- Every user's current records, for operators in the D1 console, e.g.
--   SELECT type, id, record FROM records WHERE user_id = 'alice' AND NOT deleted;
-- (a record in the head supersedes its older copy in a bucket).
CREATE VIEW IF NOT EXISTS records AS
SELECT p.user_id AS user_id, j.value->>0 AS type, j.value->>1 AS id, j.value->>2 AS rev,
       j.value->>4 AS deleted, json(j.value->5) AS record, p.page AS page
FROM pages AS p, json_each(p.body) AS j
WHERE p.page = 0 OR NOT EXISTS (
  SELECT 1 FROM pages AS h, json_each(h.body) AS k
  WHERE h.user_id = p.user_id AND h.page = 0 AND k.value->>0 = j.value->>0 AND k.value->>1 = j.value->>1);

-- The worker's own use per UTC day (day = ms / 86400000), summed over isolates; each
-- isolate adds its counts in one upsert every USAGE_FLUSH_REQUESTS requests or
-- USAGE_FLUSH_SECS seconds. kv_hits / kv_misses: conditional GETs answered from KV / D1.
CREATE TABLE IF NOT EXISTS usage_daily (
  day          INTEGER PRIMARY KEY,
  requests     INTEGER NOT NULL DEFAULT 0,
  rows_read    INTEGER NOT NULL DEFAULT 0,
  rows_written INTEGER NOT NULL DEFAULT 0,
  kv_reads     INTEGER NOT NULL DEFAULT 0,
  kv_writes    INTEGER NOT NULL DEFAULT 0,
  kv_hits      INTEGER NOT NULL DEFAULT 0,
  kv_misses    INTEGER NOT NULL DEFAULT 0
);
