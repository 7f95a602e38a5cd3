#!/usr/bin/env bash
# lowbit bench: every field printed, JSON in the shared result schema with figures that agree with
# each other and with the model's shape, --vs ratios recomputed from the baseline's own figures,
# CSV and Markdown tables, --membw, and bad options refused with one line. No timed assertions:
# only the relations between the figures and the counts of the work done are checked.
source "$(dirname "$0")/lib.sh"
PY=/usr/bin/python3
M="$SHARED/models/stories260K.gguf"
MBIN="$SHARED/models/stories260K.bin"
# Single-threaded where the engine's thread count does not matter: the test stays fast on a
# loaded machine, where a spinning thread pool can lose whole time slices.
SMALL=(--reps 3 --gen 8 --prompt 8 --batch 1,4 --warmup 1)

# --- text table: every column, one row per batch size, progress on stderr ---
out=$("$BIN" bench -m "$M" "${SMALL[@]}" -t 1 2>"$SCRATCH/progress")
rc=$?
expect_eq "text exit status" "$rc" "0"
for col in model format batch lat_mean_ms lat_sd_ms lat_p50_ms lat_p95_ms lat_p99_ms ttft_ms \
           itl_p50_ms itl_p99_ms prefill_tok/s decode_tok/s peak_rss_MiB model_MiB kv_MiB bpw; do
  expect_contains "text column $col" "$out" "$col"
done
expect_contains "text settings line" "$out" "prompt 8, gen 8, 3 reps after 1 warm-up, 1 threads"
rows=$(printf '%s\n' "$out" | grep -c '^stories260K.gguf ')
expect_eq "text rows (batch 1 and 4)" "$rows" "2"
# stories260K is F32: exactly 32 bits per weight.
expect_eq "text bpw" "$(printf '%s\n' "$out" | awk '/^stories260K.gguf /{print $NF; exit}')" "32.00"
expect_contains "progress bar reaches the end" "$(cat "$SCRATCH/progress")" "100%"
# 2 batch sizes x (1 memory + 1 warm-up + 3 timed) requests.
expect_contains "progress counts requests" "$(cat "$SCRATCH/progress")" "10/10 req"

# --- JSON: the shared schema, consistent figures ---
if "$BIN" bench -m "$M" "${SMALL[@]}" -t 1 --json -q >"$SCRATCH/a.json" 2>"$SCRATCH/a.err"; then
  pass "json exit status"
else
  fail "json run failed: $(cat "$SCRATCH/a.err")"
