#!/usr/bin/env python3
"""CRC-32 throughput on this CPU: zlib's (the system zlib) against python-isal's (toolkit/crc.py uses it when
installed), on one large buffer and in pieces the size an mbox splitter hands over (header lines, ~40 KB
messages). Figures in GB/s of CPU time (``time.process_time``), the best of ``--rounds``. With ``--trees``, also
the worker's side of ``import mbox`` alone: ``FileRegion.read`` of every message of the mbox (regions found once by
this checkout's splitter), in CPU-seconds, per checkout (run with that checkout first on PYTHONPATH), alternating,
the median of ``--rounds``.

    .venv/bin/python bench/bench_crc.py [--file /work/bench40k/corpus.mbox] [--mb 256] [--rounds 3] \\
        [--trees /work/wt/crc-imports-base,/work/wt/crc-imports]
"""
from __future__ import annotations

import argparse
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
import zlib

_READ_ALL = """
import pickle, sys, time
from toolkit.file_region import FileRegion
regions = [FileRegion(*r) for r in pickle.load(open(sys.argv[1], "rb"))]
t = time.process_time()
n = sum(len(r.read()) for r in regions)
print(time.process_time() - t, n)
"""


def _regions(path: str) -> list[tuple]:
    from importers.mbox import MboxSplitter
    with open(path, "rb") as f:
        return [(os.fsencode(path), m.offset, m.end_offset - m.offset, m.crc32, len(m.from_line), len(m.separator))
                for m in MboxSplitter(f, keep_bytes=False)]


def _rate(crc32, data: bytes, piece: int, rounds: int) -> float:
    view = memoryview(data)
    best = float("inf")
    for _ in range(rounds):
        t = time.process_time()
        if piece >= len(data):
            crc32(data)
        else:
            value = 0
            for i in range(0, len(data), piece):
                value = crc32(view[i:i + piece], value)
        best = min(best, time.process_time() - t)
    return len(data) / best / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--file", default="/work/bench40k/corpus.mbox")
    ap.add_argument("--mb", type=int, default=256, help="how much of the file to read")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--trees", help="comma-separated checkouts: also time FileRegion.read of every message in each")
    args = ap.parse_args()
    with open(args.file, "rb") as f:
        data = f.read(args.mb << 20)
    impls = {"zlib": zlib.crc32}
    try:
        from isal import isal_zlib
        impls["isal"] = isal_zlib.crc32
    except ImportError:
        print("isal is not installed: zlib only")
    print(f"{len(data) >> 20} MiB of {args.file}\n")
    print("| implementation | whole buffer GB/s | 40 KB pieces GB/s | 80 B pieces GB/s |\n|---|---:|---:|---:|")
    for name, crc32 in impls.items():
        print(f"| {name} | {_rate(crc32, data, len(data), args.rounds):.2f} | {_rate(crc32, data, 40_000, args.rounds):.2f}"
              f" | {_rate(crc32, data, 80, 1):.2f} |")
    if args.trees:
        _read_regions(args.file, args.trees.split(","), args.rounds)


def _read_regions(path: str, trees: list[str], rounds: int) -> None:
    regions = _regions(path)
    got: dict[str, list[float]] = {t: [] for t in trees}
    with tempfile.NamedTemporaryFile(suffix=".pickle") as f:
        pickle.dump(regions, f)
        f.flush()
        for r in range(rounds):
            for tree in (trees if r % 2 == 0 else trees[::-1]):
                out = subprocess.run([sys.executable, "-c", _READ_ALL, f.name], cwd=tree, check=True, text=True,
                                     capture_output=True, env=dict(os.environ, PYTHONPATH=tree)).stdout.split()
                got[tree].append(float(out[0]))
    print(f"\nFileRegion.read of the {len(regions)} messages, CPU-s, median of {rounds} (load {os.getloadavg()[0]:.1f})\n")
    print("| tree | CPU-s |\n|---|---:|")
    for tree in trees:
        print(f"| {os.path.basename(tree.rstrip('/'))} | {statistics.median(got[tree]):.3f} |")


if __name__ == "__main__":
    main()
