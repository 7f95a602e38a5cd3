#!/usr/bin/env bash
# Speed of lowbit on synthetic stories15M- and stories110M-shaped models in F32, Q8_0 and Q4_0
# GGUF: decode (tg128) and prefill (pp512) tokens/s at 2 threads, batch-16 over batch-1 decode
# throughput, and the fraction of the memory-bandwidth roofline that batch-1 decode reaches.
# With LLAMA_CPP_DIR (a llama.cpp build directory holding bin/llama-bench) it also runs
# llama-bench on the very same files, alternating with lowbit's runs file by file, and prints
# lowbit ÷ llama.cpp. Rates are medians over the repetitions, so a stall on a shared machine
# does not decide a ratio.
#
#   bench/run.sh                                   # lowbit alone
#   LLAMA_CPP_DIR=/tmp/llamacpp/build bench/run.sh # side by side
#
# Environment: LOWBIT (the program; default build/lowbit), LOWBIT_SHARED (data with
# models/tokenizer.bin; default ../shared), CACHE (generated models; default /tmp/lowbit-bench),
# THREADS (2), REPS (3), SIZES ("stories15M stories110M"), TYPES ("f32 q8_0 q4_0"),
# PP (512), TG (128), B16_GEN (32: decode steps of the batch-16 comparison), KV (f16: lowbit's
# KV cache, as llama-bench keeps its own by default; f32 for lowbit's default).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
LOWBIT=${LOWBIT:-$ROOT/build/lowbit}
export LOWBIT_SHARED=${LOWBIT_SHARED:-$ROOT/../shared}
CACHE=${CACHE:-/tmp/lowbit-bench}
THREADS=${THREADS:-2}
KV=${KV:-f16}
REPS=${REPS:-3}
SIZES=${SIZES:-stories15M stories110M}
TYPES=${TYPES:-f32 q8_0 q4_0}
PP=${PP:-512}
TG=${TG:-128}
B16_GEN=${B16_GEN:-32}
LLAMA_BENCH=
if [ -n "${LLAMA_CPP_DIR:-}" ]; then
  for cand in "$LLAMA_CPP_DIR/bin/llama-bench" "$LLAMA_CPP_DIR/llama-bench"; do
    [ -x "$cand" ] && LLAMA_BENCH=$cand && break
  done
  [ -n "$LLAMA_BENCH" ] || { echo "run.sh: no llama-bench in $LLAMA_CPP_DIR/bin" >&2; exit 1; }
fi
[ -x "$LOWBIT" ] || { echo "run.sh: $LOWBIT is not built (cmake -S . -B build && cmake --build build)" >&2; exit 1; }
# Any python 3 reads the JSON; Debian's is preferred as everywhere in the project.
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
TIME=
[ -x /usr/bin/time ] && TIME=/usr/bin/time

mkdir -p "$CACHE"
OUT="$CACHE/results"
mkdir -p "$OUT"

echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# lowbit: $LOWBIT${LLAMA_BENCH:+, llama.cpp: $LLAMA_BENCH}; threads $THREADS, reps $REPS, lowbit KV cache $KV"

# 1. Models, generated once into the cache.
for size in $SIZES; do
  for type in $TYPES; do
    f="$CACHE/$size-$type.gguf"
    if [ ! -s "$f" ]; then
      echo "# writing $f" >&2
      "$LOWBIT" synth --preset "$size" --type "$type" -o "$f" -q
    fi
  done
done

# 2. This machine's read bandwidth at the same thread count. It is measured again just before
# each file's decode, and each row's roofline uses that measurement: on a shared machine the
# bandwidth drifts over a run as much as the decode speed does.
bandwidth() { "$LOWBIT" bench --membw -t "$THREADS" --json >"$1"; }
gbps() { "$PY" -c 'import json,sys; print("%.2f" % json.load(open(sys.argv[1]))["results"][0]["value"])' "$1"; }
bandwidth "$OUT/membw.json"
echo "# memory read bandwidth: $(gbps "$OUT/membw.json") GB/s ($THREADS threads; again before each file's decode)"

# Runs a command, keeping its stdout in $1 and its peak RSS (KiB) in $1.rss when /usr/bin/time exists.
# A failing llama-bench leaves its cells empty ("-") instead of ending the run.
measure() {
  local out=$1; shift
  rm -f "$out" "$out.rss"
  if [ -n "$TIME" ]; then
    "$TIME" -f "%M" -o "$out.rss" "$@" >"$out"
  else
    "$@" >"$out"
  fi
}
measure_cpp() {
  measure "$@" || { echo "# llama-bench failed for ${1##*/}: see above" >&2; rm -f "$1" "$1.rss"; }
}

