//! The operations of benches/hot_paths.rs, compiled to wasm (wasm32-wasip1) and run by
//! bench/wasm-cpu.mjs in Node's V8, the JavaScript/wasm engine workerd uses, so the CPU
//! time of the worker's own code is measured in the engine that runs it (the worker is
//! built with the same opt-level, LTO and codegen-units; see Cargo.toml).
//! Prints one JSON object per operation: {"id", "median_ns", "min_ns", "samples"}.
//! Argument: "quick" for shorter sampling.

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use edgesync_bench::auth::Verifier;
use edgesync_bench::fixtures::{self, SECRET, SEQ};
use edgesync_bench::protocol::{self, Limits};
use edgesync_bench::{entities, plan, sql};
use serde_json::Value;

/// Median and minimum time per call of `routine` over samples of `k` calls each; inputs
/// come from `setup` outside the timing, outputs are dropped inside it.
fn measure<I, O>(id: &str, budget: Duration, mut setup: impl FnMut() -> I, mut routine: impl FnMut(I) -> O) {
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
    let end = Instant::now() + budget;
    while per_call.len() < 10 || (Instant::now() < end && per_call.len() < 500) {
        let inputs: Vec<I> = (0..k).map(|_| setup()).collect();
        let start = Instant::now();
        for input in inputs {
            drop(black_box(routine(input)));
        }
        per_call.push(start.elapsed().as_nanos() as f64 / k as f64);
    }
    per_call.sort_by(f64::total_cmp);
    let median = per_call[per_call.len() / 2];
    println!(
        "{}",
        serde_json::json!({"id": id, "median_ns": median, "min_ns": per_call[0], "samples": per_call.len(), "per_sample": k})
    );
}

fn main() {
    let quick = std::env::args().any(|a| a == "quick");
    let budget = Duration::from_millis(if quick { 400 } else { 1_500 });
    let now = fixtures::now_ms();

    let t = fixtures::tokens(now);
    measure("jwt/hs256_verify", budget, || (), |_| t.verifier.verify(black_box(&t.hs256), now).unwrap());
    measure("jwt/rs256_verify", budget, || (), |_| t.verifier.verify(black_box(&t.rs256), now).unwrap());
    measure("jwt/es256_verify", budget, || (), |_| t.verifier.verify(black_box(&t.es256), now).unwrap());
    measure(
        "jwt/verifier_from_jwks",
        budget,
        || (),
        |_| Verifier::with_jwks(Some(SECRET), Some(black_box(&t.jwks)), None, None),
    );

    let limits = Limits { max_changes: 1_000 };
    let tasks = entities::entity("tasks").unwrap();
    for n in [100usize, 1_000] {
        let body = fixtures::push_body(n);
        let req = protocol::parse_sync(&serde_json::from_slice::<Value>(&body).unwrap(), limits).unwrap();
        let fresh = plan::plan(&req.changes, HashMap::new(), SEQ, now);
        let stored = fixtures::stored_for_edits(n);
        assert_eq!(plan::plan(&req.changes, stored.clone(), SEQ, now).revs.len(), n);
        measure(
            &format!("push_{n}/parse_validate"),
            budget,
            || (),
            |_| {
                let v: Value = serde_json::from_slice(black_box(&body)).unwrap();
                protocol::parse_sync(&v, limits).unwrap()
            },
        );
        measure(
            &format!("push_{n}/plan_new"),
            budget,
            || (),
            |_| plan::plan(black_box(&req.changes), HashMap::new(), SEQ, now),
        );
        measure(
            &format!("push_{n}/plan_edits"),
            budget,
            || stored.clone(),
            |s| plan::plan(black_box(&req.changes), s, SEQ, now),
        );
        measure(
            &format!("push_{n}/storage_rows"),
            budget,
            || (),
            |_| sql::storage_rows(tasks, black_box(&fresh.writes[0].1)),
        );
    }

    let rows = fixtures::pull_rows(500);
    measure("pull_500/build_reply", budget, || (), |_| fixtures::pull_reply(black_box(&rows), SEQ, now));
}
