//! A deterministic day of 100 isolates serving 100,000 requests, each running
//! [`accounting::Ledger`](crate::accounting::Ledger) as the worker does, against one
//! simulated `usage_daily` row ([`Row::upsert`], the SQL's mirror). Every request is
//! served in the mode its isolate's estimate gives (degraded reads cost only the request,
//! refused writes too, KV stops being written past its budget), so the traffic reacts to
//! the decisions like the real one. Flushes are instant.
//!
//! `cargo test -p edgesync-core accounting_sim -- --nocapture --test-threads 1` prints the
//! figures.

use crate::accounting::{counts, Due, Ledger, Policy, Row, LIMITS};
use crate::quota::{Mode, Quotas, Usage, DAY_MS};

/// splitmix64: deterministic, seedable, good enough for traffic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn f(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[derive(Clone, Copy, Debug)]
enum Mix {
    /// The mix with its target storage: a push writes 1 row and the state token
    /// (1 KV write), an idle sync is answered from the KV token (1 KV read) or, past the
    /// KV write budget, from D1 (1 row read). 1.8 pushes in 3.2 syncs.
    Brief,
    /// Today's storage (2 rows per record + 1 per push), 40 % pushes of 1–2 records and
    /// 1 % of pushes a bulk upload of 50 records: rows written run out in the afternoon.
    WriteHeavy,
}

/// What one request costs in the mode its isolate acts on.
/// Request times (ms into the day, sorted) of a diurnal day: peak at 18:00 UTC, trough at
/// 06:00, 3:1. Both policies replay the same traffic from the same seed.
fn diurnal(r: &mut Rng, requests: usize) -> Vec<i64> {
    let mut times: Vec<i64> = Vec::with_capacity(requests);
    while times.len() < requests {
        let t = r.f();
        let w = 1.0 + 0.5 * (2.0 * std::f64::consts::PI * (t - 0.5)).sin();
        if r.f() * 1.5 < w {
            times.push((t * DAY_MS as f64) as i64);
        }
    }
    times.sort_unstable();
    times
}

fn cost(mix: Mix, r: &mut Rng, mode: Mode, kv_ok: bool) -> Usage {
    let base = Usage { requests: 1, ..Usage::default() };
    let push = match mix {
        Mix::Brief => r.f() < 1.8 / 3.2,
        Mix::WriteHeavy => r.f() < 0.4,
    };
    let kv_w = u64::from(kv_ok);
    if push {
        if mode == Mode::WritesRefused {
            return base;
        }
        let rows = match mix {
            Mix::Brief => 1,
            Mix::WriteHeavy if r.f() < 0.01 => 101,
            Mix::WriteHeavy => 2 * (1 + u64::from(r.f() < 0.3)) + 1,
        };
        let pulled = if mode == Mode::Normal { 1 + r.next() % 4 } else { 0 };
        Usage { rows_written: rows, rows_read: 1 + pulled + rows / 2, kv_writes: kv_w, ..base }
    } else if mode != Mode::Normal {
        base // paused: 503 degraded, nothing read
    } else if kv_ok && r.f() < 0.8 {
        Usage { kv_reads: 1, ..base }
    } else {
        Usage { rows_read: 1 + r.next() % 6, kv_reads: u64::from(kv_ok), ..base }
    }
}

/// The thresholds at which the worker's decisions flip, per limit, as shares.
fn decisions(q: &Quotas) -> Vec<(usize, f64, &'static str)> {
    vec![
        (0, q.degrade_at, "reads pause (requests)"),
        (1, q.degrade_at, "reads pause (rows read)"),
        (2, q.degrade_at, "reads pause (rows written)"),
        (2, 1.0, "writes refused"),
        (3, q.degrade_at, "reads pause (KV reads)"),
        (4, q.degrade_at, "KV writes stop"),
    ]
}

