#!/usr/bin/env bash
# lowbit quantize end to end on stories260K: each method writes a GGUF that loads, runs and
# says how it was made; the quantized text stays close to the float model's; calibration
# from text and jsonl; and every bad input ends with exit 1, one line on stderr, and nothing
# (or the old file, untouched) at the output path.
source "$(dirname "$0")/lib.sh"

MODEL="$SHARED/models/stories260K.gguf"
TEXT="$SHARED/datasets/tinystories/validation_head.txt"
CAL="$SCRATCH/calib.txt"
tail -c +150001 "$TEXT" | head -c 200000 > "$CAL"
Q=("$BIN" quantize -m "$MODEL" --threads 1 --quiet)
SMALL=(--calib "$CAL" --calib-samples 8 --calib-seqlen 128)

# RTN int8 per channel: no calibration needed; the file says what it is.
"${Q[@]}" --method rtn --bits 8 -o "$SCRATCH/rtn8.gguf" && pass "rtn int8 writes" || fail "rtn int8"
info=$("$BIN" info "$SCRATCH/rtn8.gguf" 2>&1)
expect_contains "info shows the method" "$info" "rtn, 8-bit, per channel, sym"
float_text=$("$BIN" generate -m "$MODEL" -n 40 --temp 0 2>/dev/null)
rtn8_text=$("$BIN" generate -m "$SCRATCH/rtn8.gguf" -n 40 --temp 0 2>/dev/null)
expect_eq "rtn int8 greedy text equals the float model's" "$rtn8_text" "$float_text"

# GPTQ 4-bit, groups of 32, act-order: g_idx goes into the file and comes back.
json=$("${Q[@]}" --method gptq --bits 4 --group-size 32 --act-order "${SMALL[@]}" --json \
       -o "$SCRATCH/gptq4.gguf")
expect_contains "gptq json: format" "$json" '"format": "gptq-int4-g32"'
expect_contains "gptq json: task" "$json" '"task": "quantize"'
expect_contains "gptq json: true-sequential by default" "$json" '"true_sequential": true'
n_layers=$(printf '%s' "$json" | grep -c '"gptq_loss": [0-9]')
expect_eq "gptq json: a loss for each of the 35 linears" "$n_layers" 35
info=$("$BIN" info "$SCRATCH/gptq4.gguf" 2>&1)
expect_contains "info: gptq act-order" "$info" "gptq, 4-bit, group 32, asym, act-order"
text=$("$BIN" generate -m "$SCRATCH/gptq4.gguf" -n 40 --temp 0 2>/dev/null)
expect_prefix "gptq int4 model tells a story" "$text" "Once upon a time"

# The same seed draws the same windows: identical files.
"${Q[@]}" --method gptq --bits 4 --group-size 32 --act-order "${SMALL[@]}" -o "$SCRATCH/gptq4b.gguf"
cmp -s "$SCRATCH/gptq4.gguf" "$SCRATCH/gptq4b.gguf" && pass "gptq is reproducible" \
  || fail "two gptq runs with one seed differ"
"${Q[@]}" --method gptq --bits 4 --group-size 32 --act-order "${SMALL[@]}" --seed 5 -o "$SCRATCH/gptq4c.gguf"
cmp -s "$SCRATCH/gptq4.gguf" "$SCRATCH/gptq4c.gguf" && fail "another seed gave the same file" \
  || pass "another seed, other windows"

# AWQ and SmoothQuant from jsonl calibration.
awk 'NR <= 400 { gsub(/\\/, "\\\\"); gsub(/"/, "\\\""); printf "{\"text\": \"%s\"}\n", $0 }' "$CAL" \
  > "$SCRATCH/calib.jsonl"
"${Q[@]}" --method awq --bits 4 --group-size 32 --calib "$SCRATCH/calib.jsonl" \
  --calib-samples 8 --calib-seqlen 128 -o "$SCRATCH/awq4.gguf" && pass "awq from jsonl" \
  || fail "awq from jsonl"
expect_contains "info: awq" "$("$BIN" info "$SCRATCH/awq4.gguf" 2>&1)" "awq, 4-bit, group 32, asym"
"${Q[@]}" --method smoothquant --alpha 0.5 "${SMALL[@]}" -o "$SCRATCH/sq.gguf" \
  && pass "smoothquant writes" || fail "smoothquant"
expect_contains "info: smoothquant" "$("$BIN" info "$SCRATCH/sq.gguf" 2>&1)" "W8A8"
sq_text=$("$BIN" generate -m "$SCRATCH/sq.gguf" -n 40 --temp 0 2>/dev/null)
expect_prefix "smoothquant model tells a story" "$sq_text" "Once upon a time"

