#!/usr/bin/env bash
# lowbit mc end to end: prompts checked against independent Python renderings of the harness's
# templates, HellaSwag agreement with llama.cpp, LAMBADA greedy accuracy on a case with a known
# answer, the JSON result schema, determinism across batchings, and clean failures.
source "$(dirname "$0")/lib.sh"
PY=/usr/bin/python3
MODEL="$SHARED/models/stories260K.gguf"
DATA="$SHARED/datasets"
MC=("$BIN" mc --data-dir "$DATA")

# --- prompts, against Python ---------------------------------------------------------------
# HellaSwag jsonl: the harness's preprocess (strip, " [title]" -> ". ", drop [..], "  " -> " ")
# of activity_label + ": " + ctx_a + " " + ctx_b.capitalize(), on all 1,000 items.
"${MC[@]}" --task hellaswag --data "$DATA/hellaswag/validation_1000.jsonl" --dump > "$SCRATCH/hs.jsonl"
out=$($PY - "$DATA/hellaswag/validation_1000.jsonl" "$SCRATCH/hs.jsonl" <<'PYEOF'
import json, re, sys
def pre(t):
    t = t.strip().replace(" [title]", ". ")
    t = re.sub("\\[.*?\\]", "", t)
    return t.replace("  ", " ")
src = [json.loads(l) for l in open(sys.argv[1])]
got = [json.loads(l) for l in open(sys.argv[2])]
bad = 0
assert len(src) == len(got), (len(src), len(got))
for d, g in zip(src, got):
    q = pre(d["activity_label"] + ": " + d["ctx_a"] + " " + d["ctx_b"].capitalize())
    c = [" " + pre(e) for e in d["endings"]]
    if g["context"] != q or g["continuations"] != c or g["gold"] != int(d["label"]):
        bad += 1
print(f"{len(got)} {bad}")
PYEOF
)
expect_eq "hellaswag jsonl prompts (items, mismatches)" "$out" "1000 0"

# PIQA: "Question: {goal}\nAnswer:" + " sol", gold from valid-labels.lst, all 1,838.
"${MC[@]}" --task piqa --dump > "$SCRATCH/piqa.jsonl"
out=$($PY - "$DATA/piqa" "$SCRATCH/piqa.jsonl" <<'PYEOF'
import json, sys
d = sys.argv[1]
src = [json.loads(l) for l in open(d + "/valid.jsonl")]
lab = [int(l) for l in open(d + "/valid-labels.lst")]
got = [json.loads(l) for l in open(sys.argv[2])]
bad = sum(1 for s, l, g in zip(src, lab, got)
          if g["context"] != "Question: " + s["goal"] + "\nAnswer:"
          or g["continuations"] != [" " + s["sol1"], " " + s["sol2"]] or g["gold"] != l)
print(len(got), bad)
PYEOF
)
expect_eq "piqa prompts (items, mismatches)" "$out" "1838 0"

# MMLU 5-shot: the first 3 questions of the first subject and the last of the last, rebuilt
# with Python's csv module.
"${MC[@]}" --task mmlu --dump > "$SCRATCH/mmlu.jsonl"
out=$($PY - "$DATA/mmlu" "$SCRATCH/mmlu.jsonl" <<'PYEOF'
import csv, json, os, sys
d = sys.argv[1]
got = [json.loads(l) for l in open(sys.argv[2])]
subjects = sorted(f[:-9] for f in os.listdir(d + "/test") if f.endswith("_test.csv"))
def fmt(r):
    return r[0].strip() + "".join(f"\n{k}. {v}" for k, v in zip("ABCD", r[1:5])) + "\nAnswer:"
def prompt(s, row):
    dev = list(csv.reader(open(f"{d}/dev/{s}_dev.csv", newline="")))[:5]
    p = f"The following are multiple choice questions (with answers) about {s.replace('_', ' ')}.\n\n"
    p += "".join(fmt(r) + " " + r[5] + "\n\n" for r in dev)
    return p + fmt(row)
total = sum(len(list(csv.reader(open(f"{d}/test/{s}_test.csv", newline="")))) for s in subjects)
first = list(csv.reader(open(f"{d}/test/{subjects[0]}_test.csv", newline="")))
last = list(csv.reader(open(f"{d}/test/{subjects[-1]}_test.csv", newline="")))
checks = [(got[i], subjects[0], first[i]) for i in range(3)] + [(got[-1], subjects[-1], last[-1])]
bad = sum(1 for g, s, r in checks
          if g["context"] != prompt(s, r) or g["gold"] != "ABCD".index(r[5])
          or g["continuations"] != [" A", " B", " C", " D"] or g["subtask"] != s)
print(len(got), total, len(subjects), len(set(g["subtask"] for g in got)), bad)
PYEOF
)
expect_eq "mmlu prompts (items, csv rows, subjects, subjects seen, mismatches)" "$out" "14042 14042 57 57 0"

