#!/usr/bin/env bash
# Build and run the libFuzzer target c/fuzz/fuzz_segment.c (clang, ASan + UBSan), seeded
# with spec/vectors/*.bin, spec/vectors/broadcast/*.bin and spec/vectors/service/*.bin, for $SHM_CHANNEL_FUZZ_SECONDS seconds (default 60).
# Build, corpus and crash artifacts go to build-fuzz/ (git-ignored). Exits non-zero on any
# crash, sanitizer report, unexpected return code, leak or timeout, and prints the number of
# executions. Usage: c/fuzz/run.sh [extra libFuzzer flags]
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
out=$root/build-fuzz
seconds=${SHM_CHANNEL_FUZZ_SECONDS:-60}
mkdir -p "$out/corpus" "$out/artifacts" "$out/seeds"
cc=${CLANG:-clang}
if ! command -v "$cc" >/dev/null; then
  echo "fuzz: $cc not found (scripts/deps.sh installs clang and libclang-rt-14-dev)"
  exit 1
fi
"$cc" -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
  -fno-omit-frame-pointer -std=c11 -Wall -Wextra -Werror -Wno-unused-command-line-argument \
  -I c/include -I c/src \
  c/fuzz/fuzz_segment.c c/src/channel.c c/src/segment.c c/src/ring.c c/src/os_linux.c \
  c/src/broadcast.c c/src/broadcast_api.c c/src/handshake.c c/src/service.c c/src/service_api.c \
  c/src/wait.c c/src/compat.c c/src/compat_api.c \
  -o "$out/fuzz_segment"
log=$out/fuzz.log
# The corpus (build-fuzz/corpus) grows across runs; the seeds are spec/vectors/*.bin and the segments
# LLVMFuzzerInitialize makes in build-fuzz/seeds (capacity >= 4096, wrapped, full).
set +e
SHM_FUZZ_SEED_DIR=$out/seeds "$out/fuzz_segment" -max_total_time="$seconds" -timeout=20 -max_len=20000 -print_final_stats=1 \
  -artifact_prefix="$out/artifacts/" "$@" "$out/corpus" "$root/spec/vectors" "$root/spec/vectors/broadcast" "$root/spec/vectors/service" "$out/seeds" >"$log" 2>&1
rc=$?
set -e
runs=$(grep -oE '^stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo 0)
cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1 || true)
if [ "$rc" -ne 0 ]; then
  tail -60 "$log"
  echo "fuzz: FAILED (exit $rc) after $runs executions; artifacts in $out/artifacts; log $log"
  exit 1
fi
echo "fuzz: ok, $runs executions in $seconds s ($cov, corpus $(ls "$out/corpus" | wc -l) inputs)"
