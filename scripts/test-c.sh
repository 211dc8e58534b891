#!/usr/bin/env bash
# The C test suite in three builds, each configured, built and run with ctest:
#   build-ctest  plain RelWithDebInfo                  every test (>= 10 M messages per stream test)
#   build-asan   SHM_CHANNEL_SANITIZE=address,undefined  every test, message counts x0.1
#   build-tsan   SHM_CHANNEL_SANITIZE=thread             the "threaded" tests, counts x0.1
# Then the attacks, each with a summary line (c/tests/README.md, "Attacks"):
#   SIGKILL chaos      test_attack_chaos (ctest label "attack"), plain and ASan+UBSan builds
#   hostile writer     test_attack_hostile, ASan+UBSan build
#   libFuzzer          c/fuzz/run.sh (clang, ASan+UBSan), build-fuzz/
# Exits non-zero if any build or test fails. Assumes scripts/deps.sh has installed cmake,
# ninja-build, pkg-config, libcriterion-dev, clang and libFuzzer's runtime.
# Environment: SHM_CHANNEL_TEST_SCALE (plain build's count multiplier, default 1),
# SHM_CHANNEL_SANITIZER_TEST_SCALE (default 0.1), CTEST_JOBS (default 1),
# SHM_CHANNEL_CHAOS_KILLS (default 200), SHM_CHANNEL_HOSTILE_SECONDS (default 20),
# SHM_CHANNEL_FUZZ_SECONDS (default 60).
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
jobs=${CTEST_JOBS:-1}
failed=()
summary=()
built=()

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
  built+=("$dir")
  local args=(--test-dir "$root/$dir" --output-on-failure -j "$jobs" -LE attack)
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

# The attack tests of one build (label "attack"), verbose so that their summary lines
# (chaos: ..., hostile: ...) can be shown.
attacks() {
  local name=$1 dir=$2
  local t0=$SECONDS log="$root/$dir/attack.log"
  [[ " ${built[*]} " == *" $dir "* ]] || return 0
  echo "=== C attacks: $name ($dir)"
  if ctest --test-dir "$root/$dir" -L attack -V >"$log" 2>&1; then
    summary+=("attacks ($name): ok, $((SECONDS - t0)) s")
  else
    grep -E "^[0-9]+: " "$log" | tail -60
    failed+=("attacks ($name)")
    summary+=("attacks ($name): FAILED, $((SECONDS - t0)) s (log $log)")
  fi
  while IFS= read -r line; do
    summary+=("  $line")
  done < <(grep -E "^[0-9]+: (chaos|hostile): ([0-9]+ kills \(|[0-9]+ scribbles|FAILED)" "$log" |
           sed -E 's/^[0-9]+: //')
}

attacks "plain" build-ctest
attacks "asan+ubsan" build-asan
echo "=== C attacks: libFuzzer (build-fuzz)"
t0=$SECONDS
if fuzz_out=$(c/fuzz/run.sh 2>&1); then
  summary+=("$(tail -1 <<<"$fuzz_out"), $((SECONDS - t0)) s total")
else
  echo "$fuzz_out" | tail -80
  failed+=("fuzz")
  summary+=("$(tail -1 <<<"$fuzz_out")")
fi

echo
echo "=== C test summary"
printf '  %s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED: ${failed[*]}"
  exit 1
fi
echo "all C test variants passed"
