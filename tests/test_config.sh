# Pipeline config validation: every bad config fails before any work with exit 1 and one line
# naming the file, the line and the key; good configs (the shipped ones) pass.
source "$(dirname "$0")/lib.sh"

M="$SHARED/models/stories260K.gguf"
CAL="$SHARED/datasets/wikitext2/train_subset.txt"
cd "$SCRATCH"

# bad NAME PATTERN YAML: the config written to c.yaml must be refused with PATTERN.
bad() {
  printf '%s\n' "$3" > c.yaml
  expect_error "$1" "$2" -- "$BIN" pipeline c.yaml --check
}

GOOD="model: $M
calibration: {file: $CAL, samples: 4, seqlen: 64}"

bad "unknown top key" '^c\.yaml:3: modle: unknown key \(expected one of model, ' "$GOOD
modle: x"
bad "missing model" '^c\.yaml:1: model: missing' "methods: []"
bad "model file missing" '^c\.yaml:1: model: /nonexistent/x\.gguf does not exist' "model: /nonexistent/x.gguf"
bad "calibration file missing" '^c\.yaml:2: calibration\.file: nope\.txt does not exist' "model: $M
calibration: {file: nope.txt}"
bad "calibration samples type" '^c\.yaml:2: calibration\.samples: expected an integer, got "many"' "model: $M
calibration: {file: $CAL, samples: many}"
bad "calibration samples quoted" '^c\.yaml:2: calibration\.samples: expected an integer, got a quoted string' "model: $M
calibration: {file: $CAL, samples: \"8\"}"
bad "gptq bits 5" '^c\.yaml:5: methods\[1\]\.bits: 5 is not one of 2, 3, 4, 8 for gptq$' "$GOOD
methods:
  - {name: a, method: rtn, bits: 8}
  - {name: b, method: gptq, bits: 5, group_size: 128}"
bad "awq bits 8" '^c\.yaml:4: methods\[0\]\.bits: 8 is not one of 4 for awq$' "$GOOD
methods:
  - {name: a, method: awq, bits: 8}"
bad "gptq group 100" '^c\.yaml:6: methods\[0\]\.group_size: 100 is not one of 0, 32, 64, 128, 256 for gptq$' "$GOOD
methods:
  - name: a
    method: gptq
    group_size: 100"
bad "smoothquant group" '^c\.yaml:4: methods\[0\]\.group_size: 128 is not one of 0 for smoothquant$' "$GOOD
methods:
  - {name: sq, method: smoothquant, group_size: 128}"
bad "unknown method" '^c\.yaml:4: methods\[0\]\.method: "hqq" is not one of rtn, gptq, awq, smoothquant$' "$GOOD
methods:
  - {name: a, method: hqq}"
bad "unknown method key" '^c\.yaml:4: methods\[0\]\.bit: unknown key' "$GOOD
methods:
  - {name: a, method: rtn, bit: 4}"
bad "act_order on rtn" '^c\.yaml:4: methods\[0\]\.act_order: only gptq' "$GOOD
methods:
  - {name: a, method: rtn, act_order: true}"
bad "act_order not bool" '^c\.yaml:4: methods\[0\]\.act_order: expected true or false, got "sometimes"' "$GOOD
methods:
  - {name: a, method: gptq, act_order: sometimes}"
bad "alpha range" '^c\.yaml:4: methods\[0\]\.alpha: 1\.5 is out of range 0\.\.1$' "$GOOD
methods:
  - {name: a, method: smoothquant, alpha: 1.5}"
bad "duplicate method name" '^c\.yaml:5: methods\[1\]\.name: "a" is also the name of methods\[0\]$' "$GOOD
methods:
  - {name: a, method: rtn}
  - {name: a, method: gptq}"
bad "method name missing" '^c\.yaml:4: methods\[0\]: name: missing' "$GOOD
methods:
  - {method: rtn}"
bad "gptq without calibration" '^c\.yaml:3: methods\[0\]\.method: gptq needs calibration data' "model: $M
methods:
  - {name: g, method: gptq}"
bad "methods not a list" '^c\.yaml:3: methods: expected a list of methods, got a mapping' "$GOOD
methods: {name: a}"
bad "unknown dataset" '^c\.yaml:5: evaluation\.perplexity\[1\]: wikitext3 does not exist' "$GOOD
evaluation:
  perplexity: [wikitext2,
    wikitext3]"
bad "unknown task" '^c\.yaml:4: evaluation\.tasks\[0\]: unknown task "hellaswg"' "$GOOD
evaluation:
  tasks: [hellaswg]"
bad "kld without text" '^c\.yaml:1: evaluation\.kld: needs a text' "$GOOD
evaluation: {kld: true}"
bad "batch size zero" '^c\.yaml:3: benchmark\.batch_sizes\[1\]: 0 is out of range 1\.\.4096$' "$GOOD
benchmark: {batch_sizes: [1, 0]}"
bad "reps not int" '^c\.yaml:3: benchmark\.reps: expected an integer, got "2\.5"' "$GOOD
benchmark: {reps: 2.5}"
bad "report format" '^c\.yaml:3: report\.formats\[1\]: "docx" is not one of md, html, pdf, csv, json$' "$GOOD
report: {formats: [md, docx]}"
bad "duplicate key" '^c\.yaml:3: model: given twice \(first on line 1\)' "$GOOD
model: $M"
bad "yaml syntax" '^c\.yaml:[0-9]+: YAML: ' "model: [unclosed"
bad "empty file" '^c\.yaml:1: model: missing' ""
bad "not a mapping" '^c\.yaml:1: : expected a mapping, got a list' "- a
- b"

# The same refusal from a real run (not --check), before any output appears.
printf '%s\n' "$GOOD
methods:
  - {name: b, method: gptq, bits: 5}" > c.yaml
expect_error "run refuses before work" '^c\.yaml:4: methods\[0\]\.bits: 5 is not one of' -- "$BIN" pipeline c.yaml --out "$SCRATCH/o"
[ ! -e "$SCRATCH/o" ] && pass "no output directory made" || fail "output directory made for a bad config"

expect_error "no config" '/nonexistent/c\.yaml' -- "$BIN" pipeline /nonexistent/c.yaml --check

# The shipped configs are valid (run from the repository root, as make demo does).
cd "$TESTS/.."
for c in configs/pipeline.yaml configs/full.yaml; do
  out=$("$BIN" pipeline "$c" --check 2>&1); rc=$?
  expect_eq "$c valid" "$rc" 0
  [ $rc -eq 0 ] || echo "$out" >&2
done
finish
