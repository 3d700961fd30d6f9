"""The start of a warm import with the workers spawned at the command line's start (toolkit/cli/early.py) against a
checkout that spawns them after opening the archive (issue 15, docs/cli.md "Workers from the start").

For each kind (``import eml`` of /work/bench40k/eml, ``import mbox`` of /work/bench40k/corpus.mbox) one warm-up run,
then ``--pairs`` pairs of this checkout and ``--base`` alternately (bench/bench_overlap.py runs and samples them:
``/proc/<pid>/stat`` of the driver and every process below it every 10 ms). Prints per run the wall time, the CPU-s
of the whole tree and of the driver, and the busy cores of the first 0.5 s per 50 ms (``D`` driver, ``W`` workers,
one character per 0.1 core; a worker's interpreter start counts from its first sample on), then the medians and
the load average before and after.

    .venv/bin/python bench/bench_early_workers.py --base /work/wt/istart-base [--pairs 3] [--kinds eml,mbox]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_overlap import REPO, analyse, run  # noqa: E402
from bytecode import compile_checkout  # noqa: E402

SOURCES = {"eml": "/work/bench40k/eml", "mbox": "/work/bench40k/corpus.mbox", "maildir": "/work/bench40k/maildir"}
BIN = 0.05
FIRST = 0.5


def first_cores(a: dict) -> str:
    """The busy cores of the first FIRST seconds, per BIN: 'D..W..' bars and the cores."""
    out = []
    for i in range(int(FIRST / BIN)):
        d = a["d"][i] if i < len(a["d"]) else 0.0
        w = a["w"][i] if i < len(a["w"]) else 0.0
        out.append(f"{i * BIN:4.2f}s {d + w:4.2f} {'D' * round(d * 10)}{'W' * round(w * 10)}")
    return "\n".join("    " + line for line in out)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", type=Path, required=True, help="a checkout of the old code")
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--kinds", default="eml,mbox")
    ap.add_argument("--quiet-timeline", action="store_true", help="no per-run timeline of the first 0.5 s")
    args = ap.parse_args()
    compile_checkout(REPO, args.base)
    trees = [("new", REPO), ("base", args.base)]
    print(f"load average {os.getloadavg()[0]:.2f} (1 min) before")
    summary = []
    for kind in args.kinds.split(","):
        source = SOURCES[kind]
        run(REPO, kind, source, [])  # warm-up: the source in the page cache
        results: dict[str, list[dict]] = {name: [] for name, _ in trees}
        for i in range(args.pairs):
            for name, tree in (trees if i % 2 == 0 else trees[::-1]):
                r = run(tree, kind, source, [])
                if r["rc"] not in (0, 1):
                    raise SystemExit(f"{name} import {kind} exited {r['rc']}")
                a = analyse(r, bins=BIN)
                a["first"] = sum(a["d"][:int(FIRST / BIN)]) * BIN + sum(a["w"][:int(FIRST / BIN)]) * BIN
                results[name].append(a)
                print(f"{kind:5} {name:4} wall {a['wall']:.2f} s  CPU {a['cpu']:.2f} s (driver {a['driver_cpu']:.2f})  "
                      f"CPU-s in the first {FIRST} s: {a['first']:.2f}", flush=True)
                if not args.quiet_timeline:
                    print(first_cores(a))
        for name, rs in results.items():
            med = {k: statistics.median(r[k] for r in rs) for k in ("wall", "cpu", "driver_cpu", "first")}
            summary.append(f"median {kind:5} {name:4}: wall {med['wall']:.2f} s  CPU {med['cpu']:.2f} s (driver "
                           f"{med['driver_cpu']:.2f})  CPU-s in the first {FIRST} s {med['first']:.2f}  over {len(rs)} runs")
    print(f"load average {os.getloadavg()[0]:.2f} (1 min) after")
    print("\n".join(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
