#!/usr/bin/env python3
"""CRC-32 throughput on this CPU: zlib's (the system zlib) against python-isal's (toolkit/crc.py uses it when
installed), on one large buffer and in pieces the size an mbox splitter hands over (header lines, ~40 KB
messages). Figures in GB/s of CPU time (``time.process_time``), the best of ``--rounds``.

    .venv/bin/python bench/bench_crc.py [--file /work/bench40k/corpus.mbox] [--mb 256] [--rounds 3]
"""
from __future__ import annotations

import argparse
import time
import zlib


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


if __name__ == "__main__":
    main()
