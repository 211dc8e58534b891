#!/usr/bin/env bash
# Issue 14's goals, and the whole comparison, in one command: builds everything, runs the C,
# Rust and Python parts with their same-run baselines (C: shm_channel_bench with every kind
# and the callgrind counts; Rust: shm-channel-compare with the C loops paired in the same
# program and 1080p vs iceoryx2 and the L3-resident copy; Python: compare.py with write/read,
# iteration and the batch calls vs multiprocessing.Pipe), then prints the goals and the main
# tables and writes bench/results/REPORT.md (first lines: the CPU, the cache-line round trip,
# the load; then one row per goal with its ratio and verdict), the plots and the raw JSON.
#
#   bench/run.sh            full run (about 6-8 minutes on 2 cores, builds included once)
#   bench/run.sh --quick    short runs (about 2-3 minutes)
#   options: --publish      also copy REPORT.md and the plots into docs/perf/
#            --skip-build   reuse what build-bench-all/ holds
#            --no-c | --no-rust | --no-python   leave a part out
#            --wait-idle    wait (up to 10 min) for the load average to fall below 0.5 first
#
# Everything is built under build-bench-all/ (venv/, c/, rust/). See bench/report/README.md.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
B="$ROOT/build-bench-all"
OUT="$ROOT/bench/results"
QUICK=() ; PUBLISH=0 ; BUILD=1 ; DO_C=1 ; DO_RS=1 ; DO_PY=1 ; WAIT_IDLE=0
for a in "$@"; do
  case "$a" in
    --quick) QUICK=(--quick) ;;
    --publish) PUBLISH=1 ;;
    --skip-build) BUILD=0 ;;
    --no-c) DO_C=0 ;;
    --no-rust) DO_RS=0 ;;
    --no-python) DO_PY=0 ;;
    --wait-idle) WAIT_IDLE=1 ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown option $a" >&2; exit 2 ;;
  esac
done
mkdir -p "$B" "$OUT"
rm -f "$OUT"/*.json "$OUT"/*.png "$OUT"/REPORT.md "$OUT"/README-perf.md "$OUT"/*.log "$OUT"/*.txt \
  "$OUT"/rust-goals.md
cat /proc/loadavg >"$OUT/loadavg-start.txt"   # before our own builds raise it
log() { printf '\n== %s\n' "$*" >&2; }
T0=$(date +%s)

# ---- build ------------------------------------------------------------------------------
PY="$B/venv/bin/python"
RS_BIN="$B/rust/release/shm-channel-compare"
C_BIN="$B/c/bench/shm_channel_bench"
if [ "$BUILD" = 1 ]; then
  log "dependencies (Debian packages, only those missing)"
  "$ROOT/scripts/deps.sh" all

  if [ "$DO_C" = 1 ]; then
    log "C: CMake Release build in build-bench-all/c"
    cmake -S "$ROOT" -B "$B/c" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSHM_CHANNEL_TESTS=OFF \
      -DSHM_CHANNEL_EXAMPLES=OFF -DSHM_CHANNEL_BENCH=ON >/dev/null
    cmake --build "$B/c" --target shm_channel_bench
  fi

  if [ "$DO_PY" = 1 ]; then
    log "Python: venv in build-bench-all/venv (the binding, numpy, matplotlib, pyzmq)"
    [ -x "$PY" ] || python3 -m venv "$B/venv"
    # Reinstall the binding only when its sources or the C library's changed.
    stamp=$(cd "$ROOT" && find bindings/python c/src c/include CMakeLists.txt -type f \
              \( -name '*.py' -o -name '*.c' -o -name '*.h' -o -name '*.toml' -o -name '*.txt' \
                 -o -name '*.cfg' -o -name '*.cmake' \) -not -path '*/build/*' -print0 |
            sort -z | xargs -0 sha1sum | sha1sum | cut -c1-40)
    if [ "$(cat "$B/venv/.shm_channel_stamp" 2>/dev/null)" != "$stamp" ]; then
      "$PY" -m pip install -q --upgrade pip
      "$PY" -m pip install -q "$ROOT/bindings/python" numpy matplotlib pyzmq
      echo "$stamp" >"$B/venv/.shm_channel_stamp"
    fi
  else
    [ -x "$PY" ] || { python3 -m venv "$B/venv"; "$PY" -m pip install -q matplotlib; }
  fi

  if [ "$DO_RS" = 1 ]; then
    log "Rust: cargo build --release of bench/rust (iceoryx2 from crates.io) in build-bench-all/rust"
    command -v cargo >/dev/null 2>&1 || export PATH="$HOME/.cargo/bin:$PATH"
    if ! cargo build --release --manifest-path "$ROOT/bench/rust/Cargo.toml" \
           --target-dir "$B/rust" 2> >(tee "$OUT/rust-build.log" >&2); then
      echo "run.sh: the Rust part did not build (bench/results/rust-build.log); going on without it" >&2
      DO_RS=0
    fi
  fi
fi
BUILD_S=$(( $(date +%s) - T0 ))

# ---- run ------------------------------------------------------------------------------------
if [ "$WAIT_IDLE" = 1 ]; then
  for _ in $(seq 60); do
    awk '{exit !($1 < 0.5)}' /proc/loadavg && break
    echo "waiting for the load average ($(cut -d' ' -f1 /proc/loadavg)) to fall below 0.5" >&2
    sleep 10
  done
  cat /proc/loadavg >"$OUT/loadavg-start.txt"
fi
META="$OUT/meta.json"
echo "[]" >"$META"
cat /proc/loadavg >"$OUT/loadavg-measure.txt"
part() { "$PY" "$ROOT/bench/report/runpart.py" "$META" "$@" || echo "run.sh: part $1 failed (exit $?); the report says what is missing" >&2; }

if [ "$DO_C" = 1 ]; then
  log "C part: shm_channel_bench (spsc_ring, memcpy, cache line, pipe, Unix socket)"
  part c -- "$C_BIN" "${QUICK[@]}" --json "$OUT/c.json"
  # Instructions per 64 B write+read pair against the minimal ring (exact under load).
  if command -v valgrind >/dev/null 2>&1; then
    log "C: callgrind instructions per 64 B write+read pair, shm_channel vs the minimal ring"
    "$ROOT/bench/callgrind.sh" "$C_BIN" >"$OUT/c-callgrind.txt" ||
      echo "run.sh: bench/callgrind.sh failed" >&2
  fi
fi
if [ "$DO_RS" = 1 ]; then
  # iceoryx2 leaves files in /dev/shm by design (its global management segment outlives its
  # nodes); remove the ones this part created once no process maps them, so a run leaves
  # /dev/shm as it found it. A file that existed before the run is never touched.
  ls /dev/shm 2>/dev/null | grep '^iox2_' >"$OUT/iox2-before.txt" || true
  # Issue 14's goals: Rust vs C paired (the C loops linked into the same program, runs
  # alternating) and 1080p vs iceoryx2 with the L3-resident copy as the fixed floor; the
  # program writes them as a Markdown section (rust-goals.md), appended to REPORT.md below.
  log "Rust part: shm-channel crate vs iceoryx2, and vs the same loops in C"
  part rust -- "$RS_BIN" "${QUICK[@]}" --json "$OUT/rust.json" --goals "$OUT/rust-goals.md"
  for f in /dev/shm/iox2_*; do
    [ -e "$f" ] || continue
    grep -qxF "${f#/dev/shm/}" "$OUT/iox2-before.txt" && continue
    grep -qsF "$f" /proc/[0-9]*/maps && continue
    rm -f "$f"
  done
  # Instructions per message, Rust vs C (exact under load); needs valgrind (scripts/deps.sh).
  if command -v valgrind >/dev/null 2>&1; then
    log "Rust vs C: callgrind instructions per 64 B message"
    "$ROOT/bench/rust/callgrind.sh" "$RS_BIN" >"$OUT/rust-callgrind.txt" ||
      echo "run.sh: bench/rust/callgrind.sh failed" >&2
  fi
