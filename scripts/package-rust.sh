#!/usr/bin/env bash
# Package both crates (shm-channel-sys carries the C sources it compiles) and check that they
# would publish: `cargo publish --workspace --dry-run` packs, builds each .crate on its own
# (shm-channel against the packed shm-channel-sys) and must print no warning.
#
#   scripts/package-rust.sh [OUTDIR]      (default: build-packages/rust)
#
# CARGO_TARGET_DIR defaults to a cache outside the clone (~/.cache/shm-channel/), one per clone.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
out=$(realpath -m "${1:-build-packages/rust}")
if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/shm-channel/pkg-$(echo "$repo" | md5sum | cut -c1-12)}
cd "$repo/bindings/rust"
mkdir -p "$CARGO_TARGET_DIR" && rm -f "$CARGO_TARGET_DIR"/package/*.crate
# --allow-dirty: also from a work tree with uncommitted changes (the .crate is what is checked).
cargo publish --workspace --dry-run --allow-dirty --locked 2>&1 | tee "$CARGO_TARGET_DIR/publish.log"
if grep -v 'aborting upload due to dry run' "$CARGO_TARGET_DIR/publish.log" | grep -qiE '^(warning|error)'; then
  echo "rust: cargo publish --dry-run is not clean (see the warnings above)" >&2
  exit 1
fi
# The .crate files themselves (the dry run above built them and threw them away).
cargo package --workspace --allow-dirty --locked --no-verify --quiet
rm -rf "$out" && mkdir -p "$out"
cp "$CARGO_TARGET_DIR"/package/*.crate "$out/"
ls -l "$out"
