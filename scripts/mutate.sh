#!/usr/bin/env bash
# Mutation testing of the C core (issue 18). NOT part of scripts/test.sh: it takes about
# 15 minutes on 2 cores for 22 mutants (12 min measured: two builds and a baseline, then per
# mutant an incremental rebuild and the C tests at SHM_CHANNEL_TEST_SCALE=0.1, cheapest first,
# until the first failure; a mutant that causes a lost wake-up costs ~25 s more). Run it on a
# quiet machine: a baseline test that times out under load aborts the run.
#
# The mutations are one-line (or few-line) bugs listed in tables, one per source file:
# scripts/mutations/<file>.txt (format in ring.c.txt). Each is applied by EXACT text match to
# a scratch copy of this tree (tracked and untracked files, uncommitted changes included);
# if a pattern no longer occurs exactly once in the code, the script fails before building,
# so the tables stay honest as the code changes. Per mutant: rebuild, run the plain build's
# C tests (every registered executable, per-test time capped), and if none fails, the TSan
# build's threaded tests (TSAN_OPTIONS=halt_on_error=1). Prints a kill table: mutation,
# KILLED / SURVIVED, the test that caught it, time, and who was expected to catch it.
#
# Usage: scripts/mutate.sh [--list] [--only id1,id2] [--all-tests] [--no-tsan] [--keep]
# Environment: MUTATE_SCALE (default 0.1), MUTATE_TEST_TIMEOUT (per-test cap, default 120 s),
# MUTATE_DIR (scratch directory, default a new one under $TMPDIR, removed afterwards).
set -euo pipefail
exec python3 "$(dirname "$0")/mutations/mutate.py" "$@"
