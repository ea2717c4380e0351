//! Daily quota decisions (contract §5). The worker counts its own use per UTC day (no API
//! tells a Worker its usage) and, near a limit, degrades with write priority: reads pause,
//! writes go on until the D1 write quota itself is spent. The KV budgets never pause
//! anything: near them the worker stops using KV and answers from D1. Pure: counters in,
//! mode out.

use serde::Serialize;

pub const DAY_MS: i64 = 86_400_000;

/// One UTC day's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub requests: u64,
    pub rows_read: u64,
    pub rows_written: u64,
    pub kv_reads: u64,
    pub kv_writes: u64,
    /// Conditional GETs answered from the KV state token without D1.
    pub kv_hits: u64,
    /// Conditional GETs that had to ask D1.
    pub kv_misses: u64,
}

impl Usage {
    pub fn add(&mut self, o: &Usage) {
        self.requests += o.requests;
        self.rows_read += o.rows_read;
        self.rows_written += o.rows_written;
        self.kv_reads += o.kv_reads;
        self.kv_writes += o.kv_writes;
        self.kv_hits += o.kv_hits;
        self.kv_misses += o.kv_misses;
    }

    pub fn is_zero(&self) -> bool {
        *self == Usage::default()
    }

    pub fn hit_ratio(&self) -> Option<f64> {
        let n = self.kv_hits + self.kv_misses;
        (n > 0).then(|| self.kv_hits as f64 / n as f64)
    }
}

/// Daily limits (defaults: the Workers Free plan) and the degrade threshold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quotas {
    pub requests: u64,
    pub rows_read: u64,
    pub rows_written: u64,
    pub kv_reads: u64,
    pub kv_writes: u64,
    pub degrade_at: f64,
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas {
            requests: 100_000,
            rows_read: 5_000_000,
            rows_written: 100_000,
            kv_reads: 100_000,
            kv_writes: 1_000,
            degrade_at: 0.9,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Normal,
    /// Reads pause; writes are accepted.
    Degraded,
    /// The D1 write quota is spent: writes are refused too (clients keep them queued).
    WritesRefused,
}

fn frac(used: u64, limit: u64) -> f64 {
    if limit == 0 {
        return f64::INFINITY;
    }
    used as f64 / limit as f64
}

impl Quotas {
    /// The KV budgets are not part of the mode: KV never pauses reads (contract §5). Near
    /// either one the worker stops using KV and answers from D1 instead (see
    /// [`Quotas::kv_reads_ok`], [`Quotas::kv_writes_ok`]).
    pub fn mode(&self, u: &Usage) -> Mode {
        if u.rows_written >= self.rows_written {
            return Mode::WritesRefused;
        }
        let worst = [
            frac(u.requests, self.requests),
            frac(u.rows_read, self.rows_read),
            frac(u.rows_written, self.rows_written),
        ]
        .into_iter()
        .fold(0.0, f64::max);
        if worst >= self.degrade_at {
            Mode::Degraded
        } else {
            Mode::Normal
        }
    }

    /// Below the threshold of the KV write budget, KV may be written: the state token ahead
    /// of commits, throttled users' buckets. Past it the worker writes no KV, and stops
    /// trusting the state token too (it can no longer be kept in step with D1).
    pub fn kv_writes_ok(&self, u: &Usage) -> bool {
        frac(u.kv_writes, self.kv_writes) < self.degrade_at
    }

    /// Below the threshold of the KV read budget, KV may be read; past it the worker answers
    /// from D1 and its rate limiter works from isolate memory alone.
    pub fn kv_reads_ok(&self, u: &Usage) -> bool {
        frac(u.kv_reads, self.kv_reads) < self.degrade_at
    }

    /// Whether the KV state token may answer: both budgets allow KV use.
    pub fn kv_trusted(&self, u: &Usage) -> bool {
        self.kv_reads_ok(u) && self.kv_writes_ok(u)
    }

