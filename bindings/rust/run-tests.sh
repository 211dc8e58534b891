#!/usr/bin/env bash
# The Rust bindings' checks: formatting, clippy (warnings are errors), then every test (unit,
# integration, cross-process, spec/vectors, doctests) and a one-pass smoke run of the
# benchmarks. Segments go to a private directory (SHM_CHANNEL_DIR) that must be empty at the
# end: a test that leaks a segment fails the run. Exits non-zero on any failure.
#
# Environment: SHM_CHANNEL_LIB_DIR=DIR tests against the prebuilt libshm_channel.so in DIR
# instead of compiling the C sources in (build it first with CMake).
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
if [ -n "${SHM_CHANNEL_LIB_DIR:-}" ]; then
  # A separate target dir, so switching between the two ways of linking rebuilds nothing.
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target/prebuilt}"
  echo "rust: testing the prebuilt library in $SHM_CHANNEL_LIB_DIR"
fi

base=/dev/shm
[ -d "$base" ] && [ -w "$base" ] || base=${TMPDIR:-/tmp}
segdir=$(mktemp -d "$base/shm-channel-rs-test.XXXXXX")
trap 'rm -rf "$segdir"' EXIT
export SHM_CHANNEL_DIR="$segdir"

step() { echo; echo "--- rust: $*"; }

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo doc (rustdoc warnings are errors)"
RUSTDOCFLAGS="${RUSTDOCFLAGS:-} -D warnings" cargo doc --workspace --no-deps --locked

step "cargo test (unit, integration, cross-process, vectors, doctests)"
cargo test --workspace --locked

step "cargo test --benches (each benchmark once)"
cargo test --workspace --locked --benches

step "no segment left behind"
leftover=$(ls -A "$segdir")
if [ -n "$leftover" ]; then
  echo "segments left in $segdir by the tests:"
  echo "$leftover"
  exit 1
fi
echo "none"
