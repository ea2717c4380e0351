#!/usr/bin/env bash
# Installs everything edgesync needs on a fresh machine, and nothing twice:
# npm packages, the wasm32 target, a nightly toolchain with rust-src and wasm32 (for
# recoverable panics), worker-build, wasm-bindgen-cli at the exact Cargo.lock version, and
# a `.dev.vars` with random dev secrets.
# Offline-safe: binaries come from crates.io, npm and rustup's dist server only (see
# ../shared/docs/platform.md).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
export WRANGLER_SEND_METRICS=false

log() { printf '[setup] %s\n' "$*" >&2; }

node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then log "Node.js >= 20.3 is required (have $(node --version))"; exit 1; fi

# npm packages: reinstall when package-lock.json changed since the last install.
if [ ! -x node_modules/.bin/wrangler ] || [ package-lock.json -nt node_modules/.edgesync-installed ]; then
  log "installing npm packages"
  npm ci --no-audit --no-fund --loglevel=error
  touch node_modules/.edgesync-installed
fi

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  log "adding rust target wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi

# Recoverable panics (scripts/build.sh): worker-build --panic-unwind builds with the toolchain
# named `nightly` and rebuilds std, so it needs that toolchain's rust-src and wasm32 std.
# An installed nightly is kept as it is (never updated here): a new nightly can break
# -Z build-std. Not needed for EDGESYNC_PANIC=abort builds.
if [ "${EDGESYNC_PANIC:-unwind}" = unwind ]; then
  if ! rustup toolchain list | grep -E '^nightly-[^0-9]' >/dev/null; then
    log "installing the nightly rust toolchain (minimal, rust-src, wasm32) for panic=unwind builds"
    rustup toolchain install nightly --profile minimal -c rust-src -t wasm32-unknown-unknown --no-self-update
  fi
  if ! rustup component list --toolchain nightly --installed | grep -x rust-src >/dev/null; then
    log "adding rust-src to the nightly toolchain"
    rustup component add rust-src --toolchain nightly
  fi
  if ! rustup target list --toolchain nightly --installed | grep -x wasm32-unknown-unknown >/dev/null; then
    log "adding rust target wasm32-unknown-unknown to the nightly toolchain"
    rustup target add wasm32-unknown-unknown --toolchain nightly
  fi
fi

# cargo install with --locked first (reproducible); fall back to fresh resolution when a
# locked dependency was yanked from crates.io (seen with wasm-bindgen-cli's webpki-roots).
cargo_install() {
  local crate=$1 version=$2
  log "installing $crate $version (one-time, a few minutes)"
  cargo install "$crate" --version "$version" --locked --quiet \
    || cargo install "$crate" --version "$version" --quiet
}

WORKER_BUILD_VERSION=0.8.7
if [ "$(worker-build --version 2>/dev/null | awk '{print $NF}')" != "$WORKER_BUILD_VERSION" ]; then
  cargo_install worker-build "$WORKER_BUILD_VERSION"
fi

bindgen_version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $NF}')" != "$bindgen_version" ]; then
  cargo_install wasm-bindgen-cli "$bindgen_version"
fi

# Local secrets for `npm run dev` (wrangler reads .dev.vars); never committed.
if [ ! -f .dev.vars ]; then
  log "creating .dev.vars with a random JWT_SECRET and ADMIN_TOKEN"
  {
    echo "JWT_SECRET=$(node -e 'console.log(require("crypto").randomBytes(32).toString("hex"))')"
    echo "ADMIN_TOKEN=$(node -e 'console.log(require("crypto").randomBytes(24).toString("hex"))')"
  } > .dev.vars
fi

# Test tools: Chromium for the browser test, schemathesis (pinned) in .venv-fuzz/ for the
# OpenAPI fuzz run. Each is skipped when present.
bash scripts/setup-test-tools.sh
