#!/usr/bin/env bash
# Builds the worker to build/worker/shim.mjs with worker-build, using local binaries
# instead of worker-build's own downloads (which need GitHub). This is wrangler's [build]
# command, so `wrangler dev` and `wrangler deploy` build the same way.
# EDGESYNC_SKIP_BUILD=1 skips it when the test harness has built once already.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${EDGESYNC_SKIP_BUILD:-}" = 1 ] && [ -f build/worker/shim.mjs ]; then exit 0; fi
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
export WASM_BINDGEN_BIN="${WASM_BINDGEN_BIN:-$(command -v wasm-bindgen)}"
export ESBUILD_BIN="${ESBUILD_BIN:-$PWD/node_modules/@esbuild/linux-x64/bin/esbuild}"
export WASM_OPT_BIN="${WASM_OPT_BIN:-$PWD/node_modules/.bin/wasm-opt}"
# --- client SDK (issue 12): client/dist (bundle + .d.ts) and demo/sdk/edgesync.js; prints its size ---
node client/scripts/build.mjs
exec worker-build --release
