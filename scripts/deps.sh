#!/usr/bin/env bash
# Install what building and testing shm_channel needs, on Debian/Ubuntu. Installs only what is
# missing, so a second run costs nothing. Usage: scripts/deps.sh [c|all]   (default: all)
set -euo pipefail
what=${1:-all}

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

# clang: the libFuzzer target (c/fuzz); its runtime comes in libclang-rt-N-dev (below).
pkgs=(build-essential cmake ninja-build pkg-config libcriterion-dev clang)
if [ "$what" = all ]; then
  pkgs+=(python3 python3-venv python3-pip)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "$what" = all ] && ! command -v cargo >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/cargo" ]; then
  missing+=(cargo rustc)   # Debian's toolchain, when no rustup toolchain is present
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# libFuzzer's runtime (and the sanitizers' for clang) is a separate package on Debian, named
# after clang's major version (bookworm: clang 14, libclang-rt-14-dev).
fuzz_links() {
  printf 'int LLVMFuzzerTestOneInput(const char *d, long n) { (void)d; (void)n; return 0; }\n' |
    clang -fsanitize=fuzzer,address,undefined -x c - -o /dev/null >/dev/null 2>&1
}
if command -v clang >/dev/null 2>&1 && ! fuzz_links; then
  major=$(clang -dumpversion | cut -d. -f1)
  echo "deps: installing libclang-rt-$major-dev"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "libclang-rt-$major-dev" >/dev/null
  fuzz_links || { echo "deps: clang -fsanitize=fuzzer still does not link"; exit 1; }
fi
