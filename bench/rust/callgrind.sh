#!/usr/bin/env bash
# Instructions per 64 B message of the Rust binding's loops against their C twins
# (c/loops.c), both calling the same C library in one program: valgrind's callgrind counts
# the instructions executed inside each in-process loop (write then read back, never
# waiting), for two message counts; the difference over the difference in messages is the
# cost of one message, exact on a loaded machine where wall-clock ratios are not.
#
#   bench/rust/callgrind.sh [BINARY]   (default: build-bench-all/rust/release/shm-channel-compare)
#
# The bench's release profile has thin LTO, which inlines the binding into the loop whatever
# its #[inline] attributes say; a user's default release build has none. To count what a
# user gets, build without it and pass that binary:
#   CARGO_PROFILE_RELEASE_LTO=false cargo build --release --manifest-path bench/rust/Cargo.toml \
#     --target-dir build-rnolto && bench/rust/callgrind.sh build-rnolto/release/shm-channel-compare
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${1:-$ROOT/build-bench-all/rust/release/shm-channel-compare}
command -v valgrind >/dev/null || { echo "callgrind.sh: valgrind is not installed" >&2; exit 2; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
N1=32000 N2=96000
ir() { # ir ID N FUNCTION-PATTERN -> instructions inside the pattern's function
  valgrind -q --tool=callgrind --callgrind-out-file="$TMP/out" --toggle-collect="$3" \
    "$BIN" --inproc "$1" "$2" >/dev/null
  awk '/^(summary|totals):/ {print $2; exit}' "$TMP/out"
}
printf '%-12s %12s %12s %8s\n' path "Rust ins/msg" "C ins/msg" "C/Rust"
for m in copy zerocopy batch; do
  r1=$(ir "rs_$m" $N1 '*inproc_rs*'); r2=$(ir "rs_$m" $N2 '*inproc_rs*')
  c1=$(ir "c_$m" $N1 'cmp_c_inproc'); c2=$(ir "c_$m" $N2 'cmp_c_inproc')
  awk -v m="$m" -v r1="$r1" -v r2="$r2" -v c1="$c1" -v c2="$c2" -v d=$((N2 - N1)) \
    'BEGIN { r = (r2 - r1) / d; c = (c2 - c1) / d; printf "%-12s %12.1f %12.1f %7.3fx\n", m, r, c, c / r }'
done
