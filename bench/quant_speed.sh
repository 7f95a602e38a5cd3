#!/usr/bin/env bash
# Time of GPTQ on a synthetic stories110M-shaped model (issue 3's target): synthesizes the
# model once into CACHE, quantizes it (4 bits, groups of 128, 128 windows of 512 calibration
# tokens by default) under /usr/bin/time -v, and prints the per-phase wall and CPU times that
# `lowbit quantize` logs, the whole command's wall, user and system time, peak resident memory
# and the load average before and after. On a shared machine the wall time follows the load:
# (user + sys) / threads estimates the wall time of an unloaded machine.
#
# Environment: LOWBIT (default build/lowbit), LOWBIT_SHARED (default ../shared), CACHE
# (default /tmp/lowbit-bench), PRESET (stories110M), METHOD (gptq), BITS (4), GROUP (128),
# SAMPLES (128), SEQLEN (512), THREADS (2), CALIB (default: lowbit's).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
LOWBIT=${LOWBIT:-$ROOT/build/lowbit}
export LOWBIT_SHARED=${LOWBIT_SHARED:-$ROOT/../shared}
CACHE=${CACHE:-/tmp/lowbit-bench}
PRESET=${PRESET:-stories110M}
METHOD=${METHOD:-gptq}
BITS=${BITS:-4}
GROUP=${GROUP:-128}
SAMPLES=${SAMPLES:-128}
SEQLEN=${SEQLEN:-512}
THREADS=${THREADS:-2}
mkdir -p "$CACHE"
model=$CACHE/$PRESET-f32.gguf
[ -f "$model" ] || "$LOWBIT" synth --preset "$PRESET" -q -o "$model"
calib=()
[ -n "${CALIB:-}" ] && calib=(--calib "$CALIB")
out=$CACHE/$PRESET-$METHOD$BITS-g$GROUP.gguf
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
cd "$ROOT"
/usr/bin/time -v "$LOWBIT" quantize -m "$model" --method "$METHOD" --bits "$BITS" \
  --group-size "$GROUP" "${calib[@]}" --calib-samples "$SAMPLES" --calib-seqlen "$SEQLEN" \
  -t "$THREADS" -o "$out" 2>&1 | tr '\r' '\n' |
  grep -E "phase|load .* calibration|quantized|Elapsed|User time|System time|Maximum resident"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
