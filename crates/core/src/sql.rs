//! SQL text of the packed storage ([`crate::pages`]). One table, `pages`, keyed by
//! (user_id, page); no collection has a table or a column of its own. Every value is a
//! bound parameter and every statement is scoped by `user_id = ?1`. Writes are guarded
//! by the head's `push_id`: a write applies only over the state it was planned on.

/// The head's state without its records (the check: one row, nothing decoded). ?1 user.
pub const STATE: &str = "SELECT rev AS seq, horizon AS purge_horizon FROM pages WHERE user_id = ?1 AND page = 0";

/// The head. ?1 user.
/// Bodies are BLOBs ([`crate::codec`]) and are selected as `hex(body)`: D1 hands a BLOB to
/// the worker as an array of numbers, a JS value per byte; hex crosses as one string.
pub const HEAD: &str =
    "SELECT rev, horizon, push_id, buckets, count, dir, hex(body) AS body FROM pages WHERE user_id = ?1 AND page = 0";

/// Buckets by page number. ?1 user, ?2 JSON array of page numbers.
pub const BUCKETS: &str =
    "SELECT page, hex(body) AS body FROM pages WHERE user_id = ?1 AND page IN (SELECT value FROM json_each(?2))";

/// Every page of the user, head included. ?1 user.
pub const ALL: &str =
    "SELECT page, rev, horizon, push_id, buckets, count, dir, hex(body) AS body FROM pages WHERE user_id = ?1";

/// Writes the head if it is still the one the write was planned on (`push_id` ?9, NULL
/// for a user without a head) and stamps the write's own id (?4). RETURNING yields a
/// row only when it applied: this is the push's claim on the sequence. ?1 user, ?2 seq,
/// ?3 horizon, ?5 buckets, ?6 count, ?7 dir (JSON), ?8 body (BLOB, [`crate::codec`]),
/// ?10 tomb (the earliest `deleted_at` of a tombstone in the body, or NULL).
pub const WRITE_HEAD: &str =
    "INSERT INTO pages (user_id, page, rev, horizon, push_id, buckets, count, dir, tomb, body) \
     VALUES (?1, 0, ?2, ?3, ?4, ?5, ?6, ?7, ?10, ?8) \
     ON CONFLICT (user_id, page) DO UPDATE SET rev = excluded.rev, horizon = excluded.horizon, \
     push_id = excluded.push_id, buckets = excluded.buckets, count = excluded.count, dir = excluded.dir, \
     tomb = excluded.tomb, body = excluded.body WHERE pages.push_id IS ?9 RETURNING rev";

/// Parameters one bucket takes in [`write_buckets`]: page, newest rev, tomb, body.
pub const BUCKET_PARAMS: usize = 4;
/// Buckets one [`write_buckets`] statement writes at most (D1 binds 100 parameters).
pub const BUCKETS_PER_WRITE: usize = (100 - 2) / BUCKET_PARAMS;
const _: () = assert!(2 + BUCKET_PARAMS * BUCKETS_PER_WRITE <= 100, "D1 binds at most 100 parameters");

/// Writes `n` buckets (1..=[`BUCKETS_PER_WRITE`]) if the head carries this write's id
/// (?2), i.e. only after [`WRITE_HEAD`] applied in the same batch. ?1 user; bucket `k`
/// (0-based) is `?(3 + 4k)` page, `?(4 + 4k)` newest rev, `?(5 + 4k)` tomb, `?(6 + 4k)`
/// body. A BLOB cannot travel inside a JSON parameter, so each body is a parameter of its
/// own, in rows of a `VALUES` list.
pub fn write_buckets(n: usize) -> String {
    let rows: Vec<String> = (0..n.clamp(1, BUCKETS_PER_WRITE))
        .map(|k| {
            let p = 3 + BUCKET_PARAMS * k;
            format!("(?{p}, ?{}, ?{}, ?{})", p + 1, p + 2, p + 3)
        })
        .collect();
    format!(
        "INSERT INTO pages (user_id, page, rev, tomb, body) \
         SELECT ?1, v.column1, v.column2, v.column3, v.column4 FROM (VALUES {}) AS v \
         WHERE EXISTS (SELECT 1 FROM pages WHERE user_id = ?1 AND page = 0 AND push_id = ?2) \
         ON CONFLICT (user_id, page) DO UPDATE SET rev = excluded.rev, tomb = excluded.tomb, body = excluded.body",
        rows.join(", ")
    )
}

/// Users with a tombstone deleted before ?1 (the daily purge), at most ?2: every write
/// keeps each page's `tomb` (its earliest tombstone's `deleted_at`), so no body is read.
pub const PURGE_CANDIDATES: &str = "SELECT DISTINCT user_id FROM pages WHERE tomb < ?1 LIMIT ?2";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_user_statement_is_scoped_by_user() {
        for sql in [STATE, HEAD, BUCKETS, ALL, &write_buckets(1), &write_buckets(BUCKETS_PER_WRITE)] {
            assert!(sql.contains("user_id = ?1"), "{sql}");
        }
        let most = write_buckets(BUCKETS_PER_WRITE + 5);
        assert!(most.contains(&format!("?{})", 2 + BUCKET_PARAMS * BUCKETS_PER_WRITE)), "{most}");
        assert!(write_buckets(0).contains("(VALUES (?3, ?4, ?5, ?6)) AS v"));
        assert!(WRITE_HEAD.contains("VALUES (?1, 0,"));
        assert!(WRITE_HEAD.contains("WHERE pages.push_id IS ?9 RETURNING"), "the optimistic claim");
    }
}
