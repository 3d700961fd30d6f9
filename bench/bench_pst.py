"""PST/OST import throughput against ``readpst -e -D -8`` converting the same stores.

For each store of the d-pst-msg corpus that holds mail, for a directory of copies of the largest
store, and for a store with no items (the fixed cost), it times, warm page cache, best of
``--repeat`` runs:

* ``mailarchive import pst STORE`` into a fresh archive (the whole CLI: process start, catalog,
  conversion, embedded messages through readpst, packs, commit; ``init`` is not timed);
* the conversion alone in one process (``importers.pst.PstImporter.scan``: pypff reading and the
  MAPI → RFC 5322 builder, no archive), to show where the time goes, and the same without RTF
  de-encapsulation (RTFDE), the largest single cost;
* the floor of the reader: pypff opening the store and reading every item's properties, recipient
  table, RTF body and attachment bytes, with no conversion;
* ``readpst -e -D -8 -j 0 -o TMP STORE`` (Debian pst-utils), the external converter.

The CLI's fixed cost per run (process start, archive open, one commit) is the import of a store
with no items; the CLI's cost per mail is its time less that, over the mails. The corpus stores are
small (18–88 mails), so a directory of ``--copies`` copies of the OST is imported in one run too
(the copies are exact duplicates: after the first, the archive stores nothing new but still converts
and decides every mail); readpst converts each copy in turn.

mails/s counts the mails the import saw (mail items plus recovered embedded messages); MB/s is
the store's size over the time. Prints a Markdown section; ``--record`` rewrites the "## PST import"
section of bench/RESULTS.md (other sections are kept).

    .venv/bin/python bench/bench_pst.py [--repeat 3] [--copies 4] [--record]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from bench_import import bench_env, cpu_model, loadavg, mailarchive_cmd  # noqa: E402

from tests.corpora import corpora_dir  # noqa: E402

STORES = ["aspose-email/Outlook.pst", "aspose-email/passwordprotectedPST.pst", "aspose-email/SampleOstFile.ost"]
EMPTY = "aspose-email/PersonalStorage.pst"  # a store with no items: the CLI's fixed cost
LARGEST = "aspose-email/SampleOstFile.ost"


def cpu_seconds() -> float:
    """CPU time (user + system) of this process and of its waited-for children (the CLI, readpst):
    on a shared machine a steadier figure than wall time."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


@dataclass
class Timed:
    """A run that timed itself (its setup left out)."""

    wall: float
    cpu: float
    result: object


def best(fn, repeat: int) -> tuple[float, float, object]:
    """(best wall seconds, best CPU seconds, result) over ``repeat`` runs."""
    out, walls, cpus = None, [], []
    for _ in range(repeat):
        t, c = time.perf_counter(), cpu_seconds()
        out = fn()
        wall, cpu = time.perf_counter() - t, cpu_seconds() - c
        if isinstance(out, Timed):
            wall, cpu, out = out.wall, out.cpu, out.result
        walls.append(wall)
        cpus.append(cpu)
    return min(walls), min(cpus), out


def run_import(store: Path, env: dict, code: Path | None = None) -> Timed:
    """One ``import pst`` into a fresh archive (its ``init`` not timed): the mails it saw. ``code``:
    a checkout of other code to run instead (``--baseline``)."""
    cmd = [sys.executable, "-m", "toolkit"] if code else mailarchive_cmd()
    with tempfile.TemporaryDirectory(prefix="bench-pst-") as tmp:
        home = Path(tmp) / "home"
        subprocess.run(cmd + ["--archive", str(home), "--quiet", "init", "--medium",
                              str(Path(tmp) / "medium"), "--key-backup", str(Path(tmp) / "kb.txt")],
                       env=env, check=True, stdout=subprocess.DEVNULL, cwd=code)
        t, c = time.perf_counter(), cpu_seconds()
        r = subprocess.run(cmd + ["--archive", str(home), "--json", "import", "pst", str(store)],
                           env=env, capture_output=True, cwd=code)
        wall, cpu = time.perf_counter() - t, cpu_seconds() - c
        if r.returncode not in (0, 1):
            sys.exit(f"import pst {store} failed ({r.returncode}): {r.stderr.decode()[-2000:]}")
        return Timed(wall, cpu, json.loads(r.stdout)["seen"])


