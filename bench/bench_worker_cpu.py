#!/usr/bin/env python3
"""CPU seconds of ``import eml`` (main process and worker processes apart): this checkout against
another one (the code before), in alternating runs, each into a fresh archive.

    MAILARCHIVE_PASSWORD=bench-password-123 .venv/bin/python bench/bench_worker_cpu.py \\
        --base /work/wt/worker-cpu-base --tree /work/bench40k/eml [--repeat 3] [--kind eml]

Each run is ``python -m toolkit --archive A import KIND TREE`` with the working directory set to the
checkout (so ``toolkit`` is imported from there, with this interpreter's packages). The figures are the
run's own ``getrusage`` (SELF: the driver; CHILDREN: the worker processes; CPU-s, user and system apart,
and minor page faults), taken by a tiny wrapper, and
the median over the rounds; the load average is printed with each round. ``init`` is not counted. Both
checkouts are compiled to bytecode before the runs (``compileall``; see :func:`bytecode`).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

_WRAP = r"""
import atexit, json, resource, runpy, sys, time
t0 = time.perf_counter()
def report():  # an exit hook: the CLI ends its process with os._exit after running them
    s = resource.getrusage(resource.RUSAGE_SELF); c = resource.getrusage(resource.RUSAGE_CHILDREN)
    sys.stderr.write("\nBENCH " + json.dumps({"wall": time.perf_counter() - t0, "main": s.ru_utime + s.ru_stime,
                     "children": c.ru_utime + c.ru_stime, "user": s.ru_utime + c.ru_utime,
                     "sys": s.ru_stime + c.ru_stime, "minflt": s.ru_minflt + c.ru_minflt,
                     "children_sys": c.ru_stime, "children_minflt": c.ru_minflt}) + "\n")
atexit.register(report)
sys.argv = ["toolkit"] + sys.argv[1:]
runpy.run_module("toolkit", run_name="__main__", alter_sys=True)
"""


def run(checkout: Path, kind: str, tree: str, tmp: Path) -> dict:
    archive = tmp / "a"
    shutil.rmtree(archive, ignore_errors=True)
    py = sys.executable
    subprocess.run([py, "-m", "toolkit", "--archive", str(archive), "--quiet", "init"], cwd=checkout, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    p = subprocess.run([py, "-c", _WRAP, "--archive", str(archive), "--quiet", "--json", "import", kind, tree],
                       cwd=checkout, capture_output=True, text=True)
    line = [x for x in p.stderr.splitlines() if x.startswith("BENCH ")]
    if p.returncode or not line:
        raise SystemExit(f"{checkout}: exit {p.returncode}\n{p.stderr[-2000:]}")
    out = json.loads(line[-1][6:])
    summary = json.loads(p.stdout)
    out["archived"] = summary.get("archived", summary.get("summary", {}).get("archived"))
    shutil.rmtree(archive, ignore_errors=True)
    return out


def bytecode(checkout: Path) -> None:
    """Compile the checkout's modules to bytecode first: with ``PYTHONDONTWRITEBYTECODE`` set (as in the
    sessions' environment) a checkout without ``__pycache__`` compiles every module it imports in every
    process of every run (the driver and each worker, ~0.1–0.2 CPU-s each), which would be counted here."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", "toolkit", "importers"], cwd=checkout, check=True,
                   stdout=subprocess.DEVNULL)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True, help="the other checkout (the code before)")
    ap.add_argument("--new", help="the checkout to compare (default: this one)")
    ap.add_argument("--tree", default="/work/bench40k/eml")
    ap.add_argument("--kind", default="eml")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    if not os.environ.get("MAILARCHIVE_PASSWORD"):
        raise SystemExit("set MAILARCHIVE_PASSWORD")
    here = Path(args.new or Path(__file__).resolve().parents[1])
    sides = {"base": Path(args.base).resolve(), "new": here}
    got: dict[str, list[dict]] = {k: [] for k in sides}
    for checkout in sides.values():  # bytecode on both sides (see bytecode() below)
        bytecode(checkout)
    with tempfile.TemporaryDirectory(prefix="bench-worker-cpu-") as tmp:
        for i in range(args.repeat):
            order = list(sides) if i % 2 == 0 else list(reversed(sides))
            for name in order:
                r = run(sides[name], args.kind, args.tree, Path(tmp))
                got[name].append(r)
                print(f"round {i + 1} {name:4}: wall {r['wall']:.2f} s  main {r['main']:.2f} CPU-s  workers "
                      f"{r['children']:.2f} CPU-s (sys {r['children_sys']:.2f}, {r['children_minflt']} minor faults)  tree user "
                      f"{r['user']:.2f} sys {r['sys']:.2f} faults {r['minflt']}  archived {r['archived']}  "
                      f"load {os.getloadavg()[0]:.2f}",
                      flush=True)
    for name, rs in got.items():
        med = {k: statistics.median(r[k] for r in rs) for k in ("wall", "main", "children", "user", "sys", "minflt",
                                                                  "children_sys", "children_minflt")}
        print(f"median {name:4}: wall {med['wall']:.2f} s  main {med['main']:.2f} CPU-s  workers {med['children']:.2f}"
              f" CPU-s (sys {med['children_sys']:.2f}, {med['children_minflt']:.0f} minor faults)  total "
              f"{med['main'] + med['children']:.2f} CPU-s (user {med['user']:.2f}, sys {med['sys']:.2f}, "
              f"{med['minflt']:.0f} minor faults)")


if __name__ == "__main__":
    main()
