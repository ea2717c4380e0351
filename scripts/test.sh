#!/usr/bin/env bash
# Runs every test: rustfmt and clippy over the workspace, the native unit tests (cargo test
# on the host), then one fresh build of
# the worker, then the integration suite (node:test against `wrangler dev`, one local
# server per test file, files run one at a time).
#   bash scripts/test.sh                         everything
#   bash scripts/test.sh tests/integration/auth.test.mjs   only these integration files
#   EDGESYNC_D1=3 bash scripts/test.sh <files>   those files over three D1 databases
# After the integration files comes the bounded fuzz step (tests/fuzz/*.test.mjs:
# schemathesis against the OpenAPI document, about a minute; `npm run fuzz` runs longer).
# Environment: EDGESYNC_SKIP_CARGO_TEST=1 skips fmt, clippy and `cargo test`; EDGESYNC_SKIP_BUILD=1 reuses an
# existing build/worker/shim.mjs; EDGESYNC_SKIP_FUZZ=1 leaves out the fuzz step;
# EDGESYNC_TEST_LOG_LEVEL sets wrangler dev's --log-level.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
export WRANGLER_SEND_METRICS=false

log() { printf '[test] %s\n' "$*" >&2; }

if [ "${EDGESYNC_SKIP_CARGO_TEST:-}" != 1 ]; then
  log "cargo fmt --check, cargo clippy (-D warnings)"
  cargo fmt --all --check
  (cd bench/native && cargo fmt --check)
  cargo clippy --workspace --all-targets --quiet -- -D warnings
  log "cargo test (native unit tests of the workspace's crates)"
  cargo test --workspace --quiet
fi

if [ "${EDGESYNC_SKIP_BUILD:-}" = 1 ] && [ -f build/worker/shim.mjs ]; then
  log "reusing build/worker/shim.mjs (EDGESYNC_SKIP_BUILD=1)"
  node client/scripts/build.mjs # the SDK bundle the client tests and the demo load (seconds)
else
  log "building the worker"
  # build.sh exits early when EDGESYNC_SKIP_BUILD=1; here we want a fresh build
  EDGESYNC_SKIP_BUILD= bash scripts/build.sh
fi

# Leftovers of an interrupted earlier run (test servers remove their own dirs on exit),
# and D1 schema templates of old schema.sql versions (tests/helpers/server.mjs).
mkdir -p .tmp
find .tmp -maxdepth 1 \( -name 'it-*' -o -name 'd1-staging-*' \) -mmin +60 -exec rm -rf {} + 2>/dev/null || true
find .tmp -maxdepth 1 -name 'fuzz-*' -mtime +1 -exec rm -rf {} + 2>/dev/null || true
find .tmp -maxdepth 1 -name 'd1-template-*' -mtime +1 -exec rm -rf {} + 2>/dev/null || true

# The suites that exercise sync, conflicts, purge and crash safety run a second time with
# users spread over three D1 databases (EDGESYNC_D1=3; tests/helpers/server.mjs).
sharded=(tests/integration/{sync-devices,conflicts,convergence,concurrency,pages,pagination,full-upload,purge,config-purge,crash-safety,isolation,cross-tenant}.test.mjs)
if [ "$#" -gt 0 ]; then
  files=("$@")
  sharded=()
else
  files=(tests/client/*.test.mjs tests/integration/*.test.mjs) # client/: the SDK against scripted servers
  if [ "${EDGESYNC_SKIP_FUZZ:-}" != 1 ]; then files+=(tests/fuzz/*.test.mjs); fi
fi
log "integration tests (and the bounded fuzz step): ${files[*]}"
# The harness sets EDGESYNC_SKIP_BUILD=1 for the wrangler dev servers it starts, so
# wrangler's [build] step reuses the build above instead of rebuilding per server.
run_tests() { node --test --test-reporter=spec --test-concurrency=1 --test-timeout=600000 "$@"; }
run_tests "${files[@]}"
if [ "${#sharded[@]}" -gt 0 ]; then
  log "the sync suites again over three D1 databases (EDGESYNC_D1=3): ${sharded[*]}"
  EDGESYNC_D1=3 run_tests "${sharded[@]}"
fi
