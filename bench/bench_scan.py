"""The per-mail header scan and body normalisation: compiled scans (toolkit/_native.c) against the
pure-Python references they replace, and optionally the whole `import eml` against another checkout.

Part 1 (one process, alternating rounds, CPU time of this thread): microseconds per mail of
``scan``, ``prepare`` without sealing, ``prepare`` with sealing, and ``hash_body`` of the mail with CRLF
line ends (as IMAP delivers it) over the first ``--count`` mails of
an EML tree, once with toolkit.headers bound to the compiled scans and once bound to the ``_py``
references. Part 2 (``--base DIR``, a checkout with its own .venv, e.g. a clean main): ``import eml``
of the tree into a fresh archive, alternating this checkout and DIR, ``--pairs`` times: wall seconds
and the CPU seconds of the whole process tree (the import and its workers). Prints a Markdown section.

    .venv/bin/python bench/bench_scan.py --eml /work/bench40k/eml --count 3000 --base /work/wt/native-scan-base
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from toolkit import headers  # noqa: E402
from toolkit.prepare import prepare  # noqa: E402
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bytecode import compile_checkout  # noqa: E402

BINDINGS = ("_content_end", "_has_blank_before_lf", "_body_marks", "_strip_blanks", "_crlf_to_lf", "_wanted_fields",
            "_fast_addresses")
#: compiled passes whose Python twin is the code that runs when they are None (the split, the usual header scan)
WHOLE = {"_native_split": "split_mail", "_scan_usual": "scan_usual"}


def bind(native: bool) -> None:
    """toolkit.headers bound to the compiled scans or to their pure-Python references."""
    for name, compiled in WHOLE.items():
        setattr(headers, name, getattr(headers._native, compiled, None) if native else None)
    for name in BINDINGS:
        if native:
            fn = getattr(headers._native, name.lstrip("_"), None)
            if name == "_fast_addresses":
                fn = headers._fast_addresses_native
        else:
            fn = getattr(headers, name + "_py")
        setattr(headers, name, fn)


def per_mail(fn, mails) -> float:
    t = time.thread_time()
    for m in mails:
        fn(m)
    return (time.thread_time() - t) / len(mails) * 1e6


def part1(mails: list[bytes], rounds: int) -> dict[str, dict[str, list[float]]]:
    key, u = os.urandom(32), uuid.uuid4()
    cases = {
        "scan": lambda m: headers.scan(m),
        "prepare, no seal": lambda m: prepare(m, None, u, None, limit=None),
        "prepare + seal": lambda m: prepare(m, key, u, b"x" * 16, limit=None),
    }
    crlf = {id(m): (c, headers.split_mail(c).body_start) for m in mails for c in [m.replace(b"\n", b"\r\n")]}
    cases["hash_body of the CRLF form (IMAP)"] = lambda m: headers.hash_body(*crlf[id(m)])
    out: dict[str, dict[str, list[float]]] = {c: {"python": [], "native": []} for c in cases}
    for side in (False, True):  # warm-up: both paths once, untimed
        bind(side)
        for fn in cases.values():
            per_mail(fn, mails)
    for _ in range(rounds):
        for side in ("python", "native"):
            bind(side == "native")
            for case, fn in cases.items():
                out[case][side].append(per_mail(fn, mails))
    bind(True)
    return out


def run_import(checkout: Path, eml: Path, work: Path) -> tuple[float, float]:
    """(wall s, CPU s of the import's whole process tree) of one `import eml` into a fresh archive."""
    py = checkout / ".venv" / "bin" / "python"
    archive = work / "archive"
    shutil.rmtree(archive, ignore_errors=True)
    env = dict(os.environ, MAILARCHIVE_PASSWORD=os.environ.get("MAILARCHIVE_PASSWORD", "bench-password-123"))
    subprocess.run([py, "-m", "toolkit", "--archive", archive, "--quiet", "init"], cwd=checkout, env=env,
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run([py, "-m", "toolkit", "--archive", archive, "--quiet", "--json", "import", "eml", eml],
                   cwd=checkout, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    shutil.rmtree(archive, ignore_errors=True)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--eml", type=Path, default=Path("/work/bench40k/eml"), help="an EML tree (bench/make_corpus.py)")
    ap.add_argument("--count", type=int, default=3000, help="mails of the tree for part 1")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--base", type=Path, help="another checkout with .venv: part 2 compares `import eml` with it")
    ap.add_argument("--pairs", type=int, default=3)
    args = ap.parse_args()
    compile_checkout(Path(__file__).resolve().parent.parent, args.base)  # bench/bytecode.py
    if headers._native is None:
        sys.exit("toolkit._native is not built: run `.venv/bin/pip install --no-deps -e .` with a C compiler")
    files = sorted(p for p in args.eml.rglob("*") if p.is_file())
    mails = [p.read_bytes() for p in files[:args.count]]
    load0 = os.getloadavg()
    res = part1(mails, args.rounds)
    print(f"## Per-mail scan: compiled scans against the pure-Python references ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})\n")
    print(f"`.venv/bin/python {' '.join(sys.argv)}`; {platform.processor() or platform.machine()}, "
          f"nproc {os.cpu_count()}, load average {load0[0]:.2f} at the start, {os.getloadavg()[0]:.2f} after part 1.\n")
    print(f"Part 1: {len(mails)} mails of {args.eml} ({sum(map(len, mails)) / len(mails) / 1024:.1f} KiB mean), "
          f"CPU µs per mail, median of {args.rounds} alternating rounds in one process:\n")
    print("| per mail | pure Python | compiled | saved |\n|---|---:|---:|---:|")
    for case, sides in res.items():
        py, nat = statistics.median(sides["python"]), statistics.median(sides["native"])
        print(f"| `{case}` | {py:.1f} µs | {nat:.1f} µs | {py - nat:.1f} µs ({(py - nat) / py:.0%}) |")
    if args.base:
        rows = {"this checkout": [], str(args.base): []}
        with tempfile.TemporaryDirectory(prefix="bench-scan-") as tmp:
            for _ in range(args.pairs):
                for label, checkout in ((str(args.base), args.base), ("this checkout", REPO)):
                    rows[label].append(run_import(checkout, args.eml, Path(tmp)))
        print(f"\nPart 2: `import eml {args.eml}` ({len(files)} mails) into a fresh archive, {args.pairs} alternating "
              f"pairs, median; CPU = the whole process tree (import + workers); load average {os.getloadavg()[0]:.2f} after:\n")
        print("| checkout | wall s | tree CPU s | runs (wall / CPU) |\n|---|---:|---:|---|")
        for label, runs in rows.items():
            print(f"| {label} | {statistics.median(w for w, _ in runs):.2f} | {statistics.median(c for _, c in runs):.2f} | "
                  + ", ".join(f"{w:.2f} / {c:.2f}" for w, c in runs) + " |")


if __name__ == "__main__":
    main()
