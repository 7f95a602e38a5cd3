#!/usr/bin/env bash
# Under mpirun with 2 and 3 ranks (3 catches uneven splits): every rank merges to the
# single-process arrays. Skipped, loudly, when the build has no MPI.
source "$(dirname "$0")/lib.sh"

prog=$LOWBIT_TMP/test_dist
[ -x "$prog" ] || { echo "FAIL: test_dist is not built at $prog" >&2; exit 1; }
if ! "$LOWBIT_BIN" --version | grep -q "parallel processes: MPI"; then
  echo "SKIP: lowbit was built without MPI"
  exit 0
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
# Open MPI keeps its own allocations from MPI_Init to exit; under the sanitizers the leak check
# would report those, not lowbit's. Everything else ASan checks stays on.
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0
for n in 2 3; do
  out=$(timeout 120 mpirun --oversubscribe -n $n "$prog" 2>&1) || { fail "mpirun -n $n: $out"; continue; }
  [ "$(grep -c "all checks passed" <<<"$out")" -eq $n ] && pass "mpirun -n $n: every rank merged exactly" || fail "mpirun -n $n: not every rank passed: $out"
  grep -q "rank $((n - 1)) of $n" <<<"$out" || fail "mpirun -n $n: ranks not joined: $out"
done
finish