# Bad input: exit 1, one line, nothing at the output path.
OUT="$SCRATCH/out.gguf"
bad() {   # bad NAME PATTERN ARGS...
  local name=$1 pattern=$2; shift 2
  rm -f "$OUT"
  expect_error "$name" "$pattern" -- "$BIN" quantize "$@"
  [ -e "$OUT" ] && fail "$name: something was written at the output path"
  ls "$SCRATCH" | grep -q '\.tmp\.' && fail "$name: a temporary file was left behind"
}
bad "unknown method" "unknown method 'hqq'" -m "$MODEL" --method hqq -o "$OUT"
bad "awq at 8 bits" "--bits 8: awq supports 3 or 4" -m "$MODEL" --method awq --bits 8 -o "$OUT"
bad "awq per channel" "awq needs groups" -m "$MODEL" --method awq --group-size 0 -o "$OUT"
bad "smoothquant at 4 bits" "smoothquant is W8A8" -m "$MODEL" --method smoothquant --bits 4 -o "$OUT"
bad "smoothquant with groups" "per output channel" -m "$MODEL" --method smoothquant --group-size 32 -o "$OUT"
bad "gptq at 5 bits" "--bits 5: gptq supports 2, 3, 4 or 8" -m "$MODEL" --method gptq --bits 5 -o "$OUT"
bad "group of 48" "--group-size 48: expected 0" -m "$MODEL" --method rtn --group-size 48 -o "$OUT"
bad "act-order on rtn" "act-order applies to gptq only" -m "$MODEL" --method rtn --act-order -o "$OUT"
bad "no-true-sequential on awq" "no-true-sequential applies to gptq only" -m "$MODEL" \
  --method awq --no-true-sequential "${SMALL[@]}" -o "$OUT"
bad "damp out of range" "--damp 2: expected" -m "$MODEL" --method gptq --damp 2 -o "$OUT"
bad "no output" "-o OUT are required" -m "$MODEL" --method rtn
bad "missing calibration file" "nope.txt.*(cannot open|No such file)" -m "$MODEL" --method gptq \
  --calib "$SCRATCH/nope.txt" -o "$OUT"
: > "$SCRATCH/empty.txt"
bad "empty calibration file" "empty.txt: calibration file is empty" -m "$MODEL" --method gptq \
  --calib "$SCRATCH/empty.txt" -o "$OUT"
head -c 300 "$CAL" > "$SCRATCH/short.txt"
bad "calibration shorter than a window" "short.txt: [0-9]+ tokens of text, shorter than one calibration window of 512" \
  -m "$MODEL" --method awq --calib "$SCRATCH/short.txt" --calib-seqlen 512 -o "$OUT"
printf '{"text": "Once upon a time"}\n{"txt": 3}\n' > "$SCRATCH/bad.jsonl"
bad "jsonl without text" "bad.jsonl: line 2: expected a \"text\" string field" -m "$MODEL" \
  --method gptq --calib "$SCRATCH/bad.jsonl" -o "$OUT"
printf '{"text": "Once upon\n' > "$SCRATCH/broken.jsonl"
bad "broken jsonl" "broken.jsonl: line 1: expected a JSON object" -m "$MODEL" --method gptq \
  --calib "$SCRATCH/broken.jsonl" -o "$OUT"
bad "already quantized" "already quantized" -m "$SCRATCH/rtn8.gguf" --method rtn -o "$OUT"
bad "already quantized, calibrated" "already quantized" -m "$SCRATCH/gptq4.gguf" --method gptq \
  "${SMALL[@]}" -o "$OUT"
bad "output is a directory" "is a directory" -m "$MODEL" --method rtn -o "$SCRATCH"
bad "calibration is a directory" "is a directory" -m "$MODEL" --method gptq --calib "$SCRATCH" -o "$OUT"

# A failure leaves an existing output untouched.
cp "$SCRATCH/rtn8.gguf" "$OUT"
sum_before=$(sha256sum < "$OUT")
expect_error "failure over an existing file" "already quantized" -- "$BIN" quantize \
  -m "$SCRATCH/rtn8.gguf" --method rtn -o "$OUT"
expect_eq "existing output untouched" "$(sha256sum < "$OUT")" "$sum_before"

"$BIN" quantize --help | grep -q -- "--act-order" && pass "help lists the options" \
  || fail "help"
finish
