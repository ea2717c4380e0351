//! The daily tombstone purge (contract §4.4), run by the cron trigger. Deletes tombstones
//! older than the retention in bounded batches and raises each affected user's purge
//! horizon to the newest rev it removed, so a delta pull from before it gets 410 instead
//! of silently missing deletions.

use worker::D1Database;

use edgesync_core::entities::{Entity, ENTITIES};
use edgesync_core::error::ApiError;
use edgesync_core::ops::Ops;

use crate::io::{self, num};

/// Tombstones removed per statement pair, and batches per table per run: bounds one
/// run to 10 × 500 rows per table, well inside D1's per-invocation limits.
const BATCH: i64 = 500;
const MAX_BATCHES: usize = 10;

/// Oldest tombstones first; both statements of a batch see the same rows (one transaction).
fn doomed(e: &Entity) -> String {
    format!(
        "WITH doomed AS (SELECT user_id, id, rev FROM {} WHERE deleted_at IS NOT NULL AND deleted_at < ?1 \
         ORDER BY deleted_at, user_id, id LIMIT ?2)",
        e.name
    )
}

fn raise_horizons(e: &Entity) -> String {
    format!(
        "{} UPDATE user_state SET purge_horizon = max(purge_horizon, \
         (SELECT max(rev) FROM doomed WHERE doomed.user_id = user_state.user_id)) \
         WHERE user_id IN (SELECT user_id FROM doomed)",
        doomed(e)
    )
}

fn delete(e: &Entity) -> String {
    format!("{} DELETE FROM {} WHERE (user_id, id) IN (SELECT user_id, id FROM doomed)", doomed(e), e.name)
}

/// Purges tombstones deleted before `cutoff_ms`; returns how many were removed.
pub async fn run(db: &D1Database, cutoff_ms: i64) -> Result<u64, ApiError> {
    let params = [num(cutoff_ms), num(BATCH)];
    let ops = Ops::default();
    let mut removed = 0;
    for e in ENTITIES {
        for _ in 0..MAX_BATCHES {
            let stmts = vec![db.prepare(raise_horizons(e)).bind(&params)?, db.prepare(delete(e)).bind(&params)?];
            let res = io::batch(db, &ops, stmts).await?;
            let n = res.get(1).and_then(|r| r.meta().ok().flatten()).and_then(|m| m.changes).unwrap_or(0) as u64;
            removed += n;
            if n < BATCH as u64 {
                break;
            }
        }
    }
    Ok(removed)
}
