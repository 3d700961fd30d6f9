#!/usr/bin/env python3
"""What one import commit costs as the archive grows: ``messages`` with and without its index.

An import commits one transaction per pack and then detaches the encrypted catalog, which
checkpoints it. This bench fills a fresh encrypted catalog (the toolkit's own connection:
offline httpfs, GCM) with N synthetic message rows, then times commits of ``--rows`` rows each
(insert + commit, and the detach with its checkpoint), for the ``messages`` table as catalog
migration 0001 made it (msg_id PRIMARY KEY: an ART index) and as migration 0172 leaves it (no
index). Prints the CPU model and the medians per size.

    .venv/bin/python bench/bench_catalog_commit.py [--sizes 20000,200000,2000000] [--rows 2000] [--repeat 10]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from bench_import import cpu_model, loadavg  # noqa: E402
from toolkit.catalog.connection import _connection, sql_string  # noqa: E402

COLUMNS = """msg_id BIGINT {pk}, blob_id VARCHAR NOT NULL, dedup_key VARCHAR NOT NULL,
    pack_id VARCHAR NOT NULL, "offset" BIGINT NOT NULL, length BIGINT NOT NULL,
    size BIGINT NOT NULL, csize BIGINT NOT NULL, message_id VARCHAR, subject VARCHAR, from_addr VARCHAR,
    from_name VARCHAR, sent_date TIMESTAMPTZ, internal_date TIMESTAMPTZ, spam BOOLEAN NOT NULL,
    defects VARCHAR, id_conflict BOOLEAN NOT NULL, archived_at TIMESTAMPTZ NOT NULL, run_id INTEGER, batch_id INTEGER"""

ROWS = """SELECT i, sha256(i::VARCHAR), md5(i::VARCHAR) || md5((i * 7)::VARCHAR), md5((i // 1600)::VARCHAR),
       (i % 1600) * 40000, 30000, 41000, 29000, '<' || i || '@example.org>', 'subject of mail ' || i,
       'sender' || (i % 977) || '@example.com', 'Sender ' || (i % 977), now(), NULL, false, NULL, false, now(), 1, NULL
       FROM range({lo}, {hi}) t(i)"""


class Cat:
    def __init__(self, path: Path, indexed: bool):
        self.path, self.key, self.con, self.n = path, os.urandom(32).hex(), _connection(), 0
        self._attach()
        self.con.execute(f"CREATE TABLE cat.messages ({COLUMNS.format(pk='PRIMARY KEY' if indexed else 'NOT NULL')})")
        self.con.execute("DETACH cat")

    def _attach(self) -> None:
        self.con.execute("SET VARIABLE k = ?", [self.key])
        self.con.execute(f"ATTACH {sql_string(self.path)} AS cat (ENCRYPTION_KEY getvariable('k'), ENCRYPTION_CIPHER 'GCM')")
        self.con.execute("RESET VARIABLE k")

    def commit(self, rows: int) -> tuple[float, float]:
        """(insert + commit seconds, detach seconds) of one transaction of ``rows`` rows."""
        self._attach()
        t0 = time.perf_counter()
        self.con.execute("BEGIN")
        self.con.execute("INSERT INTO cat.messages " + ROWS.format(lo=self.n + 1, hi=self.n + rows + 1))
        self.con.execute("COMMIT")
        t1 = time.perf_counter()
        self.con.execute("DETACH cat")
        self.n += rows
        return t1 - t0, time.perf_counter() - t1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="20000,200000,2000000", help="archive sizes (messages) to time commits at")
    ap.add_argument("--rows", type=int, default=2000, help="rows per timed commit (a pack of ~40 KB mails: ~1,600)")
    ap.add_argument("--repeat", type=int, default=10, help="timed commits per size (median reported)")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"{cpu_model()}; load average {loadavg()}")
    print("\n| messages in the catalog | index | insert + commit ms | detach (checkpoint) ms | whole commit ms |")
    print("|---:|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="bench-catalog-") as tmp:
        cats = {ix: Cat(Path(tmp) / f"{ix}.duckdb", ix) for ix in (True, False)}
        for size in sizes:
            for ix, cat in cats.items():
                while cat.n < size:
                    cat.commit(min(200_000, size - cat.n))
            for ix, cat in cats.items():
                got = [cat.commit(args.rows) for _ in range(args.repeat)]
                ins = statistics.median(g[0] for g in got) * 1000
                det = statistics.median(g[1] for g in got) * 1000
                print(f"| {size:,} | {'msg_id PRIMARY KEY' if ix else 'none (0172)'} | {ins:.0f} | {det:.0f} | {ins + det:.0f} |",
                      flush=True)
    print(f"\nload average after: {loadavg()}")


if __name__ == "__main__":
    main()
