#!/usr/bin/env bash
# Continuous batching: 8 clients x 20 greedy requests against --parallel 4 all succeed and each
# output equals the same request served alone; the batched/sequential throughput ratio is
# printed (measured, not asserted). A full queue answers 429 with Retry-After.
source "$(dirname "$0")/lib.sh"
source "$TESTS/tools/server_lib.sh"

start_server conc --baseline "$MODEL" --threads 1 --parallel 4 || exit 1
run_client concurrency
stop_server; expect_eq "clean exit" "$?" "0"

start_server queue --baseline "$MODEL" --threads 1 --parallel 1 --max-queue 1 || exit 1
run_client queue
stop_server
finish
