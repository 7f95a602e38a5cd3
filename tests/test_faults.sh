#!/usr/bin/env bash
# Faults while writing outputs: kill -9 in the middle of `lowbit quantize` and `lowbit export`,
# and a full disk (a file size limit, then a 1 MiB tmpfs when one can be mounted) for quantize,
# export, report and pipeline. Whatever happens, the file at the output path is either the
# previous good one (same sha256) or absent, never half written; a failure is one line naming
# the file with exit status 1. A killed writer cannot remove its "<path>.tmp.<pid>", so that one
# is left, and the next write of the same path removes it; a writer that fails by itself
# leaves no temporary file at all.
source "$(dirname "$0")/lib.sh"

M="$SHARED/models/stories260K.gguf"
CAL="$SHARED/datasets/wikitext2/train_subset.txt"
export LOWBIT_PROGRESS=0 LOWBIT_DATA_DIR="$SHARED/datasets"
cd "$SCRATCH"
MNT="$SCRATCH/mnt"
trap 'umount "$MNT" 2>/dev/null; rm -rf "$SCRATCH"' EXIT

sha() { sha256sum "$1" | cut -d' ' -f1; }
# Temporary files and directories left in a directory ("" when none).
leftovers() { (cd "$1" && ls -d -- *.tmp.* 2>/dev/null | tr '\n' ' '); }

# kill_when_tmp OUT -- command...: runs the command and kill -9s it as soon as its temporary
# file OUT.tmp.<pid> exists, up to 5 tries. CAUGHT=1 when it was killed that way (KILLED_PID
# its pid), 0 when it ended first every time.
kill_when_tmp() {
  local out=$1 i pid try; shift 2
  CAUGHT=0
  for try in 1 2 3 4 5; do   # a fast writer may finish between two looks: try again
    "$@" >/dev/null 2>&1 &
    pid=$!
    for ((i = 0; i < 12000; i++)); do
      if [ -e "$out.tmp.$pid" ]; then kill -9 "$pid"; CAUGHT=1; break; fi
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.005
    done
    wait "$pid" 2>/dev/null
    KILLED_PID=$pid
    [ $CAUGHT -eq 1 ] && break
  done
}
# kill_after SECONDS -- command...: kill -9 after a delay (in the middle of the computation).
kill_after() {
  local s=$1 pid; shift 2
  "$@" >/dev/null 2>&1 &
  pid=$!
  sleep "$s"
  kill -9 "$pid" 2>/dev/null && CAUGHT=1 || CAUGHT=0
  wait "$pid" 2>/dev/null
}

# A model big enough that quantizing and exporting it take a visible moment: 98 MB of F32.
"$BIN" synth --preset stories15M --seed 3 -t 2 -q -o s15.gguf || fail "synth stories15M"
QUANT=("$BIN" quantize -m s15.gguf --method gptq -b 4 -g 32 --calib "$CAL" --calib-samples 8
       --calib-seqlen 64 -t 2 -q)

# ---- kill -9 during quantize ------------------------------------------------------------------
"${QUANT[@]}" -o q.gguf || fail "the good quantize"
good=$(sha q.gguf)
kill_after 0.3 -- "${QUANT[@]}" -s 5 -o q.gguf
expect_eq "quantize killed while computing: q.gguf unchanged" "$(sha q.gguf)" "$good"
expect_eq "quantize killed while computing: no temporary file" "$(leftovers .)" ""
kill_when_tmp q.gguf -- "${QUANT[@]}" -s 5 -o q.gguf
if [ $CAUGHT -eq 1 ]; then
  expect_eq "quantize killed while writing: q.gguf unchanged" "$(sha q.gguf)" "$good"
  expect_eq "quantize killed while writing: only its temporary file is left" "$(leftovers .)" "q.gguf.tmp.$KILLED_PID "
else
  fail "quantize was never caught with its temporary file open (5 tries)"
fi
"$BIN" info q.gguf >/dev/null 2>&1 || fail "q.gguf still loads"
# The next quantize to the same path removes what the killed one left.
"${QUANT[@]}" -s 5 -o q.gguf || fail "quantize after the kill"
expect_eq "the next quantize removes the killed one's temporary file" "$(leftovers .)" ""
"$BIN" info q.gguf >/dev/null 2>&1 || fail "the new q.gguf loads"
"${QUANT[@]}" -o q.gguf && expect_eq "quantize is deterministic (same seed, same file)" "$(sha q.gguf)" "$good"