fi
expect_eq "json: nothing on stderr with -q" "$(cat "$SCRATCH/a.err")" ""
check=$("$PY" - "$SCRATCH/a.json" "$M" <<'EOF'
import json, math, sys
doc = json.load(open(sys.argv[1]))
model = sys.argv[2]
problems = []
def need(cond, what):
    if not cond:
        problems.append(what)
rs = doc["results"]
keys = {"model", "format", "task", "metric", "value", "stderr", "n", "seconds", "params"}
for r in rs:
    need(set(r) == keys, "keys %s" % sorted(r))
    need(r["task"] == "bench" and r["model"] == model and r["format"] == "F32", "labels %s" % r)
    p = r["params"]
    need(p["prompt"] == 8 and p["gen"] == 8 and p["threads"] == 1 and p["reps"] == 3 and p["kv_cache"] == "f32", "params %s" % p)
by = {}
for r in rs:
    by.setdefault(r["params"]["batch"], {})[r["metric"]] = r
need(sorted(by) == [1, 4], "batches %s" % sorted(by))
metrics = ["latency_mean_ms", "latency_stdev_ms", "latency_p50_ms", "latency_p95_ms",
           "latency_p99_ms", "ttft_ms", "itl_p50_ms", "itl_p99_ms", "prefill_tokens_per_s",
           "decode_tokens_per_s", "prefill_tokens_per_s_median", "decode_tokens_per_s_median",
           "generated_tokens", "peak_rss_bytes", "model_bytes",
           "kv_cache_bytes", "bits_per_weight", "weight_bytes_per_token"]
# The model's shape (lowbit info): dim 64, 5 layers, 8 heads of 8, 4 kv heads, ffn 172,
# vocab 512, separate output head.
dim, layers, kv_dim, ffn, vocab = 64, 5, 32, 172, 512
params = 2 * vocab * dim + layers * (2 * dim * dim + 2 * dim * kv_dim + 3 * dim * ffn + 2 * dim) + dim
for b, m in by.items():
    for k in metrics:
        need(k in m, "batch %d lacks %s" % (b, k))
    if problems:
        break
    v = {k: m[k]["value"] for k in metrics}
    need(0 < v["latency_p50_ms"] <= v["latency_p95_ms"] <= v["latency_p99_ms"], "percentiles %s" % v)
    need(0 < v["ttft_ms"] <= v["latency_p99_ms"], "ttft %s" % v)
    need(0 < v["itl_p50_ms"] <= v["itl_p99_ms"], "itl %s" % v)
    need(v["prefill_tokens_per_s"] > 0 and v["decode_tokens_per_s"] > 0, "throughput %s" % v)
    need(v["prefill_tokens_per_s_median"] > 0 and v["decode_tokens_per_s_median"] > 0, "medians %s" % v)
    need(v["latency_stdev_ms"] >= 0, "stdev")
    # Work done: every request yields batch x gen tokens; counts behind each rate.
    need(v["generated_tokens"] == b * 8, "generated %s at batch %d" % (v["generated_tokens"], b))
    need(m["prefill_tokens_per_s"]["n"] == 3 * b * 8, "prefill n %d" % m["prefill_tokens_per_s"]["n"])
    need(m["decode_tokens_per_s"]["n"] == 3 * b * 7, "decode n %d" % m["decode_tokens_per_s"]["n"])
    need(m["itl_p50_ms"]["n"] == 3 * 7, "itl n")
    need(m["latency_p50_ms"]["n"] == 3, "latency n")
    # Means carry a standard error; percentiles do not.
    need(m["latency_mean_ms"]["stderr"] is not None and m["latency_p50_ms"]["stderr"] is None, "stderr")
    need(v["model_bytes"] == 4 * params and m["model_bytes"]["n"] == params, "model bytes %s" % v["model_bytes"])
    need(abs(v["bits_per_weight"] - 32.0) < 1e-9, "bpw %s" % v["bits_per_weight"])
    need(v["weight_bytes_per_token"] == 4 * (params - vocab * dim + dim), "bytes/token %s" % v["weight_bytes_per_token"])
    need(v["kv_cache_bytes"] == 2 * b * layers * 16 * kv_dim * 4, "kv %s" % v["kv_cache_bytes"])
    need(v["peak_rss_bytes"] > v["model_bytes"] + v["kv_cache_bytes"], "peak rss %s" % v["peak_rss_bytes"])
    need(all(m[k]["seconds"] > 0 for k in metrics), "seconds")
    need("speedup" not in m, "ratios without --vs")
print("ok" if not problems else "; ".join(problems[:5]))
EOF
)
expect_eq "json figures consistent" "$check" "ok"

