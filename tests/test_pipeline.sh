# The pipeline's machinery end to end with a stand-in for the stage commands (LOWBIT_PIPELINE_EXE):
# every stage runs once, a re-run runs none, kill -9 in the middle of a stage and --resume
# finishes the same run with the same results and repeats no finished stage, a failed stage
# is named and only it runs again, --only, and lowbit runs list/show/compare over the store.
# The stand-in prints figures derived from its arguments, so identical stages give identical
# rows and a repeated call shows in its call log.
source "$(dirname "$0")/lib.sh"

M="$SHARED/models/stories260K.gguf"
CAL="$SHARED/datasets/wikitext2/train_subset.txt"
cd "$SCRATCH"
export CALLS="$SCRATCH/calls.log" MODEL="$M" LOWBIT_PROGRESS=0

cat > fake-lowbit <<'FAKE'
#!/bin/bash
sub=$1; shift
model=; file=; out=; task=; base=
args="$*"
while [ $# -gt 0 ]; do
  case $1 in -m) model=$2; shift ;; -f) file=$2; shift ;; -o) out=$2; shift ;; --task) task=$2; shift ;; --base) base=$2; shift ;; esac
  shift
done
name=$(basename "${out:-$model}" .gguf)
[ "$name" == stories260K ] && name=baseline
echo "$sub $name${file:+ $file}${task:+ $task}" >> "$CALLS"
if [ -n "${FAKE_SLOW:-}" ] && [ "$sub $name" == "$FAKE_SLOW" ]; then
  touch "$SLOW_STARTED"; sleep 60
fi
if [ -n "${FAKE_FAIL:-}" ] && [ "$sub $name" == "$FAKE_FAIL" ]; then
  echo "fake: $sub failed on purpose" >&2; exit 1
fi
# A figure from the text: 5..15, the same for the same text.
val() { printf '%s' "$1" | cksum | awk '{printf "%.4f", 5 + ($1 % 10000) / 1000}'; }
row() { printf '{"model":"%s","format":"F32","task":"%s","metric":"%s","value":%s,"stderr":%s,"n":100,"seconds":0.01,"params":{%s}}' "$model" "$1" "$2" "$3" "$4" "$5"; }
case $sub in
  quantize) cp "$MODEL" "$out" ;;
  perplexity) echo "{\"results\":[$(row "$file" perplexity "$(val "$name $file")" 0.05 '"ctx":64')]}" ;;
  kld) echo "{\"results\":[$(row "$file" kld_mean "$(val "kld $name")" 0.001 ''),$(row "$file" same_top_pct 97.5 0.1 '')]}" ;;
  mc) echo "{\"results\":[$(row "$task" acc 0.$(val "$name $task" | tr -d .) 0.02 '"limit":8')]}" ;;
  bench)
    rows=
    for b in 1 2; do
      for mt in latency_mean_ms latency_p50_ms latency_p95_ms latency_p99_ms decode_tokens_per_s peak_rss_bytes; do
        rows="$rows${rows:+,}$(row bench $mt "$(val "$name $b $mt")" null "\"batch\":$b")"
      done
    done
    echo "{\"results\":[$rows]}" ;;
  *) echo "fake: unknown stage $sub" >&2; exit 2 ;;
esac
FAKE
chmod +x fake-lowbit
export LOWBIT_PIPELINE_EXE="$SCRATCH/fake-lowbit"

cat > job.yaml <<YAML
model: $M
calibration: {file: $CAL, samples: 4, seqlen: 32}
methods:
  - {name: r8, method: rtn, bits: 8}
  - {name: g4, method: gptq, bits: 4, group_size: 32}
evaluation: {perplexity: [tinystories], tasks: [piqa], kld: true, limit: 8, ctx: 64}
benchmark: {batch_sizes: [1, 2], prompt: 8, gen: 4, reps: 2}
report: {formats: [md, html, csv, json]}
YAML
N_STAGES=13   # 2 quantize + 3 models x (perplexity, mc, bench) + 2 kld

# results NAME DB RUN: the figures of a run, one line each, without dates.
results() { "$BIN" runs show "$3" --db "$2" | sed -n '/^method  *task/,/^$/p' > "$1"; }

# 1. A full run: every stage once, the report written.
: > "$CALLS"
"$BIN" pipeline job.yaml --out ref 2> ref.log; rc=$?
expect_eq "first run exit" "$rc" 0
[ $rc -eq 0 ] || cat ref.log >&2
expect_eq "first run: stages called" "$(wc -l < "$CALLS")" "$N_STAGES"
expect_eq "first run: distinct stages" "$(sort -u "$CALLS" | wc -l)" "$N_STAGES"
for f in report.md report.html report.csv report.json chart-1.png; do
  [ -s "ref/report/$f" ] && pass "report/$f written" || fail "report/$f missing"
done
[ -s ref/models/g4.gguf ] && pass "quantized model in models/" || fail "no models/g4.gguf"
expect_eq "stage files" "$(ls ref/stages/*.json | wc -l)" "$N_STAGES"
expect_eq "run finished" "$("$BIN" runs list --db ref/results.db | awk '$1==1{print $4}')" "finished"
results ref1.txt ref/results.db 1
# perplexity 3 + kld 2 x 2 + mc 3 + bench 3 x 2 batches x 6 metrics
expect_eq "rows in the store" "$(($(wc -l < ref1.txt) - 2))" $((3 + 2 * 2 + 3 + 3 * 12))