# ---- kill -9 during export --------------------------------------------------------------------
EXPORT=("$BIN" export -m q.gguf -q)
mkdir ex
"${EXPORT[@]}" --format gguf -o ex/e.gguf || fail "the good export"
egood=$(sha ex/e.gguf)
kill_when_tmp ex/e.gguf -- "${EXPORT[@]}" --format gguf --f32 -o ex/e.gguf
if [ $CAUGHT -eq 1 ]; then
  expect_eq "export killed while writing: e.gguf unchanged" "$(sha ex/e.gguf)" "$egood"
  expect_eq "export killed while writing: only its temporary file is left" "$(leftovers ex)" "e.gguf.tmp.$KILLED_PID "
else
  fail "export was never caught with its temporary file open (5 tries)"
fi
"${EXPORT[@]}" --format gguf -o ex/e.gguf || fail "export after the kill"
expect_eq "the next export removes the killed one's temporary file" "$(leftovers ex)" ""
expect_eq "the new export is the same file" "$(sha ex/e.gguf)" "$egood"
# A directory export (GPTQ layout) is built under a temporary name and renamed when complete.
kill_when_tmp ex/e.gptq -- "${EXPORT[@]}" --format gptq -o ex/e.gptq
if [ $CAUGHT -eq 1 ]; then
  [ -e ex/e.gptq ] && fail "export killed while writing: ex/e.gptq exists" || pass "export killed while writing: no ex/e.gptq"
  expect_eq "export killed while writing: only its temporary directory is left" "$(leftovers ex)" "e.gptq.tmp.$KILLED_PID "
else
  fail "the directory export was never caught with its temporary directory there (5 tries)"
fi
"${EXPORT[@]}" --format gptq -o ex/e.gptq || fail "directory export after the kill"
expect_eq "the next directory export removes the killed one's temporary directory" "$(leftovers ex)" ""
[ -f ex/e.gptq/model.safetensors ] && pass "the new directory export is complete" || fail "ex/e.gptq/model.safetensors missing"

# ---- a pipeline job small enough to run here, for report and pipeline -------------------------
cat > job.yaml <<YAML
model: $M
methods:
  - {name: r8, method: rtn, bits: 8}
evaluation: {perplexity: [tinystories], ctx: 64, chunks: 2}
report: {formats: [md, html, csv, json]}
YAML
"$BIN" pipeline job.yaml --out run >/dev/null 2>&1 || fail "the good pipeline run"

# ---- full disk 1: a file size limit (EFBIG; SIGXFSZ ignored so the write call fails) -----------
# limited KIB -- command...: runs the command with files limited to KIB KiB.
limited() { local kib=$1; shift 2; (trap '' XFSZ; ulimit -f "$kib"; "$@"); }
mkdir fs
"$BIN" quantize -m "$M" --method rtn -b 8 -q -o fs/q.gguf || fail "quantize (small)"
qsmall=$(sha fs/q.gguf)
expect_error "quantize over the size limit" "^lowbit: fs/q\.gguf: write failed.*File too large$" -- \
  limited 400 -- "$BIN" quantize -m "$M" --method rtn -b 4 -g 32 --fake -q -o fs/q.gguf
expect_eq "quantize over the size limit: fs/q.gguf unchanged" "$(sha fs/q.gguf)" "$qsmall"
expect_error "export over the size limit" "^lowbit: fs/e\.gguf: write failed.*File too large$" -- \
  limited 400 -- "$BIN" export -m q.gguf --format gguf -q -o fs/e.gguf
[ -e fs/e.gguf ] && fail "export over the size limit left fs/e.gguf" || pass "export over the size limit: no fs/e.gguf"
expect_error "directory export over the size limit" "^lowbit: fs/e\.awq/model\.safetensors: write failed.*File too large$" -- \
  limited 400 -- "$BIN" export -m q.gguf --format awq -q -o fs/e.awq
[ -e fs/e.awq ] && fail "directory export over the size limit left fs/e.awq" || pass "directory export over the size limit: no fs/e.awq"
expect_error "report over the size limit" "^report: fs/rep/report\.html: write failed.*File too large$" -- \
  limited 100 -- "$BIN" report --db run/results.db --format md,html,json -o fs/rep
