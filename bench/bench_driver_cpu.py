"""CPU of the driver (the main process) of ``import eml|maildir|mbox`` against another checkout (issue 15).

Runs each import of the corpus (``--corpus``: ``eml/``, ``maildir/``, ``corpus.mbox``) into a fresh
archive, ``--runs`` times per checkout, alternating the checkouts (old first, then new first, ...), and
prints per source and checkout the median of: wall seconds, CPU seconds of the main process (user + system:
getrusage SELF) and of its worker processes (getrusage CHILDREN). The old side is a clean checkout
(``git worktree add --detach DIR main``) run with this environment's interpreter and ``PYTHONPATH=DIR``;
the new side is this checkout. After the runs the catalogs of the last old and new run of each source are
compared row by row (messages, recipients, sightings, envelopes, links, conversions, errors, the cursor
and the run's counts; random pack ids and times left out; with ``--packs-may-differ`` also the records' offsets
and the number and bytes of the packs, for a change of where pack boundaries fall): any difference is printed and
fails the bench.

    .venv/bin/python bench/bench_driver_cpu.py --base /work/wt/driver-cpu-base [--corpus /work/bench40k]
        [--sources eml,maildir,mbox] [--runs 3] [--cold] [--packs-may-differ]

``--cold`` drops the page cache before every run (``sync; echo 3 > /proc/sys/vm/drop_caches``, root only).
Load average is printed before and after: the figures are only comparable within one run of this script.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bytecode import compile_checkout  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
PASSWORD = "bench-password-123"
SOURCES = {"eml": ["eml", "eml"], "maildir": ["maildir", "maildir"], "mbox": ["mbox", "corpus.mbox"]}


def _child_run(argv: list[str]) -> None:
    """In the child: run the command line in this process and write its rusage as JSON to stdout's last line."""
    import resource
    import runpy
    import time

    t0 = time.perf_counter()
    out = os.fdopen(os.dup(1), "w")
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)

    def report() -> None:
        s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        out.write(json.dumps({"wall": time.perf_counter() - t0, "main": s.ru_utime + s.ru_stime,
                              "children": c.ru_utime + c.ru_stime}) + "\n")
        out.flush()

    import atexit

    atexit.register(report)
    sys.argv = ["toolkit", *argv]
    runpy.run_module("toolkit", run_name="__main__", alter_sys=True)


_TABLES = {
    "messages": "SELECT msg_id, blob_id, dedup_key, \"offset\", length, size, csize, message_id, subject, from_addr, "
                "from_name, sent_date, internal_date, spam, defects, id_conflict FROM messages ORDER BY msg_id",
    "recipients": "SELECT msg_id, kind, address FROM recipients ORDER BY ALL",
    "sightings": "SELECT msg_id, source_uri, folder, source_ref, via, decision, flags, internal_date, owner "
                 "FROM sightings ORDER BY ALL",
    "envelopes": "SELECT envelope_id, msg_id, text, sha256 FROM envelopes ORDER BY ALL",
    "links": "SELECT msg_id, parent_msg_id, kind, source_ref FROM message_links ORDER BY ALL",
    "conversions": "SELECT msg_id, source_kind, converter FROM conversions ORDER BY ALL",
    "errors": "SELECT kind, source_ref, message FROM run_errors ORDER BY ALL",
    "cursors": "SELECT source_uri, cursor FROM cursors ORDER BY ALL",
    "runs": "SELECT command, source_uri, status, seen, archived, duplicates, merged, errors, bytes FROM runs",
    "packs": "SELECT count(*), sum(records), sum(bytes) FROM packs",
}


def _child_dump(home: str) -> None:
    """In the child: the catalog's rows that an import decides, as JSON on stdout."""
    from toolkit.api import open_archive

    with open_archive(Path(home)) as archive, archive.catalog.reading() as con:
        print(json.dumps({name: [list(map(str, r)) for r in con.execute(sql).fetchall()]
                          for name, sql in _TABLES.items()}))


def _side_env(side: Path) -> dict:
    env = dict(os.environ, MAILARCHIVE_PASSWORD=PASSWORD, PYTHONPATH=str(side))
    return env


def _run_once(side: Path, source: str, corpus: Path, home: Path, cold: bool) -> dict:
    shutil.rmtree(home, ignore_errors=True)
    env = _side_env(side)
    subprocess.run([sys.executable, "-m", "toolkit", "--archive", str(home), "--quiet", "init"], env=env, cwd=side,
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if cold:
        subprocess.run(["sync"], check=True)
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    command, name = SOURCES[source]
    proc = subprocess.run([sys.executable, __file__, "--child-run", "--", "--archive", str(home), "--json", "import",
                           command, str(corpus / name)], env=env, cwd=side, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{side} import {source} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _dump(side: Path, home: Path) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child-dump", str(home)], env=_side_env(REPO), cwd=REPO,
                          stdout=subprocess.PIPE, check=True, text=True)
    return json.loads(proc.stdout)


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", type=Path, required=True, help="a clean checkout of the old code")
    ap.add_argument("--corpus", type=Path, default=Path("/work/bench40k"))
    ap.add_argument("--sources", default="eml,maildir,mbox")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--cold", action="store_true", help="drop the page cache before each run (root)")
    ap.add_argument("--packs-may-differ", action="store_true",
                    help="compare the catalogs without the records' offsets and the packs' count and bytes (a "
                         "change of where pack boundaries fall): the sum of the packs' records is still compared")
    args = ap.parse_args()
    compile_checkout(Path(__file__).resolve().parent.parent, args.base)  # bench/bytecode.py
    sides = {"old": args.base.resolve(), "new": REPO}
    work = Path(tempfile.mkdtemp(prefix="bench-driver-cpu-"))
    print(f"load before: {_load()}  cores: {os.cpu_count()}  {'cold' if args.cold else 'warm'} cache")
    failed = False
    try:
        for source in args.sources.split(","):
            figures: dict[str, list[dict]] = {"old": [], "new": []}
            for i in range(args.runs):
                for name in (("old", "new") if i % 2 == 0 else ("new", "old")):
                    figures[name].append(_run_once(sides[name], source, args.corpus, work / name, args.cold))
            for name in ("old", "new"):
                med = {k: statistics.median(f[k] for f in figures[name]) for k in ("wall", "main", "children")}
                runs = " ".join(f"{f['main']:.2f}" for f in figures[name])
                print(f"{source:8s} {name}: wall {med['wall']:6.2f} s  main {med['main']:5.2f} CPU-s  "
                      f"children {med['children']:5.2f} CPU-s  (main per run: {runs})")
            old, new = _dump(sides["old"], work / "old"), _dump(sides["new"], work / "new")
            if args.packs_may_differ:
                for dump in (old, new):
                    dump["messages"] = [r[:3] + r[4:] for r in dump["messages"]]  # without "offset"
                    dump["packs"] = [r[1:2] for r in dump["packs"]]  # sum(records) only
            for table in _TABLES:
                if old[table] != new[table]:
                    failed = True
                    diff = [(a, b) for a, b in zip(old[table], new[table]) if a != b][:3]
                    print(f"{source:8s} CATALOG DIFFERS in {table}: {len(old[table])} vs {len(new[table])} rows; "
                          f"first: {diff}")
            if not failed:
                print(f"{source:8s} catalogs equal ({', '.join(f'{t} {len(new[t])}' for t in _TABLES)})")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"load after: {_load()}")
    return 1 if failed else 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child-run"]:
        _child_run(sys.argv[3:])
    elif sys.argv[1:2] == ["--child-dump"]:
        _child_dump(sys.argv[2])
    else:
        sys.exit(main())
