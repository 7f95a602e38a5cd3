#!/usr/bin/env bash
# lowbit serve over real sockets: every endpoint (original API, OpenAI-compatible with SSE,
# metadata, evaluate, metrics, playground), the API key, the fallback to the baseline when the
# quantized model cannot load, and a SIGTERM that drains the request in flight.
source "$(dirname "$0")/lib.sh"
source "$TESTS/tools/server_lib.sh"

cp "$MODEL" "$SCRATCH/quantized.gguf"

# Settings from the environment, as the original service took them.
export MAX_NEW_TOKENS=24 TEMPERATURE=0.8 TOP_K=40
export LOWBIT_DATA_DIR="$SHARED/datasets"
start_server main --baseline "$MODEL" --quantized "$SCRATCH/quantized.gguf" --threads 1 --parallel 4 || exit 1
run_client endpoints
stop_server; expect_eq "clean exit after SIGTERM" "$?" "0"
grep -q "serve: stopped" "$SERVER_LOG" && pass "log says stopped" || fail "no 'stopped' in the log"

# A real quantized model, when this build has `lowbit quantize`: /generate serves it and
# gives what `lowbit generate` gives on the same file.
if "$BIN" quantize -m "$MODEL" --method rtn --bits 8 -t 1 -o "$SCRATCH/q8.gguf" -q >/dev/null 2>&1; then
  QUANT_TEXT=$("$BIN" generate -m "$SCRATCH/q8.gguf" -n 61 --temp 0 --threads 1 2>/dev/null)
  export QUANT_TEXT
  start_server quant --baseline "$MODEL" --quantized "$SCRATCH/q8.gguf" --threads 1 || exit 1
  run_client quantized
  stop_server
else
  echo "skipped: this build has no lowbit quantize yet"
fi

# A llama2.c checkpoint with its own tokenizer file serves the same text.
start_server llama2c --baseline "$SHARED/models/stories260K.bin" --tokenizer "$SHARED/models/tok512.bin" --threads 1 || exit 1
out=$(curl -s -XPOST -d '{"prompt": "", "max_new_tokens": 61, "temperature": 0}' "http://127.0.0.1:$PORT/generate")
expect_contains "llama2.c model: Lily" "$out" '"completion":"Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball. She wanted to play with it, but it was too high."'
stop_server

# The API key (from the environment) guards everything but /health and /metrics.
LOWBIT_API_KEY=s3cret start_server auth --baseline "$MODEL" --threads 1 || exit 1
API_KEY=s3cret run_client auth
stop_server

# A quantized model that does not load: logged, and /generate serves the baseline.
BASELINE_MODEL_PATH="$MODEL" QUANTIZED_MODEL_PATH="$SCRATCH/missing.gguf" start_server fallback --threads 1 || exit 1
run_client fallback
grep -q "quantized model did not load" "$SERVER_LOG" && pass "fallback logged" || fail "fallback not logged: $(cat "$SERVER_LOG")"
stop_server

# SIGTERM while a stream is flowing: it finishes, then the server exits 0.
start_server drain --baseline "$MODEL" --threads 1 || exit 1
SERVER_PID=$SERVER_PID run_client drain
rc=0; wait "$SERVER_PID" || rc=$?
SERVER_PID=
expect_eq "drained exit status" "$rc" "0"
grep -q "draining, 1 request(s) in flight" "$SERVER_LOG" && pass "the stream was in flight at SIGTERM" ||
  fail "no request in flight at SIGTERM: $(cat "$SERVER_LOG")"

# While the models load (here: the baseline is a FIFO nobody writes yet, so opening it
# blocks) the server already answers: /health and the model endpoints say 503.
mkfifo "$SCRATCH/slow.gguf"
"$BIN" serve --baseline "$SCRATCH/slow.gguf" --addr 127.0.0.1:0 >"$SCRATCH/loading.log" 2>&1 &
SERVER_PID=$!
PORT=
for i in $(seq 1 100); do
  PORT=$(grep -ao 'listening on http://127.0.0.1:[0-9]*' "$SCRATCH/loading.log" | sed 's/.*://')
  [ -n "$PORT" ] && break
  sleep 0.1
done
out=$(curl -s -w '|%{http_code}' "http://127.0.0.1:$PORT/health")
expect_eq "health while loading" "$out" $'{"status":"loading"}\n|503'
out=$(curl -s -o /dev/null -w '%{http_code}' -XPOST -d '{"prompt":""}' "http://127.0.0.1:$PORT/generate")
expect_eq "generate while loading" "$out" "503"
timeout 10 sh -c ": > '$SCRATCH/slow.gguf'"   # the loader now sees a FIFO, not a model file
rc=0; wait "$SERVER_PID" || rc=$?
SERVER_PID=
expect_eq "a baseline that fails to load ends the server" "$rc" "1"
grep -q "baseline model: .*slow.gguf" "$SCRATCH/loading.log" && pass "and says why" || fail "no reason in: $(cat "$SCRATCH/loading.log")"

# Bad settings are refused with one line before anything is loaded.
expect_error "bad --parallel" "parallel" -- "$BIN" serve --baseline "$MODEL" --parallel 0
expect_error "bad address" "address" -- "$BIN" serve --baseline "$MODEL" --addr nowhere
expect_error "no baseline" "baseline" -- env -u BASELINE_MODEL_PATH "$BIN" serve
expect_error "bad MAX_NEW_TOKENS" "MAX_NEW_TOKENS" -- env MAX_NEW_TOKENS=lots "$BIN" serve --baseline "$MODEL"
expect_error "unloadable baseline" "baseline model" -- "$BIN" serve --baseline "$SCRATCH/none.gguf" --addr 127.0.0.1:0 --quiet
finish
