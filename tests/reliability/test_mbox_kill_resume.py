"""kill -9 in the middle of an ``import mbox`` whose workers read the messages themselves (docs/reliability.md
A1, K3; toolkit/file_region.py): the rerun resumes at the cursor inside the mbox and the archive holds
exactly the blobs of a clean run, each once, every row's pack on the medium."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli import PASSWORD, mailarchive

N_MAILS = 160
PACK_TARGET = 48 * 1024  # many small packs and chunks: the kills land mid-mbox


def _make_mbox(path: Path) -> None:
    """An mboxrd file: quoted From_ lines, a CRLF message now and then, a few exact duplicates."""
    out = []
    for i in range(N_MAILS):
        n = i - 1 if i and i % 23 == 0 else i  # some messages twice: duplicates decided across chunks
        rng = random.Random(n)
        body = "".join(rng.choice("abcdefgh ijk\n") for _ in range(rng.randint(200, 2500)))
        if n % 5 == 0:
            body += "\n>From a quoted line\n>>From a deeper one\n"
        mail = (f"From: a{n % 11}@example.com\nTo: b@example.org\nSubject: mbox kill {n}\n"
                f"Message-ID: <mbox-kill-{n}@example.com>\n\n{body}\n")
        if n % 9 == 4:
            mail = mail.replace("\n", "\r\n")
        out.append(f"From a{n % 11}@example.com Mon Mar  1 10:{i % 60:02d}:00 2021\n{mail}\n")
    path.write_text("".join(out), newline="")


def _import(home: Path, mbox: Path, fault: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "MAILARCHIVE_PASSWORD": PASSWORD, "MAILARCHIVE_PACK_TARGET": str(PACK_TARGET),
           "MAILARCHIVE_WORKERS": "2"}
    env.pop("MAILARCHIVE_FAULT", None)
    if fault:
        env["MAILARCHIVE_FAULT"] = fault
    return subprocess.run([sys.executable, "-m", "toolkit", "--archive", str(home), "--json", "import", "mbox",
                           "--variant", "mboxrd", str(mbox)], capture_output=True, text=True, env=env, timeout=300)


def _blobs(home: Path, medium: Path) -> list[str]:
    rows = json.loads(mailarchive(home, "sql", "SELECT m.blob_id, p.name, p.bytes FROM messages m JOIN packs p "
                                               "USING (pack_id)", "--format", "json").stdout)
    for r in rows:
        assert (medium / r["name"]).stat().st_size == r["bytes"]
    return [r["blob_id"] for r in rows]


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    root = tmp_path_factory.mktemp("mbox-clean")
    mbox = root / "box.mbox"
    _make_mbox(mbox)
    mailarchive(root / "home", "init", "--medium", str(root / "m1"))
    p = _import(root / "home", mbox)
    assert p.returncode == 0, p.stderr
    summary = json.loads(p.stdout)
    assert summary["seen"] == N_MAILS and summary["errors"] == 0 and summary["sources"][0]["packs"] > 3
    assert summary["decisions"]["exact-duplicate"] == N_MAILS // 23
    return mbox, set(_blobs(root / "home", root / "m1")), summary


@pytest.mark.parametrize("point", ["after_source_read:70", "worker_prepare:3"])  # in the driver / in a worker
def test_kill_9_mid_mbox_then_resume_gives_the_blobs_of_a_clean_run(tmp_path, clean, point):
    mbox, clean_blobs, clean_summary = clean
    home, medium = tmp_path / "home", tmp_path / "m1"
    mailarchive(home, "init", "--medium", str(medium))
    p = _import(home, mbox, fault=point)
    assert p.returncode == -signal.SIGKILL, (p.returncode, p.stderr)
    saved = json.loads(mailarchive(home, "sql", "SELECT count(*) AS n FROM cursors", "--format", "json").stdout)
    p = _import(home, mbox)
    assert p.returncode == 0, p.stderr
    summary = json.loads(p.stdout)
    assert summary["errors"] == 0
    assert saved == [{"n": 1}]  # some chunks were committed with their cursor before the kill
    assert 0 < summary["seen"] < N_MAILS  # so the rerun resumed inside the mbox
    blobs = _blobs(home, medium)
    assert len(blobs) == len(set(blobs)) == clean_summary["archived"]
    assert set(blobs) == clean_blobs
