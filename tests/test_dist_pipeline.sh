#!/usr/bin/env bash
# `mpirun -n N lowbit pipeline`: rank 0 keeps the store and hands the stages out to every
# process; each stage runs once, on some process, evaluations only after their model's
# quantizer; the stored accuracy figures equal a single-process run's, and rank 0 writes the
# report. Skipped, loudly, when the build has no MPI.
source "$(dirname "$0")/lib.sh"

require_mpi
export LOWBIT_PROGRESS=0 LOWBIT_DATA_DIR="$SHARED/datasets"
cd "$SCRATCH"
# RTN only: its models are the same bytes whatever the thread counts (GPTQ's go through
# OpenBLAS, whose sums depend on its own thread count).
cat > job.yaml <<YAML
model: $SHARED/models/stories260K.gguf
methods:
  - {name: q8, method: rtn, bits: 8, group_size: 0}
  - {name: q4, method: rtn, bits: 4, group_size: 32}
evaluation: {perplexity: [tinystories], tasks: [piqa], kld: true, limit: 4, ctx: 64, chunks: 2}
benchmark: {batch_sizes: [1], prompt: 4, gen: 2, reps: 1}
report: {formats: [md, csv]}
YAML
N_STAGES=13   # 2 quantize + 3 models x (perplexity, mc, bench) + 2 kld

# The deterministic figures (not timings) of run 1, in a fixed order.
accuracy() { "$BIN" runs show 1 --db "$1" | sed -n '/^method  *task/,/^$/p' | grep -v ' bench ' | sort; }

"$BIN" pipeline job.yaml --out one 2> one.log || fail "single-process run: $(tail -5 one.log)"
accuracy one/results.db > one.txt
[ "$(grep -c . one.txt)" -gt 10 ] && pass "single-process figures stored" || fail "few rows: $(cat one.txt)"

for n in 2 3; do
  timeout 300 mpirun --oversubscribe -n $n "$BIN" pipeline job.yaml --out m$n 2> m$n.log ||
    { fail "mpirun -n $n pipeline: $(tail -5 m$n.log)"; continue; }
  expect_eq "-n $n: every stage ran once" "$(grep -c ': running (process [0-9]*)$' m$n.log)" "$N_STAGES"
  procs=$(grep -o 'running (process [0-9]*)' m$n.log | sort -u | wc -l)
  [ "$procs" -ge 2 ] && pass "-n $n: stages ran on $procs processes" || fail "-n $n: one process ran everything"
  # An evaluation of a quantized model starts only after its quantizer has finished.
  for m in q8 q4; do
    q=$(grep -n "quantized .*/models/$m.gguf is" m$n.log | cut -d: -f1)   # the quantizer's last line
    e=$(grep -n "perplexity $m tinystories: running" m$n.log | cut -d: -f1)
    [ -n "$q" ] && [ -n "$e" ] && [ "$q" -lt "$e" ] && pass "-n $n: $m evaluated after its quantizer" ||
      fail "-n $n: $m order (quantize line $q, perplexity line $e)"
  done
  accuracy m$n/results.db > m$n.txt
  if cmp -s one.txt m$n.txt; then pass "-n $n: stored figures equal the single-process run's"
  else fail "-n $n: figures differ: $(diff one.txt m$n.txt | head -6)"; fi
  [ -s m$n/report/report.md ] && [ -s m$n/report/report.csv ] && pass "-n $n: report written" ||
    fail "-n $n: report missing"
  # Cached on a second run: nothing runs again.
  timeout 120 mpirun --oversubscribe -n $n "$BIN" pipeline job.yaml --out m$n 2> r$n.log ||
    fail "-n $n rerun: $(tail -3 r$n.log)"
  expect_eq "-n $n rerun: every stage cached" "$(grep -c ': cached$' r$n.log)" "$N_STAGES"
done

# A failing stage fails the run and names itself; the stages that do not need it still finish.
sed "s|perplexity: \[tinystories\]|perplexity: [$SCRATCH/empty.txt]|" job.yaml > bad.yaml
: > empty.txt
timeout 120 mpirun --oversubscribe -n 2 "$BIN" pipeline bad.yaml --out bad 2> bad.log; rc=$?
[ $rc -ne 0 ] && pass "failing stage: the run fails" || fail "failing stage: exit status 0"
expect_contains "failing stage: it is named" "$(cat bad.log)" "stage perplexity baseline empty.txt"
grep -q "bench q4: running" bad.log && [ -s bad/report/report.md ] &&
  pass "failing stage: the others ran and the report was written" || fail "failing stage: $(tail -5 bad.log)"
finish
