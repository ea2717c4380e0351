//! When an isolate writes its usage counts to D1, and what it believes the day's totals
//! are in between (contract §5: counting must not cost a noticeable share of the write
//! quota). Pure: the worker's `usage.rs` does the IO; `accounting_sim.rs` (tests) runs
//! the same code for 100 isolates over simulated days.
//!
//! **Why fixed intervals cannot work.** With N isolates each holding up to `p` unflushed
//! counts, an isolate that assumes the others hold nothing is off by up to N·p. Within 1%
//! of a limit L at N = 100 that needs p ≤ L/10,000 (10 requests of 100,000): thousands of
//! flushes a day.
//!
//! **The policy: flush by size, and estimate what the others hold.** An isolate flushes
//! when what it holds for some limit reaches a threshold `X` (jittered ×0.5–1.5 so that
//! isolates do not flush in step). In the `usage_daily` row every isolate also *declares*
//! the size of its flushes (`declared_*`: the sum over isolates of each one's last flush,
//! capped by its threshold) and counts itself once a day (`isolates`). What another
//! isolate holds unflushed is then, on average, about half its declared size
//! ([`Policy::age`]) — whatever it is doing, even if it has died (its counts were counted
//! by Cloudflare but never reach D1). So every isolate acts on
//!
//! `estimate = totals read + own unflushed + age × (declared − own declared) + rate × time since the read`
//!
//! where `rate` is the other isolates' growth seen between this isolate's reads of the
//! row. The errors of the N − 1 terms are independent and roughly uniform, so their sum
//! is off by about `X·√(N/12)`, not `N·X`: with `X = spread × tolerance / √N` the error
//! stays within the tolerance (`spread` 1.3, about √12/3: three standard deviations). The tolerance is
//! `USAGE_ACCURACY` (1%) of each limit past 80% of it, and while below 80% `far` × the
//! headroom to 80%, so isolates flush rarely far from every limit. A limit stops
//! mattering once the day's last decision on it is taken (2% past `DEGRADE_AT`; for rows
//! written, 2% past the limit). N is the larger of today's and yesterday's `isolates`.
//! Reads are cheap (1 row; the Free plan has 5,000,000 a day), so the row is read every
//! `reads`-th of the time in which the others use a tolerance. A new isolate (or a new
//! day) reads today's and yesterday's rows once before acting; `USAGE_FLUSH_REQUESTS` caps
//! the requests an isolate holds, `USAGE_FLUSH_SECS` how long it holds any.

use std::collections::VecDeque;

use crate::quota::{day, Quotas, Usage};

/// The counters that have a daily limit, in this order.
pub const LIMITS: [&str; 5] = ["requests", "rows_read", "rows_written", "kv_reads", "kv_writes"];

/// The limited counters of a `Usage`, in [`LIMITS`] order.
pub fn counts(u: &Usage) -> [u64; 5] {
    [u.requests, u.rows_read, u.rows_written, u.kv_reads, u.kv_writes]
}

fn limits(q: &Quotas) -> [u64; 5] {
    [q.requests, q.rows_read, q.rows_written, q.kv_reads, q.kv_writes]
}

/// The share of each limit at which the worker takes its last decision of the day:
/// `DEGRADE_AT` (reads pause; for KV writes: KV stops being written), and for rows
/// written the limit itself (writes are refused).
fn stops(q: &Quotas) -> [f64; 5] {
    [q.degrade_at, q.degrade_at, 1.0, q.degrade_at, q.degrade_at]
}

fn with_counts(mut u: Usage, c: [u64; 5]) -> Usage {
    [u.requests, u.rows_read, u.rows_written, u.kv_reads, u.kv_writes] = c;
    u
}

