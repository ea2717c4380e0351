#!/usr/bin/env bash
# `npm run dev`: applies schema.sql to the local D1 and serves the worker with
# `wrangler dev` (local D1 + KV under .wrangler/state) on $PORT (default 8787), with the
# demo app and the SDK bundle (/sdk/edgesync.js) as static assets at /.
# wrangler runs the [build] command (scripts/build.sh) before serving.
# DEV_MODE=1 enables the development sign-in route (POST /api/dev/login, any name) used by
# the demo; wrangler.toml never sets it, so a deployment does not have the route.
set -euo pipefail
cd "$(dirname "$0")/.."
export WRANGLER_SEND_METRICS=false
state=.wrangler/state
node_modules/.bin/wrangler d1 execute DB --local --persist-to "$state" --file schema.sql >/dev/null
echo "[dev] schema applied to the local D1 in $state"
echo "[dev] demo app: http://127.0.0.1:${PORT:-8787}/ (open it in two windows, sign in with the same name)"
echo "[dev] get a token: npm run token -- alice"
exec node_modules/.bin/wrangler dev --port "${PORT:-8787}" --ip 127.0.0.1 --persist-to "$state" \
  --show-interactive-dev-session=false --var DEV_MODE:1