[ -e fs/rep/report.html ] && fail "report over the size limit left report.html" || pass "report over the size limit: no report.html"
expect_eq "full disk 1: no temporary files" "$(leftovers fs)$(leftovers fs/rep)" ""
out=$(limited 200 -- "$BIN" pipeline job.yaml --out fs/run 2>&1 >/dev/null); rc=$?
expect_eq "pipeline over the size limit: exit status" "$rc" 1
expect_contains "pipeline over the size limit: names the model" "$out" "fs/run/models/r8.gguf: write failed"
[ -e fs/run/models/r8.gguf ] && fail "pipeline over the size limit left r8.gguf" || pass "pipeline over the size limit: no r8.gguf"
expect_eq "pipeline over the size limit: no temporary files" \
  "$(find fs/run -name '*.tmp.*' | tr '\n' ' ')" ""
"$BIN" pipeline job.yaml --out fs/run >/dev/null 2>&1 && pass "the pipeline finishes once there is room" \
  || fail "the pipeline after the size limit"
expect_eq "the finished pipeline: no temporary files" "$(find fs/run -name '*.tmp.*' | tr '\n' ' ')" ""
[ -f fs/run/report/report.html ] && pass "the finished pipeline wrote its report" || fail "no report after the resume"

# ---- full disk 2: a 1 MiB tmpfs (ENOSPC), when this machine lets us mount one ------------------
mkdir "$MNT"
if ! mount -t tmpfs -o size=1m lowbit-test "$MNT" 2>/dev/null; then
  pass "full disk 2 skipped: cannot mount a tmpfs here"
  finish
  exit
fi
used() { df -k --output=used "$MNT" | tail -1 | tr -d ' '; }
"$BIN" quantize -m "$M" --method rtn -b 8 -q -o "$MNT/q.gguf" || fail "quantize into the tmpfs"
qsmall=$(sha "$MNT/q.gguf"); before=$(used)
expect_error "quantize on a full disk" "^lowbit: $MNT/q\.gguf: write failed.*No space left on device$" -- \
  "$BIN" quantize -m "$M" --method rtn -b 4 -g 32 --fake -q -o "$MNT/q.gguf"
expect_eq "quantize on a full disk: q.gguf unchanged" "$(sha "$MNT/q.gguf")" "$qsmall"
expect_eq "quantize on a full disk: the space is given back" "$(used)" "$before"
expect_error "export on a full disk" "^lowbit: $MNT/e\.gguf: write failed.*No space left on device$" -- \
  "$BIN" export -m q.gguf --format gguf -q -o "$MNT/e.gguf"
expect_error "directory export on a full disk" "^lowbit: $MNT/e\.gptq/model\.safetensors: write failed.*No space left on device$" -- \
  "$BIN" export -m q.gguf --format gptq -q -o "$MNT/e.gptq"
# leave ~120 KiB free: the report's HTML (about 240 KiB) cannot fit
dd if=/dev/zero of="$MNT/filler" bs=1k count=$((1024 - $(used) - 120)) 2>/dev/null
expect_error "report on a full disk" "^report: $MNT/rep/report\.html: write failed.*No space left on device$" -- \
  "$BIN" report --db run/results.db --format md,html -o "$MNT/rep"
[ -e "$MNT/rep/report.html" ] && fail "report on a full disk left report.html" || pass "report on a full disk: no report.html"
rm -f "$MNT/filler" "$MNT/q.gguf"; rm -rf "$MNT/rep"
dd if=/dev/zero of="$MNT/filler" bs=1k count=700 2>/dev/null
out=$("$BIN" pipeline job.yaml --out "$MNT/run" 2>&1 >/dev/null); rc=$?
expect_eq "pipeline on a full disk: exit status" "$rc" 1
expect_contains "pipeline on a full disk: names the file" "$out" "No space left on device"
[ -e "$MNT/run/models/r8.gguf" ] && fail "pipeline on a full disk left r8.gguf" || pass "pipeline on a full disk: no r8.gguf"
expect_eq "full disk 2: no temporary files" "$(find "$MNT" -name '*.tmp.*' | tr '\n' ' ')" ""
finish
