//! Counting the worker's own daily use (contract §5): the IO of
//! [`edgesync_core::accounting`], which decides when to flush and what the day's totals
//! are believed to be. A flush is one upsert of the day's `usage_daily` row (1 row
//! written) that returns the row; a read is one select (1 row, 2 with yesterday's). Both
//! run after the response (`waitUntil`), except the admin report's flush.

use std::cell::RefCell;

use worker::D1Database;

use edgesync_core::accounting::{Due, Flush, Ledger, Policy, Row};
use edgesync_core::error::ApiError;
use edgesync_core::ops::Ops;
use edgesync_core::quota::{Quotas, Usage};

use crate::io::{self, num};

/// Today's use as this isolate believes it (see `accounting`). A new isolate, or the
/// first request of a new day, reads the day's row first (one D1 read, charged to the
/// usage counts, not to the request's `X-Sync-Ops`), so it never acts knowing nothing.
pub async fn today(acc: &RefCell<Ledger>, env: &worker::Env, now: i64, p: &Policy) -> Usage {
    if acc.borrow_mut().needs_read(now) {
        if let Ok(db) = env.d1("DB") {
            if let Err(e) = read(acc, &db, now).await {
                worker::console_warn!("usage read failed: {e:?}");
            }
        }
    }
    acc.borrow_mut().view(now, p)
}

/// Adds one request's cost; says whether a flush or a read is due.
pub fn record(acc: &RefCell<Ledger>, cost: &Usage, now: i64, q: &Quotas, p: &Policy) -> Due {
    acc.borrow_mut().record(cost, now, q, p)
}

const COLUMNS: &str = "requests, rows_read, rows_written, kv_reads, kv_writes, kv_hits, kv_misses, flushes, isolates, \
     declared_requests, declared_rows_read, declared_rows_written, declared_kv_reads, declared_kv_writes";

/// `Row::upsert` in SQL: the counts are added, the flush counted, the isolate counted on
/// its first flush of the day, its declaration moved by ?10..?14 (never below 0).
const FLUSH: &str = "INSERT INTO usage_daily (day, requests, rows_read, rows_written, kv_reads, kv_writes, kv_hits, \
     kv_misses, flushes, isolates, declared_requests, declared_rows_read, declared_rows_written, declared_kv_reads, \
     declared_kv_writes) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 1, ?9, MAX(?10, 0), MAX(?11, 0), MAX(?12, 0), MAX(?13, 0), MAX(?14, 0)) \
     ON CONFLICT (day) DO UPDATE SET \
     requests = requests + excluded.requests, rows_read = rows_read + excluded.rows_read, \
     rows_written = rows_written + excluded.rows_written, kv_reads = kv_reads + excluded.kv_reads, \
     kv_writes = kv_writes + excluded.kv_writes, kv_hits = kv_hits + excluded.kv_hits, \
     kv_misses = kv_misses + excluded.kv_misses, flushes = flushes + 1, isolates = isolates + excluded.isolates, \
     declared_requests = MAX(declared_requests + ?10, 0), declared_rows_read = MAX(declared_rows_read + ?11, 0), \
     declared_rows_written = MAX(declared_rows_written + ?12, 0), \
     declared_kv_reads = MAX(declared_kv_reads + ?13, 0), declared_kv_writes = MAX(declared_kv_writes + ?14, 0) \
     RETURNING day, requests, rows_read, rows_written, kv_reads, kv_writes, kv_hits, kv_misses, flushes, isolates, \
     declared_requests, declared_rows_read, declared_rows_written, declared_kv_reads, declared_kv_writes";

/// A `usage_daily` row as D1 returns it.
struct Stored {
    day: i64,
    requests: i64,
    rows_read: i64,
    rows_written: i64,
    kv_reads: i64,
    kv_writes: i64,
    kv_hits: i64,
    kv_misses: i64,
    flushes: i64,
    isolates: i64,
    declared_requests: i64,
    declared_rows_read: i64,
    declared_rows_written: i64,
    declared_kv_reads: i64,
    declared_kv_writes: i64,
}

impl io::FromRow for Stored {
    fn from_row(r: io::Row<'_>) -> Result<Self, ApiError> {
        Ok(Stored {
            day: r.int("day")?,
            requests: r.int("requests")?,
            rows_read: r.int("rows_read")?,
            rows_written: r.int("rows_written")?,
            kv_reads: r.int("kv_reads")?,
            kv_writes: r.int("kv_writes")?,
            kv_hits: r.int("kv_hits")?,
            kv_misses: r.int("kv_misses")?,
            flushes: r.int("flushes")?,
            isolates: r.int("isolates")?,
            declared_requests: r.int("declared_requests")?,
            declared_rows_read: r.int("declared_rows_read")?,
            declared_rows_written: r.int("declared_rows_written")?,
            declared_kv_reads: r.int("declared_kv_reads")?,
            declared_kv_writes: r.int("declared_kv_writes")?,
        })
    }
}