# 3. Per file: lowbit and llama.cpp alternate (tg, then pp), then lowbit's batch 1 vs 16.
for size in $SIZES; do
  for type in $TYPES; do
    f="$CACHE/$size-$type.gguf"
    tag="$size-$type"
    echo "# measuring $tag" >&2
    bandwidth "$OUT/$tag.membw.json"
    # tg: one prompt token, then TG decode passes (llama-bench's tg starts from an empty cache).
    measure "$OUT/$tag.lb-tg.json" "$LOWBIT" bench -m "$f" --batch 1 --prompt 1 --gen $((TG + 1)) \
      --reps "$REPS" --warmup 1 -t "$THREADS" --kv-type "$KV" --json -q
    if [ -n "$LLAMA_BENCH" ]; then
      measure_cpp "$OUT/$tag.cpp-tg.json" "$LLAMA_BENCH" -m "$f" -p 0 -n "$TG" -t "$THREADS" -r "$REPS" -o json
    fi
    measure "$OUT/$tag.lb-pp.json" "$LOWBIT" bench -m "$f" --batch 1 --prompt "$PP" --gen 1 \
      --reps "$REPS" --warmup 1 -t "$THREADS" --kv-type "$KV" --json -q
    if [ -n "$LLAMA_BENCH" ]; then
      measure_cpp "$OUT/$tag.cpp-pp.json" "$LLAMA_BENCH" -m "$f" -p "$PP" -n 0 -t "$THREADS" -r "$REPS" -o json
    fi
    "$LOWBIT" bench -m "$f" --batch 1,16 --prompt 1 --gen $((B16_GEN + 1)) --reps "$REPS" \
      --warmup 1 -t "$THREADS" --kv-type "$KV" --json -q >"$OUT/$tag.lb-b16.json"
  done
done

# 4. The table.
"$PY" - "$OUT" "$SIZES" "$TYPES" "$TG" "$PP" <<'EOF'
import json, os, statistics, sys
out, sizes, types, tg, pp = sys.argv[1], sys.argv[2].split(), sys.argv[3].split(), int(sys.argv[4]), int(sys.argv[5])

def lowbit(path, metric, batch=1):
    for r in json.load(open(path))["results"]:
        if r["metric"] == metric and r["params"]["batch"] == batch:
            return r["value"]
    return None

def llama(path):
    # Median over repetitions of tokens/s, from llama-bench's own samples.
    try:
        r = json.load(open(path))[0]
        n = r["n_prompt"] + r["n_gen"]
        return n / (statistics.median(r["samples_ns"]) / 1e9)
    except (OSError, ValueError, LookupError, TypeError, ZeroDivisionError):
        return None

def rss(path):
    try:
        return int(open(path + ".rss").read().split()[-1]) / 1024.0
    except (OSError, ValueError, IndexError):
        return None

def f(x, d=1):
    return "-" if x is None else "%.*f" % (d, x)

def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b

head = ["model", "type", "MiB", "lowbit tg%d" % tg, "llama tg%d" % tg, "tg ratio",
        "lowbit pp%d" % pp, "llama pp%d" % pp, "pp ratio", "b16/b1", "GB/s", "roofline %",
        "lowbit RSS MiB", "llama RSS MiB"]
print("| " + " | ".join(head) + " |")
print("|" + "|".join([" --- "] * 2 + [" ---: "] * (len(head) - 2)) + "|")
for size in sizes:
    for t in types:
        tag = "%s-%s" % (size, t)
        p = lambda k: os.path.join(out, "%s.%s" % (tag, k))
        lb_tg = lowbit(p("lb-tg.json"), "decode_tokens_per_s_median")
        lb_pp = lowbit(p("lb-pp.json"), "prefill_tokens_per_s_median")
        cpp_tg, cpp_pp = llama(p("cpp-tg.json")), llama(p("cpp-pp.json"))
        b1 = lowbit(p("lb-b16.json"), "decode_tokens_per_s_median", 1)
        b16 = lowbit(p("lb-b16.json"), "decode_tokens_per_s_median", 16)
        bytes_tok = lowbit(p("lb-tg.json"), "weight_bytes_per_token")
        mib = lowbit(p("lb-tg.json"), "model_bytes") / 2**20
        bw = json.load(open(p("membw.json")))["results"][0]["value"] * 1e9
        roof = None if lb_tg is None else 100.0 * lb_tg * bytes_tok / bw
        lb_rss = max([x for x in (rss(p("lb-tg.json")), rss(p("lb-pp.json"))) if x is not None], default=None)
        cpp_rss = max([x for x in (rss(p("cpp-tg.json")), rss(p("cpp-pp.json"))) if x is not None], default=None)
        print("| " + " | ".join([size, t.upper(), f(mib), f(lb_tg), f(cpp_tg), f(ratio(lb_tg, cpp_tg), 2),
                                 f(lb_pp), f(cpp_pp), f(ratio(lb_pp, cpp_pp), 2), f(ratio(b16, b1), 2),
                                 f(bw / 1e9), f(roof), f(lb_rss), f(cpp_rss)]) + " |")
EOF
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
