#!/usr/bin/env bash
# The packaging suite (issue 15): builds the three kinds of package and tests each as a user
# would get it, plus the C ABI check. Run by scripts/test.sh ("Packaging"); needs what
# scripts/deps.sh installs (abigail-tools, dpkg-dev, file, the MSRV toolchain, ...).
#
#   tests/packaging/run.sh [OUTDIR]      (default: build-packages; the packages stay there)
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
out=$(realpath -m "${1:-build-packages}")
failed=()
step() {
  local label=$1; shift
  echo
  echo "------ packaging: $label"
  local t=$SECONDS
  if "$@"; then
    echo "------ packaging: $label: ok ($((SECONDS - t)) s)"
  else
    echo "------ packaging: $label: FAILED ($((SECONDS - t)) s)"
    failed+=("$label")
  fi
}
step "Debian packages (CPack)" scripts/package-deb.sh "$out/deb"
step "ABI check (abidiff against the baseline)" scripts/abi-check.sh build-pkg/libshm_channel.so.1
step "ABI check catches breaks, allows additions" tests/packaging/test-abi.sh build-pkg/libshm_channel.so.1
step "Debian packages installed with dpkg, used downstream" tests/packaging/test-deb.sh "$out/deb"
step "Rust crates (cargo publish --dry-run, cargo package)" scripts/package-rust.sh "$out/rust"
step "Rust crates built downstream (stable and MSRV)" tests/packaging/test-rust.sh "$out/rust"
step "Python sdist and manylinux wheel" scripts/package-python.sh "$out/python"
step "Python wheel with no compiler: the whole Python suite" tests/packaging/test-python.sh "$out/python"

echo
echo "packages built (bytes):"
find "$out" -maxdepth 2 -type f \( -name '*.deb' -o -name '*.crate' -o -name '*.whl' -o -name '*.tar.gz' \) \
  -printf '%10s  %P\n' | sort -k2
passed=$((8 - ${#failed[@]}))
echo "packaging: ${passed} passed, ${#failed[@]} failed"
if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED: ${failed[*]}"
  exit 1
fi