# TruthfulQA MC2: answers in file order with their labels, after the QA primer.
"${MC[@]}" --task truthfulqa_mc2 --dump > "$SCRATCH/tq.jsonl"
out=$($PY - "$DATA/truthfulqa/mc_task.json" "$SCRATCH/tq.jsonl" <<'PYEOF'
import json, sys
src = json.load(open(sys.argv[1]))
got = [json.loads(l) for l in open(sys.argv[2])]
bad = sum(1 for s, g in zip(src, got)
          if g["continuations"] != [" " + a for a in s["mc2_targets"]]
          or g["truth"] != list(s["mc2_targets"].values())
          or not g["context"].endswith("\n\nQ: " + s["question"] + "\nA:")
          or not g["context"].startswith("Q: What is human life expectancy"))
print(len(got), bad)
PYEOF
)
expect_eq "truthfulqa prompts (items, mismatches)" "$out" "817 0"

# --- scoring ---------------------------------------------------------------------------------
# llama.cpp on the first 200 HellaSwag items (its --hellaswag-tasks picks tasks at random, so it
# was given a file of exactly those 200 and draws all of them):
#   head -n 1200 validation_full.txt > hs200.txt
#   llama-perplexity -m stories260K.gguf --hellaswag -f hs200.txt --hellaswag-tasks 200 -c 512
# printed "200  23.50000000" (acc_norm-like: ending log-prob averaged over its tokens).
LLAMACPP_HS200=23.50
out=$("${MC[@]}" -m "$MODEL" --task hellaswag --limit 200 -t 1 --json)
read -r acc_norm se n <<<"$($PY -c '
import json, sys
r = [x for x in json.load(sys.stdin)["results"] if x["metric"] == "acc_norm"][0]
print(100 * r["value"], 100 * r["stderr"], r["n"])' <<<"$out")"
expect_eq "hellaswag n" "$n" "200"
ok=$($PY -c "print(int(abs($acc_norm - $LLAMACPP_HS200) <= $se))")
expect_eq "hellaswag acc_norm $acc_norm ± $se agrees with llama.cpp's $LLAMACPP_HS200" "$ok" "1"
expect_contains "json schema" "$out" '"task": "hellaswag"'
for k in model format metric value stderr n seconds params; do
  expect_contains "json has $k" "$out" "\"$k\":"
done

# The same items batched differently give the same figures.
a=$("${MC[@]}" -m "$MODEL" --task arc_easy --limit 20 -t 1 -q | head -3)
b=$("${MC[@]}" -m "$MODEL" --task arc_easy --limit 20 -t 1 -q --batch 1 --tokens 16 | head -3)
c=$("${MC[@]}" -m "$MODEL" --task arc_easy --limit 20 -t 2 -q --batch 7 | head -3)
expect_eq "batch 1 = batch 32" "$b" "$a"
expect_eq "batch 7, 2 threads = batch 32" "$c" "$a"
expect_contains "arc_easy table" "$a" "arc_easy"

