#!/usr/bin/env bash
# The program and its module lowbit-extras.so: the commands that run models neither link nor
# open the large libraries; the commands that need them open the module beside the program
# (or where LOWBIT_EXTRAS says), and when it cannot be opened they say which file and why.
source "$(dirname "$0")/lib.sh"

MODEL="$SHARED/models/stories260K.gguf"
LILY="Once upon a time, there was a little girl named Lily."

# 1. None of the module's libraries is a dependency of the program itself.
deps=$(ldd "$BIN")
for lib in libcurl libmicrohttpd libcairo libpango libsqlite3 libyaml libopenblas liblapacke libmpi; do
  case "$deps" in *"$lib"*) fail "the program links $lib: $(grep "$lib" <<<"$deps")" ;; *) pass "the program does not link $lib" ;; esac
done
[ -f "$(dirname "$BIN")/lowbit-extras.so" ] && pass "the module is built beside the program" ||
  fail "no lowbit-extras.so beside $BIN"

# 2. Without the module, the model commands still run in full...
export LOWBIT_EXTRAS="$SCRATCH/missing/lowbit-extras.so"
out=$("$BIN" generate -m "$MODEL" -n 15 --temp 0 2>/dev/null)
expect_eq "generate without the module" "$out" "$LILY"
json=$("$BIN" bench -m "$MODEL" --batch 1 --prompt 4 --gen 4 --reps 1 --warmup 0 --json -q 2>/dev/null)
expect_contains "bench without the module" "$json" '"decode_tokens_per_s_median"'
"$BIN" info "$MODEL" >/dev/null 2>&1 && pass "info without the module" || fail "info failed without the module"

# ...and the others name the file they need and why they could not open it.
for cmd in serve pipeline runs report pull quantize; do
  expect_error "$cmd without the module" "^lowbit $cmd: cannot open $SCRATCH/missing/lowbit-extras.so \(this command needs it\): .*No such file" -- "$BIN" $cmd --help
done
printf 'not a shared object\n' >"$SCRATCH/text.so"
expect_error "a module that is not a shared object" "^lowbit serve: cannot open $SCRATCH/text.so .*: .*(invalid ELF header|file too short)" -- \
  env LOWBIT_EXTRAS="$SCRATCH/text.so" "$BIN" serve --help
libm=$(ldd "$BIN" | awk '/libm\.so/ {print $3}')
expect_error "a shared object that is not the module" "^lowbit runs: $libm has no cmd_runs: it is not this program's build" -- \
  env LOWBIT_EXTRAS="$libm" "$BIN" runs list
unset LOWBIT_EXTRAS

# 3. With it, they run: the module's commands answer through the program.
out=$("$BIN" report --help 2>&1) && expect_contains "report through the module" "$out" "usage: lowbit report" ||
  fail "report --help: $out"
expect_error "runs through the module reads its arguments" "no such results database" -- \
  "$BIN" runs list --db "$SCRATCH/none.db"
# 4. An installed tree: the program in bin/, the module in lib*/lowbit/, found there and still
# found when the whole tree moves; without it the error names both places looked in.
BUILD_DIR=$(dirname "$BIN")
if cmake --install "$BUILD_DIR" --prefix "$SCRATCH/prefix" >"$SCRATCH/install.log" 2>&1; then
  module=$(find "$SCRATCH/prefix" -name lowbit-extras.so)
  case "$module" in
    "$SCRATCH"/prefix/lib*/lowbit/lowbit-extras.so) pass "install puts the module in lib/lowbit" ;;
    *) fail "installed module at [$module], expected under lib*/lowbit" ;;
  esac
  mv "$SCRATCH/prefix" "$SCRATCH/moved"
  out=$("$SCRATCH/moved/bin/lowbit" report --help 2>&1) &&
    expect_contains "the installed program opens the installed module" "$out" "usage: lowbit report" ||
    fail "installed report --help: $out"
  out=$("$SCRATCH/moved/bin/lowbit" generate -m "$MODEL" -n 15 --temp 0 2>/dev/null)
  expect_eq "the installed program runs a model" "$out" "$LILY"
  rm -f "${module/prefix/moved}"
  expect_error "installed tree without its module" "^lowbit serve: cannot open $SCRATCH/moved/bin/lowbit-extras.so \(this command needs it; nor is it at $SCRATCH/moved/bin/\.\./lib[^ ]*/lowbit/lowbit-extras.so\): .*No such file" -- \
    "$SCRATCH/moved/bin/lowbit" serve --help
else
  fail "cmake --install failed: $(cat "$SCRATCH/install.log")"
fi
finish
