#!/usr/bin/env python3
"""Blob ids (SHA-256 per mail): hashlib against the multi-buffer engines (toolkit/_sha256mb.c), issue 15.

Reads ``--count`` mails of ``--corpus``/eml (the 40 KB corpus: median 11 KB, 1.5% of the mails ~550 KB
and two thirds of the bytes) into memory, then hashes them, CPU-seconds (process time) per contender,
alternating, ``--repeat`` times, and prints GB/s (median) of mail bytes:

* ``hashlib``: ``hashlib.sha256(mail).digest()`` per mail (what ``prepare`` did);
* each multi-buffer engine the CPU runs (``avx512vl``, ``avx2``), on the mails in the worker's batches
  (corpus order, up to ``HASH_BATCH_BYTES`` of mail each: toolkit/pack_tasks.py), and on batches of a
  few other sizes (``--batches``, MiB) to show what the lanes need;
* ``sha256_many``: what a pack task runs (:func:`toolkit.blob_ids.sha256_many`: the engine chosen in that
  process, with the longest mails of a batch left to hashlib where the lanes would idle beside them).

Then what :func:`toolkit.blob_ids.choose` picks in that process and how stable its timing is (``--calibrations``
runs of :func:`toolkit.blob_ids.measure`: the spread of hashlib's time over the engine's).

It runs twice, in two child processes: with OpenSSL as it is, and with the CPU's SHA extensions hidden from
OpenSSL (``OPENSSL_ia32cap``, as ``bench_import.py --mask-sha``): hashlib then runs as on a CPU without them.
Prints the CPU model and whether it has SHA extensions, and the load average before and after.

    .venv/bin/python bench/bench_sha256mb.py [--corpus /work/bench40k] [--count 6000] [--repeat 5]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_import import SHA_MASK, cpu_model, loadavg  # noqa: E402


def _batches(mails: list[bytes], limit: int) -> list[list[bytes]]:
    out, batch, size = [], [], 0
    for m in mails:
        batch.append(m)
        size += len(m)
        if size >= limit:
            out.append(batch)
            batch, size = [], 0
    if batch:
        out.append(batch)
    return out


def child(args) -> dict:
    from toolkit import blob_ids
    from toolkit.pack_tasks import HASH_BATCH_BYTES

    t = time.perf_counter()
    chosen = blob_ids.choose()
    choose_ms = (time.perf_counter() - t) * 1e3
    files = sorted(p for p in (Path(args.corpus) / "eml").rglob("*") if p.is_file())[:args.count]
    mails = [p.read_bytes() for p in files]
    total = sum(map(len, mails))
    contenders = {"hashlib": lambda: blob_ids.sha256_hashlib(mails)}
    for level in blob_ids.multi_buffer_levels():
        for mib in [HASH_BATCH_BYTES >> 20, *args.batches]:
            groups = _batches(mails, mib << 20)
            contenders[f"{level}, {mib} MiB batches"] = lambda g=groups, lv=level: [blob_ids.sha256_multi(b, lv) for b in g]
    for mib in [HASH_BATCH_BYTES >> 20, *args.batches]:
        groups = _batches(mails, mib << 20)
        contenders[f"sha256_many, {mib} MiB batches"] = lambda g=groups: [blob_ids.sha256_many(b) for b in g]
    expected = blob_ids.sha256_hashlib(mails)
    for name, run in contenders.items():  # each once untimed: warm, and every digest checked
        got = run()
        if name != "hashlib":
            got = [d for batch in got for d in batch]
        assert got == expected, name
    cpu = {name: [] for name in contenders}
    for _ in range(args.repeat):
        for name, run in contenders.items():
            t = time.process_time()
            run()
            cpu[name].append(time.process_time() - t)
    ratios = []
    levels = blob_ids.multi_buffer_levels()
    for _ in range(args.calibrations if levels else 0):
        t_h, t_m = blob_ids.measure(levels[0])
        ratios.append(t_h / t_m)
    return {"mails": len(mails), "bytes": total,
            "gbps": {n: total / statistics.median(v) / 1e9 for n, v in cpu.items()},
            "cpu_s": {n: statistics.median(v) for n, v in cpu.items()},
            "chosen": chosen, "choose_ms": choose_ms, "ratios": sorted(ratios),
            "masked": os.environ.get("OPENSSL_ia32cap") == SHA_MASK}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", default="/work/bench40k")
    ap.add_argument("--count", type=int, default=6000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--batches", type=lambda s: [int(x) for x in s.split(",") if x], default=[1, 2],
                    help="other batch sizes in MiB (comma-separated)")
    ap.add_argument("--calibrations", type=int, default=100)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return
    load_before = loadavg()
    print(f"CPU: {cpu_model()}; nproc {os.cpu_count()}; load average before {load_before}")
    for masked in (False, True):
        env = {k: v for k, v in os.environ.items() if k != "OPENSSL_ia32cap"}
        if masked:
            env["OPENSSL_ia32cap"] = SHA_MASK
        out = subprocess.run([sys.executable, __file__, "--child", *sys.argv[1:]], env=env, check=True,
                             capture_output=True, text=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        title = "SHA extensions hidden from OpenSSL (OPENSSL_ia32cap)" if masked else "OpenSSL as it is"
        print(f"\n{title}: {r['mails']} mails, {r['bytes'] / 1e6:.0f} MB, median of {args.repeat}")
        base = r["cpu_s"]["hashlib"]
        for name, gbps in r["gbps"].items():
            print(f"  {name:28} {gbps:5.2f} GB/s  {r['cpu_s'][name]:.3f} CPU-s  {base / r['cpu_s'][name]:4.2f}x hashlib")
        q = r["ratios"]
        if q:
            print(f"  calibration (hashlib time / engine time, {len(q)} runs): min {q[0]:.2f}, median "
                  f"{q[len(q) // 2]:.2f}, max {q[-1]:.2f}; chosen: {r['chosen']} ({r['choose_ms']:.1f} ms)")
        else:
            print(f"  no multi-buffer engine here; chosen: {r['chosen']}")
    print(f"\nload average after {loadavg()}")


if __name__ == "__main__":
    main()
