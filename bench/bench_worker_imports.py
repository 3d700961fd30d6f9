#!/usr/bin/env python3
"""What a worker of ``import eml`` pays to unpickle its first job: the job's ``content_check`` and ``envelope_cut``
(importers.eml's ``not_mail`` and a ``functools.partial`` of ``cut_wrapper``) are pickled by reference, so
unpickling imports their module. Per checkout (first on PYTHONPATH), in a fresh process that has imported what a
worker imports anyway (toolkit.worker_entry, toolkit.file_region, toolkit.prepare): the CPU-milliseconds of that
``pickle.loads`` and the modules it added; the median of ``--rounds`` processes, checkouts alternating.

    .venv/bin/python bench/bench_worker_imports.py --trees /work/wt/crc-imports-base,/work/wt/crc-imports
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

_DUMP = ("import functools, pickle, sys, importers.eml as e;"
         "sys.stdout.buffer.write(pickle.dumps((e.not_mail, functools.partial(e.cut_wrapper, force_raw=False))))")
_LOAD = ("import pickle, sys, time; import toolkit.worker_entry, toolkit.file_region, toolkit.prepare;"
         "blob = sys.stdin.buffer.read(); before = set(sys.modules); t = time.process_time(); pickle.loads(blob);"
         "print((time.process_time() - t) * 1000, len(set(sys.modules) - before))")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trees", required=True)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    trees = args.trees.split(",")
    got: dict[str, list[tuple[float, int]]] = {t: [] for t in trees}
    for r in range(args.rounds):
        for tree in (trees if r % 2 == 0 else trees[::-1]):
            env = dict(os.environ, PYTHONPATH=tree)
            blob = subprocess.run([sys.executable, "-c", _DUMP], cwd=tree, env=env, check=True, capture_output=True).stdout
            out = subprocess.run([sys.executable, "-c", _LOAD], cwd=tree, env=env, input=blob, check=True,
                                 capture_output=True).stdout.split()
            got[tree].append((float(out[0]), int(out[1])))
    print(f"load {os.getloadavg()[0]:.1f}\n\n| tree | unpickling the first eml job's functions, CPU-ms | modules imported |\n|---|---:|---:|")
    for tree in trees:
        print(f"| {os.path.basename(tree.rstrip('/'))} | {statistics.median(x[0] for x in got[tree]):.1f} | "
              f"{statistics.median(x[1] for x in got[tree]):.0f} |")


if __name__ == "__main__":
    main()
