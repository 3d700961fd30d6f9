#!/usr/bin/env python3
"""The serial start and the end of ``mailarchive verify --full``, run by run, old code against new in alternating pairs.

For each run: when the pack workers are forked (seconds since the process started, from /proc, and the parent's
CPU seconds by then: until then only one core works), when the process ends, and the CPU seconds of the parent and
of its workers (getrusage). ``2 x wall - CPU`` is then the core-seconds one of the two cores stood idle: the start
before the fork, the tail after the last pack, and the workers' uneven end.

    .venv/bin/python bench/verify_timeline.py --archive HOME [--base CHECKOUT] [--pairs 5]

HOME: an archive home (e.g. a copy of ``bench_import.py --keep DIR``'s ``archive-eml`` home; the runs write its
verify-state.json); MAILARCHIVE_PASSWORD as for the command. ``--base``: a checkout of other code, run as
``python -m toolkit`` from there. The page cache is warmed once before the first run.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from bytecode import compile_checkout  # noqa: E402

#: run inside the measured process: marks the fork (before it happens) and the exit, prints one JSON line on stderr
_PROBE = r"""
import os, sys, time, resource, runpy, atexit, json
_stat = open("/proc/self/stat").read().rsplit(")", 1)[1].split()
_T0 = int(_stat[19]) / os.sysconf("SC_CLK_TCK")
_marks = {}
def _now():
    return time.clock_gettime(time.CLOCK_BOOTTIME) - _T0
def _fork():
    _marks.setdefault("fork_s", _now()); _marks.setdefault("fork_cpu_s", time.process_time())
os.register_at_fork(before=_fork)
def _end():
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    _marks.update(exit_s=_now(), main_cpu_s=s.ru_utime + s.ru_stime, workers_cpu_s=c.ru_utime + c.ru_stime)
    sys.stderr.write("TIMELINE " + json.dumps(_marks) + "\n")
atexit.register(_end)
sys.argv = ["mailarchive"] + sys.argv[1:]
runpy.run_module("toolkit", run_name="__main__", alter_sys=True)
"""


def run(code: Path, home: Path, env: dict) -> dict:
    p = subprocess.run([sys.executable, "-c", _PROBE, "--archive", str(home), "--json", "verify", "--full"],
                       cwd=code, env=dict(env, PYTHONPATH=str(code)), capture_output=True, text=True)
    line = next((ln for ln in p.stderr.splitlines() if ln.startswith("TIMELINE ")), None)
    if line is None:
        sys.exit(f"no timeline from {code} (exit {p.returncode}):\n{p.stderr[-2000:]}")
    got = json.loads(line[len("TIMELINE "):])
    got["exit_code"] = p.returncode
    got["cpu_s"] = got["main_cpu_s"] + got["workers_cpu_s"]
    got["idle_core_s"] = (os.cpu_count() or 1) * got["exit_s"] - got["cpu_s"]
    return got


def warm(home: Path) -> None:
    cfg = tomllib.loads((home / "archive.toml").read_text())
    for m in cfg.get("media", []):
        for pack in Path(m["location"]).rglob("*.pack"):
            with open(pack, "rb") as f:
                while f.read(1 << 20):
                    pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archive", type=Path, required=True)
    ap.add_argument("--base", type=Path, help="a checkout of other code, run in the same pairs")
    ap.add_argument("--pairs", type=int, default=5)
    args = ap.parse_args()
    compile_checkout(REPO, args.base)  # bench/bytecode.py: no run compiles the code it times
    env = dict(os.environ)
    warm(args.archive)
    codes = [("this code", REPO)] + ([("base", args.base)] if args.base else [])
    runs: dict[str, list[dict]] = {name: [] for name, _ in codes}
    for i in range(args.pairs):
        for name, code in (codes if i % 2 == 0 else codes[::-1]):
            r = run(code, args.archive, env)
            runs[name].append(r)
            print(f"pair {i + 1} {name}: fork at {r['fork_s']:.3f} s ({r['fork_cpu_s']:.3f} CPU-s), exit "
                  f"{r['exit_s']:.3f} s, CPU {r['main_cpu_s']:.2f} + {r['workers_cpu_s']:.2f}, idle core-s "
                  f"{r['idle_core_s']:.2f}", flush=True)
    print(f"\nload average {os.getloadavg()[0]:.1f}; medians of {args.pairs} runs:\n")
    print("| code | workers forked at, s | parent CPU-s by then | wall s | CPU-s main + workers | idle core-s |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, rs in runs.items():
        med = {k: statistics.median(r[k] for r in rs) for k in ("fork_s", "fork_cpu_s", "exit_s", "main_cpu_s",
                                                                 "workers_cpu_s", "idle_core_s")}
        print(f"| {name} | {med['fork_s']:.3f} | {med['fork_cpu_s']:.3f} | {med['exit_s']:.2f} | "
              f"{med['main_cpu_s']:.2f} + {med['workers_cpu_s']:.2f} | {med['idle_core_s']:.2f} |")


if __name__ == "__main__":
    main()
