"""Peak memory of the commands that read the whole catalog or every pack, on a large existing archive (docs/reliability.md K8).

An archive is kept for ever and grows to millions of mails; every command must keep its memory bounded by its pack
and batch sizes, not by the catalog's size (issue 15: peak RSS under 400 MB in every run). This bench copies an
existing archive (``--archive``, e.g. the million tiny mails of ``bench/bench_tiny.py``) into a work directory, points
the copy's media at the copy, and runs each command of the survey on it, one after the other, measuring each
command's process tree (``wait4``): peak RSS of its largest process, wall, user and system CPU seconds.

    MAILARCHIVE_PASSWORD=... .venv/bin/python bench/bench_big_catalog.py --archive /work/k8b/a1m \
        [--only verify,verify-full] [--workers 2] [--again /work/k8b/again.mbox] [--stamp] [--record]

``--stamp`` ends the survey with the stamp commands: a throwaway TSA on 127.0.0.1 (the demo's,
toolkit/cli/demo_tsa.py) is configured, ``timestamp run --all`` stamps every mail (batches of 100,000), then
``verify --full`` (F05–F07 over every batch) and ``export evidence`` of every 500th mail (bundles spread over
every batch) run on the stamped copy.

``--record`` replaces the "## Memory at a million mails" section of bench/RESULTS.md. The commands write only
into the copy and the work directory (removed at the end unless ``--keep``).
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SECTION = "## Memory at a million mails"


def commands(home: Path, work: Path, workers: int, again: Path | None, stamp: bool = False) -> list[tuple[str, list[str]]]:
    """(name, arguments after ``--archive HOME --quiet``) of the survey, in the order run (the writing ones last)."""
    out = [
        ("stats", ["stats"]),
        ("sql", ["sql", "SELECT count(*), sum(size) FROM messages"]),
        ("verify", ["verify"]),
        ("verify-full", ["verify", "--full", "--workers", str(workers)]),
        ("timestamp-status", ["timestamp", "status"]),
        ("retention-report", ["retention", "report"]),
        ("purge-dry-run", ["purge", "--dry-run", "--actor", "bench"]),
        ("export-mbox-dry-run", ["export", "mbox", "--dry-run", str(work / "out.mbox")]),
        ("export-metadata", ["export", "metadata", str(work / "meta.parquet")]),
        ("export-mbox", ["export", "mbox", str(work / "mbox")]),
        ("export-eml-zip", ["export", "eml", "--zip", str(work / "eml.zip")]),
        ("db-backup", ["db", "backup", "--full"]),
        ("mirror", ["mirror", str(work / "mirror")]),
        ("mirror-status", ["mirror-status", str(work / "mirror")]),
        ("media-consolidate-dry-run", ["media", "consolidate", "--from", "1", "--into", "2", "--dry-run"]),
        ("media-consolidate", ["media", "consolidate", "--from", "1", "--into", "2"]),
    ]
    if again is not None:
        out += [("import-dry-run", ["import", "mbox", "--dry-run", str(again)]),
                ("import", ["import", "mbox", str(again)])]
    if stamp:
        out += [("timestamp-run", ["timestamp", "run", "--all"]),
                ("verify-full-stamped", ["verify", "--full", "--workers", str(workers)]),
                ("export-evidence", ["export", "evidence", "--where", "m.msg_id % 500 = 0", str(work / "evidence")])]
    out += [  # retention at scale (bench/RESULTS.md "retain1m"): a policy over every mail, a quarter requested and purged
        ("retention-set", ["retention", "set", "--years", "1", "--domain", "example.com", "--actor", "bench"]),
        ("retention-report-json", ["--json", "retention", "report"]),
        ("delete-request", ["delete", "request", "--where", "m.msg_id % 4 = 0", "--reason", "bench", "--actor", "bench"]),
        ("delete-approve", ["delete", "approve", "1", "--actor", "officer"]),
        ("purge-dry-run-approved", ["--json", "purge", "--dry-run", "--actor", "officer"]),
        ("purge", ["purge", "--actor", "officer"]),
        ("verify-full-after-purge", ["verify", "--full", "--workers", str(workers)]),
    ]
    return out


def start_tsa(home: Path, work: Path):
    """The demo's TSA, configured as the copy's: stopped by the caller."""
    sys.path.insert(0, str(REPO))
    from toolkit.cli.demo_tsa import DemoTsa

    tsa = DemoTsa(work / "tsa")
    r = run(home, ["timestamp", "configure", "--tsa-url", tsa.url, "--ca-cert", str(tsa.ca_cert_path)])
    if r["rc"] != 0:
        tsa.stop()
        sys.exit(f"timestamp configure failed: {r['err']}")
    return tsa


def copy_archive(src: Path, dest: Path) -> None:
    """The archive and its media, with the copy's archive.toml pointing at the copied media."""
    shutil.copytree(src, dest, symlinks=True)
    toml = dest / "archive.toml"
    text = toml.read_text()
    for loc in re.findall(r'location = "([^"]+)"', text):
        p = Path(loc)
        if p.is_absolute() and p.parent == src:
            text = text.replace(f'"{loc}"', f'"{dest / p.name}"')
        elif p.is_absolute() or "://" in loc:  # the commands would write into the original's medium
            shutil.rmtree(dest)
            sys.exit(f"medium {loc} is not a directory of {src}: copy the archive with its media inside its home")
    toml.write_text(text)


