"""PST/OST import throughput against ``readpst -e -D -8`` converting the same stores (issue 17).

For each store of the d-pst-msg corpus that holds mail (and for all of them together) it times, warm
page cache, best of ``--repeat`` runs:

* ``mailarchive import pst STORE`` into a fresh archive (the whole CLI: process start, catalog,
  conversion, embedded messages through readpst, packs, commit; ``init`` is not timed);
* the conversion alone in one process (``importers.pst.PstImporter.scan``: pypff reading and the
  MAPI → RFC 5322 builder, no archive), to show where the time goes;
* ``readpst -e -D -8 -j 0 -o TMP STORE`` (Debian pst-utils), the external converter.

mails/s counts the mails the import saw (mail items plus recovered embedded messages); MB/s is
the store's size over the time. Prints a Markdown section; ``--record`` rewrites the "## PST import"
section of bench/RESULTS.md (other sections are kept).

    .venv/bin/python bench/bench_pst.py [--repeat 3] [--record]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from bench_import import bench_env, cpu_model, loadavg, mailarchive_cmd  # noqa: E402

from tests.corpora import corpora_dir  # noqa: E402

STORES = ["aspose-email/Outlook.pst", "aspose-email/passwordprotectedPST.pst", "aspose-email/SampleOstFile.ost"]


def best(fn, repeat: int) -> tuple[float, object]:
    out, times = None, []
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def run_import(store: Path, env: dict) -> tuple[float, int]:
    with tempfile.TemporaryDirectory(prefix="bench-pst-") as tmp:
        home = Path(tmp) / "home"
        subprocess.run(mailarchive_cmd() + ["--archive", str(home), "--quiet", "init", "--medium",
                                            str(Path(tmp) / "medium"), "--key-backup", str(Path(tmp) / "kb.txt")],
                       env=env, check=True, stdout=subprocess.DEVNULL)
        t = time.perf_counter()
        r = subprocess.run(mailarchive_cmd() + ["--archive", str(home), "--json", "import", "pst", str(store)],
                           env=env, capture_output=True)
        elapsed = time.perf_counter() - t
        if r.returncode not in (0, 1):
            sys.exit(f"import pst {store} failed ({r.returncode}): {r.stderr.decode()[-2000:]}")
        return elapsed, json.loads(r.stdout)["seen"]


def convert_only(store: Path) -> int:
    from importers.pst import PstImporter
    from toolkit.reporter import NullReporter
    from toolkit.source import SourceMail

    return sum(isinstance(i, SourceMail) for i in PstImporter(str(store)).scan(None, NullReporter()))


def run_readpst(store: Path) -> int:
    with tempfile.TemporaryDirectory(prefix="bench-readpst-") as out:
        subprocess.run(["readpst", "-e", "-D", "-8", "-q", "-j", "0", "-o", out, str(store)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return sum(1 for _, _, files in os.walk(out) for f in files if f.endswith(".eml"))


def measure(store: Path, repeat: int, env: dict) -> dict:
    size = store.stat().st_size
    imports = [run_import(store, env) for _ in range(repeat)]
    t_import, seen = min(imports)
    t_conv, converted = best(lambda: convert_only(store), repeat)
    t_rp, eml = best(lambda: run_readpst(store), repeat)
    return {"store": store.name, "mb": size / 1e6, "seen": seen, "t_import": t_import, "converted": converted,
            "t_conv": t_conv, "eml": eml, "t_rp": t_rp}


def report(rows: list[dict], repeat: int, load_before: str) -> str:
    lines = [
        "## PST import", "",
        f"`bench/bench_pst.py --repeat {repeat}` on nproc {os.cpu_count()}, {cpu_model()}, Python "
        f"{platform.python_version()}, {platform.system()} {platform.release()}, readpst "
        f"{_readpst_version()}, load average before {load_before}, after {loadavg()}. Warm page cache, "
        "best of the runs; stores of the d-pst-msg corpus.", "",
        "| store | MB | contender | mails | seconds | mails/s | MB/s |", "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        for name, n, t in (("`mailarchive import pst` (CLI, archived)", r["seen"], r["t_import"]),
                           ("conversion alone, in-process (pypff + builder)", r["converted"], r["t_conv"]),
                           ("`readpst -e -D -8 -j 0`", r["eml"], r["t_rp"])):
            lines.append(f"| {r['store']} | {r['mb']:.1f} | {name} | {n} | {t:.2f} | {n / t:.0f} | {r['mb'] / t:.1f} |")
    lines.append("")
    return "\n".join(lines)


def _readpst_version() -> str:
    out = subprocess.run(["readpst", "-V"], capture_output=True).stdout.decode()
    m = re.search(r"v(\d[\w.]*)", out)
    return m.group(1) if m else "unknown"


def record(section: str) -> None:
    path = REPO / "bench" / "RESULTS.md"
    text = path.read_text()
    parts = re.split(r"(?m)^(?=## )", text)
    kept = [p for p in parts if not p.startswith("## PST import")]
    path.write_text("".join(kept).rstrip("\n") + "\n\n" + section)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--record", action="store_true")
    args = ap.parse_args()
    if not shutil.which("readpst"):
        sys.exit("readpst is missing: apt-get install -y pst-utils (Debian package)")
    load_before = loadavg()
    env = bench_env()
    rows = [measure(corpora_dir() / "d-pst-msg" / rel, args.repeat, env) for rel in STORES]
    section = report(rows, args.repeat, load_before)
    print(section)
    if args.record:
        record(section)


if __name__ == "__main__":
    main()
