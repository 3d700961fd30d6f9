"""A tree of a million tiny files: peak memory of `import eml`, `import maildir` and `import share` (docs/reliability.md
K8, "peak RSS < 400 MB in every run").

bench_tiny.py measures a million mails in one mbox: one file, so nothing per file. An import of a *tree* holds
something per file besides: its walk, its plan, its list of skipped entries. This bench builds, under ``--dir``:

* ``eml/``: ``--count`` distinct tiny mails (~260 bytes), 1,000 folders of ``--count``/1,000 ``.eml`` files;
* ``maildir/``: the same mails as one Maildir++ of ``--count``/1,000 folders (``.fNNNN/cur/``), Dovecot-style
  names with flags (``1700000000.M<k>P1.bench,S=<size>:2,S``);
* ``junk/`` (with ``share`` in ``--kinds``): ``--count`` small files that are not mail (``import share`` lists each
  as skipped; the run ends "no mail found", exit 1 by design);

and imports each tree into a fresh archive (``init`` not timed), the page cache dropped before (as root). Per run:
wall time, exit status, the counts, and the peak RSS (VmHWM, sampled) of the main process and of the largest
worker. The trees are kept for the next run (``--dir`` reused; built again when the count differs).

    .venv/bin/python bench/bench_million_files.py [--count 1000000] [--kinds eml,maildir,share] [--dir DIR] [--record]

A million files take ~4 GB of disk per tree (a block each) and, on the 2-core development VM, ~3 minutes per
import. ``--record`` replaces the "## A million files (K8)" section of bench/RESULTS.md.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_import import (  # noqa: E402
    RSS_LIMIT_MB,
    bench_env,
    drop_caches,
    init_archive,
    loadavg,
    machine,
    mailarchive_cmd,
    record,
    run_measured,
)

TITLE = "## A million files (K8)"
PER_FOLDER = 1000


def _mail(k: int, folder: int) -> bytes:
    return (f"From: sender{k % 977}@example.org\nTo: user{folder}@example.com\nSubject: tiny {k}\n"
            f"Message-ID: <tiny.{k}@bench>\nDate: Mon, 1 Jan 2024 00:00:00 +0000\n\nmail number {k}\n").encode()


def _write(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def _build(root: Path, count: int, kind: str) -> None:
    """The tree of ``kind`` with ``count`` files, unless ``root`` already holds it (a stamp file says so)."""
    stamp = root.parent / f".{root.name}.count"
    if root.is_dir() and stamp.exists() and stamp.read_text() == str(count):
        return
    shutil.rmtree(root, ignore_errors=True)
    print(f"building {kind} tree of {count} files in {root} ...", flush=True)
    for d in range(count // PER_FOLDER):
        if kind == "maildir":
            folder = root / f".f{d:04d}"
            (folder / "new").mkdir(parents=True)
            (folder / "tmp").mkdir()
            (folder / "maildirfolder").touch()
            folder = folder / "cur"
            folder.mkdir()
        else:
            folder = root / f"user{d:04d}" / "Inbox"
            folder.mkdir(parents=True)
        base = str(folder)
        for i in range(PER_FOLDER):
            k = d * PER_FOLDER + i
            if kind == "junk":
                _write(f"{base}/{i:06d}.bin", b"\x00\x01binary, not mail " + str(k).encode())
                continue
            body = _mail(k, d)
            name = f"1700000000.M{k}P1.bench,S={len(body)}:2,S" if kind == "maildir" else f"{i:06d}.eml"
            _write(f"{base}/{name}", body)
    stamp.write_text(str(count))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=1_000_000, help="files per tree (default 1,000,000)")
    ap.add_argument("--kinds", default="eml,maildir,share",
                    help="imports to run: eml, maildir, share (share reads a tree of files that are not mail)")
    ap.add_argument("--dir", type=Path, default=None, help="where the trees and archives go (default: a temp dir)")
    ap.add_argument("--record", action="store_true", help=f"replace the '{TITLE}' section of bench/RESULTS.md")
    args = ap.parse_args()
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    unknown = set(kinds) - {"eml", "maildir", "share"}
    if unknown or args.count < PER_FOLDER or args.count % PER_FOLDER:
        sys.exit(f"--kinds takes eml, maildir, share; --count a multiple of {PER_FOLDER}")
    work = args.dir or Path(tempfile.mkdtemp(prefix="million-"))
    work.mkdir(parents=True, exist_ok=True)
    load_before = loadavg()
    env = bench_env()
    rows = []
    for kind in kinds:
        tree = work / ("junk" if kind == "share" else kind)
        _build(tree, args.count, "junk" if kind == "share" else kind)
        home = work / f"home-{kind}"
        shutil.rmtree(home, ignore_errors=True)
        init_archive(home, env)
        cold = drop_caches()
        m = run_measured(f"import {kind}", mailarchive_cmd() + ["--archive", str(home), "--json", "import", kind,
                                                                  str(tree)], env, interval=0.5)
        try:
            result = json.loads(m.stdout)
        except ValueError:
            result = {}
        counts = ", ".join(f"{k} {result.get(k)}" for k in ("seen", "archived", "skipped", "errors"))
        line = (f"| `import {kind}` of {args.count:,} {'non-mail files' if kind == 'share' else 'tiny mails'} | "
                f"{m.rc} | {m.seconds:.0f} | {m.main_hwm_mb:.0f} | {m.worker_hwm_mb:.0f} | {counts} |")
        print(line, flush=True)
        if m.rc not in (0, 1) or (m.rc == 1 and kind != "share"):
            print(m.stderr[-3000:], file=sys.stderr)
        rows.append((line, max(m.main_hwm_mb, m.worker_hwm_mb), cold))
        shutil.rmtree(home, ignore_errors=True)
    peak = max(r[1] for r in rows)
    section = "\n".join([
        TITLE, "",
        f"`bench/bench_million_files.py --count {args.count} --kinds {','.join(kinds)}`; {machine(load_before)}; "
        f"page cache {'dropped before each import' if all(r[2] for r in rows) else 'not dropped (not root)'}.", "",
        "| run | exit | seconds | main process peak RSS MB | largest worker peak RSS MB | counts |",
        "|---|---|---|---|---|---|",
        *(r[0] for r in rows), "",
        f"Largest peak RSS {peak:.0f} MB (target < {RSS_LIMIT_MB} MB: {'met' if peak < RSS_LIMIT_MB else 'NOT met'}). "
        "`import share` of files that are not mail ends with exit 1 (\"no mail found\") by design.", "",
    ])
    print(section)
    if args.record:
        record(section, TITLE)


if __name__ == "__main__":
    main()
