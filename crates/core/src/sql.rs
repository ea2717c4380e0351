//! SQL text of the packed storage ([`crate::pages`]). One table, `pages`, keyed by
//! (user_id, page); no collection has a table or a column of its own. Every value is a
//! bound parameter and every statement is scoped by `user_id = ?1`. Writes are guarded
//! by the head's `push_id`: a write applies only over the state it was planned on, and by
//! the bucket's fence: never in a database the user's bucket is leaving or has left.

/// A read of the user's pages with the fence of the user's bucket: `fenced!(columns,
/// where, nulls)` selects the pages, plus one more row, of nulls but for `fence` and
/// `target`, when the bucket has a fence in this database (an index lookup that finds
/// nothing reads no row, so the common case costs what the plain read costs).
macro_rules! fenced {
    ($columns:literal, $where:literal, $nulls:literal) => {
        concat!(
            "SELECT ",
            $columns,
            ", NULL AS fence, NULL AS target FROM pages WHERE user_id = ?1",
            $where,
            " UNION ALL SELECT ",
            $nulls,
            ", state, target FROM shard_fences WHERE bucket = ?2"
        )
    };
}

// Reads: every read of a user starts with one of these, so a moved bucket is noticed by
// the statement that reads. ?1 user, ?2 the user's bucket. Bodies are BLOBs
// ([`crate::codec`]) and are selected as `hex(body)`: D1 hands a BLOB to the worker as an
// array of numbers, a JS value per byte; hex crosses as one string.

/// The head's state without its records (the check: one row, nothing decoded).
pub const STATE: &str = fenced!("rev AS seq, horizon AS purge_horizon", " AND page = 0", "NULL, NULL");

/// The head.
pub const HEAD: &str = fenced!(
    "rev, horizon, push_id, buckets, count, dir, hex(body) AS body",
    " AND page = 0",
    "NULL, NULL, NULL, NULL, NULL, NULL, NULL"
);

/// Buckets by page number. ?1 user, ?2 JSON array of page numbers. (Read after the head,
/// in the same request: a moved bucket's pages are removed only well after its fence.)
pub const BUCKETS: &str =
    "SELECT page, hex(body) AS body FROM pages WHERE user_id = ?1 AND page IN (SELECT value FROM json_each(?2))";

/// Every page of the user, head included.
pub const ALL: &str = fenced!(
    "page, rev, horizon, push_id, buckets, count, dir, hex(body) AS body",
    "",
    "NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL"
);

/// Writes the head if it is still the one the write was planned on (`push_id` ?9, NULL
/// for a user without a head) and stamps the write's own id (?4). RETURNING yields a
/// row only when it applied: this is the push's claim on the sequence. ?1 user, ?2 seq,
/// ?3 horizon, ?5 buckets, ?6 count, ?7 dir (JSON), ?8 body (BLOB, [`crate::codec`]),
/// ?10 tomb (the earliest `deleted_at` of a tombstone in the body, or NULL), ?11 the
/// user's bucket: nothing is written while the bucket has a fence here (it is moving or
/// has moved).
pub const WRITE_HEAD: &str =
    "INSERT INTO pages (user_id, page, rev, horizon, push_id, buckets, count, dir, tomb, body) \
     SELECT ?1, 0, ?2, ?3, ?4, ?5, ?6, ?7, ?10, ?8 WHERE NOT EXISTS (SELECT 1 FROM shard_fences WHERE bucket = ?11) \
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

// Moving a bucket between databases (`crate::shards`, the admin reshard route). Not
// scoped by one user: they are the operator's, like the purge's candidates.

/// The fence of bucket ?1 here.
pub const FENCE_GET: &str = "SELECT state, target, since FROM shard_fences WHERE bucket = ?1";

/// Sets bucket ?1's fence: ?2 `moving` or `moved`, ?3 the target binding, ?4 ms.
pub const FENCE_SET: &str = "INSERT INTO shard_fences (bucket, state, target, since) VALUES (?1, ?2, ?3, ?4) \
     ON CONFLICT (bucket) DO UPDATE SET state = excluded.state, target = excluded.target, since = excluded.since";

/// Removes bucket ?1's fence (the bucket lives here again).
pub const FENCE_CLEAR: &str = "DELETE FROM shard_fences WHERE bucket = ?1";

/// Users with a head here after ?1 (by id), at most ?2: the reshard walks them and keeps
/// those of its bucket.
pub const USERS_AFTER: &str = "SELECT user_id FROM pages WHERE page = 0 AND user_id > ?1 ORDER BY user_id LIMIT ?2";

/// Every column of one user's pages, to copy them to another database. ?1 user.
pub const COPY_READ: &str = "SELECT * FROM pages WHERE user_id = ?1";

/// Removes one user's pages (before a copy arrives, and from the database it left). ?1 user.
pub const USER_DELETE: &str = "DELETE FROM pages WHERE user_id = ?1";

/// Pages rows of one user here. ?1 user.
pub const USER_PAGES: &str = "SELECT count(*) AS pages FROM pages WHERE user_id = ?1";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_user_statement_is_scoped_by_user() {
        for sql in [STATE, HEAD, BUCKETS, ALL, &write_buckets(1), &write_buckets(BUCKETS_PER_WRITE)] {
            assert!(sql.contains("user_id = ?1"), "{sql}");
        }
        for sql in [STATE, HEAD, ALL] {
            assert!(sql.ends_with(", state, target FROM shard_fences WHERE bucket = ?2"), "fenced: {sql}");
        }
        assert!(WRITE_HEAD.contains("SELECT ?1, 0,") && WRITE_HEAD.contains("shard_fences WHERE bucket = ?11"));
        let most = write_buckets(BUCKETS_PER_WRITE + 5);
        assert!(most.contains(&format!("?{})", 2 + BUCKET_PARAMS * BUCKETS_PER_WRITE)), "{most}");
        assert!(write_buckets(0).contains("(VALUES (?3, ?4, ?5, ?6)) AS v"));
        assert!(WRITE_HEAD.contains("WHERE pages.push_id IS ?9 RETURNING"), "the optimistic claim");
    }
}
