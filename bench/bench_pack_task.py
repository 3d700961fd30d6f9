#!/usr/bin/env python3
"""One worker's pack task of ``import eml``, in one process: CPU seconds per mail of
:func:`toolkit.pack_tasks.build_pack` over local files (read, cut, check, prepare, seal, write, the
two-phase question pickled as the driver's queue pickles it), and of unpickling that question (the
driver's side). This checkout against another one (``--base``), alternating, each side in its own
process; the figures are the best of the rounds.

    .venv/bin/python bench/bench_pack_task.py --base /work/wt/worker-cpu-base --tree /work/bench40k/eml \\
        [--mails 1600] [--rounds 5]

1,600 mails of ~40 KB are one task of a real import (a 64 MiB chunk). The files are read once before
(warm cache); the pack goes to a temporary directory. The process starts as a local worker does
(``toolkit.worker_entry.quiet_gc`` where the checkout has it); worker start-up and imports are not counted
here (bench/bench_worker_cpu.py counts everything).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ab_children import parser, run_pairs  # noqa: E402

_CHILD = r"""
import functools, json, os, pickle, sys, tempfile, time, uuid
from multiprocessing.reduction import ForkingPickler
from toolkit.pack_tasks import PackTask, MediumAccess, Sealing, build_pack
from toolkit.prepare import LocalFile
from toolkit.storage.local import LocalStorage
from importers.eml import cut_wrapper, not_mail

paths, rounds = json.loads(sys.argv[1]), int(sys.argv[2])
try:  # what a local worker process does when it starts (the code of this branch on)
    from toolkit.worker_entry import quiet_gc
    quiet_gc()
except ImportError:
    pass
for p in paths:
    with open(p, "rb") as f:
        f.read()
jobs = [LocalFile(p.encode(), not_mail, functools.partial(cut_wrapper, force_raw=False)) for p in paths]
key, au = os.urandom(32), uuid.uuid4()
best = {"task": 1e9, "unpickle": 1e9}
with tempfile.TemporaryDirectory() as tmp:
    storage = LocalStorage(tmp)
    for _ in range(rounds):
        asked = []
        def decide(prepared, records):
            asked.append(bytes(ForkingPickler.dumps((b"p" * 16, 0, prepared, records))))
            return set(records)
        task = PackTask(jobs, MediumAccess(1, tmp), Sealing(key, au), pack_id=os.urandom(16), two_phase=True)
        t = time.thread_time()
        res = build_pack(task, storage=storage, decide=decide)
        bytes(ForkingPickler.dumps(res))
        best["task"] = min(best["task"], time.thread_time() - t)
        t = time.thread_time()
        pickle.loads(asked[0])
        best["unpickle"] = min(best["unpickle"], time.thread_time() - t)
        best["question_bytes"] = len(asked[0])
print(json.dumps(best))
"""


def main() -> None:
    args = parser(__doc__.splitlines()[0], rounds=5).parse_args()
    paths, got = run_pairs(_CHILD, args)
    n = len(paths)
    print(f"{n} mails, load average {os.getloadavg()[0]:.2f}")
    for name, rs in got.items():
        task = min(r["task"] for r in rs) / n * 1e6
        unp = min(r["unpickle"] for r in rs) / n * 1e6
        print(f"{name:4}: worker {task:6.1f} µs/mail  driver unpickle {unp:5.1f} µs/mail  question "
              f"{rs[0]['question_bytes'] / n:.0f} B/mail")


if __name__ == "__main__":
    main()