/// The knobs (worker: `USAGE_*` vars).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    /// `USAGE_ACCURACY`: how close to the true totals, as a share of each limit, the
    /// estimate must be once usage passes `watch_at` (0.01).
    pub accuracy: f64,
    /// Past this share of a limit the tolerance stops shrinking with the headroom (0.8).
    pub watch_at: f64,
    /// Below `watch_at`, the tolerance is this share of the headroom to it.
    pub far: f64,
    /// Threshold = `spread × tolerance / √N`.
    pub spread: f64,
    /// Mean unflushed share of a declared flush size.
    pub age: f64,
    /// Reads of the row per time in which the other isolates use one tolerance.
    pub reads: f64,
    /// Reads are at least this far apart (ms), and at most this far.
    pub min_read_ms: i64,
    pub max_read_ms: i64,
    /// `USAGE_FLUSH_SECS` (ms): flush anything held this long (0: never by time).
    pub max_age_ms: i64,
    /// `USAGE_FLUSH_REQUESTS`: flush when this many requests are unflushed.
    pub max_pending_requests: u64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            accuracy: 0.01,
            watch_at: 0.8,
            far: 0.25,
            spread: 1.3,
            age: 0.55,
            reads: 4.0,
            min_read_ms: 120_000,
            max_read_ms: 3_600_000,
            max_age_ms: 14_400_000,
            max_pending_requests: 5_000,
        }
    }
}

/// The `usage_daily` row of a day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Row {
    pub totals: Usage,
    /// Upserts today (accounting's own rows written).
    pub flushes: u64,
    /// Isolates that flushed today.
    pub isolates: u64,
    /// Σ over isolates of each one's declared flush size, per limit.
    pub declared: [u64; 5],
}

/// One flush: what it adds to the row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flush {
    pub add: Usage,
    /// 1 on this isolate's first flush of the day.
    pub new_isolate: u64,
    /// The change of this isolate's declaration (new − old).
    pub declare: [i64; 5],
}

impl Row {
    /// The upsert of one flush, exactly as `usage.rs`'s SQL does it.
    pub fn upsert(row: Option<Row>, f: &Flush) -> Row {
        let mut r = row.unwrap_or_default();
        r.totals.add(&f.add);
        r.flushes += 1;
        r.isolates += f.new_isolate;
        for k in 0..5 {
            r.declared[k] = r.declared[k].saturating_add_signed(f.declare[k]);
        }
        r
    }
}

/// What the isolate should do after a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    Nothing,
    /// Read the row (today's and, the first time, yesterday's): no write.
    Read,
    Flush,
}

/// A reading of the row, with this isolate's own flushed total at that moment.
#[derive(Debug, Clone, Copy)]
struct Seen {
    at_ms: i64,
    row: Row,
    own: Usage,
}

/// One isolate's accounting for the current UTC day.
#[derive(Debug, Default)]
pub struct Ledger {
    day: i64,
    started: bool,
    seen: Option<Seen>,
    /// Earlier readings (for the others' rate), oldest first.
    history: VecDeque<Seen>,
    /// The other isolates' growth per ms, per limit, between readings.
    rate: [f64; 5],
    /// Yesterday's isolates: N before today's isolates have flushed.
    prior_isolates: u64,
    pending: Usage,
    in_flight: Usage,
    since_ms: i64,
    /// In [0, 1): the next flush comes at threshold × (0.5 + jitter).
    jitter: f64,
    busy: bool,
    /// Everything this isolate has flushed today (in the row).
    own: Usage,
    /// This isolate's declaration in the row.
    declared: [u64; 5],
    counted: bool,
}

impl Ledger {
    /// Readings kept for the rate, and how far back it looks (ms).
    const HISTORY: usize = 32;
    const RATE_SPAN_MS: i64 = 3_600_000;

    fn roll(&mut self, now: i64) {
        let today = day(now);
        if self.day != today || !self.started {
            // A new day drops the old day's unflushed counts (that day's decisions are over).
            *self = Ledger { day: today, started: true, since_ms: now, jitter: self.jitter, ..Ledger::default() };
        }
    }

    pub fn day(&self) -> i64 {
        self.day
    }

    /// The number of isolates to plan for (at least this one).
    fn isolates(&self) -> f64 {
        let today = self.seen.map_or(0, |s| s.row.isolates) + u64::from(!self.counted);
        today.max(self.prior_isolates).max(1) as f64
    }

