#!/usr/bin/env bash
# `npm run bench` (after scripts/setup.sh): builds the worker, measures it, and writes
# BENCHMARKS.md and BENCHMARKS-capacity.svg. About 17 minutes on 2 cores; most of it is
# the capacity replay, which runs in real time and overlaps the other measurements.
#   bash scripts/bench.sh            everything
#   bash scripts/bench.sh --quick    short runs for iterating (~3 min); the report says so
# Order: build (edgesync, and the floor reference worker of ../shared/reference/); the
# capacity replay starts in the background (mostly idle: it runs in compressed real time
# and only counts costs); throughput runs during the replay's first idle minute; then cost
# growth, edgesync beside the reference workers (issue #11 ratios) and its CPU profiles,
# the criterion micro-benchmarks and the wasm CPU probe, the storage measurement; then the
# report once the replay is done.
# Exit status: non-zero when any step failed or a cost that must stay flat grew (the
# report is still written, naming the failed steps). Every step runs under `timeout`.
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
export WRANGLER_SEND_METRICS=false

log() { printf '[bench %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

quick=
for arg in "$@"; do
  case "$arg" in
    --quick) quick=1 ;;
    *) echo "usage: bash scripts/bench.sh [--quick]" >&2; exit 2 ;;
  esac
done
qflag=${quick:+--quick}
results=bench/results
mkdir -p "$results" .tmp
rm -f "$results"/*.json "$results"/*.log "$results"/*.txt "$results"/*.cpuprofile
failed=()
fail() { failed+=("$1"); log "FAILED: $1"; }

# Leftovers of interrupted runs (servers remove their own dirs when they stop).
find .tmp -maxdepth 1 \( -name 'it-*' -o -name 'd1-staging-*' \) -mmin +60 -exec rm -rf {} + 2>/dev/null || true

cap_pid=
cleanup() {
  if [ -n "$cap_pid" ] && kill -0 "$cap_pid" 2>/dev/null; then kill -TERM "$cap_pid" 2>/dev/null; wait "$cap_pid" 2>/dev/null; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

started=$(date +%s)

# --- the worker --------------------------------------------------------------------------
if [ "${EDGESYNC_SKIP_BUILD:-}" = 1 ] && [ -f build/worker/shim.mjs ]; then
  log "reusing build/ (EDGESYNC_SKIP_BUILD=1)"
else
  log "building the worker"
  EDGESYNC_SKIP_BUILD= bash scripts/build.sh || { log "the worker did not build"; exit 1; }
fi
node bench/size.mjs || fail "size"
node bench/wasm-size.mjs --top 10 --json "$results/wasm-size.json" >"$results/wasm-size.txt" || fail "wasm size by crate"
# The floor reference worker (workers-rs, stable toolchain; reused while unchanged).
log "building the floor reference worker (.tmp/ref/floor-worker)"
timeout 1200 node bench/floor.mjs --build-only || fail "floor reference worker build"

# The native bench crate must use the worker's dependency versions.
node bench/check-lock.mjs || fail "lockfile versions"

# --- 1. beside the reference workers (issue #11), and CPU profiles of the isolate ----------
# Before the capacity replay starts: its worker and requests beside these would weigh on
# one side of the ratios (a run with it alongside spread 0.43-1.08 per round).
# Nine rounds, not floor.mjs's default five: on two shared cores a round's ratio moves by
# ±0.1, and the median of nine is steadier (a quick run keeps its own small count).
log "edgesync beside the reference workers (floor, seed)"
timeout 1200 node bench/floor.mjs ${qflag:---rounds 9} || fail "reference workers (bench/floor.mjs)"
log "edgesync beside the reference workers, inside the isolate (bench/inproc.mjs)"
timeout 900 node bench/inproc.mjs $qflag || fail "reference workers inside the isolate (bench/inproc.mjs)"
for kind in check304 health; do
  log "CPU profile of the isolate: $kind"
  if timeout 300 node bench/profile.mjs --kind "$kind" $qflag >"$results/profile-$kind.txt" 2>"$results/profile-$kind.log"; then
    cat "$results/profile-$kind.txt" >&2
  else
    tail -20 "$results/profile-$kind.log" >&2
    fail "profile $kind"
  fi
done

# --- 5. capacity replay, in the background ------------------------------------------------
# It sets up its users, waits for the throughput step and at least a minute (so that their
# KV entries expire, as a day's would), then sends a few requests a second for about 11
# minutes: mostly idle, and it only counts costs, so the other steps run meanwhile.
ready="$results/capacity.ready"
go="$results/capacity.go"
rm -f "$ready" "$go"
log "capacity replay (background; log in $results/capacity.log)"
timeout 2400 node bench/capacity.mjs $qflag --ready-file "$ready" --go-file "$go" >"$results/capacity.log" 2>&1 &
cap_pid=$!
for _ in $(seq 1 600); do
  [ -f "$ready" ] && break
  kill -0 "$cap_pid" 2>/dev/null || break
  sleep 0.5
done

# --- 1-2. throughput and cost per kind ------------------------------------------------------
# Timing-sensitive: it runs while the replay, set up, waits for it (and for its KV entries
# to expire) before starting its day. The load would otherwise delay the replay worker's
# deferred KV writes, and with them when its entries expire.
log "throughput and latency"
timeout 900 node bench/throughput.mjs $qflag || fail "throughput"
touch "$go"

# --- 3. cost growth ----------------------------------------------------------------------
log "cost growth"
timeout 1200 node bench/growth.mjs $qflag || fail "cost growth (a cost that must stay flat grew, or the run broke)"

# --- 4. CPU: criterion (native) and the same code in wasm under V8 -------------------------
log "micro-benchmarks (criterion; the first build compiles the bench crate, ~2 min)"
rm -rf bench/native/target/criterion
if BENCH_QUICK=${quick:-0} timeout 1800 cargo bench --locked --quiet --manifest-path bench/native/Cargo.toml --bench hot_paths >"$results/criterion.log" 2>&1; then
  # criterion prints long names on a line of their own: join them with their time line
  awk '/^[a-z_0-9]+\/[a-z_0-9]+ *$/ { name = $1; next } /time:/ { if (name != "") { print name, $0; name = "" } else print }' \
    "$results/criterion.log" >&2 || true
else
  tail -30 "$results/criterion.log" >&2
  fail "criterion"
fi
log "the same paths in wasm under V8"
if ! rustup target list --installed | grep -qx wasm32-wasip1; then rustup target add wasm32-wasip1 || fail "rustup target wasm32-wasip1"; fi
if timeout 1200 cargo build --locked --quiet --manifest-path bench/native/Cargo.toml --profile bench --example wasm_cpu --target wasm32-wasip1 2>"$results/wasm-build.log"; then
  timeout 600 node --no-warnings bench/wasm-cpu.mjs bench/native/target/wasm32-wasip1/release/examples/wasm_cpu.wasm "$results/wasm-cpu.json" ${quick:+quick} || fail "wasm cpu"
else
  tail -30 "$results/wasm-build.log" >&2
  fail "wasm cpu build"
fi

# --- 4b. storage: bytes per record in the local D1 file, the codec's CPU (issue #13) -------
log "storage (bytes per record at 100, 1,000 and 2,650 records per user)"
timeout 900 node bench/storage.mjs $qflag || fail "storage"

# --- wait for the replay -------------------------------------------------------------------
log "waiting for the capacity replay"
if wait "$cap_pid"; then
  grep -vE '^\[bench' "$results/capacity.log" >&2 || true
else
  tail -30 "$results/capacity.log" >&2
  fail "capacity"
fi
cap_pid=

# --- 5b. the same mix driven by the client SDK's scheduler (virtual clock, ~20 s) ---------
log "SDK day (the client's own schedule)"
timeout 600 node bench/sdk-day.mjs || fail "sdk day"

# --- report --------------------------------------------------------------------------------
failures=$(IFS=,; echo "${failed[*]:-}")
node bench/report.mjs $qflag --failures "$failures" || fail "report"
log "done in $(( $(date +%s) - started )) s: BENCHMARKS.md, BENCHMARKS-capacity.svg"
if [ "${#failed[@]}" -gt 0 ]; then
  log "failed steps: ${failed[*]}"
  exit 1
fi
