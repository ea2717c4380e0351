//! The user's state token in Workers KV, so that the common "nothing changed" check is
//! answered without D1 (contract §3.2). Written through after every accepted push and
//! filled when a read finds it missing or behind D1, always with a TTL, so a value
//! that is stale (a lost write, a slower location) lives at most `STATE_CACHE_TTL`.
//! The value is `<seq>:<UTC day>`, and only tokens written today are trusted: when the KV
//! write budget runs out the worker stops writing through, so a token that outlived the
//! day it was written in may predate changes made after the budget ran out. Whether a
//! token may answer is decided in `edgesync_core::pipeline`; this module reads and
//! writes it.

use worker::KvStore;

use edgesync_core::ops::Ops;

use crate::io;

fn key(user: &str) -> String {
    format!("st:{user}")
}

/// The cached sequence of `user`, if written on `today`. Costs one KV read.
pub async fn get(kv: &KvStore, user: &str, today: i64, ops: &Ops) -> Option<i64> {
    let value = io::kv_get(kv, &key(user), ops).await?;
    parse(&value).filter(|(_, day)| *day == today).map(|(seq, _)| seq)
}

fn parse(value: &str) -> Option<(i64, i64)> {
    let (seq, day) = value.split_once(':')?;
    Some((seq.parse().ok()?, day.parse().ok()?))
}

/// Stores `seq` for `user`, stamped with the UTC `day`. Meant for `ctx.wait_until`.
pub async fn put(kv: KvStore, user: String, seq: i64, day: i64, ttl: u64) {
    io::kv_put(kv, key(&user), format!("{seq}:{day}"), ttl).await
}
