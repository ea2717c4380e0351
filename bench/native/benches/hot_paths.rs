//! Native micro-benchmarks of the worker's hot pure paths (criterion). bench/report.mjs
//! compares each with the Workers Free plan's 10 ms CPU budget per request.
//!
//!   cargo bench --manifest-path bench/native/Cargo.toml              (scripts/bench.sh runs it)
//!   BENCH_QUICK=1 cargo bench --manifest-path bench/native/Cargo.toml   (shorter sampling)
//!
//! Results: target/criterion/<group>/<name>/new/estimates.json (nanoseconds).
//! examples/wasm_cpu.rs times the same operations compiled to wasm, in V8 (the number that
//! counts against the 10 ms: the worker runs as wasm).

use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion};
use edgesync_bench::auth::{TokenCache, Verifier};
use edgesync_bench::fixtures::{self, SECRET};
use edgesync_bench::protocol;
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
        // A token the isolate has verified before: its TokenCache answers without a
        // signature check (the worker's authenticate stage; issue #11's ≤ 0.2 ms).
        for (name, tok) in [("rs256_repeated", &t.rs256), ("es256_repeated", &t.es256)] {
            let mut cache = TokenCache::default();
            cache.remember(tok, t.verifier.verify_token(tok, now).unwrap());
            g.bench_function(name, |b| b.iter(|| cache.lookup(black_box(tok), now).unwrap()));
        }
        g.bench_function("verifier_from_jwks", |b| {
            b.iter(|| Verifier::with_jwks(Some(SECRET), Some(black_box(&t.jwks)), None, None))
        });
        g.finish();
    }

    // The pure path of a push over the packed pages, whole (fixtures::push_request), for
    // every case; its steps for the largest push into a full head.
    let users: Vec<(usize, fixtures::User)> = [100usize, 500, 5_000].map(|h| (h, fixtures::user(h))).into();
    let user = |h: usize| &users.iter().find(|(n, _)| *n == h).unwrap().1;
    {
        let mut g = c.benchmark_group("push");
        for case in fixtures::push_cases() {
            let u = user(case.user_records);
            let body = case.body(u);
            assert!(body.len() < 1_048_576, "push body of {} bytes is over the 1 MiB limit", body.len());
            let w = fixtures::push_request(u, &body, now);
            assert_eq!(w.applied, case.changes, "{}: every change applied", case.id);
            g.bench_function(case.id.as_str(), |b| b.iter(|| fixtures::push_request(u, black_box(&body), now)));
        }
        g.finish();
    }
    for case in
        fixtures::push_cases().into_iter().filter(|c| c.id == "push_1000_new_h500" || c.id == "push_100_new_h5000")
    {
        let u = user(case.user_records);
        let body = case.body(u);
        let s = fixtures::stages(u, &body, now);
        let mut g = c.benchmark_group(format!("{}_steps", case.id));
        g.bench_function("parse_validate", |b| {
            b.iter(|| {
                protocol::parse_sync(&serde_json::from_slice::<Value>(black_box(&body)).unwrap(), fixtures::LIMITS)
            })
        });
        g.bench_function("parse_head", |b| b.iter(|| fixtures::step_parse_head(black_box(u))));
        g.bench_function("current_plan", |b| {
            b.iter_batched(
                || s.parsed.clone(),
                |mut p| fixtures::step_plan(u, &mut p, &s.req.changes, now),
                BatchSize::LargeInput,
            )
        });
        g.bench_function("apply_spill", |b| {
            b.iter_batched(
                || s.planned.clone(),
                |mut p| {
                    fixtures::step_apply(u, &mut p, &s.plan, &s.prior);
                    p
                },
                BatchSize::LargeInput,
            )
        });
        g.bench_function("serialize", |b| b.iter(|| fixtures::step_serialize(black_box(&s.applied))));
        g.bench_function("pull_reply", |b| {
            b.iter_batched(
                || s.applied.clone(),
                |mut p| fixtures::step_reply(u, &mut p, &s.req, &s.plan, now),
                BatchSize::LargeInput,
            )
        });
        g.finish();
    }

    // A pull of 100 from a head of 500 (POST /api/sync without changes).
    {
        let u = user(500);
        let since = u.head_revs[u.head_revs.len() - 101];
        let body = fixtures::pull_body(since, 100);
        let (_, rows) = fixtures::pull_request(u, &body, now);
        assert_eq!(rows, 100);
        let mut g = c.benchmark_group("pull");
        g.bench_function("pull_100_h500", |b| b.iter(|| fixtures::pull_request(u, black_box(&body), now)));
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
