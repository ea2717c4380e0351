//! Per-user rate limiting at the edge: token buckets in isolate memory (exact for every
//! request this isolate serves), restored from KV when a user first shows up in an
//! isolate, and persisted to KV only while the user is being throttled, at most once
//! per second per user (KV allows one write per second per key; contract §8.8).

use std::cell::RefCell;
use std::collections::HashMap;

use worker::KvStore;

use crate::ops::Ops;
use crate::ratelimit::{Bucket, Policy, Verdict};

/// Users remembered per isolate before full (idle) buckets are forgotten.
const MAX_USERS: usize = 10_000;

struct Entry {
    bucket: Bucket,
    persisted_at: i64,
}

thread_local! {
    static BUCKETS: RefCell<HashMap<String, Entry>> = RefCell::new(HashMap::new());
}

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
    kv: &KvStore,
    user: &str,
    policy: Policy,
    now: i64,
    kv_write_ok: bool,
    ops: &Ops,
) -> (Verdict, Option<Persist>) {
    let known = BUCKETS.with(|b| b.borrow().get(user).map(|e| e.bucket));
    let bucket = match known {
        Some(b) => b,
        None => restore(kv, user, ops).await.unwrap_or_else(|| policy.full(now)),
    };
    let (bucket, verdict) = policy.take(bucket, now);
    let persist = BUCKETS.with(|b| {
        let mut map = b.borrow_mut();
        if map.len() >= MAX_USERS && !map.contains_key(user) {
            map.retain(|_, e| policy.should_persist(e.bucket));
        }
        let entry = map.entry(user.to_string()).or_insert(Entry { bucket, persisted_at: i64::MIN });
        entry.bucket = bucket;
        let due = now.saturating_sub(entry.persisted_at) >= 1_000;
        if kv_write_ok && due && policy.should_persist(bucket) {
            entry.persisted_at = now;
            Some(Persist { key: key(user), bucket })
        } else {
            None
        }
    });
    (verdict, persist)
}

async fn restore(kv: &KvStore, user: &str, ops: &Ops) -> Option<Bucket> {
    let started = worker::Date::now().as_millis();
    let got = kv.get(&key(user)).json::<Bucket>().await;
    ops.kv(1, 0, worker::Date::now().as_millis().saturating_sub(started) as f64);
    got.ok().flatten()
}

/// Writes a throttled user's bucket; it expires once it would have refilled anyway.
pub async fn persist(kv: KvStore, p: Persist, ttl: u64) {
    let result = match kv.put(&p.key, &p.bucket) {
        Ok(b) => b.expiration_ttl(ttl.max(60)).execute().await,
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        worker::console_warn!("rate limit persist failed: {e}");
    }
}
