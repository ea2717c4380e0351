//! Per-user rate limiting at the edge: token buckets in isolate memory (exact for every
//! request this isolate serves), shared between isolates through one KV value holding the
//! buckets of the users currently being throttled ([`Throttled`], key [`SHARED_KEY`]).
//!
//! - **Reads:** an isolate reads the shared value only when a user it has no bucket for
//!   shows up, and at most once a minute ([`SHARED_READ_MS`]): about one KV read per
//!   isolate per minute, whatever the number of users. A user this isolate knows takes the
//!   stricter of its own bucket and the shared one on every request (no read).
//! - **Writes:** only from a request of a user being throttled (below half the burst), and
//!   only when the shared value under-reports that user: at once when it does not hold
//!   the user (a new throttle), else when a token was taken since, at most once per second
//!   per isolate ([`SHARED_WRITE_MS`]: KV allows one write per second per key). The value
//!   written is the shared set as last read, merged with every throttled bucket of this
//!   isolate; it expires once an empty bucket would be full again. So a user within
//!   limits costs no KV write (contract §8.8). The limiter writes only while under half
//!   the KV write budget's threshold, so throttled clients cannot spend the budget the
//!   state token needs (`pipeline::limiter_writes_ok`).
//!
//! Two isolates writing in the same second: last write wins, and the users only the loser
//! wrote are missing from the set until one of their requests writes it again; the limit
//! is then as lenient as it was before KV was shared at all, never stricter than the truth.

use edgesync_core::hash::HashMap;

use edgesync_core::envelope::UserId;
use edgesync_core::ops::Ops;
use edgesync_core::ratelimit::{reads_shared, writes_shared, Bucket, Policy, Throttled, Verdict};

#[cfg(doc)]
use edgesync_core::ratelimit::{SHARED_READ_MS, SHARED_WRITE_MS};

use crate::io;

/// Users remembered per isolate before full (idle) buckets are forgotten.
const MAX_USERS: usize = 10_000;

/// The one KV key of the shared set (no user key can be it: those were `rl:<user>`).
pub const SHARED_KEY: &str = "rl-throttled";

/// This isolate's buckets, by user, and its view of the shared set.
#[derive(Default)]
pub struct Buckets {
    users: HashMap<String, Bucket>,
    shared: Throttled,
    read_at: Option<i64>,
    written_at: Option<i64>,
}

/// The shared set to write after the response, if any.
pub struct Persist {
    pub value: String,
    pub ttl: u64,
}

/// Takes one token for `user`. Returns the verdict, and the shared set to write to KV when
/// the user is throttled (and `kv_write_ok`). Reads KV only as the module says (and
/// `kv_read_ok`).
#[allow(clippy::too_many_arguments)]
pub async fn take(
    buckets: &std::cell::RefCell<Buckets>,
    kv: &io::Kv,
    user: &UserId,
    policy: Policy,
    now: i64,
    kv_read_ok: bool,
    kv_write_ok: bool,
    ops: &Ops,
) -> (Verdict, Option<Persist>) {
    let user = user.as_str();
    let read = {
        let mut b = buckets.borrow_mut();
        let read = kv_read_ok && !b.users.contains_key(user) && reads_shared(now, b.read_at);
        if read {
            b.read_at = Some(now); // before the await: concurrent requests do not read again
        }
        read
    };
    if read {
        if let Some(text) = io::kv_get(kv, SHARED_KEY, ops).await {
            let mut b = buckets.borrow_mut();
            let merged = Throttled::decode(&text).merged(b.shared.iter_entries(), &policy, now);
            b.shared = merged;
        }
    }
    let mut b = buckets.borrow_mut();
    let shared = b.shared.get(user);
    let bucket = match (b.users.get(user).copied(), shared) {
        (Some(mine), Some(theirs)) => policy.stricter(mine, theirs, now),
        (Some(mine), None) => mine,
        (None, Some(theirs)) => theirs,
        (None, None) => policy.full(now),
    };
    let (bucket, verdict) = policy.take(bucket, now);
    if b.users.len() >= MAX_USERS && !b.users.contains_key(user) {
        b.users.retain(|_, bucket| policy.should_persist(*bucket));
    }
    b.users.insert(user.to_string(), bucket);
    let persist = if kv_write_ok && writes_shared(&policy, bucket, shared, now, b.written_at) {
        let mine: Vec<(&str, Bucket)> = b
            .users
            .iter()
            .filter(|(_, bucket)| policy.should_persist(**bucket))
            .map(|(u, b)| (u.as_str(), *b))
            .collect();
        let next = b.shared.merged(mine, &policy, now);
        let value = next.encode();
        b.shared = next;
        b.written_at = Some(now);
        Some(Persist { value, ttl: policy.shared_ttl() })
    } else {
        None
    };
    (verdict, persist)
}

/// Writes the shared set of throttled buckets (meant for `ctx.wait_until`; charged when
/// scheduled).
pub async fn persist(kv: io::Kv, p: Persist) {
    io::kv_put(kv, SHARED_KEY.to_string(), p.value, p.ttl).await
}
