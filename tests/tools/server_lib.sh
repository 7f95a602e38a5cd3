# Helpers for the server tests: start `lowbit serve` on a free port (port 0, read back from its
# log), wait until /health says ok, and always stop it when the test exits.
SERVER_PID=
PORT=
SERVER_LOG=

# start_server LOGNAME ARGS...: sets SERVER_PID, PORT, SERVER_LOG; returns 1 if it never got ready.
start_server() {
  local name=$1; shift
  SERVER_LOG="$SCRATCH/$name.log"
  "$BIN" serve --addr 127.0.0.1:0 "$@" >"$SERVER_LOG" 2>&1 &
  SERVER_PID=$!
  PORT=
  local i
  for i in $(seq 1 300); do
    if [ -z "$PORT" ]; then
      PORT=$(grep -ao 'listening on http://127.0.0.1:[0-9]*' "$SERVER_LOG" | head -1 | sed 's/.*://')
    fi
    if [ -n "$PORT" ] && curl -sf "http://127.0.0.1:$PORT/health" >/dev/null 2>&1; then
      return 0
    fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      echo "server exited early:" >&2; cat "$SERVER_LOG" >&2
      return 1
    fi
    sleep 0.1
  done
  echo "server not ready after 30 s:" >&2; cat "$SERVER_LOG" >&2
  return 1
}

# stop_server: SIGTERM, wait for a clean exit (status 0), and return that status.
stop_server() {
  [ -n "$SERVER_PID" ] || return 0
  kill -TERM "$SERVER_PID" 2>/dev/null
  local rc=0
  wait "$SERVER_PID" || rc=$?
  SERVER_PID=
  return $rc
}

cleanup_server() {
  if [ -n "$SERVER_PID" ]; then kill -KILL "$SERVER_PID" 2>/dev/null; wait "$SERVER_PID" 2>/dev/null; fi
  rm -rf "$SCRATCH"
}
trap cleanup_server EXIT

PY=/usr/bin/python3
# Under AddressSanitizer memory is checked by LeakSanitizer at exit instead of by RSS.
if ldd "$BIN" 2>/dev/null | grep -q libasan; then export LOWBIT_SANITIZED=1; fi
CLIENT="$TESTS/tools/server_client.py"
MODEL="$SHARED/models/stories260K.gguf"

# run_client CMD: runs one group of checks in server_client.py; its failures count here.
run_client() {
  local out rc
  out=$("$PY" "$CLIENT" "$1" "$PORT" 2>&1); rc=$?
  printf '%s\n' "$out"
  if [ $rc -ne 0 ]; then FAILS=$((FAILS + rc)); fi
}