# Two threads: the setting reaches the results (kept tiny: a loaded machine stalls thread pools).
t2=$("$BIN" bench -m "$M" --reps 1 --gen 2 --prompt 2 --batch 1 --warmup 0 -t 2 --json -q | "$PY" -c '
import json, sys
rs = json.load(sys.stdin)["results"]
print("ok" if rs and all(r["params"]["threads"] == 2 for r in rs) else rs[:1])')
expect_eq "threads 2 in params" "$t2" "ok"

# --- --vs: the baseline leads, ratios are the baseline's figures over the model's ---
if "$BIN" bench -m "$M" --vs "$MBIN" --reps 2 --gen 4 --prompt 4 --batch 2 --warmup 0 -t 1 --json -q \
    >"$SCRATCH/vs.json" 2>"$SCRATCH/vs.err"; then pass "vs exit status"; else fail "vs: $(cat "$SCRATCH/vs.err")"; fi
check=$("$PY" - "$SCRATCH/vs.json" "$M" "$MBIN" <<'EOF'
import json, sys
rs = json.load(open(sys.argv[1]))["results"]
model, base = sys.argv[2], sys.argv[3]
f = {(r["model"], r["metric"]): r for r in rs}
problems = []
def close(a, b):
    return abs(a - b) <= 1e-6 * max(abs(a), abs(b))
for who in (model, base):
    for k in ("speedup", "prefill_speedup", "decode_speedup", "memory_ratio", "model_bytes_ratio"):
        if (who, k) not in f:
            problems.append("%s lacks %s" % (who, k))
        elif f[(who, k)]["params"].get("baseline") != base:
            problems.append("%s %s names no baseline" % (who, k))
if not problems:
    v = lambda who, k: f[(who, k)]["value"]
    if not all(close(v(base, k), 1.0) for k in ("speedup", "prefill_speedup", "decode_speedup", "memory_ratio")):
        problems.append("baseline ratios are not 1")
    if not close(v(model, "speedup"), v(base, "latency_mean_ms") / v(model, "latency_mean_ms")):
        problems.append("speedup")
    if not close(v(model, "decode_speedup"), v(model, "decode_tokens_per_s") / v(base, "decode_tokens_per_s")):
        problems.append("decode speedup")
    if not close(v(model, "memory_ratio"), v(model, "peak_rss_bytes") / v(base, "peak_rss_bytes")):
        problems.append("memory ratio")
    if not close(v(model, "model_bytes_ratio"), v(model, "model_bytes") / v(base, "model_bytes")):
        problems.append("model bytes ratio")
    if rs[0]["model"] != base:
        problems.append("baseline does not lead")
print("ok" if not problems else "; ".join(problems))
EOF
)
expect_eq "vs ratios" "$check" "ok"
out=$("$BIN" bench -m "$M" --vs "$MBIN" --reps 1 --gen 2 --prompt 2 --batch 1 --warmup 0 -t 1 -q)
for col in speedup prefill_x decode_x mem_ratio; do expect_contains "vs text column $col" "$out" "$col"; done
expect_contains "vs text names the baseline" "$out" "baseline stories260K.bin"

# --- --gen 1: no decode pass, so no decode figures (null), and prefill alone ---
"$BIN" bench -m "$M" --reps 2 --gen 1 --prompt 4 --batch 3 --warmup 0 -t 1 --json -q >"$SCRATCH/g1.json"
check=$("$PY" - "$SCRATCH/g1.json" <<'EOF'
import json, sys
f = {r["metric"]: r for r in json.load(open(sys.argv[1]))["results"]}
ok = (f["decode_tokens_per_s"]["value"] is None and f["itl_p50_ms"]["value"] is None
      and f["prefill_tokens_per_s"]["value"] > 0 and f["generated_tokens"]["value"] == 3
      and f["prefill_tokens_per_s"]["n"] == 2 * 3 * 4)
print("ok" if ok else "bad: %s" % {k: f[k]["value"] for k in f})
EOF
)
expect_eq "gen 1: prefill only" "$check" "ok"

# --- CSV and Markdown ---
csv=$("$BIN" bench -m "$M,$MBIN" --reps 1 --gen 2 --prompt 2 --batch 1,2 --warmup 0 -t 1 --csv -q)
expect_eq "csv lines (header + 2 models x 2 batches)" "$(printf '%s\n' "$csv" | grep -c '')" "5"
expect_prefix "csv header" "$csv" "model,format,batch,prompt,gen,reps,threads,latency_mean_ms,"
check=$(printf '%s\n' "$csv" | "$PY" -c '
import csv, sys
rows = list(csv.DictReader(sys.stdin))
ok = len(rows) == 4 and all(float(r["latency_p50_ms"]) <= float(r["latency_p95_ms"]) <= float(r["latency_p99_ms"]) for r in rows)
ok = ok and [int(r["batch"]) for r in rows] == [1, 1, 2, 2] and all(int(r["generated_tokens"]) == 2 * int(r["batch"]) for r in rows)
print("ok" if ok else rows)')
expect_eq "csv figures" "$check" "ok"
md=$("$BIN" bench -m "$M" --reps 1 --gen 2 --prompt 2 --batch 1 --warmup 0 -t 1 --md -q)
expect_contains "md header" "$md" "| model | format | batch |"
expect_contains "md row" "$md" "| stories260K.gguf | F32 | 1 |"

# --- memory bandwidth ---
bw=$("$BIN" bench --membw --membw-mib 64 -t 1 --json | "$PY" -c '
import json, sys
r = json.load(sys.stdin)["results"][0]
print("ok" if r["task"] == "membw" and r["metric"] == "read_bandwidth_gb_s" and r["value"] > 0.1 else r)')
expect_eq "membw json" "$bw" "ok"
expect_contains "membw text" "$("$BIN" bench --membw --membw-mib 16 -t 2)" "GB/s (2 threads, 16 MiB buffer"

# --- bad options: exit 1, one line ---
expect_error "batch 0" "--batch '0': 0 is outside 1\.\.4096" -- "$BIN" bench -m "$M" --batch 0
expect_error "batch list with an empty item" "--batch '1,,4'.*comma" -- "$BIN" bench -m "$M" --batch 1,,4
expect_error "batch list with a trailing comma" "--batch '4,'" -- "$BIN" bench -m "$M" --batch 4,
expect_error "batch list with a word" "--batch '1,x'" -- "$BIN" bench -m "$M" --batch 1,x
expect_error "negative batch" "--batch '-2'" -- "$BIN" bench -m "$M" --batch=-2
expect_error "huge batch" "outside 1\.\.4096" -- "$BIN" bench -m "$M" --batch 99999999999999
expect_error "batch x prompt too large" "--batch 4096 x --prompt 1048576" -- "$BIN" bench -m "$M" --batch 1,4096 --prompt 1048576
expect_error "reps x gen too large" "--reps 1000000 x --gen 1048576" -- "$BIN" bench -m "$M" --reps 1000000 --gen 1048576
expect_error "prompt too large" "--prompt is 2000000" -- "$BIN" bench -m "$M" --prompt 2000000
expect_error "reps 0" "--reps is 0" -- "$BIN" bench -m "$M" --reps 0
expect_error "prompt 0" "--prompt is 0" -- "$BIN" bench -m "$M" --prompt 0
expect_error "gen 0" "--gen is 0" -- "$BIN" bench -m "$M" --gen 0
expect_error "negative warmup" "--warmup is -1" -- "$BIN" bench -m "$M" --warmup -1
expect_error "negative threads" "--threads is -3" -- "$BIN" bench -m "$M" --threads -3
expect_error "reps not a number" "--reps expects an integer" -- "$BIN" bench -m "$M" --reps many
expect_error "unknown model" "nope\.gguf" -- "$BIN" bench -m "$SCRATCH/nope.gguf" --reps 1
expect_error "unknown second model" "nope\.gguf" -- "$BIN" bench -m "$M,$SCRATCH/nope.gguf" --reps 1
expect_error "empty model in the list" "empty model path" -- "$BIN" bench -m "$M,"
expect_error "unknown baseline" "missing\.gguf" -- "$BIN" bench -m "$M" --vs "$SCRATCH/missing.gguf"
echo "not a model" >"$SCRATCH/junk.gguf"
expect_error "not a model file" "junk\.gguf" -- "$BIN" bench -m "$SCRATCH/junk.gguf"
expect_error "no model" "-m MODEL is required" -- "$BIN" bench --reps 1
expect_error "two output formats" "exclude each other" -- "$BIN" bench -m "$M" --json --csv
expect_error "membw with a model" "--membw" -- "$BIN" bench --membw -m "$M"
expect_error "membw buffer 0" "--membw-mib is 0" -- "$BIN" bench --membw --membw-mib 0
expect_error "bad seed" "--seed" -- "$BIN" bench -m "$M" --seed -5
expect_error "unknown option" "unknown option '--frobnicate'" -- "$BIN" bench -m "$M" --frobnicate
help=$("$BIN" bench --help)
expect_contains "help" "$help" "--vs PATH"

finish
