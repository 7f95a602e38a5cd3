#!/usr/bin/env bash
# Accuracy of each quantization method on a real model (default stories260K): perplexity as
# llama-perplexity at context 256 over the first 150,000 bytes of tinystories/validation_head,
# calibrated (GPTQ, AWQ, SmoothQuant) on 128 windows of 256 tokens drawn from the rest of that
# file, as in DESIGN.md's reference figures. Prints a Markdown table: method, perplexity and
# its change against F32, bits per weight of the linears, file size, quantization seconds
# (the whole `lowbit quantize` command, calibration and saving included).
#
# Environment: LOWBIT (default build/lowbit), LOWBIT_SHARED (default ../shared), MODEL,
# OUT (scratch, default /tmp/lowbit-quant-accuracy), THREADS (default 2), SAMPLES (128),
# SEQLEN (256).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
LOWBIT=${LOWBIT:-$ROOT/build/lowbit}
SHARED=${LOWBIT_SHARED:-$ROOT/../shared}
MODEL=${MODEL:-$SHARED/models/stories260K.gguf}
OUT=${OUT:-/tmp/lowbit-quant-accuracy}
THREADS=${THREADS:-2}
SAMPLES=${SAMPLES:-128}
SEQLEN=${SEQLEN:-256}
VAL=$SHARED/datasets/tinystories/validation_head.txt
mkdir -p "$OUT"
head -c 150000 "$VAL" > "$OUT/eval.txt"
tail -c +150001 "$VAL" > "$OUT/calib.txt"

ppl() {
  "$LOWBIT" perplexity -m "$1" -f "$OUT/eval.txt" --ctx 256 -t "$THREADS" -q --json |
    python3 -c 'import json,sys; print("%.4f" % json.load(sys.stdin)["results"][0]["value"])'
}

# name | quantize arguments ("-" for the float model itself)
ROWS=(
  "F32|-"
  "RTN int8 per channel|--method rtn --bits 8 --group-size 0"
  "RTN4 g32|--method rtn --bits 4 --group-size 32"
  "RTN4 g64|--method rtn --bits 4 --group-size 64"
  "RTN4 g128|--method rtn --bits 4 --group-size 128"
  "GPTQ4 g32|--method gptq --bits 4 --group-size 32"
  "GPTQ4 g32 act-order|--method gptq --bits 4 --group-size 32 --act-order"
  "GPTQ4 g64|--method gptq --bits 4 --group-size 64"
  "GPTQ4 g128|--method gptq --bits 4 --group-size 128"
  "GPTQ8 g128|--method gptq --bits 8 --group-size 128"
  "AWQ4 g32|--method awq --bits 4 --group-size 32"
  "AWQ4 g128|--method awq --bits 4 --group-size 128"
  "RTN3 g32|--method rtn --bits 3 --group-size 32"
  "GPTQ3 g32|--method gptq --bits 3 --group-size 32"
  "naive W8A8|--method smoothquant --naive"
  "SmoothQuant W8A8 a0.5|--method smoothquant --alpha 0.5"
)

base=$(ppl "$MODEL")
echo "| method | perplexity | vs F32 | bits/weight | file bytes | quantize s |"
echo "|---|---|---|---|---|---|"
i=0
for row in "${ROWS[@]}"; do
  name=${row%%|*}
  args=${row#*|}
  if [ "$args" = "-" ]; then
    bytes=$(stat -c %s "$MODEL")
    echo "| $name | $base | | 32 | $bytes | |"
    continue
  fi
  i=$((i + 1))
  f="$OUT/q$i.gguf"
  calib=()
  case "$args" in *rtn*) ;; *) calib=(--calib "$OUT/calib.txt" --calib-samples "$SAMPLES" --calib-seqlen "$SEQLEN") ;; esac
  t0=$(date +%s.%N)
  # shellcheck disable=SC2086
  json=$("$LOWBIT" quantize -m "$MODEL" $args "${calib[@]}" -t "$THREADS" --json -o "$f")
  t1=$(date +%s.%N)
  bpw=$(python3 -c 'import json,sys; print("%.3f" % json.load(sys.stdin)["results"][0]["params"]["bits_per_weight"])' <<<"$json")
  p=$(ppl "$f")
  rel=$(python3 -c "print('%+.2f %%' % (100 * ($p / $base - 1)))")
  secs=$(python3 -c "print('%.2f' % ($t1 - $t0))")
  echo "| $name | $p | $rel | $bpw | $(stat -c %s "$f") | $secs |"
done
