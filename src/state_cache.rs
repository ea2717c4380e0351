//! The user's state token in Workers KV, so that the common "nothing changed" check is
//! answered without D1 (contract §3.2). Written through after every accepted push and
//! filled when a read finds it missing or behind D1, always with a TTL, so a value
//! that is stale (a lost write, a slower location) lives at most `STATE_CACHE_TTL`.
//! The value is `<seq>:<UTC day>`, and only tokens written today are trusted: when the KV
//! write budget runs out the worker stops writing through, so a token that outlived the
//! day it was written in may predate changes made after the budget ran out.

use std::cell::RefCell;
use std::collections::HashSet;

use worker::KvStore;

use crate::ops::Ops;

/// Users whose KV token this isolate has seen agree with D1 (or has written itself).
/// Only their tokens answer requests: a token written before this isolate started may
/// be behind D1 if the isolate that committed the change died before its deferred
/// write-through (a crash or redeploy). Costs one D1 read per user per isolate.
const MAX_VERIFIED: usize = 50_000;

thread_local! {
    static VERIFIED: RefCell<HashSet<String>> = RefCell::new(HashSet::new());
}

pub fn verified(user: &str) -> bool {
    VERIFIED.with(|v| v.borrow().contains(user))
}

pub fn mark_verified(user: &str) {
    VERIFIED.with(|v| {
        let mut v = v.borrow_mut();
        if v.len() >= MAX_VERIFIED {
            v.clear();
        }
        v.insert(user.to_string());
    });
}

fn key(user: &str) -> String {
    format!("st:{user}")
}

/// The cached sequence of `user`, if written on `today`. Costs one KV read.
pub async fn get(kv: &KvStore, user: &str, today: i64, ops: &Ops) -> Option<i64> {
    let started = worker::Date::now().as_millis();
    let value = kv.get(&key(user)).text().await;
    ops.kv(1, 0, worker::Date::now().as_millis().saturating_sub(started) as f64);
    match value {
        Ok(v) => v.as_deref().and_then(parse).filter(|(_, day)| *day == today).map(|(seq, _)| seq),
        Err(e) => {
            worker::console_warn!("state cache read failed: {e}");
            None
        }
    }
}

fn parse(value: &str) -> Option<(i64, i64)> {
    let (seq, day) = value.split_once(':')?;
    Some((seq.parse().ok()?, day.parse().ok()?))
}

/// Stores `seq` for `user`, stamped with the UTC `day`. Meant for `ctx.wait_until`:
/// never delays a response.
pub async fn put(kv: KvStore, user: String, seq: i64, day: i64, ttl: u64) {
    let result = match kv.put(&key(&user), format!("{seq}:{day}")) {
        Ok(b) => b.expiration_ttl(ttl).execute().await,
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        worker::console_warn!("state cache write failed: {e}");
    }
}
