"""One SMB client GUID for a process's connections against one per storage (docs/reliability.md C21).

Samba (4.15+, multichannel) serves every connection of one client GUID in one server process. The toolkit gives each
storage a GUID of its own (toolkit/storage/smb.py ``_use_client_guid``), so several storages of one command are
served by several server processes. This bench writes ``--mb`` MB of random data in 8 MB files over three storages
in parallel (three threads, as a consolidation's copy threads), then reads each back with BLAKE3, against the
throwaway test Samba on 127.0.0.1 (root; tests/services/samba.py), two ways in alternating rounds:

* ``shared``: the three storages connect with one GUID (the code before C21: one server process);
* ``own``: each with its own (the code now: three server processes).

On this bench the server and the client share the machine's cores; on a NAS the server has its own.

    .venv/bin/python bench/bench_smb_clients.py [--mb 200] [--rounds 8] [--encrypt]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))

from bench_import import cpu_model, loadavg  # noqa: E402

FILE = 8 << 20
STORAGES = 3


def _round(server, files: list[bytes], shared: bool, tag: str, encrypt: bool) -> tuple[float, float]:
    """(write seconds, read-back seconds) of the files over three storages."""
    from toolkit.storage import open_storage

    guid = uuid.uuid4() if shared else None
    stores = [open_storage(server.url(f"b-{tag}"), password=server.password, encrypt=encrypt, client_guid=guid)
              for _ in range(STORAGES)]
    try:
        def put(i: int) -> None:
            w = stores[i % STORAGES].open_write(f"p{i}")
            w.write(files[i])
            w.commit()

        def get(i: int) -> None:
            stores[i % STORAGES].blake3(f"p{i}")

        with ThreadPoolExecutor(STORAGES) as pool:
            t0 = time.perf_counter()
            list(pool.map(put, range(len(files))))
            t1 = time.perf_counter()
            list(pool.map(get, range(len(files))))
            t2 = time.perf_counter()
    finally:
        for s in stores:
            s.close()
    return t1 - t0, t2 - t1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mb", type=int, default=200, help="MB written per round (default 200)")
    ap.add_argument("--rounds", type=int, default=8, help="rounds per way, alternating (default 8)")
    ap.add_argument("--encrypt", action="store_true", help="SMB3 encryption on (default: signed only, as packs go)")
    args = ap.parse_args()
    from services.samba import start_samba

    load_before = loadavg()
    work = Path(tempfile.mkdtemp(prefix="smb-clients-", dir="/var/tmp"))
    server = start_samba(work / "samba")
    files = [os.urandom(FILE) for _ in range(max(1, (args.mb << 20) // FILE))]
    results: dict[str, list[tuple[float, float]]] = {"shared": [], "own": []}
    try:
        for r in range(args.rounds):
            for way in (("shared", "own") if r % 2 == 0 else ("own", "shared")):
                results[way].append(_round(server, files, way == "shared", f"{way}{r}", args.encrypt))
                for p in (server.share_dir / f"b-{way}{r}").glob("*"):
                    p.unlink()
    finally:
        server.stop()
    print(f"{os.cpu_count()} CPUs, {cpu_model()}; load average before {load_before}, after {loadavg()}; "
          f"{len(files) * FILE >> 20} MB in {len(files)} files over {STORAGES} storages, "
          f"{'encrypted' if args.encrypt else 'signed, not encrypted'}, {args.rounds} rounds per way")
    print("| GUIDs | write, median s | read back, median s | write rounds | read rounds |")
    print("|---|---|---|---|---|")
    for way, label in (("shared", "one for the three storages (before C21)"), ("own", "one per storage (C21)")):
        w = [a for a, _ in results[way]]
        rd = [b for _, b in results[way]]
        print(f"| {label} | {statistics.median(w):.3f} | {statistics.median(rd):.3f} | "
              f"{' '.join(f'{x:.2f}' for x in w)} | {' '.join(f'{x:.2f}' for x in rd)} |")


if __name__ == "__main__":
    main()
