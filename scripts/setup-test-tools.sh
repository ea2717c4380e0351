#!/usr/bin/env bash
# Test tools beyond npm and cargo, installed once and skipped when present (run by
# scripts/setup.sh):
#   - Chromium (Debian's `chromium` package, /usr/bin/chromium) for the browser test,
#     driven by playwright-core; never a browser that playwright downloads;
#   - schemathesis (pinned, from PyPI) in a project-local venv .venv-fuzz/ for the
#     OpenAPI fuzz run (tests/fuzz/).
# A tool that cannot be installed is a warning here; the test that needs it then fails
# with a message naming it.
set -uo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
VENV=.venv-fuzz

log() { printf '[setup] %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo -n "$@"; else return 1; fi; }

if [ ! -x /usr/bin/chromium ]; then
  log "installing chromium (Debian package) for the browser test"
  export DEBIAN_FRONTEND=noninteractive
  # apt-get update only when the install fails without it (no or stale package lists)
  if ! as_root apt-get install -y -q chromium >/dev/null 2>&1; then
    as_root apt-get update -q >/dev/null 2>&1 || true
    as_root apt-get install -y -q chromium >/dev/null || log "WARNING: could not install chromium; the browser test will fail"
  fi
fi

# A Python >= 3.12 when there is one: CPython 3.11's ast.parse can fail inside
# hypothesis ("AST constructor recursion depth mismatch"), which schemathesis reports as
# a runtime error of the run.
pick_python() {
  local py
  for py in python3.13 python3.12; do
    if "$py" -c 'import sys' >/dev/null 2>&1; then echo "$py"; return; fi
  done
  if command -v pyenv >/dev/null; then
    for py in "$(pyenv root)"/versions/3.1[2-9]*/bin/python3; do
      if [ -x "$py" ] && "$py" -c 'import venv' >/dev/null 2>&1; then echo "$py"; return; fi
    done
  fi
  echo python3
}

if [ "$("$VENV/bin/schemathesis" --version 2>/dev/null | awk '{print $NF}')" != "$SCHEMATHESIS_VERSION" ]; then
  py=$(pick_python)
  log "installing schemathesis $SCHEMATHESIS_VERSION into $VENV ($("$py" --version 2>&1))"
  rm -rf "$VENV"
  if "$py" -m venv "$VENV" \
    && "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"; then
    :
  else
    log "WARNING: could not install schemathesis into $VENV; the fuzz test will fail"
  fi
fi
exit 0
