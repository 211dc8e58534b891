#!/usr/bin/env python3
"""Run one part of the comparison and record how busy the machine was meanwhile.

    runpart.py META_JSON NAME -- COMMAND [ARG...]

Runs COMMAND, then appends to META_JSON (a list) one entry: the part's name, command, exit
status, wall time, the 1-minute load average before and after, and `foreign_cpu`: the CPUs'
busy time during the part (from /proc/stat, steal included) less the CPU time of the part's
own processes (getrusage of the children), divided by the wall time. That is how many CPUs
something other than the benchmark used meanwhile, which the load average cannot tell (our
own two busy-polling processes put it near 2 on a 2-CPU machine). The exit status is the
command's.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path


def busy_seconds() -> float:
    """Seconds of CPU time spent busy by all CPUs since boot (/proc/stat, first line)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal guest guest_nice
    idle = fields[3] + fields[4]
    busy = sum(fields[:8]) - idle
    return busy / os.sysconf("SC_CLK_TCK")


def own_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def main() -> int:
    if len(sys.argv) < 5 or sys.argv[3] != "--":
        print(__doc__, file=sys.stderr)
        return 2
    meta_path, name, cmd = Path(sys.argv[1]), sys.argv[2], sys.argv[4:]
    load0 = os.getloadavg()[0]
    b0, o0, t0 = busy_seconds(), own_seconds(), time.monotonic()
    rc = subprocess.call(cmd)
    b1, o1, t1 = busy_seconds(), own_seconds(), time.monotonic()
    wall = t1 - t0
    entry = {
        "part": name,
        "command": cmd,
        "exit_status": rc,
        "wall_seconds": round(wall, 2),
        "load_before": load0,
        "load_after": os.getloadavg()[0],
        "own_cpu": round((o1 - o0) / wall, 3) if wall > 0 else None,
        "foreign_cpu": round(max(0.0, (b1 - b0) - (o1 - o0)) / wall, 3) if wall > 0 else None,
        "ended": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else []
    meta.append(entry)
    meta_path.write_text(json.dumps(meta, indent=1))
    print(f"[{name}] {wall:.0f} s, exit {rc}; load average {load0:.2f} -> {entry['load_after']:.2f}; "
          f"other processes used {entry['foreign_cpu']:.2f} CPUs meanwhile", file=sys.stderr)  # fmt: skip
    return rc


if __name__ == "__main__":
    sys.exit(main())