    /// The day's totals this isolate acts on (see the module doc).
    pub fn view(&mut self, now: i64, p: &Policy) -> Usage {
        self.roll(now);
        let mut u = self.seen.map(|s| s.row.totals).unwrap_or_default();
        u.add(&self.in_flight);
        u.add(&self.pending);
        let Some(s) = self.seen else { return u };
        let since = (now - s.at_ms).max(0) as f64;
        let c = counts(&u);
        // isolates of yesterday that have not flushed today are taken to hold what this
        // one holds (the day started for all at once)
        let unseen = self.prior_isolates.saturating_sub(s.row.isolates + u64::from(!self.counted)) as f64;
        let mine = counts(&self.pending);
        let held: [f64; 5] = std::array::from_fn(|k| {
            p.age * s.row.declared[k].saturating_sub(self.declared[k]) as f64 + unseen * mine[k] as f64
        });
        with_counts(u, std::array::from_fn(|k| (c[k] as f64 + held[k] + self.rate[k] * since).round() as u64))
    }

    /// The tolerance per limit at these totals (counts), `None` once decided for the day.
    fn tolerance(est: &[u64; 5], q: &Quotas, p: &Policy) -> [Option<f64>; 5] {
        let (l, stop) = (limits(q), stops(q));
        std::array::from_fn(|k| {
            let (lim, e) = (l[k] as f64, est[k] as f64);
            if l[k] == 0 || e >= (stop[k] + 2.0 * p.accuracy) * lim {
                return None;
            }
            let near = p.accuracy * lim;
            Some(if e < p.watch_at * lim { (p.far * (p.watch_at * lim - e)).max(near) } else { near })
        })
    }

    /// The flush thresholds per limit (counts) at these estimated totals.
    pub fn thresholds(&self, est: &Usage, q: &Quotas, p: &Policy) -> [f64; 5] {
        let n = self.isolates().sqrt();
        Self::tolerance(&counts(est), q, p).map(|t| t.map_or(f64::INFINITY, |t| (p.spread * t / n).max(1.0)))
    }

    /// Adds one request's cost, then says what is due.
    pub fn record(&mut self, cost: &Usage, now: i64, q: &Quotas, p: &Policy) -> Due {
        self.roll(now);
        self.pending.add(cost);
        if self.busy {
            return Due::Nothing;
        }
        let Some(s) = self.seen else { return Due::Read };
        let est = self.view(now, p);
        let x = self.thresholds(&est, q, p);
        let pend = counts(&self.pending);
        let held_long = p.max_age_ms > 0 && (now - self.since_ms) as f64 >= p.max_age_ms as f64 * (0.5 + self.jitter);
        if !self.pending.is_zero()
            && (self.pending.requests >= p.max_pending_requests.max(1)
                || held_long
                || (0..5).any(|k| pend[k] > 0 && pend[k] as f64 >= x[k] * (0.5 + self.jitter)))
        {
            return Due::Flush;
        }
        // read again once the others may have used a share of a tolerance
        let tol = Self::tolerance(&counts(&est), q, p);
        let first = if self.history.is_empty() { p.min_read_ms } else { p.max_read_ms };
        let wait = (0..5)
            .filter_map(|k| tol[k].filter(|_| self.rate[k] > 0.0).map(|t| t / (p.reads * self.rate[k])))
            .fold(first as f64, f64::min)
            .max(p.min_read_ms as f64);
        if (now - s.at_ms) as f64 >= wait {
            Due::Read
        } else {
            Due::Nothing
        }
    }

    /// A read was sent.
    pub fn begin_read(&mut self, now: i64) -> i64 {
        self.roll(now);
        self.busy = true;
        self.day
    }

    /// A read answered: today's row (None before any flush today) and yesterday's if it
    /// was asked for; Err when it failed. `cost` is its D1 cost, counted from now on;
    /// `jitter` in [0, 1) places this isolate's first threshold.
    pub fn end_read(
        &mut self,
        sent_day: i64,
        rows: Result<(Option<Row>, Option<Row>), ()>,
        now: i64,
        cost: &Usage,
        jitter: f64,
    ) {
        if self.day != sent_day {
            return;
        }
        self.busy = false;
        if let Ok((today, yesterday)) = rows {
            if self.seen.is_none() {
                self.jitter = jitter.clamp(0.0, 1.0);
            }
            if let Some(y) = yesterday {
                self.prior_isolates = y.isolates;
            }
            self.learn(today.unwrap_or_default(), now);
            self.pending.add(cost);
        }
    }

    /// Whether this isolate has nothing to act on yet today (a new isolate or a new day):
    /// the worker then reads the row before serving the request (once a day).
    pub fn needs_read(&mut self, now: i64) -> bool {
        self.roll(now);
        self.seen.is_none() && !self.busy
    }

