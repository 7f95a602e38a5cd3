#!/usr/bin/env bash
# The playground page at GET / in headless Chromium: a prompt is typed and submitted, and the
# streamed text appears (equal to the server's greedy completion, written chunk by chunk).
source "$(dirname "$0")/lib.sh"
source "$TESTS/tools/server_lib.sh"

if ! command -v chromium >/dev/null || ! command -v node >/dev/null; then
  fail "chromium and node are needed (scripts/install-deps.sh installs them)"
  finish
fi
start_server playground --baseline "$MODEL" --threads 1 || exit 1
out=$(node "$TESTS/tools/server_playground.mjs" "$PORT" "$SCRATCH" 2>&1); rc=$?
printf '%s\n' "$out"
[ $rc -eq 0 ] && pass "playground in chromium" || fail "playground in chromium (status $rc)"
stop_server; expect_eq "clean exit" "$?" "0"
finish
