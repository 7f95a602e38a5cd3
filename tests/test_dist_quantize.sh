#!/usr/bin/env bash
# `mpirun -n N lowbit quantize` with GPTQ and AWQ: the linears of each block are quantized on
# different processes and exchanged; the model file is the single-process one byte for byte
# and the per-layer report is the same. OpenBLAS is held to one thread in both runs: its sums
# depend on its thread count, and a rank bound to one core would otherwise differ from a
# process that has two. Skipped, loudly, when the build has no MPI.
source "$(dirname "$0")/lib.sh"

require_mpi
export OPENBLAS_NUM_THREADS=1 LOWBIT_PROGRESS=0
model=$SHARED/models/stories260K.gguf
calib=(--calib "$SHARED/datasets/tinystories/validation_head.txt" --calib-samples 6 --calib-seqlen 64)

# The report less its timing and the output path.
report() { grep -vE '"(seconds|value|model)"' "$1"; }   # value: the seconds metric

for method in "gptq --act-order" "awq"; do
  name=${method%% *}
  "$BIN" quantize -m "$model" --method $method --bits 4 --group-size 32 "${calib[@]}" \
    -o "$SCRATCH/$name-1.gguf" --json > "$SCRATCH/$name-1.json" 2>"$SCRATCH/err" ||
    { fail "$name alone: $(cat "$SCRATCH/err")"; continue; }
  for n in 2 3; do
    timeout 300 mpirun --oversubscribe -n $n "$BIN" quantize -m "$model" --method $method --bits 4 \
      --group-size 32 "${calib[@]}" -o "$SCRATCH/$name-$n.gguf" --json > "$SCRATCH/$name-$n.json" 2>"$SCRATCH/err" ||
      { fail "$name -n $n: $(cat "$SCRATCH/err")"; continue; }
    cmp -s "$SCRATCH/$name-1.gguf" "$SCRATCH/$name-$n.gguf" &&
      pass "$name: mpirun -n $n writes the single-process model byte for byte" ||
      fail "$name: mpirun -n $n model differs"
    if [ "$(report "$SCRATCH/$name-1.json")" == "$(report "$SCRATCH/$name-$n.json")" ]; then
      pass "$name: mpirun -n $n reports the same layers and errors"
    else
      fail "$name -n $n report: $(diff <(report "$SCRATCH/$name-1.json") <(report "$SCRATCH/$name-$n.json") | head -6)"
    fi
  done
done
grep -q '"rel_error"\|output_error\|"layers"' "$SCRATCH/gptq-1.json" && pass "the report lists layers" ||
  fail "no per-layer figures in the JSON report: $(head -c 300 "$SCRATCH/gptq-1.json")"
# Only the first process writes: no temporary files of the others are left.
expect_eq "nothing but the models and reports in the scratch directory" \
  "$(ls "$SCRATCH" | grep -vcE '^(gptq|awq)-[123]\.(gguf|json)$|^err$')" "0"
finish
