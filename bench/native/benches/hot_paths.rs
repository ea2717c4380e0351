//! Native micro-benchmarks of the worker's hot pure paths (criterion). bench/report.mjs
//! compares each with the Workers Free plan's 10 ms CPU budget per request.
//!
//!   cargo bench --manifest-path bench/native/Cargo.toml              (scripts/bench.sh runs it)
//!   BENCH_QUICK=1 cargo bench --manifest-path bench/native/Cargo.toml   (shorter sampling)
//!
//! Results: target/criterion/<group>/<name>/new/estimates.json (nanoseconds).
//! examples/wasm_cpu.rs times the same operations compiled to wasm, in V8.

use std::collections::HashMap;
use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion};
use edgesync_bench::auth::Verifier;
use edgesync_bench::fixtures::{self, SECRET, SEQ};
use edgesync_bench::protocol::{self, Limits};
use edgesync_bench::{entities, plan, sql};
use serde_json::Value;

fn bench(c: &mut Criterion) {
    let now = fixtures::now_ms();

    // JWT verification. The worker builds its verifier once per isolate and caches it;
    // `verifier_from_jwks` is that one-time cost.
    let t = fixtures::tokens(now);
    {
        let mut g = c.benchmark_group("jwt");
        g.bench_function("hs256_verify", |b| b.iter(|| t.verifier.verify(black_box(&t.hs256), now).unwrap()));
        g.bench_function("rs256_verify", |b| b.iter(|| t.verifier.verify(black_box(&t.rs256), now).unwrap()));
        g.bench_function("es256_verify", |b| b.iter(|| t.verifier.verify(black_box(&t.es256), now).unwrap()));
        g.bench_function("verifier_from_jwks", |b| {
            b.iter(|| Verifier::with_jwks(Some(SECRET), Some(black_box(&t.jwks)), None, None))
        });
        g.finish();
    }

    // A push: the body bytes parsed and validated (app.rs read_json + protocol::parse_sync),
    // planned against the stored records (plan::plan), and the upsert's JSON parameter built
    // (sql::storage_rows). Every output is dropped inside the timing, as in the worker.
    let limits = Limits { max_changes: 1_000 };
    let tasks = entities::entity("tasks").unwrap();
    for n in [100usize, 1_000] {
        let body = fixtures::push_body(n);
        assert!(body.len() < 1_048_576, "push body of {} bytes is over the 1 MiB limit", body.len());
        let req = protocol::parse_sync(&serde_json::from_slice::<Value>(&body).unwrap(), limits).unwrap();
        assert_eq!(req.changes.len(), n);
        let fresh = plan::plan(&req.changes, HashMap::new(), SEQ, now);
        assert_eq!(fresh.revs.len(), n, "every change is new");
        let stored = fixtures::stored_for_edits(n);
        let edited = plan::plan(&req.changes, stored.clone(), SEQ, now);
        assert_eq!(edited.revs.len(), n, "every change is an edit (not a replay)");

        let mut g = c.benchmark_group(format!("push_{n}"));
        g.bench_function("parse_validate", |b| {
            b.iter(|| {
                let v: Value = serde_json::from_slice(black_box(&body)).unwrap();
                protocol::parse_sync(&v, limits).unwrap()
            })
        });
        g.bench_function("plan_new", |b| b.iter(|| plan::plan(black_box(&req.changes), HashMap::new(), SEQ, now)));
        g.bench_function("plan_edits", |b| {
            b.iter_batched(
                || stored.clone(),
                |s| drop(black_box(plan::plan(black_box(&req.changes), s, SEQ, now))),
                BatchSize::LargeInput,
            )
        });
        g.bench_function("storage_rows", |b| b.iter(|| sql::storage_rows(tasks, black_box(&fresh.writes[0].1))));
        g.finish();
    }

    // A 500-record pull response (POST /api/sync's reply) from D1 rows.
    let rows = fixtures::pull_rows(500);
    let reply = fixtures::pull_reply(&rows, SEQ, now);
    let parsed: Value = serde_json::from_str(&reply).unwrap();
    assert_eq!(parsed["updates"].as_array().map(Vec::len), Some(500));
    {
        let mut g = c.benchmark_group("pull_500");
        g.bench_function("build_reply", |b| b.iter(|| fixtures::pull_reply(black_box(&rows), SEQ, now)));
        g.finish();
    }
}

fn criterion() -> Criterion {
    let quick = std::env::var("BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
    let (warm, measure) = if quick { (300, 1_000) } else { (1_000, 3_000) };
    Criterion::default()
        .sample_size(if quick { 10 } else { 30 })
        .warm_up_time(Duration::from_millis(warm))
        .measurement_time(Duration::from_millis(measure))
        .without_plots()
}

criterion_group! { name = benches; config = criterion(); targets = bench }
criterion_main!(benches);
