"""Warm imports after the machine idled, this checkout against another (``--base``), and the write paths alone.

Why: on a virtual machine whose host takes back the guest's free memory (virtio-balloon free page reporting; a
DAMON daemon paging out memory idle for 60 s), the first touch of fresh memory costs a fault on the host. A run that
starts after the machine idled meets that on every page it allocates, and the page cache of the packs an import
writes is most of those pages (docs/architecture.md "Writing packs past the page cache"). In bench/bench_import.py
this shows as rounds that are slow at random, depending on what ran in the minute before.

Part 1, ``--write-paths``: one process writes ``--write-mb`` MB in 4 MiB writes, then one fsync, through the page
cache and with ``O_DIRECT``, each after ``--idle`` seconds of idle (the first page-cache write of a run is the one
that meets fresh memory). Part 2: ``--pairs`` alternating pairs of a warm ``import KIND`` of this checkout and of
``--base``, each after ``--idle`` seconds of idle, a fresh archive each (``init`` not timed), the input read once
before each run (bench_import.run_import's warm mode).

    .venv/bin/python bench/bench_idle_pairs.py --base /path/to/earlier/checkout [--kinds eml,mbox,maildir]
        [--corpus /work/bench40k] [--pairs 3] [--idle 60] [--write-paths] [--write-mb 800]
"""
from __future__ import annotations

import argparse
import mmap
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_import import bench_env, compile_checkout, cpu_model, run_import  # noqa: E402

BLOCK = 4 << 20


def write_path(path: Path, mb: int, direct: bool) -> tuple[float, float]:
    """(seconds, CPU-seconds) of writing ``mb`` MB in 4 MiB writes and one fsync."""
    buf = mmap.mmap(-1, BLOCK, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    buf.write(os.urandom(BLOCK))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | (os.O_DIRECT if direct else 0), 0o600)
    t, c = time.perf_counter(), time.process_time()
    try:
        for off in range(0, mb << 20, BLOCK):
            os.pwrite(fd, buf, off)
        os.fsync(fd)
    finally:
        os.close(fd)
        os.unlink(path)
    return time.perf_counter() - t, time.process_time() - c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", type=Path, help="the other checkout (the code before); without it, part 1 only")
    ap.add_argument("--corpus", type=Path, default=Path("/work/bench40k"),
                    help="a bench/make_corpus.py corpus: eml/, corpus.mbox, maildir/ (default /work/bench40k)")
    ap.add_argument("--kinds", default="eml,mbox,maildir")
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--idle", type=int, default=60, help="seconds of idle before each run (default 60)")
    ap.add_argument("--write-paths", action="store_true", help="part 1: the write paths alone")
    ap.add_argument("--write-mb", type=int, default=800)
    ap.add_argument("--dir", type=Path, default=None, help="where files and archives are written (default: temp)")
    args = ap.parse_args()
    print(f"{cpu_model()}, nproc {os.cpu_count()}, idle {args.idle} s before each run", flush=True)
    work = Path(tempfile.mkdtemp(prefix="bench-idle-", dir=args.dir))
    try:
        if args.write_paths:
            for direct in (False, True, False, True):
                time.sleep(args.idle)
                s, c = write_path(work / "w.bin", args.write_mb, direct)
                print(f"write {args.write_mb} MB {'O_DIRECT' if direct else 'page cache'}: {s:.2f} s, {c:.2f} CPU-s",
                      flush=True)
        if args.base:
            _pairs(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _pairs(args, work: Path) -> None:
    here = Path(__file__).resolve().parent.parent
    compile_checkout(here, args.base.resolve())
    env = bench_env()
    sources = {"eml": [str(args.corpus / "eml")], "mbox": ["--variant", "mboxrd", str(args.corpus / "corpus.mbox")],
               "maildir": [str(args.corpus / "maildir")]}
    for kind in args.kinds.split(","):
        got: dict[str, list[tuple[float, float]]] = {"this": [], "base": []}
        for i in range(args.pairs):
            for side in (("this", "base") if i % 2 == 0 else ("base", "this")):
                time.sleep(args.idle)
                home = work / "archive"
                m = run_import(kind, home, sources[kind], env, "warm", [Path(sources[kind][-1])],
                               base=args.base.resolve() if side == "base" else None)
                shutil.rmtree(home, ignore_errors=True)
                got[side].append((m.seconds, m.cpu_user + m.cpu_sys))
                print(f"  import {kind} {side}: {m.seconds:.2f} s, {m.cpu_user + m.cpu_sys:.1f} CPU-s", flush=True)
        med = {side: statistics.median(s for s, _ in v) for side, v in got.items()}
        print(f"import {kind}, warm, after {args.idle} s idle, median of {args.pairs}: base {med['base']:.3f} s, "
              f"this {med['this']:.3f} s", flush=True)


if __name__ == "__main__":
    main()
