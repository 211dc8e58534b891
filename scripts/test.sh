#!/usr/bin/env bash
# The whole test suite: installs what it needs, then runs the C tests (plain, ASan+UBSan, TSan),
# the Python and Rust bindings' tests, the cross-language interop suite, and the packages
# (Debian, Python wheel and sdist, Rust crates) with the C ABI check.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
scripts/deps.sh all
failed=()
run() {
  local label=$1; shift
  echo
  echo "=================== $label"
  local t=$SECONDS
  if "$@"; then
    echo "=================== $label: ok ($((SECONDS - t)) s)"
  else
    echo "=================== $label: FAILED ($((SECONDS - t)) s)"
    failed+=("$label")
  fi
}
run "C (plain, ASan+UBSan, TSan)" scripts/test-c.sh
[ -x tests/cli/run.sh ] && run "CLI (shm_channel as real processes)" tests/cli/run.sh
[ -x bindings/python/run-tests.sh ] && run "Python binding" bindings/python/run-tests.sh
[ -x bindings/rust/run-tests.sh ] && run "Rust binding" bindings/rust/run-tests.sh
[ -x tests/interop/run.sh ] && run "Interop" tests/interop/run.sh
[ -x tests/bridge/run.sh ] && run "Bridge (Zenoh)" tests/bridge/run.sh
[ -x tests/packaging/run.sh ] && run "Packaging (deb, wheel, crates, ABI)" tests/packaging/run.sh
# The bench report's own checks (fixture JSON in, REPORT.md's goal rows out; ~1 s).
[ -x bench/report/run-tests.sh ] && run "Bench report" bench/report/run-tests.sh
echo
echo "total: $((SECONDS - start)) s"
if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED: ${failed[*]}"
  exit 1
fi
echo "all suites passed"
