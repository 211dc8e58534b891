#!/usr/bin/env bash
# The C test suite in three builds, each configured, built and run with ctest:
#   build-ctest  plain RelWithDebInfo                  every test (>= 10 M messages per stream test)
#   build-asan   SHM_CHANNEL_SANITIZE=address,undefined  every test, message counts x0.1
#   build-tsan   SHM_CHANNEL_SANITIZE=thread             the "threaded" tests, counts x0.1
# Exits non-zero if any build or test fails. Assumes scripts/deps.sh has installed cmake,
# ninja-build, pkg-config and libcriterion-dev.
# Environment: SHM_CHANNEL_TEST_SCALE (plain build's count multiplier, default 1),
# SHM_CHANNEL_SANITIZER_TEST_SCALE (default 0.1), CTEST_JOBS (default 1).
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
jobs=${CTEST_JOBS:-1}
failed=()
summary=()

variant() {
  local name=$1 dir=$2 sanitize=$3 scale=$4 label=$5
  shift 5
  local t0=$SECONDS log="$root/$dir/ctest.log"
  echo "=== C tests: $name ($dir)"
  mkdir -p "$root/$dir"
  if ! cmake -S "$root" -B "$root/$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DSHM_CHANNEL_TESTS=ON -DSHM_CHANNEL_BENCH=OFF \
        -DSHM_CHANNEL_SANITIZE="$sanitize" -DSHM_CHANNEL_TEST_SCALE="$scale" "$@" \
        >"$root/$dir/build.log" 2>&1 ||
     ! ninja -C "$root/$dir" >>"$root/$dir/build.log" 2>&1; then
    tail -40 "$root/$dir/build.log"
    echo "=== $name: BUILD FAILED"
    failed+=("$name (build)")
    summary+=("$name: build failed")
    return
  fi
  local args=(--test-dir "$root/$dir" --output-on-failure -j "$jobs")
  [ -n "$label" ] && args+=(-L "$label")
  if ctest "${args[@]}" >"$log" 2>&1; then
    grep -E "tests passed|Total Test time" "$log"
    summary+=("$name: ok, $(grep -oE '[0-9]+ tests? failed out of [0-9]+' "$log" | sed 's/^0 tests failed out of/passed/'), $((SECONDS - t0)) s")
  else
    cat "$log"
    failed+=("$name")
    summary+=("$name: FAILED, $((SECONDS - t0)) s")
  fi
}

variant "plain" build-ctest "" "${SHM_CHANNEL_TEST_SCALE:-1}" ""
variant "asan+ubsan" build-asan "address,undefined" "${SHM_CHANNEL_SANITIZER_TEST_SCALE:-0.1}" ""
# TSan: Criterion cannot run under TSan (Snaipe/Criterion#274), so c/tests builds only the
# threaded tests there, on a minimal runner.
variant "tsan" build-tsan "thread" "${SHM_CHANNEL_SANITIZER_TEST_SCALE:-0.1}" "threaded"

echo
echo "=== C test summary"
printf '  %s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED: ${failed[*]}"
  exit 1
fi
echo "all C test variants passed"