    /// `{used, limit, percent}` per quota, for the admin report.
    pub fn report(&self, u: &Usage) -> serde_json::Value {
        let one = |used: u64, limit: u64| {
            let pct = if limit == 0 { 100.0 } else { (used as f64 * 10_000.0 / limit as f64).round() / 100.0 };
            serde_json::json!({"used": used, "limit": limit, "percent": pct})
        };
        serde_json::json!({
            "requests": one(u.requests, self.requests),
            "d1_rows_read": one(u.rows_read, self.rows_read),
            "d1_rows_written": one(u.rows_written, self.rows_written),
            "kv_reads": one(u.kv_reads, self.kv_reads),
            "kv_writes": one(u.kv_writes, self.kv_writes),
        })
    }
}

/// The UTC day number of a time.
pub fn day(now_ms: i64) -> i64 {
    now_ms.div_euclid(DAY_MS)
}

/// `Retry-After` for paused reads: the seconds to the next UTC midnight, plus `jitter_s`
/// so that clients do not all return in the same second.
pub fn retry_after_midnight(now_ms: i64, jitter_s: u64) -> u64 {
    let next = (day(now_ms) + 1) * DAY_MS;
    ((next - now_ms + 999) / 1000) as u64 + jitter_s
}

/// `YYYY-MM-DD` of a UTC day number (Howard Hinnant's civil-from-days).
pub fn date(day: i64) -> String {
    let z = day + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q() -> Quotas {
        Quotas { requests: 100, rows_read: 1000, rows_written: 10, kv_reads: 100, kv_writes: 10, degrade_at: 0.9 }
    }

    #[test]
    fn modes() {
        let q = q();
        assert_eq!(q.mode(&Usage::default()), Mode::Normal);
        assert_eq!(q.mode(&Usage { requests: 89, ..Usage::default() }), Mode::Normal);
        assert_eq!(q.mode(&Usage { requests: 90, ..Usage::default() }), Mode::Degraded);
        assert_eq!(q.mode(&Usage { rows_read: 900, ..Usage::default() }), Mode::Degraded);
        assert_eq!(q.mode(&Usage { rows_written: 9, ..Usage::default() }), Mode::Degraded);
        assert_eq!(q.mode(&Usage { rows_written: 10, ..Usage::default() }), Mode::WritesRefused);
        assert_eq!(q.mode(&Usage { kv_writes: 10, ..Usage::default() }), Mode::Normal, "KV writes are guarded apart");
        assert_eq!(q.mode(&Usage { kv_reads: 100, ..Usage::default() }), Mode::Normal, "KV reads never pause reads");
        assert!(q.kv_writes_ok(&Usage { kv_writes: 8, ..Usage::default() }));
        assert!(!q.kv_writes_ok(&Usage { kv_writes: 9, ..Usage::default() }));
        assert!(q.kv_reads_ok(&Usage { kv_reads: 89, ..Usage::default() }));
        assert!(!q.kv_reads_ok(&Usage { kv_reads: 90, ..Usage::default() }));
        assert!(q.kv_trusted(&Usage { kv_reads: 89, kv_writes: 8, ..Usage::default() }));
        assert!(!q.kv_trusted(&Usage { kv_reads: 90, ..Usage::default() }), "near the read budget");
        assert!(!q.kv_trusted(&Usage { kv_writes: 9, ..Usage::default() }), "near the write budget");
    }

    #[test]
    fn midnight() {
        let noon = 20_000 * DAY_MS + DAY_MS / 2;
        assert_eq!(retry_after_midnight(noon, 0), 43_200);
        assert_eq!(retry_after_midnight(noon, 7), 43_207);
        assert_eq!(retry_after_midnight(20_001 * DAY_MS - 1, 0), 1);
        assert_eq!(day(20_001 * DAY_MS), 20_001);
    }

    #[test]
    fn dates() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(19_782), "2024-02-29");
        assert_eq!(date(20_779), "2026-11-22");
    }

    #[test]
    fn report_percentages() {
        let r = q().report(&Usage { requests: 45, ..Usage::default() });
        assert_eq!(r["requests"]["percent"], 45.0);
        assert_eq!(r["requests"]["limit"], 100);
        assert_eq!(Usage { kv_hits: 3, kv_misses: 1, ..Usage::default() }.hit_ratio(), Some(0.75));
    }
}
