"""Pack tasks on Dask (docs/architecture.md): a LocalCluster of 2 worker processes on 127.0.0.1.

The same input gives the same blob set and the same dedup decisions as the local executor; a
worker killed (SIGKILL) in the middle of the run loses its task, the scheduler runs it again,
and the archive still holds each mail once. Records of mails the driver found to be duplicates
stay unreferenced in their packs, and verify lists them (and orphan packs) as adoptable, never
as damage.
"""
from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("distributed")

from importers.eml import EmlImporter  # noqa: E402
from tests.cli import mailarchive  # noqa: E402
from toolkit import faults  # noqa: E402
from toolkit.archive import Archive  # noqa: E402
from toolkit.ingest import Ingest  # noqa: E402

N = 48
PACK_TARGET = 12 * 1024  # a few mails per pack: many tasks


def _source(root: Path) -> Path:
    """N mails; 6 exact copies (other file names) and 6 relayed copies (an extra Received header: same
    dedup key, other bytes) sorted among later originals, so their tasks also hold new mail."""
    rng = random.Random(7)
    src = root / "src"
    src.mkdir()
    mails = []
    for i in range(N):
        body = "".join(rng.choice("abcdefgh ijklmnop\n") for _ in range(rng.randint(1500, 4000)))
        mails.append(f"From: a{i}@example.com\nTo: b@example.org\nSubject: dask {i}\n"
                     f"Date: Tue, 2 Mar 2021 09:{i % 60:02d}:00 +0100\nMessage-ID: <dask-{i}@example.com>\n\n{body}")
        (src / f"{i:03d}.eml").write_text(mails[-1])
    for i in range(6):
        (src / f"{i + 20:03d}x.eml").write_text(mails[i])  # exact copy
        (src / f"{i + 30:03d}y.eml").write_text("Received: from relay.example.net\n" + mails[i + 6])
    return src


def _state(home: Path) -> tuple[list[str], set[tuple[str, str, str]]]:
    """Every message row's blob id, and (file name, decision, blob id of its message) per sighting."""
    blobs = [r["blob_id"] for r in _json(home, "SELECT blob_id FROM messages")]
    rows = _json(home, "SELECT s.source_ref, s.decision, m.blob_id FROM sightings s JOIN messages m USING (msg_id)")
    return blobs, {(Path(r["source_ref"]).name, r["decision"], r["blob_id"]) for r in rows}


def _json(home: Path, sql: str) -> list[dict]:
    return json.loads(mailarchive(home, "sql", sql, "--format", "json").stdout)


def _import(home: Path, src: Path, *extra: str):
    env = {"MAILARCHIVE_PACK_TARGET": str(PACK_TARGET), "MAILARCHIVE_WORKERS": "2"}
    return mailarchive(home, "import", "eml", *extra, str(src), env=env, json_out=True, timeout=120).result


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("dask")
    src = _source(root)
    home = root / "home"
    mailarchive(home, "init", "--medium", str(root / "m1"))
    r = _import(home, src)
    assert r["status"] == "complete" and r["seen"] == N + 12
    return src, home, _state(home)


def _verify_full(home: Path) -> dict:
    report = mailarchive(home, "verify", "--full", json_out=True, check=0).result
    return {c["id"]: c for c in report["checks"]}


def test_local_run_leaves_duplicate_records_unreferenced_and_verify_calls_them_adoptable(local_run):
    _src, home, (blobs, sightings) = local_run
    decisions = [d for _n, d, _b in sightings]
    assert len(blobs) == len(set(blobs)) == N
    assert decisions.count("exact-duplicate") == 6 and decisions.count("duplicate") == 6
    checks = _verify_full(home)  # exit 0: nothing is damaged
    f01 = checks["F01"]
    assert f01["status"] == "warning", f01
    assert all("adoptable" in e["detail"] for e in f01["examples"]), f01


def test_local_cluster_gives_the_same_blobs_and_decisions(tmp_path, local_run):
    src, _home, (blobs, sightings) = local_run
    home = tmp_path / "home"
    mailarchive(home, "init", "--medium", str(tmp_path / "m1"))
    r = _import(home, src, "--executor", "local-cluster:2")
    assert r["status"] == "complete", r
    got_blobs, got_sightings = _state(home)
    assert sorted(got_blobs) == sorted(blobs)
    assert got_sightings == sightings
    checks = _verify_full(home)
    assert checks["F01"]["status"] in ("ok", "warning") and checks["Q03"]["status"] in ("ok", "warning")


def test_a_worker_killed_mid_run_changes_nothing(tmp_path, local_run):
    """docs/reliability.md A10: kill -9 of the worker process running a task (each task's seal is slowed
    to 0.4 s, so the kill lands while tasks are out): the scheduler runs the lost task again on a fresh
    worker."""
    src, _home, (blobs, sightings) = local_run
    home = tmp_path / "home"
    killed: list[int] = []

    def kill_one(executor) -> None:
        def run() -> None:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not killed:
                busy = [w for w, keys in executor.client.processing().items() if keys]
                if busy:
                    time.sleep(0.2)  # inside the task: reading, sealing or waiting to publish its pack
                    pid = executor.client.run(os.getpid, workers=busy[:1])[busy[0]]
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                time.sleep(0.05)
        threading.Thread(target=run, daemon=True).start()

    archive = Archive.create(home, str(tmp_path / "m1"))
    faults.configure(slow="storage.after_write:0.4")
    try:
        ing = Ingest(archive, executor="local-cluster:2", workers=2, pack_target=PACK_TARGET)
        ing.on_executor = kill_one
        summary = ing.run(EmlImporter(str(src)))
    finally:
        faults.configure()
        archive.close()
    assert killed, "no worker was killed during the run"
    assert summary.status == "complete" and summary.seen == N + 12
    got_blobs, got_sightings = _state(home)
    assert sorted(got_blobs) == sorted(blobs), "no mail lost, none twice"
    assert got_sightings == sightings
    checks = _verify_full(home)  # a partial or orphan pack of the lost task is adoptable, not damage
    assert checks["F01"]["status"] in ("ok", "warning") and checks["Q03"]["status"] in ("ok", "warning")
