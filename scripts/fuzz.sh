#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan) and runs them.
#   scripts/fuzz.sh                    each target for $FUZZ_SECONDS (default 60) seconds
#   scripts/fuzz.sh --smoke [RUNS]     each target for a fixed number of runs (CI; default 2000)
#   scripts/fuzz.sh ... TARGET...      only the named targets (gguf, llama2c, encode, ...)
# Corpora start from tests/fuzz/seeds/TARGET, the real files in ../shared and every input in
# tests/fuzz/regressions/TARGET (past crashes, each replayed first). A crash leaves
# build-fuzz/crash-* behind: copy it into tests/fuzz/regressions/TARGET/ with the fix.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
shared=${LOWBIT_SHARED:-$root/../shared}
shared=$(cd "$shared" && pwd)

mode=time runs=2000 seconds=${FUZZ_SECONDS:-60}
if [[ ${1:-} == --smoke ]]; then
  mode=smoke; shift
  [[ ${1:-} =~ ^[0-9]+$ ]] && { runs=$1; shift; }
fi

build=$root/build-fuzz
CC=clang cmake -S . -B "$build" -DLOWBIT_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" --target fuzz_all -j "$(nproc)" >/dev/null

targets=("$@")
if ((${#targets[@]} == 0)); then
  for f in tests/fuzz/fuzz_*.c; do t=${f##*/fuzz_}; targets+=("${t%.c}"); done
fi

# Real files each target starts from, besides its seeds directory.
seed_files() {
  case $1 in
    gguf) echo "$shared/models/stories260K.gguf" ;;
    llama2c) echo "$shared/models/stories260K.bin" ;;
    tokenizer_bin) echo "$shared/models/tok512.bin" ;;
    encode) echo "$shared/datasets/tinystories/validation_head.txt" ;;
    config) echo "$root"/configs/*.yaml ;;
  esac
}

export LOWBIT_SHARED=$shared
status=0
for t in "${targets[@]}"; do
  bin=$build/tests/fuzz/fuzz_$t
  [[ -x $bin ]] || { echo "fuzz.sh: no target '$t'" >&2; exit 1; }
  corpus=$build/corpus/$t
  mkdir -p "$corpus"
  [[ -d tests/fuzz/seeds/$t ]] && cp -n tests/fuzz/seeds/$t/* "$corpus"/ 2>/dev/null || true
  for f in $(seed_files "$t"); do
    # Big files are cut for the corpus (text to 4 KiB, models to 64 KiB) so mutations stay
    # fast; the whole file is still replayed once below.
    cut=65536; [[ $t == encode ]] && cut=4096
    head -c $cut "$f" > "$corpus/shared-${f##*/}"
  done
  regressions=()
  [[ -d tests/fuzz/regressions/$t ]] && regressions=(tests/fuzz/regressions/$t/*)
  whole=($(seed_files "$t"))
  log=$build/fuzz-$t.log
  (
    cd "$build"
    if ((${#regressions[@]} + ${#whole[@]})); then
      "$bin" -rss_limit_mb=4096 "${regressions[@]/#/$root/}" "${whole[@]}" >"$log.replay" 2>&1
    fi
    if [[ $mode == smoke ]]; then
      "$bin" -runs="$runs" -max_len=65536 -timeout=20 -rss_limit_mb=4096 "$corpus" >"$log" 2>&1
    else
      "$bin" -max_total_time="$seconds" -max_len=65536 -timeout=20 -rss_limit_mb=4096 \
             -print_final_stats=1 "$corpus" >"$log" 2>&1
    fi
  ) && rc=0 || rc=$?
  summary=$(grep -E "^#[0-9]+.*(DONE|pulse|NEW|REDUCE|INITED)" "$log" | tail -1 | sed 's/  */ /g')
  if ((rc)); then
    echo "fuzz $t: FAILED (exit $rc); see $log" >&2
    tail -20 "$log" "$log.replay" 2>/dev/null >&2 || true
    status=1
  else
    echo "fuzz $t: ok ${summary}"
  fi
done
exit $status
