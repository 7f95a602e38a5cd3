#!/usr/bin/env bash
# Requests/s through deploy/nginx.conf with one replica of lowbit serve and with two, measured
# in the same run with wrk (greedy 16-token /generate, as tests/tools/server_wrk.lua), each
# replica on THREADS threads. Prints both figures and their ratio.
#   bench/replicas.sh [MODEL] [SECONDS] [THREADS]     (defaults: stories260K, 10, 1)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
model=${1:-$root/../shared/models/stories260K.gguf}
seconds=${2:-10}
threads=${3:-1}
bin=$root/build/lowbit
[ -x "$bin" ] || { echo "replicas.sh: build lowbit first (make build)" >&2; exit 1; }
command -v wrk >/dev/null && command -v nginx >/dev/null ||
  { echo "replicas.sh: needs wrk and nginx (scripts/install-deps.sh)" >&2; exit 1; }

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  [ -f "$work/nginx.pid" ] && kill -QUIT "$(cat "$work/nginx.pid")" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

start_replica() {
  local port log=$work/replica$1.log
  port=$(free_port)
  "$bin" serve --baseline "$model" --threads "$threads" --parallel 4 --addr "127.0.0.1:$port" >"$log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 300); do curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break; sleep 0.1; done
  echo "$port"
}

# measure N PORT1 PORT2: nginx over the first N of the two replicas, wrk through it.
measure() {
  local n=$1 nport conf=$work/nginx-$1.conf second=$3
  [ "$n" -eq 1 ] && second=$2   # one replica: both upstream lines name it
  nport=$(free_port)
  mkdir -p "$work/logs"
  sed -e "s|127.0.0.1:8080|127.0.0.1:$nport|; s|127.0.0.1:8081|127.0.0.1:$2|; s|127.0.0.1:8082|127.0.0.1:$second|" \
      -e "s|/run/nginx-lowbit.pid|$work/nginx.pid|; s|/var/log/nginx/|$work/logs/|" \
      deploy/nginx.conf > "$conf"
  local user=""; [ "$(id -u)" -eq 0 ] && user="user root;"
  nginx -c "$conf" -g "$user"
  sleep 0.3
  wrk -t2 -c8 -d"${seconds}s" -s tests/tools/server_wrk.lua "http://127.0.0.1:$nport/generate" > "$work/wrk-$n.txt"
  kill -QUIT "$(cat "$work/nginx.pid")"
  sleep 0.5
  awk '/Requests\/sec/ {print $2}' "$work/wrk-$n.txt"
}

p1=$(start_replica 1)
p2=$(start_replica 2)
one=$(measure 1 "$p1" "$p2")
two=$(measure 2 "$p1" "$p2")
echo "replicas behind nginx, $threads thread(s) each, ${seconds}s of wrk -t2 -c8 (16-token greedy /generate):"
printf '  1 replica : %8.1f requests/s\n' "$one"
printf '  2 replicas: %8.1f requests/s\n' "$two"
awk -v a="$one" -v b="$two" 'BEGIN { printf "  ratio     : %8.2fx\n", b / a }'
grep -h "non-200" "$work"/wrk-*.txt | sed 's/^/  /'
