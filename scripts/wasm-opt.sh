#!/usr/bin/env bash
# The wasm-opt worker-build runs (scripts/build.sh sets WASM_OPT_BIN to this script):
# first drops the exports of wasm-bindgen classes the worker never hands to JavaScript
# (scripts/wasm-exports.mjs), then runs binaryen's wasm-opt with worker-build's arguments,
# so its passes remove the code only those exports reached and optimize what is left.
# worker-build calls it as `wasm-opt <module> -o <out> <args...>`.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
node "$here/wasm-exports.mjs" "$1"
exec "${EDGESYNC_WASM_OPT_REAL:-$here/../node_modules/.bin/wasm-opt}" "$@"
