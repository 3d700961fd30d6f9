#!/usr/bin/env python3
"""What a mail's compression costs, and why a faster zstd setting does not lift the import (issue 15).

Compresses each mail of a sample of a corpus on its own, as a pack record is (toolkit/pack.py: one zstd frame a
mail), with python-zstandard at several levels, and, when the ``zstd`` command is installed, runs its own bench on
the same mails cut into blocks of the mail's average size (``-B``), with and without Huffman-coded literals at a
negative level (``--fast=1 --compress-literals``: a setting python-zstandard cannot reach). Prints the CPU model
and whether it has SHA extensions, the compression ratio, MB/s and µs a mail.

    .venv/bin/python bench/bench_zstd_levels.py [--tree /work/bench40k/eml] [--mails 2000] [--rounds 3]
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import zstandard  # noqa: E402
from bench_hashing import cpu  # noqa: E402


def _mails(tree: Path, n: int) -> list[bytes]:
    paths = sorted(p for p in tree.rglob("*") if p.is_file())[:n]
    return [p.read_bytes() for p in paths]


def _python(mails: list[bytes], rounds: int) -> None:
    total = sum(map(len, mails))
    for level in (1, -1, -5, 3):
        c = zstandard.ZstdCompressor(level=level, write_content_size=True, write_checksum=False)
        best, out = float("inf"), 0
        for _ in range(rounds):
            t = time.process_time()
            out = sum(len(c.compress(m)) for m in mails)
            best = min(best, time.process_time() - t)
        print(f"python-zstandard level {level:>2}: ratio {out / total:.3f}, {total / best / 1e6:6.0f} MB/s, "
              f"{best / len(mails) * 1e6:5.1f} µs a mail")


def _cli(mails: list[bytes]) -> None:
    if shutil.which("zstd") is None:
        print("zstd command not installed: CLI rows skipped")
        return
    block = max(1024, sum(map(len, mails)) // len(mails))
    with tempfile.NamedTemporaryFile(suffix=".bin") as f:
        f.write(b"".join(mails))
        f.flush()
        for options in (["-b1"], ["-b1", "--fast=1"], ["-b1", "--fast=1", "--compress-literals"],
                        ["-b1", "--zstd=hlog=12,mml=7"]):
            run = subprocess.run(["zstd", *options, "-i2", f"-B{block}", f.name], capture_output=True, text=True)
            lines = [seg for seg in (run.stdout + run.stderr).replace("\r", "\n").splitlines() if "->" in seg]
            print(f"zstd {' '.join(options):38s} blocks of {block} B: {lines[-1].split(':', 1)[-1].strip() if lines else run.stderr[-200:]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tree", type=Path, default=Path("/work/bench40k/eml"), help="a tree of mails (bench/make_corpus.py)")
    ap.add_argument("--mails", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    model, sha = cpu()
    print(f"CPU: {model}; SHA extensions: {'yes' if sha else 'no'}; cores: {os.cpu_count()}")
    mails = _mails(args.tree, args.mails)
    if not mails:
        sys.exit(f"no mails under {args.tree}")
    print(f"{len(mails)} mails, {sum(map(len, mails)) / len(mails) / 1024:.1f} KiB on average")
    _python(mails, args.rounds)
    _cli(mails)


if __name__ == "__main__":
    main()
