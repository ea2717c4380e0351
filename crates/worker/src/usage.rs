//! Counting the worker's own daily use (contract §5). Each isolate adds every request's
//! cost to memory and flushes the sum to D1 in one upsert every N requests or T seconds;
//! the upsert returns the day's totals from every isolate, which is how an isolate
//! learns the global picture. So counting costs one D1 row write per flush, never one
//! per request.

use std::cell::RefCell;

use serde::Deserialize;
use worker::D1Database;

use edgesync_core::error::ApiError;
use edgesync_core::ops::Ops;
use edgesync_core::quota::{day, Usage};
use edgesync_core::reply::lenient_int;

use crate::io::{self, num};

/// This isolate's counters for the current UTC day.
#[derive(Default)]
pub struct Acc {
    day: i64,
    /// The day's totals as of the last flush (all isolates).
    totals: Usage,
    /// This isolate's use since the last flush.
    pending: Usage,
    /// Use handed to a flush that has not answered yet (still counts in `view`).
    in_flight: Usage,
    pending_requests: u64,
    last_flush_ms: i64,
    flushing: bool,
}

impl Acc {
    fn roll(&mut self, now: i64) {
        let today = day(now);
        if self.day != today {
            *self = Acc { day: today, last_flush_ms: i64::MIN, ..Acc::default() };
        }
    }
}

/// Today's use as this isolate sees it: the last totals plus what it has not flushed.
pub fn view(acc: &RefCell<Acc>, now: i64) -> Usage {
    let mut a = acc.borrow_mut();
    a.roll(now);
    let mut u = a.totals;
    u.add(&a.in_flight);
    u.add(&a.pending);
    u
}

/// Adds one request's cost. Returns true when a flush is due.
pub fn record(acc: &RefCell<Acc>, cost: &Usage, now: i64, every_requests: u64, every_secs: u64) -> bool {
    let mut a = acc.borrow_mut();
    a.roll(now);
    a.pending.add(cost);
    a.pending_requests += cost.requests;
    let stale = now.saturating_sub(a.last_flush_ms) >= (every_secs as i64).saturating_mul(1_000);
    !a.flushing && (a.pending_requests >= every_requests || stale)
}

const FLUSH: &str =
    "INSERT INTO usage_daily (day, requests, rows_read, rows_written, kv_reads, kv_writes, kv_hits, kv_misses) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (day) DO UPDATE SET \
     requests = requests + excluded.requests, rows_read = rows_read + excluded.rows_read, \
     rows_written = rows_written + excluded.rows_written, kv_reads = kv_reads + excluded.kv_reads, \
     kv_writes = kv_writes + excluded.kv_writes, kv_hits = kv_hits + excluded.kv_hits, \
     kv_misses = kv_misses + excluded.kv_misses \
     RETURNING requests, rows_read, rows_written, kv_reads, kv_writes, kv_hits, kv_misses";

/// The day's totals as the upsert returns them.
#[derive(Deserialize)]
struct Totals {
    #[serde(deserialize_with = "lenient_int")]
    requests: i64,
    #[serde(deserialize_with = "lenient_int")]
    rows_read: i64,
    #[serde(deserialize_with = "lenient_int")]
    rows_written: i64,
    #[serde(deserialize_with = "lenient_int")]
    kv_reads: i64,
    #[serde(deserialize_with = "lenient_int")]
    kv_writes: i64,
    #[serde(deserialize_with = "lenient_int")]
    kv_hits: i64,
    #[serde(deserialize_with = "lenient_int")]
    kv_misses: i64,
}

impl From<Totals> for Usage {
    fn from(t: Totals) -> Usage {
        let n = |v: i64| u64::try_from(v).unwrap_or(0);
        Usage {
            requests: n(t.requests),
            rows_read: n(t.rows_read),
            rows_written: n(t.rows_written),
            kv_reads: n(t.kv_reads),
            kv_writes: n(t.kv_writes),
            kv_hits: n(t.kv_hits),
            kv_misses: n(t.kv_misses),
        }
    }
}

/// Moves this isolate's pending use into D1 and takes back the day's totals. The flush's
/// own D1 cost is counted in the next flush, unless `ops` (the admin report's request)
/// is given to be charged with it. On failure the use stays pending.
pub async fn flush(acc: &RefCell<Acc>, db: &D1Database, now: i64, ops: Option<&Ops>) -> Result<Usage, ApiError> {
    let (today, pending) = {
        let mut a = acc.borrow_mut();
        a.roll(now);
        a.flushing = true;
        a.pending_requests = 0;
        a.last_flush_ms = now;
        let p = std::mem::take(&mut a.pending);
        a.in_flight.add(&p);
        (a.day, p)
    };
    let own = Ops::default();
    let result = send(db, today, &pending, &own).await;
    if let Some(ops) = ops {
        ops.d1_batch(own.d1.get(), own.rows_read.get(), own.rows_written.get(), own.d1_ms.get());
    }
    let mut a = acc.borrow_mut();
    a.flushing = false;
    a.in_flight = Usage::default();
    match &result {
        Ok(totals) if a.day == today => {
            if let Some(t) = totals {
                a.totals = *t;
            }
            if ops.is_none() {
                a.pending.rows_read += own.rows_read.get();
                a.pending.rows_written += own.rows_written.get();
            }
        }
        Ok(_) => {}
        Err(_) => a.pending.add(&pending),
    }
    drop(a);
    result.map(|_| view(acc, now))
}

async fn send(db: &D1Database, today: i64, p: &Usage, ops: &Ops) -> Result<Option<Usage>, ApiError> {
    let n = |v: u64| num(i64::try_from(v).unwrap_or(i64::MAX));
    let stmt = db.prepare(FLUSH).bind(&[
        num(today),
        n(p.requests),
        n(p.rows_read),
        n(p.rows_written),
        n(p.kv_reads),
        n(p.kv_writes),
        n(p.kv_hits),
        n(p.kv_misses),
    ])?;
    let res = io::batch(db, ops, vec![stmt]).await?;
    let totals = match res.first() {
        Some(r) => io::rows::<Totals>(r)?.into_iter().next().map(Usage::from),
        None => None,
    };
    Ok(totals)
}