fi
if [ "$DO_PY" = 1 ]; then
  log "Python part: binding vs multiprocessing.Pipe/Queue, shared_memory ring, pyzmq; idle CPU"
  part python -- "$PY" "$ROOT/bench/python/compare.py" "${QUICK[@]}" --json "$OUT/python.json"
fi
# ---- Python publish/subscribe (issue 11): seed 000's figures and pyzmq PUB/SUB, same run
if [ "$DO_PY" = 1 ]; then
  log "Python publish/subscribe: shm_channel.pubsub vs seed 000's figures and pyzmq PUB/SUB"
  "$PY" "$ROOT/bench/python/pubsub_bench.py" "${QUICK[@]}" --json "$OUT/python-pubsub.json.txt" \
    | tee "$OUT/python-pubsub.txt" || echo "run.sh: pubsub_bench.py failed" >&2
fi

# Services (issue 12): Python 64 B round trips against multiprocessing.Pipe and seed 004's
# sysv_ipc polling, 1, 8 and 64 clients, same run.
if [ "$DO_PY" = 1 ]; then
  log "Python services: 64 B round trips vs multiprocessing.Pipe and sysv_ipc polling (seed 004)"
  "$PY" -c "import sysv_ipc" 2>/dev/null || "$PY" -m pip install -q sysv_ipc
  part python-service -- "$PY" "$ROOT/bench/python/service_rtt.py" "${QUICK[@]}" \
    --json "$OUT/python-service.json"
fi

# ---- report ---------------------------------------------------------------------------------
log "report"
"$PY" "$ROOT/bench/report/aggregate.py" "$OUT" --build-seconds "$BUILD_S" "${QUICK[@]}"
# The C instruction counts, then the Rust part's goals section (and its instruction counts),
# after the aggregated report.
if [ -s "$OUT/c-callgrind.txt" ]; then
  {
    printf '\nC, instructions per 64 B write+read pair in one process (callgrind, '
    printf 'bench/callgrind.sh; exact whatever the load):\n\n```\n'
    cat "$OUT/c-callgrind.txt"
    printf '```\n'
  } >>"$OUT/REPORT.md"
fi
# The Rust part's goals section (and its instruction counts) after the aggregated report.
if [ -s "$OUT/rust-goals.md" ]; then
  {
    echo
    cat "$OUT/rust-goals.md"
    if [ -s "$OUT/rust-callgrind.txt" ]; then
      printf 'Instructions per 64 B message, written and read back in one process (callgrind, '
      printf 'bench/rust/callgrind.sh; exact whatever the load):\n\n```\n'
      cat "$OUT/rust-callgrind.txt"
      printf '```\n'
    fi
  } >>"$OUT/REPORT.md"
  cat "$OUT/rust-goals.md" >&2
fi
if [ "$PUBLISH" = 1 ]; then
  mkdir -p "$ROOT/docs/perf"
  cp "$OUT/REPORT.md" "$OUT"/*.png "$ROOT/docs/perf/"
  echo "published to docs/perf/" >&2
fi
echo "total $(( $(date +%s) - T0 )) s; report: bench/results/REPORT.md; README.md's Performance table: bench/results/README-perf.md" >&2