# 2. Again: nothing runs, a second run holds the same figures.
: > "$CALLS"
"$BIN" pipeline job.yaml --out ref 2> again.log; rc=$?
expect_eq "re-run exit" "$rc" 0
expect_eq "re-run: no stage called" "$(wc -l < "$CALLS")" 0
expect_eq "re-run: all cached" "$(grep -c ': cached$' again.log)" "$N_STAGES"
results ref2.txt ref/results.db 2
cmp -s ref1.txt ref2.txt && pass "re-run figures identical" || fail "re-run figures differ: $(diff ref1.txt ref2.txt | head -5)"
out=$("$BIN" runs compare 1 2 --db ref/results.db)
expect_contains "compare counts" "$out" "$(($(wc -l < ref1.txt) - 2)) figures in both, 0 only in run 1, 0 only in run 2"
expect_error "show missing run" 'no run 7' -- "$BIN" runs show 7 --db ref/results.db
expect_error "runs bad verb" 'not one of list, show, compare' -- "$BIN" runs lsit --db ref/results.db
expect_error "runs bad id" '"x" is not a run id' -- "$BIN" runs show x --db ref/results.db
expect_error "runs no db" 'nope.db: no such results database' -- "$BIN" runs list --db nope.db

# 3. kill -9 in the middle of a stage, then --resume.
: > "$CALLS"
export SLOW_STARTED="$SCRATCH/slow.started"
FAKE_SLOW="perplexity g4" "$BIN" pipeline job.yaml --out k 2> k1.log &
pid=$!
for _ in $(seq 200); do [ -e "$SLOW_STARTED" ] && break; sleep 0.1; done
[ -e "$SLOW_STARTED" ] && pass "slow stage reached" || fail "slow stage never started"
kill -9 $pid; wait $pid 2>/dev/null
cp "$CALLS" before.log
before=$(wc -l < before.log)
[ "$before" -gt 2 ] && [ "$before" -lt "$N_STAGES" ] && pass "killed after $before stages" || fail "killed after $before stages"
: > "$CALLS"
"$BIN" pipeline job.yaml --out k --resume 2> k2.log; rc=$?
expect_eq "resume exit" "$rc" 0
expect_contains "resumed the same run" "$(cat k2.log)" "resuming run 1"
expect_eq "resume ran the rest and the killed stage again" "$(wc -l < "$CALLS")" $((N_STAGES - before + 1))
# The interrupted stage runs again; every other stage that had started before had finished.
repeat=$(sort before.log "$CALLS" | uniq -d)
expect_eq "only the killed stage repeated" "$repeat" "perplexity g4 tinystories"
expect_eq "one run in the store" "$("$BIN" runs list --db k/results.db | tail -n +2 | wc -l)" 1
expect_eq "resumed run finished" "$("$BIN" runs list --db k/results.db | awk '$1==1{print $4}')" "finished"
results k.txt k/results.db 1
ls k/stages/*.tmp.* >/dev/null 2>&1 && fail "the killed stage's temporary file is still there" || pass "no temporary file left"
cmp -s ref1.txt k.txt && pass "resumed run has the same figures" || fail "resumed figures differ: $(diff ref1.txt k.txt | head -5)"

# 4. A failing stage is named, the others still run, the report is still written; after the fix
# only the failed stage and the stages that read its model run.
: > "$CALLS"
FAKE_FAIL="quantize g4" "$BIN" pipeline job.yaml --out f 2> f.log; rc=$?
expect_eq "failed stage exit" "$rc" 1
expect_contains "failure names the stage" "$(tail -1 f.log)" "stage quantize g4: exit status 1"
expect_contains "dependents skipped" "$(cat f.log)" "perplexity g4 tinystories: skipped"
[ -s f/report/report.md ] && pass "report written after a failure" || fail "no report after a failure"
expect_eq "failed run status" "$("$BIN" runs list --db f/results.db | awk '$1==1{print $4}')" "failed"
: > "$CALLS"
"$BIN" pipeline job.yaml --out f --resume 2> f2.log; rc=$?
expect_eq "after the fix exit" "$rc" 0
expect_eq "after the fix: only g4's stages" "$(sort "$CALLS" | tr '\n' ';')" \
  "bench g4;kld g4 tinystories;mc g4 piqa;perplexity g4 tinystories;quantize g4;"

# 5. --only: the named kind plus the quantizers it needs.
: > "$CALLS"
"$BIN" pipeline job.yaml --out o --only bench 2> o.log; rc=$?
expect_eq "--only exit" "$rc" 0
expect_eq "--only bench runs" "$(sort "$CALLS" | tr '\n' ';')" "bench baseline;bench g4;bench r8;quantize g4;quantize r8;"
expect_error "--only unknown" '--only foo: expected a stage kind' -- "$BIN" pipeline job.yaml --out o --only foo
LOWBIT_PIPELINE_EXE=/bin/echo "$BIN" pipeline job.yaml --out e --only baseline 2> e.log; rc=$?
expect_eq "stage output not JSON: exit" "$rc" 1
expect_contains "stage output not JSON: named" "$(tail -1 e.log)" "3 stages failed; first: stage perplexity baseline tinystories: its output is not a {\"results\": [...]} document"
finish
