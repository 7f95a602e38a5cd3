#!/usr/bin/env bash
# deploy/nginx.conf in front of two lowbit serve replicas on 127.0.0.1: both get traffic,
# streams pass through unbuffered, and when one replica is killed with SIGKILL under load no
# request is lost except streams that were already flowing from it (counted and printed).
source "$(dirname "$0")/lib.sh"
source "$TESTS/tools/server_lib.sh"

NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$NGINX" ] || { fail "nginx is not installed (scripts/install-deps.sh installs nginx-light)"; finish; }

# Two replicas, one core each.
start_server replica1 --baseline "$MODEL" --threads 1 --parallel 4 || exit 1
PID1=$SERVER_PID PORT1=$PORT
start_server replica2 --baseline "$MODEL" --threads 1 --parallel 4 || exit 1
PID2=$SERVER_PID PORT2=$PORT
SERVER_PID=   # both are stopped below, or killed by the EXIT trap
cleanup_replicas() {
  kill -KILL "$PID1" "$PID2" 2>/dev/null
  [ -f "$SCRATCH/nginx.pid" ] && kill -QUIT "$(cat "$SCRATCH/nginx.pid")" 2>/dev/null
  cleanup_server
}
trap cleanup_replicas EXIT

# The deployed file with this test's ports and paths.
NPORT=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$SCRATCH/nginx"
sed -e "s|127.0.0.1:8080|127.0.0.1:$NPORT|; s|127.0.0.1:8081|127.0.0.1:$PORT1|; s|127.0.0.1:8082|127.0.0.1:$PORT2|" \
    -e "s|/run/nginx-lowbit.pid|$SCRATCH/nginx.pid|; s|/var/log/nginx/|$SCRATCH/nginx/|" \
    -e "s|^http {|http {\n    client_body_temp_path $SCRATCH/nginx/body;\n    proxy_temp_path $SCRATCH/nginx/proxy;|" \
    "$TESTS/../deploy/nginx.conf" > "$SCRATCH/nginx.conf"
user=""; [ "$(id -u)" -eq 0 ] && user="user root;"
"$NGINX" -t -c "$SCRATCH/nginx.conf" -g "$user" >/dev/null 2>"$SCRATCH/nginx-t.log" &&
  pass "deploy/nginx.conf is valid" || { fail "nginx -t: $(cat "$SCRATCH/nginx-t.log")"; finish; }
"$NGINX" -c "$SCRATCH/nginx.conf" -g "$user" 2>"$SCRATCH/nginx-start.log" || { fail "nginx: $(cat "$SCRATCH/nginx-start.log")"; finish; }
for i in $(seq 1 50); do curl -sf "http://127.0.0.1:$NPORT/health" >/dev/null && break; sleep 0.1; done
URL=http://127.0.0.1:$NPORT

# The original API and the OpenAI one through the proxy: the known greedy text.
out=$(curl -s -XPOST -d '{"prompt": "", "max_new_tokens": 61, "temperature": 0}' "$URL/generate")
expect_contains "/generate through nginx: Lily" "$out" '"completion":"Once upon a time, there was a little girl named Lily.'
out=$(curl -s "$URL/v1/models")
expect_contains "/v1/models through nginx" "$out" '"object":"list"'

# A stream through the proxy: every event, then [DONE]. When the first event arrived is
# printed, not asserted (a timing, and this machine is shared): it comes within the first few
# percent of the stream's time, as each token is written.
$PY - "$NPORT" > "$SCRATCH/sse.txt" <<'EOF' && pass "SSE through nginx: $(cat "$SCRATCH/sse.txt")" ||
import http.client, json, sys, time
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=30)
t0 = time.monotonic()
c.request("POST", "/v1/completions", json.dumps({"prompt": "Once", "max_tokens": 400,
          "temperature": 0, "stream": True}), {"Content-Type": "application/json"})
r = c.getresponse()
times, done = [], False
while True:
    line = r.readline()
    if not line:
        break
    if line.strip() == b"data: [DONE]":
        done = True
        break
    if line.startswith(b"data: "):
        times.append(time.monotonic() - t0)
print(f"{len(times)} events then [DONE], the first at {100 * times[0] / times[-1]:.1f} % of the stream's time")
sys.exit(0 if len(times) == 400 and done else 1)
EOF
  fail "SSE through nginx: $(cat "$SCRATCH/sse.txt")"

# Both replicas served requests (least_conn spreads concurrent ones).
$PY "$TESTS/tools/nginx_load.py" "$NPORT" 24 4 0 0 > "$SCRATCH/warm.txt" 2>&1 || fail "warm-up load: $(cat "$SCRATCH/warm.txt")"
n1=$(curl -s "http://127.0.0.1:$PORT1/metrics" | awk '/^lowbit_requests_total/ {s += $2} END {print s + 0}')
n2=$(curl -s "http://127.0.0.1:$PORT2/metrics" | awk '/^lowbit_requests_total/ {s += $2} END {print s + 0}')
[ "${n1%.*}" -gt 0 ] && [ "${n2%.*}" -gt 0 ] && pass "both replicas served ($n1 and $n2 requests)" ||
  fail "one replica got nothing: $n1 and $n2 requests"

# Bounded load, replica 1 killed with SIGKILL after a third of it.
$PY "$TESTS/tools/nginx_load.py" "$NPORT" 120 6 "$PID1" 40 > "$SCRATCH/load.txt" 2>&1; rc=$?
cat "$SCRATCH/load.txt"
grep -q "^killed replica $PID1" "$SCRATCH/load.txt" && pass "replica 1 killed mid-run" || fail "the replica was not killed"
kill -0 "$PID1" 2>/dev/null && fail "replica 1 still alive" || true
expect_eq "no request lost to the kill (except cut streams)" "$rc" "0"
summary=$(tail -1 "$SCRATCH/load.txt")
expect_prefix "every request answered or cut" "$summary" "requests 120 ok"
echo "failover: $summary; nginx moved $(grep -c 'upstream' "$SCRATCH/nginx/lowbit-error.log") request(s) off the dead replica"
# After the kill the survivor takes everything.
out=$(curl -s -XPOST -d '{"prompt": "", "max_new_tokens": 8, "temperature": 0}' "$URL/generate")
expect_contains "/generate after the kill" "$out" '"completion":"Once upon a time'

kill -TERM "$PID2"; wait "$PID2"; expect_eq "replica 2 drains and exits 0" "$?" "0"
finish
