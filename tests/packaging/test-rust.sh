#!/usr/bin/env bash
# The packaged crates build on their own: unpacks the .crate files (scripts/package-rust.sh)
# into a scratch folder outside the repository and builds and runs a downstream crate
# (tests/packaging/rust-downstream) that depends only on them, with the stable toolchain and
# with the declared MSRV (rust-version in bindings/rust/Cargo.toml, installed by
# scripts/deps.sh through rustup).
#
#   tests/packaging/test-rust.sh CRATEDIR
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
crates=$(realpath "$1")
if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$repo/bindings/rust/Cargo.toml" | head -1)
msrv=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' "$repo/bindings/rust/Cargo.toml" | head -1)
[ -n "$version" ] && [ -n "$msrv" ] || { echo "rust: no version/rust-version in Cargo.toml" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/shm-channel-crates.XXXXXX")
trap 'rm -rf "$work"' EXIT
case "$work" in "$repo"/*) echo "rust: scratch folder inside the repository" >&2; exit 1 ;; esac
mkdir -p "$work/crates" "$work/chans"
for c in "$crates"/*.crate; do tar -xzf "$c" -C "$work/crates"; done
cp -r "$repo/tests/packaging/rust-downstream" "$work/downstream"
sed -i "s/@VERSION@/$version/g; s/@MSRV@/$msrv/g" "$work/downstream/Cargo.toml"
[ ! -e "$work/crates/shm-channel-sys-$version/c/src/channel.c" ] &&
  { echo "rust: shm-channel-sys crate without its C sources" >&2; exit 1; }
[ -L "$work/crates/shm-channel-sys-$version/c" ] &&
  { echo "rust: shm-channel-sys crate holds a link, not the C sources" >&2; exit 1; }
cd "$work/downstream"
# The dependencies' newest versions that support the MSRV (cargo's MSRV-aware resolver).
CARGO_RESOLVER_INCOMPATIBLE_RUST_VERSIONS=fallback cargo generate-lockfile --quiet
# Builds outside the clone, cached across runs; the two local crates always rebuild.
cache=${XDG_CACHE_HOME:-$HOME/.cache}/shm-channel/pkg-downstream
export SHM_CHANNEL_DIR=$work/chans
for toolchain in stable "$msrv"; do
  echo "--- rust: downstream crate with the $toolchain toolchain ($(cargo +"$toolchain" --version))"
  export CARGO_TARGET_DIR=$cache/$toolchain
  cargo +"$toolchain" clean --quiet -p shm-channel -p shm-channel-sys 2>/dev/null || true
  cargo +"$toolchain" build --locked --quiet
  cargo +"$toolchain" run --locked --quiet
done
[ -z "$(ls -A "$work/chans")" ] || { echo "rust: segment left behind" >&2; exit 1; }
echo "rust: ok"
