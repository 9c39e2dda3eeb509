#!/usr/bin/env bash
# Runs usher's whole test suite twice: a normal build (build/), then one under
# ASan+UBSan with -Werror (build-asan/). Installs what is missing first.
# Exits non-zero if either pass fails to build or has a failing test.
#
#   scripts/test.sh                  # everything
#   USHER_TEST_JOBS=4 scripts/test.sh
#   USHER_CTEST_ARGS="-L integration" scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

jobs=${USHER_TEST_JOBS:-2}
started=$(date +%s)

scripts/install-deps.sh test

# Sanitizer reports end the process with a stack trace; leaks count too.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:detect_stack_use_after_return=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# pass NAME DIR [cmake args...]: configure, build, run ctest; the log of the
# run is DIR/ctest.log.
pass() {
  local name=$1 dir=$2 rc=0
  shift 2
  echo "=== $name: building in $dir"
  rm -f "$dir/ctest.log"
  if ! { cmake -S . -B "$dir" "$@" && cmake --build "$dir" -j"$jobs"; }; then
    echo "=== $name: build failed" >&2
    return 1
  fi
  echo "=== $name: running the tests"
  # shellcheck disable=SC2086 # USHER_CTEST_ARGS is a list of arguments
  (cd "$dir" && ctest --output-on-failure --no-tests=error -j"$jobs" ${USHER_CTEST_ARGS:-}) 2>&1 |
    tee "$dir/ctest.log" || rc=$?
  return "$rc"
}

summary() { # DIR: ctest's "N% tests passed, ..." line
  grep -E '^[0-9]+% tests passed' "$1/ctest.log" 2>/dev/null | tail -n1 || echo "no tests ran"
}

status=0
pass "pass 1 (default build)" build || status=1
pass "pass 2 (ASan+UBSan, -Werror)" build-asan \
  -DUSHER_SANITIZE=address,undefined -DUSHER_WERROR=ON || status=1

echo
echo "pass 1 (default build):       $(summary build)"
echo "pass 2 (ASan+UBSan, -Werror): $(summary build-asan)"
echo "total time: $(($(date +%s) - started)) s"
exit "$status"
