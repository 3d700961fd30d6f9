"""``migrate run`` progress (docs/cli.md "migrate"): one row per source with its mails and bytes, and
a row for all sources whose total is the number of sources (for the ETA); the core only reports,
the command line draws."""
from __future__ import annotations

import threading

import pytest

from toolkit.archive import Archive
from toolkit.migrate.plan import load_plan
from toolkit.migrate.run import run_plan
from toolkit.migrate.schedule import TOTAL
from toolkit.migrate.sources import ServerOptions


class Recorder:
    """Every progress call, from any thread."""

    def __init__(self):
        self.calls: list[tuple] = []
        self._lock = threading.Lock()

    def _add(self, *call):
        with self._lock:
            self.calls.append(call)

    def start(self, task, total=None, unit="items"):
        self._add("start", task, total, unit)

    def advance(self, task, n=1, **fields):
        self._add("advance", task, n, fields.get("bytes", 0))

    def finish(self, task):
        self._add("finish", task)

    def warn(self, message):
        self._add("warn", message)

    def error(self, message):
        self._add("error", message)

    def info(self, message):
        self._add("info", message)


@pytest.fixture
def archive(tmp_path):
    a = Archive.create(tmp_path / "home", str(tmp_path / "m1"))
    yield a
    a.close()


def test_one_progress_row_per_source_and_a_total_row(archive, tmp_path):
    sizes = {}
    lines = ["kind,location,user,password_file,owner,folders"]
    for j, count in enumerate((3, 5, 2)):
        root = tmp_path / f"md{j}"
        for sub in ("cur", "new", "tmp"):
            (root / sub).mkdir(parents=True)
        for i in range(count):
            raw = f"From: x@example.org\nSubject: {j} {i}\nMessage-ID: <{j}-{i}@x>\n\n{'y' * (100 * i)}\n".encode()
            (root / "cur" / f"{i}.M{i}P1.h:2,").write_bytes(raw)
        sizes[j] = (count, sum(p.stat().st_size for p in (root / "cur").iterdir()))
        lines.append(f"maildir,md{j},,,,")
    (tmp_path / "plan.csv").write_text("\n".join(lines) + "\n")
    rec = Recorder()
    r = run_plan(archive, load_plan(tmp_path / "plan.csv"), {}, ServerOptions(), reporter=rec, parallel=2,
                 ingest_options={"workers": 0})
    assert r["status"] == "complete" and r["archived"] == 10
    assert ("start", TOTAL, 3, "sources") in rec.calls
    assert sum(c[2] for c in rec.calls if c[:2] == ("advance", TOTAL)) == 3
    rows = sorted({c[1] for c in rec.calls if c[0] == "start" and c[1] != TOTAL})
    assert len(rows) == 3
    for j, row in enumerate(rows):
        mine = [c for c in rec.calls if c[0] in ("start", "advance", "finish") and c[1] == row]
        assert mine[0] == ("start", row, None, "mails") and mine[-1] == ("finish", row)
        advanced = [c for c in mine if c[0] == "advance"]
        assert (sum(c[2] for c in advanced), sum(c[3] for c in advanced)) == sizes[j]


def test_sigint_ends_the_run_as_interrupted_and_a_rerun_completes(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.cli import PASSWORD, mailarchive

    lines = ["kind,location,user,password_file,owner,folders"]
    for j in range(6):
        root = tmp_path / f"md{j}"
        for sub in ("cur", "new", "tmp"):
            (root / sub).mkdir(parents=True)
        for i in range(150):
            raw = f"From: x@example.org\nSubject: {j} {i}\nMessage-ID: <{j}-{i}@x>\n\n{'z' * 3000}\n".encode()
            (root / "cur" / f"{i}.M{i}P1.h:2,").write_bytes(raw)
        lines.append(f"maildir,md{j},,,,")
    plan = tmp_path / "plan.csv"
    plan.write_text("\n".join(lines) + "\n")
    home = tmp_path / "home"
    mailarchive(home, "init", "--medium", str(tmp_path / "medium"), "--key-backup", str(tmp_path / "kb.txt"))
    env = {**os.environ, "MAILARCHIVE_PASSWORD": PASSWORD, "MAILARCHIVE_PACK_TARGET": "20000", "MAILARCHIVE_WORKERS": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "toolkit", "--archive", str(home), "--json", "migrate", "run",
                             str(plan), "--parallel", "3"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None and not list((tmp_path / "medium").rglob("*.pack")):
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be interrupted: make the plan larger"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    import json

    r = json.loads(out)
    assert r["status"] == "interrupted" and r["archived"] < 900
    assert {s["status"] for s in r["sources"]} <= {"complete", "interrupted", "not-run"}
    again = mailarchive(home, "migrate", "run", str(plan), "--parallel", "3", json_out=True).result
    assert again["status"] == "complete"
    assert r["archived"] + again["archived"] == 900  # nothing lost, nothing archived twice