    /// Whether the first read should also fetch yesterday's row.
    pub fn wants_yesterday(&self) -> bool {
        self.seen.is_none()
    }

    /// A flush is sent: the pending use moves in flight. Returns the day and the flush.
    pub fn begin_flush(&mut self, now: i64, q: &Quotas, p: &Policy) -> (i64, Flush) {
        self.roll(now);
        let est = self.view(now, p);
        let x = self.thresholds(&est, q, p);
        self.busy = true;
        let add = std::mem::take(&mut self.pending);
        self.in_flight.add(&add);
        // the next flush, if this one's mix holds: scaled until its first threshold binds
        let sizes = counts(&add);
        let scale = (0..5)
            .filter(|&k| sizes[k] > 0 && x[k].is_finite())
            .map(|k| x[k] / sizes[k] as f64)
            .fold(f64::INFINITY, f64::min);
        // … or until the time cap, at the pace of this one
        let elapsed = (now - self.since_ms).max(1) as f64;
        let scale = if p.max_age_ms > 0 { scale.min(p.max_age_ms as f64 / elapsed) } else { scale };
        // … or until the request cap
        let scale =
            if sizes[0] > 0 { scale.min(p.max_pending_requests.max(1) as f64 / sizes[0] as f64) } else { scale };
        let scale = if scale.is_finite() { scale.max(0.0) } else { 1.0 };
        let declare = std::array::from_fn(|k| (sizes[k] as f64 * scale).round() as i64 - self.declared[k] as i64);
        (self.day, Flush { add, new_isolate: u64::from(!self.counted), declare })
    }

    /// A flush answered with the row after it (Err: it failed; the use is pending again).
    /// `cost` is the flush's own D1 cost when it is to be counted later (None when the
    /// caller charged it to a request); `jitter` in [0, 1) places the next threshold.
    pub fn end_flush(
        &mut self,
        sent_day: i64,
        sent: &Flush,
        row: Result<Row, ()>,
        now: i64,
        cost: Option<&Usage>,
        jitter: f64,
    ) {
        if self.day != sent_day {
            return;
        }
        self.busy = false;
        self.in_flight = Usage::default();
        match row {
            Ok(row) => {
                self.own.add(&sent.add);
                for k in 0..5 {
                    self.declared[k] = self.declared[k].saturating_add_signed(sent.declare[k]);
                }
                self.counted = true;
                self.since_ms = now;
                self.jitter = jitter.clamp(0.0, 1.0);
                self.learn(row, now);
                if let Some(c) = cost {
                    self.pending.add(c);
                }
            }
            Err(()) => self.pending.add(&sent.add),
        }
    }

    /// Takes a reading: the totals, and the others' growth since an earlier reading.
    fn learn(&mut self, row: Row, now: i64) {
        let seen = Seen { at_ms: now, row, own: self.own };
        if let Some(prev) = self.seen {
            self.history.push_back(prev);
        }
        while self.history.len() > Self::HISTORY
            || self.history.get(1).is_some_and(|h| now - h.at_ms >= Self::RATE_SPAN_MS)
        {
            self.history.pop_front();
        }
        if let Some(old) = self.history.front() {
            let span = (now - old.at_ms) as f64;
            let (t1, t0, o1, o0) = (counts(&row.totals), counts(&old.row.totals), counts(&self.own), counts(&old.own));
            if span > 0.0 {
                self.rate = std::array::from_fn(|k| {
                    let others = t1[k] as f64 - t0[k] as f64 - (o1[k] as f64 - o0[k] as f64);
                    others.max(0.0) / span
                });
            }
        }
        self.seen = Some(seen);
    }

    /// The day's flushed totals as last read (the admin report's exact figures).
    pub fn flushed(&self) -> Usage {
        self.seen.map(|s| s.row.totals).unwrap_or_default()
    }

