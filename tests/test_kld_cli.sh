# lowbit kld end to end: a model against itself (KLD 0, top-1 100 %, ΔPPL 0 in the text report
# and in the JSON results), the baseline perplexity equal to lowbit perplexity's, and bad input:
# a model with another vocabulary, missing files and options (exit 1, one line).
source "$(dirname "$0")/lib.sh"
MODEL=$SHARED/models/stories260K.gguf
TS=$SHARED/datasets/tinystories/validation_head.txt
PY=/usr/bin/python3

# metric JSON NAME KEY: KEY ("value", "stderr", "n") of the result whose metric is NAME
metric() { $PY -c 'import json,sys; print(next(r[sys.argv[2]] for r in json.load(sys.stdin)["results"] if r["metric"] == sys.argv[1]))' "$2" "$3" <<<"$1"; }

out=$("$BIN" kld -m "$MODEL" --base "$MODEL" -f "$TS" --ctx 128 --chunks 6 --threads 1 2>/dev/null)
expect_contains "self: mean KLD" "$out" "Mean    KLD:   0.000000 ±   0.000000"
expect_contains "self: maximum KLD" "$out" "Maximum KLD:   0.000000"
expect_contains "self: same top" "$out" "Same top p: 100.000 ± 0.000 %"
expect_contains "self: ΔPPL" "$out" "Mean PPL(Q)-PPL(base)         :   0.000000"
expect_contains "tokens scored: 6 x 63" "$out" "378 tokens scored"

json=$("$BIN" kld -m "$MODEL" --base "$MODEL" -f "$TS" --ctx 128 --chunks 6 --threads 1 --json)
expect_eq "json kld_mean" "$(metric "$json" kld_mean value)" 0.0
expect_eq "json kld_max" "$(metric "$json" kld_max value)" 0.0
expect_eq "json same_top_pct" "$(metric "$json" same_top_pct value)" 100.0
expect_eq "json n" "$(metric "$json" kld_mean n)" 378
ppl=$("$BIN" perplexity -m "$MODEL" -f "$TS" --ctx 128 --chunks 6 --threads 1 --json | $PY -c 'import json,sys; print("%.6f" % json.load(sys.stdin)["results"][0]["value"])')
expect_eq "base perplexity = lowbit perplexity" "$(metric "$json" perplexity_base value | xargs printf '%.6f')" "$ppl"

# A model with the 32000-token Llama 2 vocabulary against stories260K's 512.
"$BIN" synth --preset stories15M --type q4_0 -o "$SCRATCH/s15.gguf" >/dev/null 2>&1 || fail "synth"
expect_error "different vocabularies" "vocabularies differ: .*s15.gguf has 32000 tokens, the baseline .*stories260K.gguf has 512" -- \
  "$BIN" kld -m "$SCRATCH/s15.gguf" --base "$MODEL" -f "$TS" --ctx 128
printf '' > "$SCRATCH/empty.txt"
head -c 300 "$TS" > "$SCRATCH/short.txt"
expect_error "no base" "--base BASELINE" -- "$BIN" kld -m "$MODEL" -f "$TS"
expect_error "missing base" "nobase.gguf" -- "$BIN" kld -m "$MODEL" --base "$SCRATCH/nobase.gguf" -f "$TS"
expect_error "missing text" "none.txt: no such file" -- "$BIN" kld -m "$MODEL" --base "$MODEL" -f "$SCRATCH/none.txt"
expect_error "empty text" "empty.txt: the file is empty" -- "$BIN" kld -m "$MODEL" --base "$MODEL" -f "$SCRATCH/empty.txt"
expect_error "short text" "short.txt: the text has [0-9]+ tokens; llamacpp mode with --ctx 128 needs at least 256" -- "$BIN" kld -m "$MODEL" --base "$MODEL" -f "$SCRATCH/short.txt" --ctx 128
expect_error "bad ctx" "--ctx is 2, expected at least 4" -- "$BIN" kld -m "$MODEL" --base "$MODEL" -f "$TS" --ctx 2
expect_error "bad mode" "--mode is 'x'" -- "$BIN" kld -m "$MODEL" --base "$MODEL" -f "$TS" --mode x
out=$("$BIN" kld --help); rc=$?
expect_eq "--help exits 0" "$rc" 0
expect_contains "--help lists --base" "$out" "--base"
finish
