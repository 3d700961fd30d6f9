#!/usr/bin/env python3
"""Body normalisation + hash, and whole-file checksums: before and after archive format v2 (issue 15).

"old": the normalisation of format v1 (per-line split/rstrip/join for bodies with trailing
blanks) with SHA-256, as it ran before; "new": :func:`toolkit.headers.hash_body` (bytes
methods, pieces fed to BLAKE3, no list per line). Both over the bodies of an EML tree
(``bench/make_corpus.py`` output, or any directory of mails), best of ``--repeat`` runs,
MB/s of body bytes. Then SHA-256 against BLAKE3 over whole files (the pack/backup checksum).
Prints the CPU model and whether it has SHA extensions (``sha_ni`` / ``sha`` in
/proc/cpuinfo flags). Pure CPU work: no disk in the timed part (files are read first).

    .venv/bin/python bench/bench_hashing.py /tmp/corpus [--limit 2000] [--repeat 3]
"""
from __future__ import annotations

import argparse
import hashlib
import platform
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import blake3  # noqa: E402

from toolkit.headers import hash_body, split_offsets  # noqa: E402

_TRAILING_WS = re.compile(rb"(?<![ \t])[ \t]++\n")


def old_normalise_body(body: bytes) -> bytes:
    """Format v1's normalise_body, as it was (kept here only to measure against)."""
    if b"\r" in body and b"\r\n" in body:
        body = body.replace(b"\r\n", b"\n")
    if b" \n" in body or (b"\t" in body and b"\t\n" in body):
        if len(body) <= 1 << 20:
            body = b"\n".join([line.rstrip(b" \t") for line in body.split(b"\n")])
        else:
            body = _TRAILING_WS.sub(b"\n", body)
    return body.rstrip(b" \t").rstrip(b"\n")


def old_body_hash(raw: bytes, start: int) -> bytes:
    """Format v1's body hash (SHA-256), with its no-copy path for bodies with nothing to normalise."""
    if raw.find(b"\r", start) < 0 and raw.find(b" \n", start) < 0 and (
            raw.find(b"\t", start) < 0 or raw.find(b"\t\n", start) < 0):
        end, floor = len(raw), max(start, len(raw) - 4096)
        while end > floor and raw[end - 1] in (0x20, 0x09):
            end -= 1
        while end > floor and raw[end - 1] == 0x0A:
            end -= 1
        if end > floor:
            return hashlib.sha256(memoryview(raw)[start:end]).digest()
    return hashlib.sha256(old_normalise_body(raw[start:])).digest()


def cpu() -> tuple[str, bool]:
    model, flags = platform.processor() or "unknown CPU", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model in ("unknown CPU", platform.processor()):
                model = value.strip()
            elif key.strip() in ("flags", "Features"):
                flags |= set(value.split())
    except OSError:
        pass
    return model, bool(flags & {"sha_ni", "sha", "sha2"})


def best_of(repeat: int, fn) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("corpus", type=Path)
    ap.add_argument("--limit", type=int, default=2000, help="mails read (default 2000)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    files = sorted(p for p in args.corpus.rglob("*") if p.is_file())[: args.limit]
    raws = [p.read_bytes() for p in files]
    if not raws:
        print(f"no files under {args.corpus}", file=sys.stderr)
        return 2
    starts = [split_offsets(r)[1] for r in raws]
    body_bytes = sum(len(r) - s for r, s in zip(raws, starts))
    file_bytes = sum(map(len, raws))
    model, sha_ext = cpu()
    print(f"CPU: {model} ({'with' if sha_ext else 'without'} SHA extensions), Python {platform.python_version()}")
    print(f"{len(raws)} mails, {file_bytes / 1e6:.1f} MB, bodies {body_bytes / 1e6:.1f} MB, "
          f"average {file_bytes / len(raws) / 1e3:.0f} KB")

    def bodies(fn):
        return lambda: [fn(r, s) for r, s in zip(raws, starts)]

    rows = [
        ("body: v1 normalise + SHA-256", body_bytes, best_of(args.repeat, bodies(old_body_hash))),
        ("body: v2 hash_body (BLAKE3)", body_bytes, best_of(args.repeat, bodies(hash_body))),
        ("file checksum: SHA-256", file_bytes, best_of(args.repeat, lambda: [hashlib.sha256(r).digest() for r in raws])),
        ("file checksum: BLAKE3", file_bytes, best_of(args.repeat, lambda: [blake3.blake3(r).digest() for r in raws])),
    ]
    print("| work | MB | seconds | MB/s |\n|---|---|---|---|")
    for name, n, t in rows:
        print(f"| {name} | {n / 1e6:.1f} | {t:.3f} | {n / t / 1e6:.0f} |")
    print(f"body hash v2 ÷ v1: {rows[0][2] / rows[1][2]:.2f}×; file checksum BLAKE3 ÷ SHA-256: {rows[2][2] / rows[3][2]:.2f}×")
    return 0


if __name__ == "__main__":
    sys.exit(main())
