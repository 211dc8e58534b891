#!/usr/bin/env bash
# Instructions per 64 B message of shm_channel_write + shm_channel_read against the minimal
# SPSC ring's send + receive (bench/README.md, "Where the time goes"): shm_channel_bench
# --inproc writes and reads back N messages in one process, through one channel or one ring
# in private memory; valgrind's callgrind counts the instructions inside that loop
# (bench_shm_inproc / bench_spsc_inproc, calls included) for two message counts, and the
# difference over the difference in messages is the cost of one write+read pair: exact,
# whatever the load, where two-process wall-clock ratios are not.
#
#   bench/callgrind.sh [BINARY]   (default: build-bench-all/c/bench/shm_channel_bench)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${1:-$ROOT/build-bench-all/c/bench/shm_channel_bench}
command -v valgrind >/dev/null || { echo "callgrind.sh: valgrind is not installed" >&2; exit 2; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
N1=10000 N2=20000
ir() { # ir ID N FUNCTION -> instructions inside FUNCTION
  valgrind -q --tool=callgrind --callgrind-out-file="$TMP/out" --toggle-collect="$3" \
    "$BIN" --inproc "$1" "$2" >/dev/null
  awk '/^(summary|totals):/ {print $2; exit}' "$TMP/out"
}
s1=$(ir shm_copy $N1 bench_shm_inproc); s2=$(ir shm_copy $N2 bench_shm_inproc)
r1=$(ir spsc_ring $N1 bench_spsc_inproc); r2=$(ir spsc_ring $N2 bench_spsc_inproc)
awk -v s1="$s1" -v s2="$s2" -v r1="$r1" -v r2="$r2" -v d=$((N2 - N1)) 'BEGIN {
  s = (s2 - s1) / d; r = (r2 - r1) / d
  printf "%-40s %10s\n", "64 B write + read pair, loop included", "instructions"
  printf "%-40s %10.1f\n", "minimal ring (spsc_send + spsc_recv)", r
  printf "%-40s %10.1f\n", "shm_channel_write + shm_channel_read", s
  printf "%-40s %9.2fx\n", "ratio (shm_channel / ring)", s / r }'
