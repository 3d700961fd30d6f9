#!/usr/bin/env python3
"""``import mbox`` against ``import eml`` of the same mails, for one or more checkouts, alternating
(issue 15: the mbox-specific CPU of the driver). Each run is a fresh archive; the figures are the wall
seconds and the CPU seconds (user + system) of the import's main process and of its children (the
workers), each the median over the rounds. Every checkout runs with this venv's interpreter and the
checkout first on PYTHONPATH. Also, with ``--scan``, the scan alone (``MboxImporter.scan`` of the
mbox, no archive: CPU seconds of the process, since the scan of a plain local mbox runs in a thread of its own,
toolkit/scan_ahead.py) and the splitter alone (``MboxSplitter`` without the bytes, as for a plain local mbox), in CPU
seconds of its thread; where the splitter has the compiled scan of plain messages (toolkit/_native.c,
``mbox_scan``), also with it switched off (``native=False``: the line-by-line loop that runs without the
compiled module).

    .venv/bin/python bench/bench_mbox_cpu.py --trees /work/wt/mbox-native-base,/work/wt/mbox-native \\
        --corpus /work/bench40k --rounds 3 --kinds mbox --scan
"""
from __future__ import annotations

import argparse
import atexit
import os
import resource
import runpy
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bytecode import compile_checkout  # noqa: E402

PASSWORD = "bench-password-123"


def _run_one(argv: list[str]) -> None:
    """Run the toolkit CLI in this process and print its rusage (main, children) on stderr at exit (an exit hook:
    the CLI ends the process without returning)."""
    t0 = time.perf_counter()

    def report() -> None:
        s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        sys.stderr.write(f"\nRUSAGE {time.perf_counter() - t0:.3f} {s.ru_utime + s.ru_stime:.3f} "
                         f"{c.ru_utime + c.ru_stime:.3f}\n")
        sys.stderr.flush()

    atexit.register(report)
    sys.argv = ["toolkit", *argv]
    runpy.run_module("toolkit", run_name="__main__", alter_sys=True)


def _import(tree: str, kind: str, source: str, workdir: Path) -> tuple[float, float, float]:
    env = dict(os.environ, MAILARCHIVE_PASSWORD=PASSWORD, PYTHONPATH=tree)
    home = workdir / "archive"
    shutil.rmtree(home, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "toolkit", "--archive", str(home), "--quiet", "init"], cwd=tree, env=env,
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    done = subprocess.run([sys.executable, os.path.abspath(__file__), "--run-one", "--archive", str(home), "--json", "import", kind,
                           source], cwd=tree, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    line = [x for x in done.stderr.splitlines() if x.startswith("RUSAGE ")]
    if done.returncode != 0 or not line:
        raise SystemExit(f"{tree}: import {kind} failed ({done.returncode}): {done.stderr[-2000:]}")
    wall, main, children = map(float, line[-1].split()[1:])
    return wall, main, children


def _scan(tree: str, mbox: str) -> float:
    code = ("import sys, time; sys.path.insert(0, sys.argv[1]); from importers.mbox import MboxImporter;"
            "from toolkit.reporter import ListReporter; t = time.process_time();"
            "n = sum(1 for _ in MboxImporter(sys.argv[2]).scan(None, ListReporter()));"
            "print(time.process_time() - t, n)")
    out = subprocess.run([sys.executable, "-c", code, tree, mbox], cwd=tree, check=True, capture_output=True,
                         text=True, env=dict(os.environ, PYTHONPATH=tree))
    return float(out.stdout.split()[0])


def _split(tree: str, mbox: str, native: bool | None) -> float | None:
    """CPU seconds of ``MboxSplitter`` over ``mbox`` without its bytes; None when the tree's splitter has no
    ``native`` switch and one is asked for."""
    code = ("import sys, time, inspect; sys.path.insert(0, sys.argv[1]); from importers.mbox import MboxSplitter;"
            "native = {'None': None, 'True': True, 'False': False}[sys.argv[3]];"
            "kw = {} if native is None else {'native': native};"
            "ok = native is None or 'native' in inspect.signature(MboxSplitter).parameters;"
            "f = open(sys.argv[2], 'rb'); t = time.thread_time();"
            "n = sum(1 for _ in MboxSplitter(f, keep_bytes=False, **kw)) if ok else -1;"
            "print(time.thread_time() - t, n)")
    out = subprocess.run([sys.executable, "-c", code, tree, mbox, str(native)], cwd=tree, check=True,
                         capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=tree))
    seconds, n = out.stdout.split()
    return None if int(n) < 0 else float(seconds)


