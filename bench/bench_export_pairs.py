"""`export maildir` and `export eml` of one archive, this checkout against another (``--base``), in alternating pairs.

Each run exports the whole archive into a fresh directory on the same file system (``sync`` before each run, the
archive's packs warm), timed from process start to exit, with the CPU-seconds of the process (user + sys). The
archive is made once from ``--mbox`` (a bench/make_corpus.py ``corpus.mbox``) unless ``--archive`` names one.

    .venv/bin/python bench/bench_export_pairs.py --base /path/to/earlier/checkout [--mbox /work/bench40k/corpus.mbox]
        [--archive HOME] [--kinds maildir,eml] [--pairs 3] [--work DIR]
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_import import bench_env, cpu_model  # noqa: E402
from bytecode import compile_checkout  # noqa: E402

HERE = Path(__file__).resolve().parents[1]


def toolkit(checkout: Path, home: Path, *args: str) -> tuple[float, float]:
    """(seconds, CPU-seconds) of ``python -P -m toolkit --archive HOME ARGS`` run with ``checkout``'s code."""
    env = bench_env(PYTHONPATH=str(checkout))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run([sys.executable, "-P", "-m", "toolkit", "--archive", str(home), *args], env=env, check=True,
                   stdout=subprocess.DEVNULL, cwd=checkout)
    seconds = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return seconds, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", type=Path, required=True, help="the other checkout (the code before)")
    ap.add_argument("--mbox", type=Path, default=Path("/work/bench40k/corpus.mbox"))
    ap.add_argument("--archive", type=Path, help="an archive to export (default: one made from --mbox)")
    ap.add_argument("--kinds", default="maildir,eml")
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--work", type=Path, default=Path("/var/tmp/bench-export"))
    a = ap.parse_args()
    print(f"CPU: {cpu_model()}; {os.cpu_count()} CPUs; Python {sys.version.split()[0]}")
    compile_checkout(HERE, a.base)
    a.work.mkdir(parents=True, exist_ok=True)
    home = a.archive
    if home is None:
        home = a.work / "home"
        if not (home / "archive.toml").exists():
            shutil.rmtree(home, ignore_errors=True)
            toolkit(HERE, home, "init", "--kdf-profile", "test", "--key-backup", str(a.work / "kb.txt"))
            toolkit(HERE, home, "import", "mbox", str(a.mbox))
    out = a.work / "out"
    for kind in a.kinds.split(","):
        got: dict[str, list[tuple[float, float]]] = {"base": [], "this": []}
        for pair in range(a.pairs):
            order = [("this", HERE), ("base", a.base)]
            for name, checkout in (order if pair % 2 == 0 else order[::-1]):
                shutil.rmtree(out, ignore_errors=True)
                os.sync()
                got[name].append(toolkit(checkout, home, "export", kind, str(out)))
                print(f"  export {kind} {name}: {got[name][-1][0]:.2f} s, {got[name][-1][1]:.2f} CPU-s", flush=True)
        med = {k: statistics.median(s for s, _ in v) for k, v in got.items()}
        print(f"export {kind}: median of {a.pairs} pairs: base {med['base']:.2f} s, this {med['this']:.2f} s "
              f"({med['base'] / med['this']:.2f}x)")
    shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
