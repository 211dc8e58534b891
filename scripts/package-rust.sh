#!/usr/bin/env bash
# Package both crates (shm-channel-sys carries the C sources it compiles) and check that they
# would publish: `cargo publish --workspace --dry-run` packs, builds each .crate on its own
# (shm-channel against the packed shm-channel-sys) and must print no warning.
#
#   scripts/package-rust.sh [OUTDIR]      (default: build-packages/rust)
#
# CARGO_TARGET_DIR defaults to a folder outside the clone (~/.cache/shm-channel/), one per clone,
# emptied at each run (see below).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
out=$(realpath -m "${1:-build-packages/rust}")
if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/shm-channel/pkg-$(echo "$repo" | md5sum | cut -c1-12)}
cd "$repo/bindings/rust"
# The dry run verifies shm-channel against shm-channel-sys packed into a scratch registry
# ($CARGO_TARGET_DIR/package/tmp-registry). Cargo takes a registry crate as immutable: it
# reuses the copy unpacked under $CARGO_HOME/registry/src/ (keyed by that registry's path) and
# the library compiled from it in the target folder, so a second run with the same target
# folder verified against the old sys crate of the same version (CI failed so, on new FFI
# declarations). Each run therefore starts from an empty target folder (the two crates build
# in about 15 s) and with no unpacked copy of our crates, which never come from crates.io.
cargo_home=${CARGO_HOME:-$HOME/.cargo}
rm -rf "$CARGO_TARGET_DIR" "$cargo_home"/registry/src/*/shm-channel-sys-[0-9]* \
  "$cargo_home"/registry/src/*/shm-channel-[0-9]*
mkdir -p "$CARGO_TARGET_DIR"
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