def main() -> None:
    if sys.argv[1:2] == ["--run-one"]:
        _run_one(sys.argv[2:])
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trees", required=True, help="comma-separated checkouts, e.g. a base worktree and this one")
    ap.add_argument("--corpus", default="/work/bench40k", help="holds corpus.mbox and eml/ (the same mails)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--kinds", default="mbox,eml", help="of mbox, eml, maildir (the corpus's maildir/)")
    ap.add_argument("--scan", action="store_true", help="also time the splitter alone")
    args = ap.parse_args()
    compile_checkout(Path(__file__).resolve().parent.parent)  # bench/bytecode.py
    trees = [str(Path(t).resolve()) for t in args.trees.split(",")]
    sources = {"mbox": os.path.join(args.corpus, "corpus.mbox"), "eml": os.path.join(args.corpus, "eml"),
               "maildir": os.path.join(args.corpus, "maildir")}
    kinds = args.kinds.split(",")
    runs: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    scans: dict[str, list[float]] = {}
    splits: dict[tuple[str, bool | None], list[float | None]] = {}
    loads = []
    with tempfile.TemporaryDirectory(prefix="bench-mbox-cpu-") as tmp:
        for r in range(args.rounds):
            order = trees if r % 2 == 0 else trees[::-1]
            for tree in order:
                for kind in (kinds if r % 2 == 0 else kinds[::-1]):
                    loads.append(os.getloadavg()[0])
                    got = _import(tree, kind, sources[kind], Path(tmp))
                    runs.setdefault((tree, kind), []).append(got)
                    print(f"round {r + 1} {Path(tree).name} {kind}: wall {got[0]:.2f} s, main {got[1]:.2f}, "
                          f"children {got[2]:.2f} CPU-s (load {loads[-1]:.1f})", file=sys.stderr)
                if args.scan:
                    scans.setdefault(tree, []).append(_scan(tree, sources["mbox"]))
                    for native in (None, False):
                        splits.setdefault((tree, native), []).append(_split(tree, sources["mbox"], native))
    print(f"\nmedians of {args.rounds} alternating rounds; load average {min(loads):.1f}-{max(loads):.1f}\n")
    print("| tree | import | wall s | main CPU-s | children CPU-s | total CPU-s | mbox / eml (total CPU, wall) |")
    print("|---|---|---:|---:|---:|---:|---|")
    for tree in trees:
        med = {k: [statistics.median(x[i] for x in runs[(tree, k)]) for i in range(3)] for k in kinds}
        for kind in kinds:
            wall, main_cpu, children = med[kind]
            ratio = ""
            if kind == "mbox" and "eml" in med:
                e = med["eml"]
                ratio = f"{(main_cpu + children) / (e[1] + e[2]):.2f}, {wall / e[0]:.2f}"
            print(f"| {Path(tree).name} | {kind} | {wall:.2f} | {main_cpu:.2f} | {children:.2f} | "
                  f"{main_cpu + children:.2f} | {ratio} |")
    if scans:
        print("\n| tree | scan alone (MboxImporter.scan), CPU-s | splitter alone, CPU-s | splitter, line loop only "
              "(native=False), CPU-s |\n|---|---:|---:|---:|")
        for tree in trees:
            loop = splits[(tree, False)]
            loop_s = f"{statistics.median(loop):.2f}" if None not in loop else "-"
            print(f"| {Path(tree).name} | {statistics.median(scans[tree]):.2f} | "
                  f"{statistics.median(splits[(tree, None)]):.2f} | {loop_s} |")
        print("(medians of the rounds)")


if __name__ == "__main__":
    main()
