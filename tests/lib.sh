# Helpers for the shell tests: paths, a scratch directory, and assertions that say what failed.
set -u
BIN=${LOWBIT_BIN:?LOWBIT_BIN not set (run through ctest)}
SHARED=${LOWBIT_SHARED:?LOWBIT_SHARED not set}
TESTS=${LOWBIT_TESTS:?}
SCRATCH=$(mktemp -d "${LOWBIT_TMP:-/tmp}/lowbit-test.XXXXXX")
trap 'rm -rf "$SCRATCH"' EXIT
FAILS=0

fail() { echo "FAIL: $*" >&2; FAILS=$((FAILS + 1)); }
pass() { echo "ok: $*"; }

# expect_eq NAME ACTUAL EXPECTED
expect_eq() { if [ "$2" == "$3" ]; then pass "$1"; else fail "$1: expected [$3], got [$2]"; fi; }
# expect_contains NAME HAYSTACK NEEDLE
expect_contains() { case "$2" in *"$3"*) pass "$1" ;; *) fail "$1: [$3] not in [$2]" ;; esac; }
# expect_prefix NAME TEXT PREFIX
expect_prefix() { case "$2" in "$3"*) pass "$1" ;; *) fail "$1: [$2] does not start with [$3]" ;; esac; }

# expect_error NAME PATTERN -- command...: exit status 1, exactly one line on stderr matching PATTERN
expect_error() {
  local name=$1 pattern=$2; shift 3
  local out rc lines
  out=$("$@" 2>&1 >/dev/null); rc=$?
  lines=$(printf '%s' "$out" | grep -c '')
  if [ $rc -ne 1 ]; then fail "$name: exit status $rc, expected 1 (stderr: $out)"; return; fi
  if [ "$lines" -ne 1 ]; then fail "$name: $lines lines on stderr, expected 1: $out"; return; fi
  if ! printf '%s' "$out" | grep -qE -- "$pattern"; then fail "$name: [$out] does not match /$pattern/"; return; fi
  pass "$name"
}

# require_mpi: exits the test with SKIP (status 0) when lowbit was built without MPI; otherwise
# lets mpirun run as root and oversubscribe this machine's cores, and turns off the leak check,
# which would report Open MPI's own allocations (they live from MPI_Init to exit), not lowbit's.
# Everything else the sanitizers check stays on.
require_mpi() {
  if ! "$BIN" --version | grep -q "parallel processes: MPI"; then
    echo "SKIP: lowbit was built without MPI"
    exit 0
  fi
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
  export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0
}

finish() { if [ $FAILS -ne 0 ]; then echo "$FAILS failure(s)" >&2; exit 1; fi; echo "all passed"; }
