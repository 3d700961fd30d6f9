#!/usr/bin/env python3
"""The per-file cut ``import eml`` runs where it reads a local file: before (only a leading From_ line,
``cut_envelope``) and after the Apple Mail .emlx shapes (``cut_wrapper``: the From_ line, else an .emlx
wrapper), on the same files, alternating, in CPU seconds of this thread. Also the same for files that
do start with a From_ line (each file prefixed with one), where ``cut_wrapper`` also counts the From_
lines inside (``more_messages``). Pure CPU work: the files are read first.

    .venv/bin/python bench/bench_eml_cut.py /work/bench40k/eml [--limit 4000] [--rounds 5]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from importers.eml import cut_envelope, cut_wrapper  # noqa: E402

FROM = b"From a@example.com Tue Mar  5 12:00:00 2019\n"


def _cpu(fn, files) -> float:
    t = time.thread_time()
    for raw in files:
        fn(raw)
    return time.thread_time() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("tree")
    ap.add_argument("--limit", type=int, default=4000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    paths = sorted(p for p in Path(args.tree).rglob("*") if p.is_file())[: args.limit]
    plain = [p.read_bytes() for p in paths]
    enveloped = [FROM + raw for raw in plain]
    mb = sum(map(len, plain)) / 1e6
    print(f"{len(plain)} files, {mb:.1f} MB; load average {os.getloadavg()[0]:.2f}")
    for name, files in (("plain .eml", plain), ("with a From_ line", enveloped)):
        before, after = [], []
        for i in range(args.rounds):  # alternating order
            pair = ((cut_envelope, before), (cut_wrapper, after))
            for fn, out in pair if i % 2 == 0 else reversed(pair):
                out.append(_cpu(fn, files))
        b, a = min(before), min(after)
        print(f"{name:18} before {b * 1e6 / len(files):7.2f} µs/file  after {a * 1e6 / len(files):7.2f} µs/file  "
              f"(CPU s, best of {args.rounds}: {b:.3f} / {a:.3f})")


if __name__ == "__main__":
    main()
