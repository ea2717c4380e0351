-- edgesync D1 schema. Idempotent: applied on every `npm run dev` / test start and by
--   npx wrangler d1 execute edgesync --remote --file schema.sql
-- Every key starts with user_id: no statement can reach another user's rows.
-- Entity columns mirror the field specs in src/entities.rs (a unit test keeps them in step).

-- One row per user: the cursor sequence (last rev handed out), the tombstone purge
-- horizon (a delta pull from before it gets 410), and the id of the last push, which
-- makes a push's batch apply only if no other push committed since it read.
CREATE TABLE IF NOT EXISTS user_state (
  user_id       TEXT PRIMARY KEY,
  seq           INTEGER NOT NULL DEFAULT 0,
  purge_horizon INTEGER NOT NULL DEFAULT 0,
  push_id       TEXT
) WITHOUT ROWID;

-- Sync columns shared by every entity table:
--   version      per-record version (>= 1), compared with the client's on write
--   rev          cursor position of the record's last change (per user, strictly increasing)
--   created_rev  rev at which the record first appeared (delta pulls split created/updated)
--   created_at, updated_at, deleted_at  server clock, ms; deleted_at marks a tombstone

CREATE TABLE IF NOT EXISTS tasks (
  user_id     TEXT NOT NULL,
  id          TEXT NOT NULL,
  version     INTEGER NOT NULL,
  rev         INTEGER NOT NULL,
  created_rev INTEGER NOT NULL,
  created_at  INTEGER NOT NULL,
  updated_at  INTEGER NOT NULL,
  deleted_at  INTEGER,
  device_id   TEXT,
  title       TEXT NOT NULL DEFAULT '',
  description TEXT NOT NULL DEFAULT '',
  completed   INTEGER NOT NULL DEFAULT 0,
  pinned      INTEGER NOT NULL DEFAULT 0,
  priority    TEXT NOT NULL DEFAULT 'medium',
  due_date    INTEGER,
  list_id     TEXT,
  sort_order  INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (user_id, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tasks_user_rev ON tasks (user_id, rev);

CREATE TABLE IF NOT EXISTS lists (
  user_id     TEXT NOT NULL,
  id          TEXT NOT NULL,
  version     INTEGER NOT NULL,
  rev         INTEGER NOT NULL,
  created_rev INTEGER NOT NULL,
  created_at  INTEGER NOT NULL,
  updated_at  INTEGER NOT NULL,
  deleted_at  INTEGER,
  device_id   TEXT,
  name        TEXT NOT NULL DEFAULT '',
  color       TEXT NOT NULL DEFAULT '',
  icon        TEXT NOT NULL DEFAULT '',
  sort_order  INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (user_id, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS lists_user_rev ON lists (user_id, rev);

CREATE TABLE IF NOT EXISTS notes (
  user_id     TEXT NOT NULL,
  id          TEXT NOT NULL,
  version     INTEGER NOT NULL,
  rev         INTEGER NOT NULL,
  created_rev INTEGER NOT NULL,
  created_at  INTEGER NOT NULL,
  updated_at  INTEGER NOT NULL,
  deleted_at  INTEGER,
  device_id   TEXT,
  title       TEXT NOT NULL DEFAULT '',
  body        TEXT NOT NULL DEFAULT '',
  pinned      INTEGER NOT NULL DEFAULT 0,
  list_id     TEXT,
  PRIMARY KEY (user_id, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS notes_user_rev ON notes (user_id, rev);

-- settings: the record id is the setting's key; value is JSON text.
CREATE TABLE IF NOT EXISTS settings (
  user_id     TEXT NOT NULL,
  id          TEXT NOT NULL,
  version     INTEGER NOT NULL,
  rev         INTEGER NOT NULL,
  created_rev INTEGER NOT NULL,
  created_at  INTEGER NOT NULL,
  updated_at  INTEGER NOT NULL,
  deleted_at  INTEGER,
  device_id   TEXT,
  value       TEXT,
  PRIMARY KEY (user_id, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS settings_user_rev ON settings (user_id, rev);

-- Tombstones by age, for the daily purge (only tombstones are in these indexes).
CREATE INDEX IF NOT EXISTS tasks_tombstones ON tasks (deleted_at) WHERE deleted_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS lists_tombstones ON lists (deleted_at) WHERE deleted_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS notes_tombstones ON notes (deleted_at) WHERE deleted_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS settings_tombstones ON settings (deleted_at) WHERE deleted_at IS NOT NULL;

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
