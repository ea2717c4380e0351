//! The operations of benches/hot_paths.rs, compiled to wasm (wasm32-wasip1) and run by
//! bench/wasm-cpu.mjs in Node's V8, the JavaScript/wasm engine workerd uses, so the CPU
//! time of the worker's own code is measured in the engine that runs it (the worker is
//! built with the same opt-level, LTO and codegen-units; see Cargo.toml).
//! Times are the thread's CPU time (WASI's CPU-time clock; wall time where it is missing),
//! so other load on the machine does not inflate them; the wall-time median is printed too.
//! Prints one JSON object per operation: {"id", "median_ns", "min_ns", "samples", ...};
//! a push's whole pure path is `<case>/total`, its steps `<case>/<step>`, and each case
//! also prints {"case": …} describing it.
//! Argument: "quick" for shorter sampling.

use std::hint::black_box;
use std::time::{Duration, Instant};

use edgesync_bench::auth::{TokenCache, Verifier};
use edgesync_bench::fixtures::{self, SECRET};
use edgesync_bench::protocol;
use serde_json::Value;

/// CPU time of this thread in nanoseconds, from WASI's `clock_time_get` with the thread
/// (else process) CPU-time clock, which Node's WASI implements with the OS's per-thread
/// clock: unlike wall time it does not grow when other processes share the cores. None
/// off wasm or when neither clock is available (then wall time is used).
fn cpu_ns() -> Option<u64> {
    #[cfg(target_os = "wasi")]
    {
        #[link(wasm_import_module = "wasi_snapshot_preview1")]
        extern "C" {
            fn clock_time_get(id: u32, precision: u64, time: *mut u64) -> u16;
        }
        for clock in [3u32, 2] {
            let mut t = 0u64;
            // SAFETY: `t` is a valid, writable u64 for the duration of the call.
            if unsafe { clock_time_get(clock, 1, &mut t) } == 0 && t > 0 {
                return Some(t);
            }
        }
        None
    }
    #[cfg(not(target_os = "wasi"))]
    None
}

/// The clock samples are timed with: "cpu" when [`cpu_ns`] works, else "wall".
fn clock_name() -> &'static str {
    if cpu_ns().is_some() {
        "cpu"
    } else {
        "wall"
    }
}

/// Nanoseconds now on the samples' clock (CPU time when available).
fn stamp() -> u64 {
    cpu_ns().unwrap_or_else(|| {
        static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        START.get_or_init(Instant::now).elapsed().as_nanos() as u64
    })
}

/// Median and minimum CPU time per call of `routine` over samples of `k` calls each (and
/// the wall-time median beside it); inputs come from `setup` outside the timing, outputs
/// are dropped inside it.
fn measure<I, O>(id: &str, budget: Duration, mut setup: impl FnMut() -> I, mut routine: impl FnMut(I) -> O) {
    if !selected(id) {
        return;
    }
    let t0 = Instant::now();
    drop(black_box(routine(setup())));
    let once = t0.elapsed().max(Duration::from_nanos(50));
    // Samples of about 5 ms each; warm up for a tenth of the budget.
    let k = ((5_000_000 / once.as_nanos()).max(1) as usize).min(100_000);
    let warm_until = Instant::now() + budget / 10;
    while Instant::now() < warm_until {
        drop(black_box(routine(setup())));
    }
    let mut per_call = Vec::new();
    let mut wall = Vec::new();
    let end = Instant::now() + budget;
    while per_call.len() < 10 || (Instant::now() < end && per_call.len() < 500) {
        let inputs: Vec<I> = (0..k).map(|_| setup()).collect();
        let (w0, c0) = (Instant::now(), stamp());
        for input in inputs {
            drop(black_box(routine(input)));
        }
        per_call.push(stamp().saturating_sub(c0) as f64 / k as f64);
        wall.push(w0.elapsed().as_nanos() as f64 / k as f64);
    }
    per_call.sort_by(f64::total_cmp);
    wall.sort_by(f64::total_cmp);
    let median = per_call[per_call.len() / 2];
    println!(
        "{}",
        serde_json::json!({"id": id, "median_ns": median, "min_ns": per_call[0], "wall_median_ns": wall[wall.len() / 2],
            "clock": clock_name(), "samples": per_call.len(), "per_sample": k})
    );
}

