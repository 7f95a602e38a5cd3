#!/usr/bin/env bash
# lowbit serve under abuse: malformed, oversized and wrongly typed bodies, unknown fields and
# absurd parameters (400 naming the field), unknown paths (404), wrong methods (405), a slow
# client, 1,000 connections opened and dropped, requests cancelled mid-stream and abandoned
# mid-generation. The server keeps serving the right text, its slots come back, its memory
# returns to its level, and it still exits cleanly (under ASan: without leaks).
source "$(dirname "$0")/lib.sh"
source "$TESTS/tools/server_lib.sh"

start_server abuse --baseline "$MODEL" --threads 1 --parallel 4 --max-body 1024 || exit 1
SERVER_PID=$SERVER_PID run_client abuse
stop_server; expect_eq "clean exit after abuse" "$?" "0"
finish
