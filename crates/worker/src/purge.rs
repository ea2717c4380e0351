//! The daily tombstone purge (contract §4.4), run by the cron trigger. D1 finds the users
//! with tombstones older than the retention (one statement over the pages' `tomb` column,
//! the earliest tombstone of each page, which every write keeps); each
//! user's pages are then rewritten without them, and the user's purge horizon raised to
//! the newest rev removed, so a delta pull from before it gets 410 instead of silently
//! missing deletions. Bounded per run: [`USERS`] users per round, [`ROUNDS`] rounds, per
//! database.

use worker::D1Database;

use edgesync_core::envelope::UserId;
use edgesync_core::error::ApiError;
use edgesync_core::ops::Ops;
use edgesync_core::sql;

use crate::io::{self, num};
use crate::shards::Router;
use crate::store::Store;

const USERS: i64 = 100;
const ROUNDS: usize = 10;

struct Candidate {
    user_id: String,
}

impl io::FromRow for Candidate {
    fn from_row(r: io::Row<'_>) -> Result<Self, ApiError> {
        Ok(Candidate { user_id: r.text("user_id")? })
    }
}

/// Purges tombstones deleted before `cutoff_ms` in every database; returns how many were
/// removed.
pub async fn run(router: Router<'_>, cutoff_ms: i64) -> Result<u64, ApiError> {
    let mut removed = 0;
    for (_, db) in router.all()? {
        removed += run_in(router, &db, cutoff_ms).await?;
    }
    Ok(removed)
}

/// The purge of the users one database finds (a user found in a database its bucket has
/// left is purged where the bucket went: the store follows the fence).
async fn run_in(router: Router<'_>, db: &D1Database, cutoff_ms: i64) -> Result<u64, ApiError> {
    let ops = Ops::default();
    let mut removed = 0;
    for _ in 0..ROUNDS {
        let res = io::one(db, &ops, sql::PURGE_CANDIDATES, &[num(cutoff_ms), num(USERS)]).await?;
        let users = io::rows::<Candidate>(&res)?;
        let n = users.len();
        for c in users {
            let Some(user) = UserId::parse(&c.user_id) else { continue };
            // A user whose bucket is being moved is purged on a later day.
            match Store::new(router, user, &ops)?.purge(cutoff_ms, io::now_ms()).await {
                Ok(n) => removed += n as u64,
                Err(ApiError::Busy) => {}
                Err(e) => return Err(e),
            }
        }
        if (n as i64) < USERS {
            break;
        }
    }
    Ok(removed)
}
