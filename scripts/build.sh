#!/usr/bin/env bash
# Builds the worker to build/worker/shim.mjs with worker-build, using local binaries
# instead of worker-build's own downloads (which need GitHub). This is wrangler's [build]
# command, so `wrangler dev` and `wrangler deploy` build the same way.
# EDGESYNC_SKIP_BUILD=1 skips it when the test harness has built once already.
# EDGESYNC_OUT_DIR (default build, relative to the repository root or absolute) puts the
# output elsewhere, e.g. a test build from another collections declaration:
#   EDGESYNC_COLLECTIONS=path/to/collections.json EDGESYNC_OUT_DIR=.tmp/build-extra bash scripts/build.sh
# (crates/core/build.rs reads EDGESYNC_COLLECTIONS; the worker is then
# .tmp/build-extra/worker/shim.mjs, for a wrangler config whose main points there).
#
# Panics are recoverable (worker-build --panic-unwind): a panic fails only its own request
# (500) and the isolate keeps its memory (rate buckets, usage counts, caches). This builds
# with the rustup toolchain named `nightly` (worker-build runs `cargo +nightly`), which
# rebuilds std with `-Z build-std=std,panic_unwind`; scripts/setup.sh installs it.
# EDGESYNC_PANIC=abort builds the old way on stable Rust (panic = "abort" in Cargo.toml): a
# panic then resets the wasm instance, failing every request in flight in the isolate.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${EDGESYNC_OUT_DIR:-build}"
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac
# The entry module wrangler runs, for the default (unwind) build: crates/worker/js/entry.mjs,
# a plain module worker, in place of worker-build's re-export of its per-request
# Proxy-wrapped class (see the file). Installed again when the build itself is skipped, so
# an existing build/ never runs an older entry. The abort build keeps worker-build's own
# (its shim has re-initialization code of its own that this entry does not carry).
install_entry() {
  if [ "${EDGESYNC_PANIC:-unwind}" = unwind ] && [ -f "$out/index.js" ]; then
    cmp -s crates/worker/js/entry.mjs "$out/worker/shim.mjs" || cp crates/worker/js/entry.mjs "$out/worker/shim.mjs"
  fi
}
if [ "${EDGESYNC_SKIP_BUILD:-}" = 1 ] && [ -f "$out/worker/shim.mjs" ]; then
  install_entry
  exit 0
fi
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
export WASM_BINDGEN_BIN="${WASM_BINDGEN_BIN:-$(command -v wasm-bindgen)}"
export ESBUILD_BIN="${ESBUILD_BIN:-$PWD/node_modules/@esbuild/linux-x64/bin/esbuild}"
# worker-build's wasm-opt is scripts/wasm-opt.sh: it drops the exports of wasm-bindgen
# classes the worker never uses (scripts/wasm-exports.mjs), then runs binaryen's wasm-opt.
# A WASM_OPT_BIN given from outside is the real one, unless it is this wrapper already.
case "${WASM_OPT_BIN:-}" in
  "" | */scripts/wasm-opt.sh) export EDGESYNC_WASM_OPT_REAL="$PWD/node_modules/.bin/wasm-opt" ;;
  *) export EDGESYNC_WASM_OPT_REAL="$WASM_OPT_BIN" ;;
esac
export WASM_OPT_BIN="$PWD/scripts/wasm-opt.sh"
# The client SDK: client/dist (bundle + .d.ts) and demo/sdk/edgesync.js; prints its size.
node client/scripts/build.mjs
# The worker crate is crates/worker; its output goes to build/ at the repository root
# (wrangler.toml: main = "build/worker/shim.mjs") unless EDGESYNC_OUT_DIR says otherwise.
case "${EDGESYNC_PANIC:-unwind}" in
  unwind)
    # The release profile says "abort" (right for the stable build); worker-build's
    # RUSTFLAGS=-Cpanic=unwind would override it, but the profile should agree with the
    # std being built.
    export CARGO_PROFILE_RELEASE_PANIC=unwind
    # The std rebuilt for it is also built for size (its `optimize_for_size` feature:
    # compact sorts, integer formatting and float parsing; panic-unwind is the default
    # feature that a feature list replaces).
    export CARGO_UNSTABLE_BUILD_STD_FEATURES="${CARGO_UNSTABLE_BUILD_STD_FEATURES:-panic-unwind,optimize_for_size}"
    # Panic locations left out (-Zlocation-detail=none: no source paths, lines or columns
    # in the wasm): a panic's log line reads "panicked at <redacted>:0:0:" and keeps its
    # message. A profile's rustflags (nightly's profile-rustflags), because worker-build
    # runs `cargo metadata` on stable with RUSTFLAGS, where a -Z flag is refused.
    export CARGO_UNSTABLE_PROFILE_RUSTFLAGS=true
    export CARGO_PROFILE_RELEASE_RUSTFLAGS="${CARGO_PROFILE_RELEASE_RUSTFLAGS:--Zlocation-detail=none}"
    worker-build --release --panic-unwind --out-dir "$out" crates/worker ;;
  abort)
    worker-build --release --out-dir "$out" crates/worker ;;
  *)
    echo "[build] EDGESYNC_PANIC must be unwind or abort, not '${EDGESYNC_PANIC}'" >&2
    exit 2 ;;
esac
install_entry
# The wasm's function names (wasm-opt --debuginfo keeps them; ~12% of the gzipped wasm)
# go to wasm-names.json beside it, for bench/profile.mjs; EDGESYNC_WASM_NAMES=1 keeps them
# in the module (e.g. for named frames in a panic's stack in the logs).
if [ "${EDGESYNC_WASM_NAMES:-}" != 1 ]; then
  node scripts/wasm-names.mjs "$out/index_bg.wasm" "$out/wasm-names.json"
fi
