"""How many cores are busy while a command runs: samples /proc/stat every 0.1 s.

    .venv/bin/python bench/cores_busy.py .venv/bin/mailarchive --archive HOME --quiet import eml TREE

Prints one figure per sample (busy cores of the whole machine, 0..nproc) and the mean. On an otherwise idle
machine it shows where a run leaves cores unused: a serial start, a stall between tasks, a tail with one
task left. Linux only.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time


def _cpu() -> tuple[int, int]:
    with open("/proc/stat") as f:
        values = list(map(int, f.readline().split()[1:]))
    return sum(values), values[3] + values[4]  # all, idle + iowait


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    cores = os.cpu_count() or 1
    started = time.perf_counter()
    proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    before, samples = _cpu(), []
    while proc.poll() is None:
        time.sleep(0.1)
        now = _cpu()
        total, idle = now[0] - before[0], now[1] - before[1]
        before = now
        samples.append(cores * (1 - idle / total) if total else 0.0)
    wall = time.perf_counter() - started
    print(" ".join(f"{b:.1f}" for b in samples))
    mean = sum(samples) / len(samples) if samples else 0.0
    print(f"exit {proc.returncode}, wall {wall:.2f} s, busy cores: mean {mean:.2f} of {cores}")
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