def convert_only(store: Path, deencapsulate: bool = True) -> int:
    from importers.pst import PstImporter
    from toolkit import mapi
    from toolkit.reporter import NullReporter
    from toolkit.source import SourceMail

    mapi._RTF_MEMO.clear()  # each run starts as a fresh CLI process does
    token = mapi._DEENCAPSULATE.set(deencapsulate)
    try:
        return sum(isinstance(i, SourceMail) for i in PstImporter(str(store)).scan(None, NullReporter()))
    finally:
        mapi._DEENCAPSULATE.reset(token)


_CONVERT_ELSEWHERE = """
import json, resource, sys, time
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bytecode import compile_checkout  # noqa: E402
sys.path.insert(0, ".")
from importers.pst import PstImporter
from toolkit.reporter import NullReporter
from toolkit.source import SourceMail
def cpu():
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime
t, c = time.perf_counter(), cpu()
n = sum(isinstance(i, SourceMail) for i in PstImporter(sys.argv[1]).scan(None, NullReporter()))
print(json.dumps([time.perf_counter() - t, cpu() - c, n]))
"""


def convert_elsewhere(store: Path, code: Path) -> Timed:
    """The conversion alone with the code of another checkout, in a process of its own (its start not timed)."""
    out = subprocess.run([sys.executable, "-c", _CONVERT_ELSEWHERE, str(store)], cwd=code, capture_output=True,
                         check=True).stdout
    wall, cpu, n = json.loads(out)
    return Timed(wall, cpu, n)


def read_floor(store: Path) -> int:
    """pypff alone: every item's property data, recipient table, RTF body (decompressed by libpff) and
    attachment bytes, nothing decoded or converted; the mail items."""
    import pypff

    from importers.pst import _folders, is_mail_class

    def data(item) -> bytes | None:
        cls = None
        for rs in item.record_sets:
            for e in rs.entries:
                d = e.data
                if e.entry_type == 0x001A:
                    cls = d
        return cls

    paths = [store] if store.is_file() else sorted(p for p in store.iterdir() if p.is_file())
    mails = 0
    for path in paths:
        f = pypff.file()
        f.open(str(path))
        try:
            for folder, _ in _folders(f.root_folder, None):
                for i in range(folder.number_of_sub_messages):
                    m = folder.get_sub_message(i)
                    if not isinstance(m, pypff.message):
                        continue
                    cls = data(m)
                    mails += is_mail_class((cls or b"I\0P\0M\0.\0N\0o\0t\0e\0").decode("utf-16-le", "replace")
                                           if cls and b"\0" in cls else (cls or b"IPM.Note").decode("cp1252"))
                    if m.recipients is not None:
                        data(m.recipients)
                    try:
                        m.rtf_body
                    except OSError:
                        pass
                    for k in range(m.number_of_attachments):
                        a = m.get_attachment(k)
                        data(a)
                        if a.size:
                            a.read_buffer(a.size)
        finally:
            f.close()
    return mails