#[derive(Debug, Default)]
struct Figures {
    flushes: u64,
    reads: u64,
    /// Per limit: the worst |estimate − truth| / limit over every request acted on once the
    /// true total passed 80 %, until the day's last decision on that limit (2 % past it).
    worst: [f64; 5],
    /// The same over the whole rest of the day.
    worst_all: [f64; 5],
    /// The worst under-estimate (truth − estimate) past 80 %, until the last decision.
    under: [f64; 5],
    /// Per decision: the worst lateness (truth past the threshold while an isolate still
    /// acted below it) and earliness, as shares of the limit; and whether it was reached.
    late: Vec<(&'static str, bool, f64, f64)>,
    truth: Usage,
    row: Option<Row>,
}

/// Two days (the second one starts knowing how many isolates there were yesterday);
/// the figures are the second day's.
fn simulate(mix: Mix, isolates: usize, requests: usize, seed: u64, p: &Policy) -> Figures {
    let mut ledgers: Vec<Ledger> = (0..isolates).map(|_| Ledger::default()).collect();
    let first = one_day(mix, &mut ledgers, None, 20_000, requests, seed, p);
    one_day(mix, &mut ledgers, first.row, 20_001, requests, seed.wrapping_add(1_000), p)
}

fn one_day(
    mix: Mix,
    ledgers: &mut [Ledger],
    yesterday: Option<Row>,
    day: i64,
    requests: usize,
    seed: u64,
    p: &Policy,
) -> Figures {
    let isolates = ledgers.len();
    let q = Quotas::default();
    let mut r = Rng(seed);
    // traffic: a diurnal day, isolates of unequal share (Zipf, s = 0.5: the busiest gets
    // about 5 %)
    let times = diurnal(&mut r, requests);
    let weights: Vec<f64> = (0..isolates).map(|i| 1.0 / ((i + 1) as f64).sqrt()).collect();
    let total_w: f64 = weights.iter().sum();
    let pick = |x: f64| {
        let mut acc = 0.0;
        for (i, w) in weights.iter().enumerate() {
            acc += w / total_w;
            if x < acc {
                return i;
            }
        }
        isolates - 1
    };
    let day0 = day * DAY_MS;
    let mut row: Option<Row> = None;
    let mut truth = Usage::default();
    let mut f = Figures::default();
    let ds = decisions(&q);
    f.late = ds.iter().map(|d| (d.2, false, 0.0, 0.0)).collect();
    let lim = [q.requests, q.rows_read, q.rows_written, q.kv_reads, q.kv_writes];
    let flush_cost = Usage { rows_written: 1, rows_read: 2, ..Usage::default() };
    let read_cost = Usage { rows_read: 1, ..Usage::default() };
    for t in times {
        let now = day0 + t;
        let i = pick(r.f());
        let l = &mut ledgers[i];
        if l.needs_read(now) {
            let y = if l.wants_yesterday() { yesterday } else { None };
            let d = l.begin_read(now);
            truth.add(&read_cost);
            f.reads += 1;
            l.end_read(d, Ok((row, y)), now, &read_cost, r.f());
        }
        let est = l.view(now, p);
        // the estimate this request acts on, against the truth
        let (e, tr) = (counts(&est), counts(&truth));
        for k in 0..5 {
            let (lk, trk) = (lim[k] as f64, tr[k] as f64);
            if trk >= p.watch_at * lk {
                let err = (e[k] as f64 - trk).abs() / lk;
                f.worst_all[k] = f.worst_all[k].max(err);
                let last = if k == 2 { 1.0 } else { q.degrade_at };
                if trk < (last + 2.0 * p.accuracy) * lk {
                    f.worst[k] = f.worst[k].max(err);
                    f.under[k] = f.under[k].max((trk - e[k] as f64) / lk);
                }
            }
        }
        for (j, &(k, thr, _)) in ds.iter().enumerate() {
            let (lk, at) = (lim[k] as f64, thr * lim[k] as f64);
            let (acts_past, past) = (e[k] as f64 >= at, tr[k] as f64 >= at);
            if past {
                f.late[j].1 = true;
            }
            if past && !acts_past {
                f.late[j].2 = f.late[j].2.max((tr[k] as f64 - at) / lk);
            }
            if acts_past && !past {
                f.late[j].3 = f.late[j].3.max((at - tr[k] as f64) / lk);
            }
        }
        let c = cost(mix, &mut r, q.mode(&est), q.kv_writes_ok(&est));
        truth.add(&c);
        match l.record(&c, now, &q, p) {
            Due::Nothing => {}
            Due::Read => {
                let y = if l.wants_yesterday() { yesterday } else { None };
                let d = l.begin_read(now);
                truth.add(&read_cost);
                f.reads += 1;
                l.end_read(d, Ok((row, y)), now, &read_cost, r.f());
            }
            Due::Flush => {
                let (d, flush) = l.begin_flush(now, &q, p);
                let new = Row::upsert(row, &flush);
                row = Some(new);
                truth.add(&flush_cost);
                f.flushes += 1;
                l.end_flush(d, &flush, Ok(new), now, Some(&flush_cost), r.f());
            }
        }
    }
    f.truth = truth;
    f.row = row;
    f
}

fn report(name: &str, f: &Figures) -> String {
    let q = Quotas::default();
    let lim = [q.requests, q.rows_read, q.rows_written, q.kv_reads, q.kv_writes];
    let mut s = format!(
        "{name}: accounting wrote {} rows ({:.2} % of the rows-written quota), read the row {} times\n",
        f.flushes,
        f.flushes as f64 * 100.0 / q.rows_written as f64,
        f.reads
    );
    let tr = counts(&f.truth);
    for k in 0..5 {
        s += &format!(
            "  {:<13} day total {:>7} ({:>6.2} %): worst error past 80 %: {:.3} % of the limit until its last decision (under-estimate {:.3} %), {:.3} % all day\n",
            LIMITS[k],
            tr[k],
            tr[k] as f64 * 100.0 / lim[k] as f64,
            f.worst[k] * 100.0,
            f.under[k].max(0.0) * 100.0,
            f.worst_all[k] * 100.0
        );
    }
    for (name, reached, late, early) in &f.late {
        if *reached {
            s += &format!("  {name:<27} latest {:.3} %, earliest {:.3} % of the limit\n", late * 100.0, early * 100.0);
        }
    }
    s
}

fn check(mix: Mix, seed: u64) -> Figures {
    let p = Policy::default();
    let f = simulate(mix, 100, 100_000, seed, &p);
    println!("{}", report(&format!("{mix:?} mix, seed {seed}"), &f));
    f
}

/// What the simulation shows (seeds 1–5), asserted so that a change to the policy that
/// makes it worse fails here. The targets, and where this policy stands:
/// - accounting rows ≤ 1 % of the rows-written quota: met (837–857 and 936–979);
/// - the degrade decisions (requests, rows read, rows written, KV reads at 90 %; writes
///   refused at 100 %) engage no later than exact counts + 1 % of the limit: met (at most
///   0.65 % late);
/// - the estimate never *below* the truth by more than 1 % of a limit past 80 % (the
///   direction that makes degradation late): met but for one write-heavy seed (1.035 %),
///   not for KV writes;
/// - the estimate within 1 % of the truth both ways: not met: it overshoots by up to
///   about 7 % of a limit (degrading early, by at most 2.6 % of the limit), and for KV
///   writes (1,000 a day, 10 per 1 %, fewer than the isolates) the estimate is far off
///   both ways and KV writes stop up to 4.3 % of that budget late.
fn assert_targets(f: &Figures) {
    let q = Quotas::default();
    assert!(f.flushes <= q.rows_written / 100, "accounting rows {} > 1 % of the rows-written quota", f.flushes);
    for (k, name) in LIMITS.iter().enumerate() {
        if k != 4 {
            assert!(f.under[k] <= 0.011, "{name}: under-estimated by {:.4} of the limit past 80 %", f.under[k]);
            assert!(f.worst[k] <= 0.08, "{name}: error {:.4} of the limit past 80 %", f.worst[k]);
        }
    }
    for (name, reached, late, early) in &f.late {
        if *reached {
            let bound = if name.starts_with("KV writes") { 0.05 } else { 0.01 };
            assert!(*late <= bound, "{name}: engaged {late:.4} of the limit late");
            assert!(*early <= 0.03 || name.starts_with("KV writes"), "{name}: engaged {early:.4} of the limit early");
        }
    }
}

const SEEDS: [u64; 5] = [1, 2, 3, 4, 5];

/// The former policy on the same traffic, for comparison: each isolate flushes every 100
/// requests or at its first request 600 s after its last flush, and acts on the totals
/// its last flush returned plus its own unflushed requests. Returns the flushes and the
/// worst under-estimate of requests past 80 %, as a share of the limit.
fn former_policy(isolates: usize, requests: usize, seed: u64) -> (u64, f64) {
    let mut r = Rng(seed);
    let times = diurnal(&mut r, requests);
    let w: Vec<f64> = (0..isolates).map(|i| 1.0 / ((i + 1) as f64).sqrt()).collect();
    let total: f64 = w.iter().sum();
    // per isolate: (pending, totals seen, last flush)
    let mut st = vec![(0u64, 0u64, i64::MIN); isolates];
    let (mut flushed, mut truth, mut flushes, mut worst) = (0u64, 0u64, 0u64, 0f64);
    for t in times {
        let x = r.f() * total;
        let mut acc = 0.0;
        let i = w.iter().position(|wi| {
            acc += wi;
            x < acc
        });
        let s = &mut st[i.unwrap_or(isolates - 1)];
        if truth as f64 >= 0.8 * 100_000.0 {
            worst = worst.max((truth as f64 - (s.1 + s.0) as f64) / 100_000.0);
        }
        truth += 1;
        s.0 += 1;
        if s.0 >= 100 || t.saturating_sub(s.2) >= 600_000 {
            flushed += s.0;
            *s = (0, flushed, t);
            flushes += 1;
        }
    }
    (flushes, worst)
}

#[test]
fn the_former_policy_on_the_same_traffic() {
    let (flushes, worst) = former_policy(100, 100_000, 1);
    println!("former policy (100 requests / 600 s): {flushes} rows a day, requests under-estimated by up to {:.2} % of the limit past 80 %", worst * 100.0);
    assert!(flushes > 10_000, "{flushes}");
}

#[test]
fn brief_mix_100_isolates() {
    for seed in SEEDS {
        let f = check(Mix::Brief, seed);
        assert_targets(&f);
        assert!(f.late.iter().any(|d| d.0.contains("requests") && d.1), "the request quota is reached");
    }
}

#[test]
fn write_heavy_mix_100_isolates() {
    for seed in SEEDS {
        let f = check(Mix::WriteHeavy, seed);
        assert_targets(&f);
        assert!(f.late.iter().any(|d| d.0 == "reads pause (rows written)" && d.1), "rows written reach 90 %");
    }
}
