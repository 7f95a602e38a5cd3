#!/usr/bin/env bash
# Under mpirun with 2 and 3 ranks (3 catches uneven splits): every rank merges to the
# single-process arrays. Skipped, loudly, when the build has no MPI.
source "$(dirname "$0")/lib.sh"

prog=$LOWBIT_TMP/test_dist
[ -x "$prog" ] || { echo "FAIL: test_dist is not built at $prog" >&2; exit 1; }
require_mpi
for n in 2 3; do
  out=$(timeout 120 mpirun --oversubscribe -n $n "$prog" 2>&1) || { fail "mpirun -n $n: $out"; continue; }
  [ "$(grep -c "all checks passed" <<<"$out")" -eq $n ] && pass "mpirun -n $n: every rank merged exactly" || fail "mpirun -n $n: not every rank passed: $out"
  grep -q "rank $((n - 1)) of $n" <<<"$out" || fail "mpirun -n $n: ranks not joined: $out"
done
finish
