//! One pure-path operation run N times, for counting its instructions with callgrind:
//! counts repeat exactly whatever else the machine is doing, where times on these two
//! shared cores spread by ±10–30% (the before/after figures of session 6's commits).
//!
//!   cargo build --profile bench --example callgrind   (in bench/native)
//!   valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     --toggle-collect='*push_request*' --toggle-collect='*upload_request*' \
//!     --toggle-collect='*run_decode*' --toggle-collect='*run_encode*' \
//!     target/release/examples/callgrind push_10_new_h500 20
//!
//! Divide the "Collected" total by N. Cases: any id of `fixtures::push_cases()` (a push's
//! whole pure path) or of `fixtures::upload_cases()` (a full upload's), or `decode` / `encode` (the codec on the largest bucket of the
//! 5,000-record user). `CARGO_PROFILE_BENCH_DEBUG=true` adds symbols for callgrind_annotate.
use edgesync_bench::fixtures;
use edgesync_core::codec;
use edgesync_core::pages::Entry;
use std::hint::black_box;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let what = args.get(1).map_or("push_10_new_h500", String::as_str);
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(5);
    if what == "decode" || what == "encode" {
        let u = fixtures::user(5_000);
        let hex = u.buckets.values().max_by_key(|b| b.len()).expect("the user has buckets");
        let body = codec::from_hex(hex).expect("hex");
        let entries = codec::decode(&body).expect("decodes");
        for _ in 0..n {
            if what == "decode" {
                black_box(run_decode(&body));
            } else {
                black_box(run_encode(&entries));
            }
        }
        return;
    }
    let now = fixtures::now_ms();
    if let Some((_, records, h)) = fixtures::upload_cases().into_iter().find(|(id, _, _)| *id == what) {
        let u = fixtures::user(h);
        let body = fixtures::upload_body(0..records, "new", u.head.seq);
        for _ in 0..n {
            black_box(fixtures::upload_request(&u, black_box(&body), now));
        }
        return;
    }
    let case = fixtures::push_cases().into_iter().find(|c| c.id == what).expect("a push or upload case id");
    let u = fixtures::user(case.user_records);
    let body = case.body(&u);
    for _ in 0..n {
        black_box(fixtures::push_request(&u, black_box(&body), now));
    }
}

#[inline(never)]
fn run_decode(body: &[u8]) -> usize {
    codec::decode(black_box(body)).expect("decodes").len()
}

#[inline(never)]
fn run_encode(entries: &[Entry]) -> usize {
    codec::encode(black_box(entries)).expect("encodes").len()
}