impl From<Stored> for Row {
    fn from(t: Stored) -> Row {
        let n = |v: i64| u64::try_from(v).unwrap_or(0);
        Row {
            totals: Usage {
                requests: n(t.requests),
                rows_read: n(t.rows_read),
                rows_written: n(t.rows_written),
                kv_reads: n(t.kv_reads),
                kv_writes: n(t.kv_writes),
                kv_hits: n(t.kv_hits),
                kv_misses: n(t.kv_misses),
            },
            flushes: n(t.flushes),
            isolates: n(t.isolates),
            declared: [
                n(t.declared_requests),
                n(t.declared_rows_read),
                n(t.declared_rows_written),
                n(t.declared_kv_reads),
                n(t.declared_kv_writes),
            ],
        }
    }
}

fn cost_of(ops: &Ops) -> Usage {
    Usage { rows_read: ops.rows_read.get(), rows_written: ops.rows_written.get(), ..Usage::default() }
}

/// Moves this isolate's pending use into D1 and takes back the row. The flush's own D1
/// cost is counted in a later flush, unless `ops` (the admin report's request) is given
/// to be charged with it. On failure the use stays pending. Returns the day's flushed
/// totals (exact: every isolate's flushed counts, this one's up to now).
pub async fn flush(
    acc: &RefCell<Ledger>,
    db: &D1Database,
    now: i64,
    q: &Quotas,
    p: &Policy,
    ops: Option<&Ops>,
) -> Result<Usage, ApiError> {
    let (today, sent) = acc.borrow_mut().begin_flush(now, q, p);
    let own = Ops::default();
    let result = send(db, today, &sent, &own).await;
    if let Some(ops) = ops {
        ops.d1_batch(own.d1.get(), own.rows_read.get(), own.rows_written.get(), own.d1_ms.get());
    }
    let cost = cost_of(&own);
    let row = match &result {
        Ok(Some(row)) => Ok(*row),
        _ => Err(()),
    };
    let mut a = acc.borrow_mut();
    a.end_flush(today, &sent, row, now, ops.is_none().then_some(&cost), js_sys::Math::random());
    let flushed = a.flushed();
    drop(a);
    match result {
        Ok(Some(_)) => Ok(flushed),
        Ok(None) => Err(ApiError::Internal("usage upsert returned no row".into())),
        Err(e) => Err(e),
    }
}

async fn send(db: &D1Database, today: i64, f: &Flush, ops: &Ops) -> Result<Option<Row>, ApiError> {
    let n = |v: u64| num(i64::try_from(v).unwrap_or(i64::MAX));
    let p = &f.add;
    let d = |k: usize| num(f.declare[k]);
    let stmt = db.prepare(FLUSH).bind(&[
        num(today),
        n(p.requests),
        n(p.rows_read),
        n(p.rows_written),
        n(p.kv_reads),
        n(p.kv_writes),
        n(p.kv_hits),
        n(p.kv_misses),
        n(f.new_isolate),
        d(0),
        d(1),
        d(2),
        d(3),
        d(4),
    ])?;
    let res = io::batch(db, ops, vec![stmt]).await?;
    Ok(match res.first() {
        Some(r) => io::rows::<Stored>(r)?.into_iter().next().map(Row::from),
        None => None,
    })
}

/// Reads today's row (and yesterday's, the first time) into the ledger; its cost is
/// counted in a later flush.
pub async fn read(acc: &RefCell<Ledger>, db: &D1Database, now: i64) -> Result<(), ApiError> {
    let (today, yesterday) = {
        let mut a = acc.borrow_mut();
        let yesterday = a.wants_yesterday();
        (a.begin_read(now), yesterday)
    };
    let own = Ops::default();
    let sql = format!("SELECT day, {COLUMNS} FROM usage_daily WHERE day = ?1 OR day = ?2");
    let result: Result<(Option<Row>, Option<Row>), ApiError> = async {
        let stmt = db.prepare(&sql).bind(&[num(today), num(if yesterday { today - 1 } else { today })])?;
        let res = io::batch(db, &own, vec![stmt]).await?;
        let mut rows = (None, None);
        if let Some(r) = res.first() {
            for s in io::rows::<Stored>(r)? {
                if s.day == today {
                    rows.0 = Some(Row::from(s));
                } else {
                    rows.1 = Some(Row::from(s));
                }
            }
        }
        Ok(rows)
    }
    .await;
    let cost = cost_of(&own);
    let ok = result.as_ref().map(|r| *r).map_err(|_| ());
    acc.borrow_mut().end_read(today, ok, now, &cost, js_sys::Math::random());
    result.map(|_| ())
}