def run_readpst(store: Path) -> int:
    paths = [store] if store.is_file() else sorted(p for p in store.iterdir() if p.is_file())
    n = 0
    for path in paths:
        with tempfile.TemporaryDirectory(prefix="bench-readpst-") as out:
            subprocess.run(["readpst", "-e", "-D", "-8", "-q", "-j", "0", "-o", out, str(path)], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            n += sum(1 for _, _, files in os.walk(out) for f in files if f.endswith(".eml"))
    return n


def _size(store: Path) -> int:
    return store.stat().st_size if store.is_file() else sum(p.stat().st_size for p in store.iterdir())


def measure(store: Path, repeat: int, env: dict, name: str | None = None, baseline: Path | None = None) -> dict:
    runs = [] if baseline is None else [
        (f"`import pst`, baseline code ({_commit(baseline)})", lambda: run_import(store, env, baseline)),
        (f"conversion alone, baseline code ({_commit(baseline)})", lambda: convert_elsewhere(store, baseline))]
    runs += [("`mailarchive import pst` (CLI, archived)", lambda: run_import(store, env)),
            ("conversion alone, in-process (pypff + builder)", lambda: convert_only(store)),
            ("conversion alone, RTF not de-encapsulated", lambda: convert_only(store, deencapsulate=False)),
            ("floor: pypff reads every item, no conversion", lambda: read_floor(store)),
            ("`readpst -e -D -8 -j 0`", lambda: run_readpst(store))]
    return {"store": name or store.name, "mb": _size(store) / 1e6,
            "rows": [(label, *best(fn, repeat)) for label, fn in runs]}


def report(rows: list[dict], fixed: tuple[float, float], repeat: int, copies: int, load_before: str) -> str:
    lines = [
        "## PST import", "",
        f"`bench/bench_pst.py --repeat {repeat} --copies {copies}` on nproc {os.cpu_count()}, {cpu_model()}, Python "
        f"{platform.python_version()}, {platform.system()} {platform.release()}, readpst "
        f"{_readpst_version()}, load average before {load_before}, after {loadavg()}. Warm page cache, "
        "best of the runs; stores of the d-pst-msg corpus. CPU s is user + system time of the process and "
        "its children (steadier than wall time on a loaded machine); mails/s and ms/mail are by CPU time.", "",
        f"CLI fixed cost per run (`import pst` of {Path(EMPTY).name}, a store with no items): {fixed[0]:.2f} s wall, "
        f"{fixed[1]:.2f} s CPU.", "",
        "| store | MB | contender | mails | wall s | CPU s | mails/s | MB/s | ms/mail |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        for label, wall, cpu, n in r["rows"]:
            lines.append(f"| {r['store']} | {r['mb']:.1f} | {label} | {n} | {wall:.2f} | {cpu:.2f} | "
                         f"{n / max(cpu, 1e-3):.0f} | {r['mb'] / max(cpu, 1e-3):.1f} | {1000 * cpu / max(n, 1):.1f} |")
        _, wall, cpu, n = next(row for row in r["rows"] if row[0].startswith("`mailarchive import pst`"))
        per = max(cpu - fixed[1], 0)
        lines.append(f"| {r['store']} | {r['mb']:.1f} | CLI per mail (CPU less the fixed cost) | {n} | "
                     f"{max(wall - fixed[0], 0):.2f} | {per:.2f} | {n / max(per, 1e-3):.0f} | | {1000 * per / max(n, 1):.1f} |")
    lines.append("")
    return "\n".join(lines)


def _commit(code: Path) -> str:
    marker = code / "COMMIT"
    return marker.read_text().strip()[:7] if marker.exists() else code.name


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
    ap.add_argument("--copies", type=int, default=4, help="copies of the largest store imported in one run")
    ap.add_argument("--record", action="store_true")
    ap.add_argument("--baseline", type=Path, help="a checkout of earlier code (e.g. `git archive main | tar -x -C DIR`, "
                                                  "with the commit in DIR/COMMIT) timed in the same run")
    args = ap.parse_args()
    compile_checkout(Path(__file__).resolve().parent.parent, args.baseline)  # bench/bytecode.py
    if not shutil.which("readpst"):
        sys.exit("readpst is missing: apt-get install -y pst-utils (Debian package)")
    load_before = loadavg()
    env = bench_env()
    corpus = corpora_dir() / "d-pst-msg"
    fixed = best(lambda: run_import(corpus / EMPTY, env), args.repeat)[:2]
    rows = [measure(corpus / rel, args.repeat, env, baseline=args.baseline) for rel in STORES]
    with tempfile.TemporaryDirectory(prefix="bench-pst-copies-") as tmp:
        for k in range(args.copies):
            shutil.copy(corpus / LARGEST, Path(tmp) / f"copy{k}.ost")
        rows.append(measure(Path(tmp), args.repeat, env, name=f"{args.copies} × {Path(LARGEST).name}",
                            baseline=args.baseline))
    section = report(rows, fixed, args.repeat, args.copies, load_before)
    print(section)
    if args.record:
        record(section)


if __name__ == "__main__":
    main()
