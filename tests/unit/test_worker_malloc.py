"""A local pack worker's malloc settings (toolkit/worker_entry.py ``steady_malloc``): buffers of a pack task's
sizes are reused from one task to the next, a large buffer is still given back (docs/reliability.md K1)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

_CHILD = r"""
import json, resource, sys
from toolkit.worker_entry import steady_malloc
steady = steady_malloc() if sys.argv[1] == "steady" else None

def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

def rss_kb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4

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
