#!/usr/bin/env bash
# perplexity, kld and mc under `mpirun -n 2` and `-n 3` (3 does not divide the chunks evenly)
# print exactly what one process prints: every figure and standard error to the last digit.
# Only the timing fields (seconds, tokens per second, threads) may differ. Skipped, loudly,
# when the build has no MPI.
source "$(dirname "$0")/lib.sh"

require_mpi
model=$SHARED/models/stories260K.gguf
text=$SCRATCH/text.txt
head -c 24000 "$SHARED/datasets/tinystories/validation_head.txt" > "$text"

# The JSON results less the fields that time the run.
figures() { grep -vE '"(seconds|tokens_per_second|threads|processes)"' ; }

# same NAME ARGS...: the command alone, then under mpirun -n 2 and 3.
same() {
  local name=$1; shift
  local one many n
  one=$("$BIN" "$@" --json -q 2>"$SCRATCH/err") || { fail "$name alone: $(cat "$SCRATCH/err")"; return; }
  one=$(figures <<<"$one")
  grep -q '"value"' <<<"$one" || { fail "$name alone: no figures in [$one]"; return; }
  for n in 2 3; do
    many=$(timeout 300 mpirun --oversubscribe -n $n "$BIN" "$@" --json -q 2>"$SCRATCH/err") ||
      { fail "$name -n $n: $(cat "$SCRATCH/err")"; continue; }
    many=$(figures <<<"$many")
    if [ "$one" == "$many" ]; then
      pass "$name: mpirun -n $n prints the single-process figures"
    else
      fail "$name: mpirun -n $n differs: $(diff <(echo "$one") <(echo "$many") | head -8)"
    fi
  done
}

"$BIN" quantize -m "$model" --method rtn --bits 4 --group-size 32 -o "$SCRATCH/rtn4.gguf" 2>/dev/null ||
  fail "quantize for kld"

same "perplexity llamacpp" perplexity -m "$model" -f "$text" --ctx 128 --batch 4
same "perplexity hf stride" perplexity -m "$model" -f "$text" --ctx 128 --mode hf --stride 48 --batch 3
same "kld" kld -m "$SCRATCH/rtn4.gguf" --base "$model" -f "$text" --ctx 128 --batch 4
same "mc hellaswag" mc -m "$model" --task hellaswag --limit 24 --data-dir "$SHARED/datasets"
same "mc truthfulqa_mc2" mc -m "$model" --task truthfulqa_mc2 --limit 12 --data-dir "$SHARED/datasets"
# Three MMLU subjects: per-subject figures and their macro average.
mkdir -p "$SCRATCH/mmlu/dev" "$SCRATCH/mmlu/test"
for s in abstract_algebra anatomy astronomy; do
  cp "$SHARED/datasets/mmlu/dev/${s}_dev.csv" "$SCRATCH/mmlu/dev/"
  cp "$SHARED/datasets/mmlu/test/${s}_test.csv" "$SCRATCH/mmlu/test/"
done
same "mc mmlu (per subject, macro average)" mc -m "$model" --task mmlu --data "$SCRATCH/mmlu" --limit 4 --shots 2

# Output and progress come from the first process only: one result document, not three.
out=$(timeout 120 mpirun --oversubscribe -n 3 "$BIN" perplexity -m "$model" -f "$text" --ctx 128 2>/dev/null)
expect_eq "one Final estimate line under -n 3" "$(grep -c '^Final estimate' <<<"$out")" 1
expect_contains "the summary counts the processes" "$out" "3 processes"

# A failure on every rank is one exit status 1, and a stage's error still shows.
err=$(timeout 120 mpirun --oversubscribe -n 2 "$BIN" perplexity -m "$model" -f "$SCRATCH/none.txt" 2>&1 >/dev/null)
rc=$?
[ $rc -ne 0 ] && pass "a missing file fails under mpirun" || fail "missing file: exit status 0"
expect_contains "the missing file is named" "$err" "none.txt"
finish