def run(home: Path, args: list[str]) -> dict:
    cmd = [sys.executable, "-m", "toolkit", "--archive", str(home), "--quiet", *args]
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.monotonic() - t0
    err = p.stderr.read().decode(errors="replace")
    p.stderr.close()
    p.returncode = os.waitstatus_to_exitcode(status)
    return {"rc": p.returncode, "wall": wall, "user": ru.ru_utime, "sys": ru.ru_stime, "rss_mb": ru.ru_maxrss / 1024,
            "err": err.strip().splitlines()[-1:] if p.returncode else []}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--archive", type=Path, required=True, help="an existing archive home (copied, never written)")
    ap.add_argument("--only", default=None, help="comma-separated command names of the survey (default: all)")
    ap.add_argument("--workers", type=int, default=2, help="verify --full --workers (default 2)")
    ap.add_argument("--again", type=Path, default=None, help="an mbox of new mail: import --dry-run and import of it")
    ap.add_argument("--stamp", action="store_true", help="then stamp the copy (a local TSA), verify --full it and "
                    "export evidence of every 500th mail")
    ap.add_argument("--dir", type=Path, default=None, help="parent of the work directory (default: the system temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--record", action="store_true", help=f"replace the {SECTION!r} section of bench/RESULTS.md")
    a = ap.parse_args()
    if "MAILARCHIVE_PASSWORD" not in os.environ:
        sys.exit("set MAILARCHIVE_PASSWORD (the archive's key password)")
    work = Path(tempfile.mkdtemp(prefix="bench-big-", dir=a.dir))
    try:
        home = work / "home"
        copy_archive(a.archive.resolve(), home)
        chosen = commands(home, work, a.workers, a.again, a.stamp)
        if a.only:
            names = set(a.only.split(","))
            chosen = [c for c in chosen if c[0] in names]
        if any(name.startswith("media-consolidate") for name, _ in chosen):
            run(home, ["media", "add", str(work / "medium-2")])  # medium 2, made the active one: a medium
            run(home, ["media", "activate", "2"])                 # that is active is never consolidated
        tsa = start_tsa(home, work) if any(name == "timestamp-run" for name, _ in chosen) else None
        rows = []
        for name, args in chosen:
            r = run(home, args)
            rows.append((name, args, r))
            print(f"{name:28} rc {r['rc']:>3}  peak {r['rss_mb']:7.0f} MB  wall {r['wall']:7.1f} s  "
                  f"CPU {r['user'] + r['sys']:7.1f} s  {' '.join(r['err'])}", flush=True)
        if tsa is not None:
            tsa.stop()
        load = os.getloadavg()
        print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
        if a.record:
            record(a, rows, load)
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)


def record(a, rows, load) -> None:
    lines = [SECTION, "", f"`MAILARCHIVE_PASSWORD=... .venv/bin/python bench/bench_big_catalog.py --archive {a.archive}"
             + (f" --again {a.again}" if a.again else "") + (" --stamp" if a.stamp else "") + f" --workers {a.workers} --record` "
             f"(load average {load[0]:.1f}). Each command's process tree: peak RSS of its largest process.", "",
             "| command | peak RSS MB | wall s | CPU s | exit |", "|---|---:|---:|---:|---:|"]
    for name, args, r in rows:
        lines.append(f"| `{' '.join(args)}` | {r['rss_mb']:.0f} | {r['wall']:.1f} | {r['user'] + r['sys']:.1f} | {r['rc']} |")
    path = REPO / "bench" / "RESULTS.md"
    text = path.read_text()
    block = "\n".join(lines) + "\n"
    if SECTION in text:
        start = text.index(SECTION)
        nxt = text.find("\n## ", start + len(SECTION))
        text = text[:start] + block + (text[nxt + 1:] if nxt >= 0 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + block
    path.write_text(text)


if __name__ == "__main__":
    main()