/// Whether `id` is measured: every operation, or with arguments `only=<prefix>` (any
/// number of them) those whose id starts with one of the prefixes, e.g.
/// `node bench/wasm-cpu.mjs <wasm> <out.json> quick only=codec/ only=push_10_new_h5000/`.
fn selected(id: &str) -> bool {
    let mut prefixes = std::env::args().filter_map(|a| a.strip_prefix("only=").map(str::to_owned)).peekable();
    prefixes.peek().is_none() || prefixes.any(|p| id.starts_with(&p))
}

fn main() {
    let quick = std::env::args().any(|a| a == "quick");
    let budget = Duration::from_millis(if quick { 300 } else { 1_500 });
    let now = fixtures::now_ms();

    let t = fixtures::tokens(now);
    measure("jwt/hs256_verify", budget, || (), |_| t.verifier.verify(black_box(&t.hs256), now).unwrap());
    measure("jwt/rs256_verify", budget, || (), |_| t.verifier.verify(black_box(&t.rs256), now).unwrap());
    measure("jwt/es256_verify", budget, || (), |_| t.verifier.verify(black_box(&t.es256), now).unwrap());
    for (name, tok) in [("jwt/rs256_repeated", &t.rs256), ("jwt/es256_repeated", &t.es256)] {
        let mut cache = TokenCache::default();
        cache.remember(tok, t.verifier.verify_token(tok, now).unwrap());
        measure(name, budget, || (), |_| cache.lookup(black_box(tok), now).unwrap());
    }
    measure(
        "jwt/verifier_from_jwks",
        budget,
        || (),
        |_| Verifier::with_jwks(Some(SECRET), Some(black_box(&t.jwks)), None, None),
    );

    let users: Vec<(usize, fixtures::User)> = [100usize, 500, 1_000, 5_000].map(|h| (h, fixtures::user(h))).into();
    let user = |h: usize| &users.iter().find(|(n, _)| *n == h).unwrap().1;
    for case in fixtures::push_cases() {
        let u = user(case.user_records);
        let body = case.body(u);
        let w = fixtures::push_request(u, &body, now);
        assert_eq!(w.applied, case.changes, "{}: every change applied", case.id);
        println!(
            "{}",
            serde_json::json!({"case": case.id, "kind": "push", "changes": case.changes, "edits": case.edits, "deletes": case.deletes,
                "user_records": case.user_records, "head_records": u.records_in_head(), "buckets": u.head.buckets,
                "body_bytes": body.len(), "head_bytes": u.head_body.len(), "spilled": w.spilled, "buckets_written": w.dirty,
                "head_bytes_after": w.head_body.len(), "reply_bytes": w.reply.len()})
        );
        measure(&format!("{}/total", case.id), budget, || (), |_| fixtures::push_request(u, black_box(&body), now));
        let s = fixtures::stages(u, &body, now);
        let id = |step: &str| format!("{}/{step}", case.id);
        measure(
            &id("parse_validate"),
            budget,
            || (),
            |_| protocol::parse_sync(&serde_json::from_slice::<Value>(black_box(&body)).unwrap(), fixtures::LIMITS),
        );
        measure(&id("parse_head"), budget, || (), |_| fixtures::step_parse_head(black_box(u)));
        measure(
            &id("current_plan"),
            budget,
            || s.parsed.clone(),
            |mut p| fixtures::step_plan(u, &mut p, &s.req.changes, now),
        );
        measure(
            &id("apply_spill"),
            budget,
            || s.planned.clone(),
            |mut p| {
                fixtures::step_apply(u, &mut p, &s.plan, &s.prior);
                p
            },
        );
        measure(&id("serialize"), budget, || (), |_| fixtures::step_serialize(black_box(&s.applied)));
        measure(
            &id("pull_reply"),
            budget,
            || s.applied.clone(),
            |mut p| fixtures::step_reply(u, &mut p, &s.req, &s.plan, now),
        );
    }

    // Full uploads: a type's whole set replaced (every page read, the rest deleted).
    for (id, n, h) in fixtures::upload_cases() {
        let u = user(h);
        let body = fixtures::upload_body(0..n, "new", u.head.seq);
        let w = fixtures::upload_request(u, &body, now);
        assert_eq!(w.applied, n.max(h), "{id}: every record written or deleted");
        println!(
            "{}",
            serde_json::json!({"case": id, "kind": "upload", "changes": n, "edits": false, "user_records": h,
                "head_records": u.records_in_head(), "buckets": u.head.buckets, "body_bytes": body.len(),
                "head_bytes": u.head_body.len(), "spilled": w.spilled, "buckets_written": w.dirty,
                "head_bytes_after": w.head_body.len(), "reply_bytes": w.reply.len()})
        );
        measure(&format!("{id}/total"), budget, || (), |_| fixtures::upload_request(u, black_box(&body), now));
    }

    // The codec alone (crates/codec), per page: a push encodes the head (and the
    // buckets it spills into), every request that reads the head decodes it. Format 2
    // (columns, what the worker writes) beside format 1 (the entries' JSON tuples, deflated;
    // still read), for the 500-record head and the largest bucket of the 5,000-record user.
    let big = user(5_000);
    let bucket = {
        let (_, hex) = big.buckets.iter().max_by_key(|(_, h)| h.len()).unwrap();
        edgesync_core::codec::decode_hex(hex).unwrap()
    };
    let head = edgesync_core::codec::decode_hex(&user(500).head_body).unwrap();
    for (id, entries) in [("head_h500", head), ("bucket_h5000", bucket)] {
        let json = serde_json::to_vec(&entries).unwrap();
        let v1 = edgesync_core::codec::deflate(&json).unwrap();
        let v2 = edgesync_core::codec::encode(&entries).unwrap();
        println!(
            "{}",
            serde_json::json!({"codec": id, "entries": entries.len(), "json_bytes": json.len(), "deflated_bytes": v2.len(),
                "format1_bytes": v1.len(), "level": edgesync_core::codec::LEVEL})
        );
        measure(
            &format!("codec/encode_{id}"),
            budget,
            || (),
            |_| edgesync_core::codec::encode(black_box(&entries)).unwrap(),
        );
        measure(
            &format!("codec/decode_{id}"),
            budget,
            || (),
            |_| edgesync_core::codec::decode(black_box(&v2)).unwrap(),
        );
        measure(
            &format!("codec/encode1_{id}"),
            budget,
            || (),
            |_| edgesync_core::codec::deflate(&serde_json::to_vec(black_box(&entries)).unwrap()).unwrap(),
        );
        measure(
            &format!("codec/decode1_{id}"),
            budget,
            || (),
            |_| edgesync_core::codec::decode(black_box(&v1)).unwrap(),
        );
        let hex: String = v2.iter().map(|b| format!("{b:02X}")).collect();
        measure(
            &format!("codec/from_hex_{id}"),
            budget,
            || (),
            |_| edgesync_core::codec::from_hex(black_box(&hex)).unwrap(),
        );
    }

    let u = user(500);
    let since = u.head_revs[u.head_revs.len() - 101];
    let body = fixtures::pull_body(since, 100);
    let (reply, rows) = fixtures::pull_request(u, &body, now);
    assert_eq!(rows, 100);
    println!(
        "{}",
        serde_json::json!({"case": "pull_100_h500", "kind": "pull", "changes": 0, "rows": rows, "user_records": 500,
            "head_records": u.records_in_head(), "buckets": u.head.buckets, "head_bytes": u.head_body.len(), "reply_bytes": reply.len()})
    );
    measure("pull_100_h500/total", budget, || (), |_| fixtures::pull_request(u, black_box(&body), now));
    measure("pull_100_h500/parse_head", budget, || (), |_| fixtures::step_parse_head(black_box(u)));
}