# LAMBADA: greedy decoding from BOS says "...a little girl named Lily." (documented), so the
# word " Lily" is greedy and " Max" is not: accuracy 50 % over the two.
printf '%s\n' '{"context": "Once upon a time, there was a little girl named", "continuation": " Lily"}' \
  '{"context": "Once upon a time, there was a little girl named", "continuation": " Max"}' > "$SCRATCH/lam.jsonl"
out=$("${MC[@]}" -m "$MODEL" --task lambada --data "$SCRATCH/lam.jsonl" -q)
expect_eq "lambada greedy accuracy" "$(awk '$1 == "lambada" && $2 == "acc" {print $3}' <<<"$out")" "50.0000"
expect_contains "lambada perplexity" "$out" "perplexity"

# WinoGrande partial scoring: the continuation is scored after each filled-in context; the
# choice whose context makes " loved to play outside." likelier wins.
printf '%s\n' '{"context_options": ["Once upon a time, there was a little girl named Lily. She", "Once upon a time, there was a little girl named Lily. The rock"], "continuation": "loved to play outside.", "gold": 0}' > "$SCRATCH/wino.jsonl"
out=$("${MC[@]}" -m "$MODEL" --task winogrande --data "$SCRATCH/wino.jsonl" -q)
expect_eq "winogrande partial scoring" "$(awk '$1 == "winogrande" && $2 == "acc" {print $3}' <<<"$out")" "100.0000"

# MMLU: --limit counts per subject, every subject gets a row and the headline is their macro
# average; TruthfulQA MC2 is a probability in (0, 1).
out=$("${MC[@]}" -m "$MODEL" --task mmlu --limit 2 --shots 0 -t 1 --json)
ok=$($PY -c '
import json, sys
r = [x for x in json.load(sys.stdin)["results"] if x["metric"] == "acc"]
subj = r[1:]
macro = sum(x["value"] for x in subj) / len(subj)
print(len(subj), r[0]["task"], r[0]["n"], int(abs(r[0]["value"] - macro) < 1e-9), subj[0]["task"])' <<<"$out")
expect_eq "mmlu per subject (subjects, task, n, macro, first)" "$ok" "57 mmlu 114 1 mmlu_abstract_algebra"
out=$("${MC[@]}" -m "$MODEL" --task truthfulqa_mc2 --limit 5 -t 1 --json)
ok=$($PY -c 'import json,sys; r=json.load(sys.stdin)["results"][0]; print(int(0 < r["value"] < 1 and r["n"] == 5))' <<<"$out")
expect_eq "truthfulqa mc2 in (0, 1)" "$ok" "1"

# --- failures: exit 1, one line naming the file and line ------------------------------------
printf 'ctx\n9\na\nb\nc\nd\n' > "$SCRATCH/bad.txt"
expect_error "bad hellaswag label" "bad.txt:2: expected the gold ending" -- "$BIN" mc -m "$MODEL" --task hellaswag --data "$SCRATCH/bad.txt"
: > "$SCRATCH/empty.jsonl"
expect_error "empty file" "empty.jsonl: no items" -- "$BIN" mc -m "$MODEL" --task arc_easy --data "$SCRATCH/empty.jsonl"
printf '{"query": "q", "choices": ["a", "b"]}\n' > "$SCRATCH/nogold.jsonl"
expect_error "missing gold" 'nogold.jsonl:1: missing field "gold"' -- "$BIN" mc -m "$MODEL" --task copa --data "$SCRATCH/nogold.jsonl"
expect_error "unknown task" "unknown task" -- "$BIN" mc -m "$MODEL" --task nosuch
expect_error "missing file" "nosuch.jsonl: no such file" -- "$BIN" mc -m "$MODEL" --task piqa --data "$SCRATCH/nosuch.jsonl"
expect_error "bad limit" "--limit is -1" -- "$BIN" mc -m "$MODEL" --task piqa --limit -1
expect_error "no model" "required" -- "$BIN" mc --task piqa
out=$("$BIN" mc --help); expect_contains "help" "$out" "--shots"

finish
