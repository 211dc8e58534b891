#!/usr/bin/env bash
# The report's own checks (bench/report/test_aggregate.py): fixture JSON of the three parts
# in, REPORT.md's goal rows out. Python standard library only; about a second.
set -euo pipefail
cd "$(dirname "$0")"
exec "${PYTHON:-python3}" test_aggregate.py
