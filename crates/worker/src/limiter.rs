//! Per-user rate limiting at the edge: token buckets in isolate memory (exact for every
//! request this isolate serves), restored from KV when a user first shows up in an
//! isolate, and persisted to KV only while the user is being throttled, at most once
//! per second per user (KV allows one write per second per key; contract §8.8).

use std::collections::HashMap;

use worker::KvStore;

use edgesync_core::envelope::UserId;
use edgesync_core::ops::Ops;
use edgesync_core::ratelimit::{Bucket, Policy, Verdict};

use crate::io;

/// Users remembered per isolate before full (idle) buckets are forgotten.
const MAX_USERS: usize = 10_000;

struct Entry {
    bucket: Bucket,
    persisted_at: i64,
}

/// This isolate's buckets, by user.
#[derive(Default)]
pub struct Buckets(HashMap<String, Entry>);

fn key(user: &str) -> String {
    format!("rl:{user}")
}

/// A bucket to persist after the response, if any.
pub struct Persist {
    pub key: String,
    pub bucket: Bucket,
}

/// Takes one token for `user`. Returns the verdict, and the bucket to write to KV when
/// the user is throttled (and `kv_write_ok`).
pub async fn take(
    buckets: &std::cell::RefCell<Buckets>,
    kv: &KvStore,
    user: &UserId,
    policy: Policy,
    now: i64,
    kv_write_ok: bool,
    ops: &Ops,
) -> (Verdict, Option<Persist>) {
    let user = user.as_str();
    let known = buckets.borrow().0.get(user).map(|e| e.bucket);
    let bucket = match known {
        Some(b) => b,
        None => restore(kv, user, ops).await.unwrap_or_else(|| policy.full(now)),
    };
    let (bucket, verdict) = policy.take(bucket, now);
    let mut map = buckets.borrow_mut();
    if map.0.len() >= MAX_USERS && !map.0.contains_key(user) {
        map.0.retain(|_, e| policy.should_persist(e.bucket));
    }
    let entry = map.0.entry(user.to_string()).or_insert(Entry { bucket, persisted_at: i64::MIN });
    entry.bucket = bucket;
    let due = now.saturating_sub(entry.persisted_at) >= 1_000;
    let persist = if kv_write_ok && due && policy.should_persist(bucket) {
        entry.persisted_at = now;
        Some(Persist { key: key(user), bucket })
    } else {
        None
    };
    (verdict, persist)
}

async fn restore(kv: &KvStore, user: &str, ops: &Ops) -> Option<Bucket> {
    let text = io::kv_get(kv, &key(user), ops).await?;
    serde_json::from_str(&text).ok()
}

/// Writes a throttled user's bucket; it expires once it would have refilled anyway.
pub async fn persist(kv: KvStore, p: Persist, ttl: u64) {
    match serde_json::to_string(&p.bucket) {
        Ok(value) => io::kv_put(kv, p.key, value, ttl).await,
        Err(e) => worker::console_warn!("rate limit persist failed: {e}"),
    }
}
