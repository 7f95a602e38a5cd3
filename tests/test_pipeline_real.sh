# The pipeline over the real stage commands (quantize, perplexity, kld, mc, bench) on
# stories260K, kept tiny: a run writes every report format with figures taken from the stage
# outputs; kill -9 during a stage and --resume finishes the same run with the same accuracy
# figures and without running any finished stage again.
source "$(dirname "$0")/lib.sh"

for c in quantize perplexity kld mc bench; do
  if ! "$BIN" "$c" --help >/dev/null 2>&1; then
    echo "SKIP: lowbit $c is not in this build yet"; finish; exit 0
  fi
done
export LOWBIT_PROGRESS=0 LOWBIT_DATA_DIR="$SHARED/datasets"
cd "$SCRATCH"
cat > job.yaml <<YAML
model: $SHARED/models/stories260K.gguf
calibration: {file: $SHARED/datasets/tinystories/validation_head.txt, samples: 4, seqlen: 64}
methods:
  - {name: q8, method: rtn, bits: 8, group_size: 0}
evaluation: {perplexity: [tinystories], tasks: [piqa], kld: true, limit: 4, ctx: 64, chunks: 2}
benchmark: {batch_sizes: [1], prompt: 4, gen: 2, reps: 1}
report: {formats: [md, html, pdf, csv, json]}
YAML
N_STAGES=8   # quantize + 2 models x (perplexity, mc, bench) + kld

# accuracy NAME DB: the deterministic figures (not timings) of run 1.
accuracy() { "$BIN" runs show 1 --db "$2" | sed -n '/^method  *task/,/^$/p' | grep -v ' bench ' > "$1"; }

"$BIN" pipeline job.yaml --out a 2> a.log; rc=$?
expect_eq "run exit" "$rc" 0
[ $rc -eq 0 ] || tail -20 a.log >&2
expect_eq "all stages ran" "$(grep -c ': running$' a.log)" "$N_STAGES"
for f in report.md report.html report.pdf report.csv report.json; do
  [ -s "a/report/$f" ] && pass "$f" || fail "$f missing"
done
accuracy a.txt a/results.db
# Every perplexity in the report is the one the perplexity stage printed.
for f in a/stages/perplexity-*.json; do
  v=$(/usr/bin/python3 -c 'import json,sys; print("%.4f" % json.load(open(sys.argv[1]))["results"][0]["value"])' "$f")
  expect_contains "perplexity $v in report.md" "$(cat a/report/report.md)" "|$v|"
done
grep -q '^q8  *tinystories  *perplexity ' a.txt && grep -q ' kld_mean ' a.txt && grep -q '^q8  *piqa  *acc ' a.txt \
  && pass "perplexity, kld and piqa rows stored" || fail "rows missing: $(head -5 a.txt)"

# kill -9 once two stages have finished (their files are in place), in the middle of the next.
"$BIN" pipeline job.yaml --out k 2> k1.log &
pid=$!
for _ in $(seq 600); do
  [ "$(ls k/stages/*.json 2>/dev/null | wc -l)" -ge 2 ] && break; sleep 0.05
done
kill -9 $pid; wait $pid 2>/dev/null
done_before=$(ls k/stages/*.json 2>/dev/null | wc -l)
[ "$done_before" -ge 2 ] && [ "$done_before" -lt "$N_STAGES" ] && pass "killed with $done_before stages done" \
  || fail "killed with $done_before stages done"
stat -c '%n %Y %i' k/stages/*.json > before.txt
"$BIN" pipeline job.yaml --out k --resume 2> k2.log; rc=$?
expect_eq "resume exit" "$rc" 0
expect_contains "same run resumed" "$(head -1 k2.log)" "resuming run 1"
expect_eq "finished stages cached" "$(grep -c ': cached$' k2.log)" "$done_before"
expect_eq "the rest ran" "$(grep -c ': running$' k2.log)" $((N_STAGES - done_before))
stat -c '%n %Y %i' $(cut -d' ' -f1 before.txt) > after.txt
cmp -s before.txt after.txt && pass "finished stage files untouched" || fail "stage files changed"
accuracy k.txt k/results.db
sed "s#$SCRATCH/a/#X/#g" a.txt > a2.txt; sed "s#$SCRATCH/k/#X/#g" k.txt > k2.txt
cmp -s a2.txt k2.txt && pass "resumed run: same accuracy figures" || fail "figures differ: $(diff a2.txt k2.txt | head -6)"
finish