    /// The row as last read.
    pub fn row(&self) -> Option<Row> {
        self.seen.map(|s| s.row)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(n: u64) -> Usage {
        Usage { requests: n, rows_read: 2 * n, ..Usage::default() }
    }

    #[test]
    fn upsert_adds_counts_and_declarations() {
        let f = Flush { add: req(3), new_isolate: 1, declare: [3, 6, 0, 0, 0] };
        let r = Row::upsert(None, &f);
        assert_eq!((r.flushes, r.isolates, r.totals, r.declared), (1, 1, req(3), [3, 6, 0, 0, 0]));
        let f = Flush { add: req(1), new_isolate: 0, declare: [-2, -4, 0, 0, 0] };
        let r = Row::upsert(Some(r), &f);
        assert_eq!((r.flushes, r.isolates, r.totals, r.declared), (2, 1, req(4), [1, 2, 0, 0, 0]));
    }

    fn run(l: &mut Ledger, row: &mut Option<Row>, cost: &Usage, now: i64, q: &Quotas, p: &Policy) -> Due {
        let due = l.record(cost, now, q, p);
        match due {
            Due::Read => {
                let d = l.begin_read(now);
                l.end_read(d, Ok((*row, None)), now, &Usage::default(), 0.5);
            }
            Due::Flush => {
                let (d, f) = l.begin_flush(now, q, p);
                let r = Row::upsert(*row, &f);
                *row = Some(r);
                l.end_flush(d, &f, Ok(r), now, None, 0.5);
            }
            Due::Nothing => {}
        }
        due
    }

    /// One isolate alone: its view is exact (its own declaration is not counted as
    /// somebody else's), it reads once, then flushes by size.
    #[test]
    fn a_lone_isolate_sees_exact_totals() {
        let (q, p) = (Quotas::default(), Policy { max_pending_requests: 5, ..Policy::default() });
        let mut l = Ledger::default();
        let mut row = None;
        let mut truth = Usage::default();
        let mut flushes = 0;
        for i in 0..200i64 {
            let now = i * 100;
            assert_eq!(l.view(now, &p), truth, "request {i}");
            truth.add(&req(1));
            let due = run(&mut l, &mut row, &req(1), now, &q, &p);
            assert_eq!(due == Due::Read, i == 0, "only the first request reads");
            flushes += u64::from(due == Due::Flush);
        }
        assert_eq!(flushes, 40, "one flush per 5 requests");
        assert_eq!(row.map(|r| (r.isolates, r.flushes)), Some((1, 40)));
    }

    #[test]
    fn another_isolates_declared_counts_are_estimated() {
        let (q, p) = (Quotas::default(), Policy::default());
        let row = Row { totals: req(1_000), flushes: 20, isolates: 4, declared: [300, 600, 0, 0, 0] };
        let mut l = Ledger::default();
        assert_eq!(l.record(&req(1), 0, &q, &p), Due::Read);
        let d = l.begin_read(0);
        l.end_read(d, Ok((Some(row), None)), 0, &Usage::default(), 0.0);
        // 1,000 flushed + 1 own + 0.55 × 300 declared by the others
        assert_eq!(l.view(0, &p).requests, 1_000 + 1 + 165);
        // thresholds: 1.3 × 25 % of the headroom to 80 % (80,000 − 1,166) / √5 isolates
        let v = l.view(0, &p);
        let x = l.thresholds(&v, &q, &p);
        assert!((x[0] - 1.3 * 0.25 * (80_000.0 - 1_166.0) / 5f64.sqrt()).abs() < 1.0, "{x:?}");
        let near = Usage { requests: 85_000, ..Usage::default() };
        assert!((l.thresholds(&near, &q, &p)[0] - 1.3 * 1_000.0 / 5f64.sqrt()).abs() < 1e-6);
        let decided = Usage { requests: 92_000, ..Usage::default() };
        assert_eq!(l.thresholds(&decided, &q, &p)[0], f64::INFINITY, "reads are paused for the day");
    }

    #[test]
    fn a_failed_flush_keeps_its_counts() {
        let (q, p) = (Quotas::default(), Policy::default());
        let mut l = Ledger::default();
        assert_eq!(l.record(&req(3), 0, &q, &p), Due::Read);
        let d = l.begin_read(0);
        l.end_read(d, Ok((None, None)), 0, &Usage::default(), 0.0);
        let (d, f) = l.begin_flush(10, &q, &p);
        assert_eq!(l.view(10, &p), req(3), "in flight still counts");
        l.end_flush(d, &f, Err(()), 10, None, 0.0);
        assert_eq!(l.view(10, &p), req(3));
        let (_, f) = l.begin_flush(20, &q, &p);
        assert_eq!((f.add, f.new_isolate), (req(3), 1));
    }
}
