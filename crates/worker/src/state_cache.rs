//! The user's state token in Workers KV (`st:<user>` = `<seq>:<UTC day>`), so that "has
//! anything changed?" is answered without D1 (contract §3.2): a conditional GET whose tag
//! matches, an idle `POST /api/sync` at the client's cursor.
//!
//! **Written when the state changes, ahead of the commit.** The driver hands
//! [`put`] to the store as its write-ahead hook (`Store::with_ahead`): before a write batch
//! that would commit sequence `seq` is sent, the token `seq` is written and awaited. Never
//! on a read: a read that finds the token missing or different writes nothing.
//!
//! **Trusted in any isolate**, under one rule (decided in `edgesync_core::pipeline`,
//! `Held`): the token may only answer "nothing changed", and only when it *equals what the
//! client already holds* (its `If-None-Match` tag or its cursor). A KV value is never
//! handed to a client as a new cursor or ETag, so a check without `If-None-Match` goes to
//! D1. Why that is safe:
//! - a commit that fails after its token was written (a lost race that re-plans, a crash,
//!   a D1 error) leaves a *phantom* sequence that no client holds: it matches nobody and
//!   costs a D1 read, never a missed change;
//! - a crash between the commit and the answer leaves the token equal to D1 (it was
//!   written first), so after a crash KV never claims an older state than D1;
//! - a token *behind* D1 can only come from a write that was skipped (the KV write budget)
//!   or lost (KV takes one write per second per key; racing pushes' writes can land out of
//!   order; another location sees a write up to 60 s late). Every token carries a TTL of
//!   `STATE_CACHE_TTL`, so a stale one lives at most that long: the staleness bound. A
//!   device may hear "nothing changed" for at most `STATE_CACHE_TTL` seconds after a
//!   change, and its next pull after that finds it by cursor;
//! - only tokens written today are read: near the KV write budget the worker stops writing
//!   them, so a token from an earlier day may predate changes made after that.
//!
//! Near either KV budget the worker neither reads nor trusts the token and answers from D1.

use edgesync_core::ops::Ops;

use crate::io;

fn key(user: &str) -> String {
    format!("st:{user}")
}

/// The cached sequence of `user`, if written on `today`. Costs one KV read.
pub async fn get(kv: &io::Kv, user: &str, today: i64, ops: &Ops) -> Option<i64> {
    let value = io::kv_get(kv, &key(user), ops).await?;
    parse(&value).filter(|(_, day)| *day == today).map(|(seq, _)| seq)
}

fn parse(value: &str) -> Option<(i64, i64)> {
    let (seq, day) = value.split_once(':')?;
    Some((seq.parse().ok()?, day.parse().ok()?))
}

/// Stores `seq` for `user`, stamped with the UTC `day`, and waits for the write: the
/// write-ahead hook of the user's store. Costs one KV write.
pub async fn put(kv: io::Kv, user: String, seq: i64, day: i64, ttl: u64, ops: &Ops) {
    io::kv_put_now(kv, key(&user), format!("{seq}:{day}"), ttl, ops).await
}
