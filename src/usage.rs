//! Counting the worker's own daily use (contract §5). Each isolate adds every request's
//! cost to memory and flushes the sum to D1 in one upsert every N requests or T seconds;
//! the upsert returns the day's totals from every isolate, which is how an isolate
//! learns the global picture. So counting costs one D1 row write per flush, never one
//! per request.

use std::cell::RefCell;

use serde_json::{Map, Value};
use wasm_bindgen::JsValue;
use worker::D1Database;

use crate::quota::{day, Usage};

#[derive(Default)]
struct Acc {
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

thread_local! {
    static ACC: RefCell<Acc> = RefCell::new(Acc::default());
}

fn roll(acc: &mut Acc, now: i64) {
    let today = day(now);
    if acc.day != today {
        *acc = Acc { day: today, last_flush_ms: i64::MIN, ..Acc::default() };
    }
}

/// Today's use as this isolate sees it: the last totals plus what it has not flushed.
pub fn view(now: i64) -> Usage {
    ACC.with(|a| {
        let mut a = a.borrow_mut();
        roll(&mut a, now);
        let mut u = a.totals;
        u.add(&a.in_flight);
        u.add(&a.pending);
        u
    })
}

/// Adds one request's cost. Returns true when a flush is due.
pub fn record(cost: &Usage, now: i64, every_requests: u64, every_secs: u64) -> bool {
    ACC.with(|a| {
        let mut a = a.borrow_mut();
        roll(&mut a, now);
        a.pending.add(cost);
        a.pending_requests += cost.requests;
        let stale = now.saturating_sub(a.last_flush_ms) >= (every_secs as i64) * 1_000;
        !a.flushing && (a.pending_requests >= every_requests || stale)
    })
}

const FLUSH: &str = "INSERT INTO usage_daily (day, requests, rows_read, rows_written, kv_reads, kv_writes, kv_hits, kv_misses) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (day) DO UPDATE SET \
     requests = requests + excluded.requests, rows_read = rows_read + excluded.rows_read, \
     rows_written = rows_written + excluded.rows_written, kv_reads = kv_reads + excluded.kv_reads, \
     kv_writes = kv_writes + excluded.kv_writes, kv_hits = kv_hits + excluded.kv_hits, \
     kv_misses = kv_misses + excluded.kv_misses \
     RETURNING requests, rows_read, rows_written, kv_reads, kv_writes, kv_hits, kv_misses";

fn n(v: u64) -> JsValue {
    JsValue::from_f64(v as f64)
}

fn field(row: &Map<String, Value>, k: &str) -> u64 {
    row.get(k).and_then(Value::as_f64).map_or(0, |f| f as u64)
}

/// Moves this isolate's pending use into D1 and takes back the day's totals. The flush's
/// own D1 cost is counted in the next flush. On failure the use stays pending.
/// `ops`, when given, is charged the flush's own D1 cost (the admin report shows it).
pub async fn flush(db: &D1Database, now: i64, ops: Option<&crate::ops::Ops>) -> Result<Usage, String> {
    let (today, pending) = ACC.with(|a| {
        let mut a = a.borrow_mut();
        roll(&mut a, now);
        a.flushing = true;
        a.pending_requests = 0;
        a.last_flush_ms = now;
        let p = std::mem::take(&mut a.pending);
        a.in_flight.add(&p);
        (a.day, p)
    });
    let p = &pending;
    let stmt = db
        .prepare(FLUSH)
        .bind(&[
            JsValue::from_f64(today as f64),
            n(p.requests),
            n(p.rows_read),
            n(p.rows_written),
            n(p.kv_reads),
            n(p.kv_writes),
            n(p.kv_hits),
            n(p.kv_misses),
        ])
        .map_err(|e| e.to_string());
    let result = match stmt {
        Ok(s) => s.all().await.map_err(|e| e.to_string()),
        Err(e) => Err(e),
    };
    let meta = result.as_ref().ok().and_then(|r| r.meta().ok().flatten());
    let (read, written) = meta.as_ref().map_or((0, 0), |m| {
        (m.rows_read.unwrap_or(0) as u64, m.rows_written.unwrap_or(0) as u64)
    });
    if let Some(ops) = ops {
        ops.d1_batch(1, read, written, 0.0);
    }
    ACC.with(|a| {
        let mut a = a.borrow_mut();
        a.flushing = false;
        a.in_flight = Usage::default();
        match &result {
            Ok(res) if a.day == today => {
                let row = res.results::<Map<String, Value>>().ok().and_then(|r| r.into_iter().next());
                if let Some(row) = row {
                    a.totals = Usage {
                        requests: field(&row, "requests"),
                        rows_read: field(&row, "rows_read"),
                        rows_written: field(&row, "rows_written"),
                        kv_reads: field(&row, "kv_reads"),
                        kv_writes: field(&row, "kv_writes"),
                        kv_hits: field(&row, "kv_hits"),
                        kv_misses: field(&row, "kv_misses"),
                    };
                }
                // The flush's own cost goes into the next flush, unless the caller's
                // request (the admin report) already counts it.
                if ops.is_none() {
                    a.pending.rows_read += read;
                    a.pending.rows_written += written;
                }
            }
            Ok(_) => {}
            Err(_) => a.pending.add(&pending),
        }
    });
    result.map(|_| view(now))
}
