"""The malloc settings of a local pack worker (toolkit/worker_entry.py ``steady_malloc``) and of an import's main process
(toolkit/process_guard.py ``steady_large_buffers``): buffers of a pack task's
sizes are reused from one task to the next, a large buffer is still given back (docs/reliability.md K1)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: what both children measure with: their minor page faults and resident set
_HELPERS = r"""
import json, resource, sys

def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

def rss_kb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4
"""

_CHILD = _HELPERS + r"""
from toolkit.worker_entry import steady_malloc
steady = steady_malloc() if sys.argv[1] == "steady" else None


bytearray(1 << 20)  # a pack's block: with glibc's defaults, the heap's top is given back above 2 MiB free
records = [bytearray(20_000) for _ in range(400)]  # a task's records held until the driver's answer (8 MB)
del records
before = faults()
for _ in range(10):  # the next tasks: the same records again
    records = [bytearray(20_000) for _ in range(400)]
    del records
reused = faults() - before
base = rss_kb()
big = bytearray(64 << 20)  # above the threshold: mapped and given back on its own
held = rss_kb() - base
del big
print(json.dumps({"steady": steady, "faults": reused, "held_kb": held, "left_kb": rss_kb() - base}))
"""


def _run(mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", _CHILD, mode], cwd=ROOT, check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_a_worker_reuses_a_task_s_buffers_and_gives_a_large_one_back():
    steady, default = _run("steady"), _run("default")
    assert steady["steady"] is True
    # ten tasks of ~2,000 pages each: with glibc's defaults each task's memory is handed back when it is freed
    # and faulted in afresh by the next; the worker's settings keep it for the next task
    assert default["faults"] >= 10 * 1500
    assert steady["faults"] < 200
    # a 64 MiB buffer is resident while held and given back when freed, as before
    assert steady["held_kb"] >= 60 * 1024
    assert steady["left_kb"] < 4 * 1024



_DRIVER = _HELPERS + r"""
from toolkit.process_guard import steady_large_buffers
from importers.mbox import LOCAL_BLOCK, MboxSplitter
steady = steady_large_buffers() if sys.argv[2] == "steady" else None


before = faults()
for _ in range(3):  # import mbox's scan in the main process: the file read in blocks of 4 MiB, each freed once scanned
    with open(sys.argv[1], "rb", buffering=0) as f:
        count = sum(1 for _ in MboxSplitter(f, keep_bytes=False, block=LOCAL_BLOCK))
reads = faults() - before
base = rss_kb()
big = bytearray(64 << 20)  # above the threshold: mapped and given back on its own
held = rss_kb() - base
del big
print(json.dumps({"steady": steady, "count": count, "faults": reads, "held_kb": held, "left_kb": rss_kb() - base}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_an_import_s_main_process_reuses_its_read_blocks_and_gives_a_large_buffer_back(tmp_path):
    source = tmp_path / "big.mbox"
    with open(source, "wb") as f:  # ~52 MiB of 44 KB mails
        for i in range(1200):
            f.write(f"From a@b Sat Jan  1 00:00:00 2022\nFrom: a{i}@example.org\nSubject: m {i}\n\n".encode()
                    + (f"line {i} " * 10 + "\n").encode() * 500 + b"\n")

    def run(mode: str) -> dict:
        out = subprocess.run([sys.executable, "-c", _DRIVER, str(source), mode], cwd=ROOT, check=True,
                             capture_output=True, text=True)
        return json.loads(out.stdout)

    steady, default = run("steady"), run("default")
    assert steady["steady"] is True and steady["count"] == default["count"] == 1200
    # three scans of ~13 blocks of 1,024 pages: with glibc's defaults many are faulted in afresh (~14,000 here), with
    # the import's settings the first blocks' memory serves the rest (~3,000: the first scan's own)
    assert steady["faults"] < 5000 and default["faults"] > 2 * steady["faults"]
    assert steady["held_kb"] >= 60 * 1024 and steady["left_kb"] < 4 * 1024
