#!/usr/bin/env python3
"""The CPU of one ``verify --full`` worker's work, in one process, per checkout: F04's key of a mail
(``verify.mailkey.mail_key``, µs per mail over the first mails of an EML tree) and the check of whole packs read ahead
(``verify.ahead.check_ahead``: read, BLAKE3, authenticate, decompress, SHA-256, key; CPU-s per pack), alternating
between the checkouts, best of ``--repeat``. With ``--batches``, this checkout's packs again with the SHA-256 batches
of ``PackReader.check_all`` of each size given (MiB; 0: one mail at a time, hashlib), to compare the sizes.

    .venv/bin/python bench/bench_verify_worker.py --archive HOME --eml DIR [--base CHECKOUT] [--packs 3]
        [--mails 3000] [--repeat 3] [--batches 0,1,2,4,8]

HOME: an archive home of the bench corpus (e.g. ``bench_import.py --keep DIR``'s ``archive-eml``; read only),
MAILARCHIVE_PASSWORD as for the command. ``--base``: a checkout of other code (its compiled modules built or copied
in), run as a child process with ``PYTHONPATH`` set to it.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from bytecode import compile_checkout  # noqa: E402

#: run in a child process, in the checkout measured: prints one JSON line
_CHILD = r"""
import json, sys, time
from pathlib import Path
home, eml, n_packs, n_mails, batches = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
from toolkit.archive import Archive
from toolkit import pack
from verify.ahead import check_ahead, list_packs
from verify.deep import SCAN_CAP
from verify.mailkey import mail_key
files = [p for p in sorted(Path(eml).rglob("*")) if p.is_file()][:n_mails]
raws = [p.read_bytes() for p in files]
for raw in raws:
    mail_key(raw)  # the per-worker caches warm, as in a worker's steady state
t = time.process_time()
for raw in raws:
    mail_key(raw)
out = {"key_us": (time.process_time() - t) / len(raws) * 1e6}
packs = list_packs(Path(home), 0)[:n_packs]
def packs_cpu():
    t = time.process_time()
    for m, name in packs:
        assert check_ahead(archive, m, name, SCAN_CAP) is not None, name
    return (time.process_time() - t) / len(packs)
with Archive.open(Path(home)) as archive:
    packs_cpu()  # the file in the page cache, the SHA-256 engine chosen
    out["pack_cpu_s"] = packs_cpu()
    if batches:
        records = pack.HASH_BATCH_RECORDS
        for mb in batches.split(",") + batches.split(",")[::-1]:  # each size early and late in the process
            pack.HASH_BATCH_BYTES = (int(mb) << 20) or 1
            pack.HASH_BATCH_RECORDS = 1 if mb == "0" else records
            key = f"pack_cpu_s_batch_{mb}MiB"
            out[key] = min(packs_cpu(), out.get(key, float("inf")))
print(json.dumps(out))
"""


def run(code: Path, args, batches: str) -> dict:
    p = subprocess.run([sys.executable, "-c", _CHILD, str(args.archive), str(args.eml), str(args.packs),
                        str(args.mails), batches], cwd=code, env=dict(os.environ, PYTHONPATH=str(code)),
                       capture_output=True, text=True)
    if p.returncode:
        sys.exit(f"{code}: exit {p.returncode}\n{p.stderr[-2000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archive", type=Path, required=True)
    ap.add_argument("--eml", type=Path, required=True)
    ap.add_argument("--base", type=Path)
    ap.add_argument("--packs", type=int, default=3)
    ap.add_argument("--mails", type=int, default=3000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--batches", default="", help="SHA-256 batch sizes in MiB for this checkout, e.g. 0,1,2,4,8")
    args = ap.parse_args()
    codes = [("this code", REPO)] + ([("base", args.base.resolve())] if args.base else [])
    compile_checkout(*(code for _name, code in codes))  # bench/bytecode.py
    best: dict[str, dict] = {}
    for i in range(args.repeat):
        for name, code in (codes if i % 2 == 0 else codes[::-1]):
            got = run(code, args, args.batches if code == REPO else "")
            print(f"round {i + 1} {name}: " + ", ".join(f"{k} {v:.4g}" for k, v in got.items()), flush=True)
            for k, v in got.items():
                best.setdefault(name, {})[k] = min(v, best.get(name, {}).get(k, v))
    print(f"\nload average {os.getloadavg()[0]:.1f}; best of {args.repeat}:\n")
    keys = sorted({k for v in best.values() for k in v}, key=lambda k: (k != "key_us", k))
    print("| code | " + " | ".join(keys) + " |")
    print("|---|" + "---:|" * len(keys))
    for name, v in best.items():
        print(f"| {name} | " + " | ".join(f"{v[k]:.4g}" if k in v else "" for k in keys) + " |")


if __name__ == "__main__":
    main()
