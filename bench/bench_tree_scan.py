"""The tree scans of ``import eml`` and ``import maildir`` alone (no pipeline), against another checkout.

Each round runs, in a fresh process per checkout (alternating: old first, then new first, ...), the
scan of each tree to its end as the pipeline would consume it (``Importer.scan`` with a reporter that
counts nothing, the garbage collector's run thresholds set as ``toolkit.ingest`` sets them), ``--repeat``
times, and reports the median CPU seconds of one scan (``time.process_time``: this process, user and
system). The old side is a clean checkout (``git worktree add --detach DIR main``) run with this
environment's interpreter and ``PYTHONPATH=DIR``. Also compares the items of both sides (ref, kind,
folder, flags, size, cursor): any difference fails the bench.

    .venv/bin/python bench/bench_tree_scan.py --base /work/wt/driver-scan-base [--eml /work/bench40k/eml]
        [--maildir /work/bench40k/maildir] [--rounds 3] [--repeat 5]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

from bytecode import compile_checkout  # noqa: E402

_CHILD = r"""
import gc, hashlib, json, statistics, sys, time
from toolkit.ingest import RUN_GC_THRESHOLDS
gc.set_threshold(*RUN_GC_THRESHOLDS)
from importers.eml import EmlImporter
from importers.maildir import MaildirImporter
from toolkit.reporter import NullReporter
trees, repeat = json.loads(sys.argv[1]), int(sys.argv[2])
out = {}
for kind, path in trees:
    cls = EmlImporter if kind == "eml" else MaildirImporter
    times = []
    for _ in range(repeat):
        t0 = time.process_time()
        items = list(cls(path).scan(None, NullReporter()))
        times.append(time.process_time() - t0)
    digest = hashlib.sha256()
    for it in items:
        digest.update(repr((type(it).__name__, it.ref, getattr(it, "folder", None), getattr(it, "flags", None),
                            getattr(it, "size", None), getattr(it, "path", None), getattr(it, "reason", None),
                            getattr(it, "message", None), getattr(it, "internal_date", None), it.cursor)).encode())
    out[kind] = {"cpu": statistics.median(times), "items": len(items), "digest": digest.hexdigest()}
print(json.dumps(out))
"""


def _run(checkout: Path, trees: list, repeat: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(checkout))
    got = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(trees), str(repeat)], cwd=checkout, env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(got.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", type=Path, required=True, help="a clean checkout of main (the old side)")
    ap.add_argument("--eml", default="/work/bench40k/eml")
    ap.add_argument("--maildir", default="/work/bench40k/maildir")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    trees = [["eml", args.eml], ["maildir", args.maildir]]
    compile_checkout(REPO, args.base)  # bench/bytecode.py
    print(f"load before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}  cores: {os.cpu_count()}")
    runs: dict[str, list[dict]] = {"old": [], "new": []}
    for r in range(args.rounds):
        for side in (("old", "new") if r % 2 == 0 else ("new", "old")):
            runs[side].append(_run(args.base if side == "old" else REPO, trees, args.repeat))
    failed = False
    for kind, _ in trees:
        old = statistics.median(x[kind]["cpu"] for x in runs["old"])
        new = statistics.median(x[kind]["cpu"] for x in runs["new"])
        same = runs["old"][-1][kind]["digest"] == runs["new"][-1][kind]["digest"]
        failed |= not same
        print(f"{kind:8s} scan CPU-s old {old:.3f}  new {new:.3f}  ({(new - old) / old * 100:+.0f} %)  "
              f"items {runs['new'][-1][kind]['items']}  {'same items' if same else 'ITEMS DIFFER'}")
    print(f"load after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
