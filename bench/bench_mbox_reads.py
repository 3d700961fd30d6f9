#!/usr/bin/env python3
"""The per-message CPU of ``import mbox`` outside the pipeline, for one or more checkouts, alternating (issue 15):
the driver's scan (``MboxImporter.scan`` of a plain local mbox: split, CRC-32, From_ line dates, the SourceMail and
FileRegion of each message) and the workers' read of the regions (``toolkit.remote_jobs.read_jobs`` over the scan's
jobs, as a pack task reads them). Both on the first ``--mb`` MB of the corpus mbox (cut at a From_ line, copied to
a temporary file), warm cache, CPU microseconds per message, best of ``--rounds`` in a child process per checkout.
With ``--callgrind`` also the instructions of each (valgrind's callgrind, independent of the machine's load): the
same child with nothing, with the scan, with the scan and the read; the differences are the scan's and the read's.

    .venv/bin/python bench/bench_mbox_reads.py --trees /work/wt/mboxpath-base,/work/wt/mboxpath --callgrind
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r'''
import os, sys, time
sys.path.insert(0, os.getcwd())
from importers.mbox import MboxImporter
from toolkit.remote_jobs import read_jobs
from toolkit.reporter import NullReporter
path, mode, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
if mode == "time":
    scan = read = 9.0
    for _ in range(rounds):
        t = time.process_time()
        items = list(MboxImporter(path).scan(None, NullReporter()))
        scan = min(scan, time.process_time() - t)
        jobs = [item.job for item in items]
        t = time.process_time()
        got = list(read_jobs(jobs))
        read = min(read, time.process_time() - t)
        assert all(isinstance(g, bytes) for g in got)
    print(len(jobs), scan / len(jobs) * 1e6, read / len(jobs) * 1e6)
elif mode in ("scan", "read"):
    items = list(MboxImporter(path).scan(None, NullReporter()))
    if mode == "read":
        sum(len(g) for g in read_jobs([item.job for item in items]))
'''


def _cut(corpus: Path, mb: int, into: Path) -> Path:
    with open(corpus, "rb") as f:
        data = f.read(mb << 20)
    at = data.rfind(b"\nFrom ")
    out = into / "part.mbox"
    out.write_bytes(data[:at + 1] if at > 0 else data)
    return out


def _child(tree: str, *args: str, valgrind: bool = False) -> str:
    cmd = [sys.executable, "-c", CHILD, *args]
    if valgrind:
        cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *cmd]
    done = subprocess.run(cmd, cwd=tree, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=tree))
    if done.returncode:
        raise SystemExit(f"{tree}: {done.stderr[-2000:]}")
    if valgrind:
        return re.search(r"Collected : (\d+)", done.stderr).group(1)
    return done.stdout.strip().splitlines()[-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trees", required=True, help="comma-separated checkouts, e.g. a base worktree and this one")
    ap.add_argument("--corpus", default="/work/bench40k/corpus.mbox")
    ap.add_argument("--mb", type=int, default=100, help="the corpus's first MB read (default 100)")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--pairs", type=int, default=2, help="alternating passes over the trees")
    ap.add_argument("--callgrind", action="store_true")
    args = ap.parse_args()
    trees = [str(Path(t).resolve()) for t in args.trees.split(",")]
    work = Path(tempfile.mkdtemp(prefix="bench-mbox-reads-"))
    try:
        part = _cut(Path(args.corpus), args.mb, work)
        best: dict[str, list[float]] = {}
        for i in range(args.pairs):
            for tree in trees if i % 2 == 0 else trees[::-1]:
                n, scan, read = _child(tree, str(part), "time", str(args.rounds)).split()
                got = best.setdefault(tree, [9e9, 9e9])
                got[0], got[1] = min(got[0], float(scan)), min(got[1], float(read))
                print(f"pass {i + 1} {Path(tree).name}: {n} messages, scan {float(scan):.1f} us, read {float(read):.1f} us "
                      f"a message (load {os.getloadavg()[0]:.1f})", flush=True)
        print(f"\n| tree | scan, CPU us a message | workers' read, CPU us a message |" + (
            " scan, instructions a message | read, instructions a message |" if args.callgrind else ""))
        print("|---|---:|---:|" + ("---:|---:|" if args.callgrind else ""))
        for tree in trees:
            row = f"| {Path(tree).name} | {best[tree][0]:.1f} | {best[tree][1]:.1f} |"
            if args.callgrind:
                none, scan, read = (int(_child(tree, str(part), mode, "1", valgrind=True)) for mode in ("none", "scan", "read"))
                msgs = int(_child(tree, str(part), "time", "1").split()[0])
                row += f" {(scan - none) / msgs / 1e3:.1f} k | {(read - scan) / msgs / 1e3:.1f} k |"
            print(row, flush=True)
        print(f"(best of {args.rounds} rounds in each of {args.pairs} alternating passes; load average now "
              f"{' '.join(f'{x:.1f}' for x in os.getloadavg())})")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
