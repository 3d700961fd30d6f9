"""A second writer fails fast naming the holder (O1); readers run beside a writer (O6)."""
from __future__ import annotations

import os
import subprocess
import sys
import time

from tests.cli import PASSWORD, mailarchive
from tests.corpora import REPO

HOLD = """
import sys, time
from pathlib import Path
from toolkit.archive import Archive
a = Archive.open(Path(sys.argv[1]), writer=True)
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
a.close()
"""


def test_second_writer_fails_fast_and_reader_runs(tmp_path):
    home = tmp_path / "home"
    mailarchive(home, "init")
    mailarchive(home, "import", "eml", str(REPO / "sample_data" / "eml"))
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(home), "30"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        t = time.monotonic()
        p = mailarchive(home, "import", "eml", str(REPO / "sample_data" / "eml"), check=11)
        assert time.monotonic() - t < 10
        assert f"pid {holder.pid}" in p.stderr and "since" in p.stderr
        p = mailarchive(home, "media", "add", str(tmp_path / "m2"), check=11)
        # readers are not blocked by the writer's lock
        stats = mailarchive(home, "stats", json_out=True).result
        assert stats["messages"] > 0
        out = mailarchive(home, "export", "eml", str(tmp_path / "out"), json_out=True).result
        assert out["written"] == stats["messages"]
        mailarchive(home, "sql", "SELECT count(*) FROM messages")
        # --lock-wait waits, then gives up cleanly with the same status
        t = time.monotonic()
        mailarchive(home, "--lock-wait", "1", "media", "add", str(tmp_path / "m3"), check=11)
        assert time.monotonic() - t >= 1
    finally:
        holder.kill()
        holder.wait()
    # the kernel drops the lock of a killed writer: no stale lock (O2)
    mailarchive(home, "media", "add", str(tmp_path / "m2"))


def test_reader_beside_running_import(tmp_path):
    """A reader polls stats while an import commits packs; every read sees a consistent catalog."""
    home = tmp_path / "home"
    mailarchive(home, "init")
    src = tmp_path / "src"
    src.mkdir()
    base = (REPO / "sample_data" / "eml").rglob("*.eml")
    body = next(iter(base)).read_bytes()
    for i in range(3000):
        (src / f"{i:05d}.eml").write_bytes(b"Message-ID: <m%d@example.com>\n" % i + body)
    env = {**os.environ, "MAILARCHIVE_PASSWORD": PASSWORD}
    imp = subprocess.Popen(
        [sys.executable, "-m", "toolkit", "--archive", str(home), "--json", "import", "eml", str(src)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    counts = []
    while imp.poll() is None:
        r = mailarchive(home, "stats", json_out=True).result
        counts.append(r["messages"])
        # a reader never sees messages without their pack
        assert r["messages"] == sum(m["messages"] for m in r["media"])
    out, err = imp.communicate()
    assert imp.returncode == 0, err
    assert counts and counts == sorted(counts)
    assert mailarchive(home, "stats", json_out=True).result["messages"] == 3000
