"""Pack tasks on Dask (docs/architecture.md): a LocalCluster of 2 worker processes on 127.0.0.1.

The same input gives the same blob set and the same dedup decisions as the local executor; a
worker killed (SIGKILL) in the middle of the run loses its task, the scheduler runs it again,
and the archive still holds each mail once. Records of mails the driver found to be duplicates
never stay in a committed pack (the driver moves the new ones out of such a task pack); the
pack a lost task may have sealed is an orphan that verify lists, never damage. ``migrate run
--executor local-cluster:2`` gives a plan of file sources the blob set of a local run.
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

try:  # the "dask" extra: installed by scripts/setup from requirements.lock; in CI its absence fails the run
    import distributed  # noqa: F401
except ImportError as exc:
    if os.environ.get("CI") == "true":
        raise RuntimeError(f"dask[distributed] is missing in CI: {exc}") from exc
    pytest.skip(f"dask[distributed] is not installed: {exc}", allow_module_level=True)

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


def test_local_run_keeps_no_duplicate_record_on_the_media(local_run):
    """Tasks seal every distinct mail they read; the driver moves the records of new mails out of a task
    pack that also holds duplicates, so every pack on the medium is in the catalog and holds only
    referenced records (purge and db rebuild rely on it)."""
    _src, home, (blobs, sightings) = local_run
    decisions = [d for _n, d, _b in sightings]
    assert len(blobs) == len(set(blobs)) == N
    assert decisions.count("exact-duplicate") == 6 and decisions.count("duplicate") == 6
    checks = _verify_full(home)
    assert checks["F01"]["status"] == "ok", checks["F01"]
    _assert_media_match_catalog(home)


def _assert_media_match_catalog(home: Path, orphans_allowed: int = 0) -> None:
    packs = _json(home, "SELECT name, records FROM packs")
    medium = home.parent / "m1"
    on_medium = {f.relative_to(medium).as_posix() for f in medium.glob("packs/*/*.pack")}
    assert {p["name"] for p in packs} <= on_medium and len(on_medium - {p["name"] for p in packs}) <= orphans_allowed
    assert sum(p["records"] for p in packs) == len(_json(home, "SELECT msg_id FROM messages"))


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


def _plan(root: Path) -> Path:
    """A plan of file sources only (2 mbox files, 2 Maildirs) that share mails: several tasks each."""
    rng = random.Random(11)

    def mail(tag: str, i: int) -> bytes:
        body = "".join(rng.choice("qrstuvw xyz\n") for _ in range(rng.randint(1500, 3000)))
        return (f"From: {tag}{i}@example.org\nTo: r@example.org\nSubject: {tag} {i}\nMessage-ID: <{tag}-{i}@example.org>\n"
                f"Date: Mon, 1 Jun 2020 10:00:{i % 60:02d} +0000\n\n{body}\n").encode()

    shared = [mail("shared", i) for i in range(5)]
    lines = ["kind,location,user,password_file,owner,folders"]
    for j in range(2):
        mails = [mail(f"mbox{j}-", k) for k in range(10)] + shared[j:j + 3]
        (root / f"box{j}.mbox").write_bytes(b"".join(b"From sender@example.org Mon Jun  1 10:00:00 2020\n" + m + b"\n"
                                                     for m in mails))
        lines.append(f"mbox,box{j}.mbox,,,archivist,")
        md = root / f"md{j}"
        for sub in ("cur", "new", "tmp"):
            (md / sub).mkdir(parents=True)
        for i, m in enumerate([mail(f"md{j}-", k) for k in range(8)] + shared[:3]):
            (md / "cur" / f"{1000 + i}.M{i}P1.host:2,S").write_bytes(m)
        lines.append(f"maildir,md{j},,,archivist,")
    plan = root / "plan.csv"
    plan.write_text("\n".join(lines) + "\n")
    return plan


def test_migrate_run_on_a_local_cluster_gives_the_blob_set_of_a_local_run(tmp_path):
    plan = _plan(tmp_path)
    env = {"MAILARCHIVE_PACK_TARGET": "8000", "MAILARCHIVE_WORKERS": "2"}
    got = {}
    for name, extra in (("local", ()), ("dask", ("--executor", "local-cluster:2"))):
        home = tmp_path / name / "home"
        mailarchive(home, "init", "--medium", str(tmp_path / name / "m1"))
        r = mailarchive(home, "migrate", "run", str(plan), *extra, env=env, json_out=True, timeout=180).result
        assert [s["status"] for s in r["sources"]] == ["complete"] * 4, r
        assert r["duplicates"] > 0
        rows = _json(home, "SELECT s.source_uri, s.source_ref, s.decision, m.blob_id FROM sightings s "
                           "JOIN messages m USING (msg_id)")
        got[name] = ({b["blob_id"] for b in _json(home, "SELECT blob_id FROM messages")},
                     sorted((Path(x["source_uri"]).name, x["source_ref"], x["decision"], x["blob_id"]) for x in rows),
                     r["archived"])
        assert len(got[name][0]) == r["archived"]
        _assert_media_match_catalog(home)
    assert got["dask"] == got["local"]


def test_dask_workers_get_no_core_dumps():
    """G7 on Dask: the workers receive the archive key with their tasks, so the executor switches core
    dumps off in every worker (RLIMIT_CORE 0 and not dumpable), as the local pool's initializer does."""
    from toolkit.executors import DaskExecutor, parse_executor, worker_dump_guards

    executor = DaskExecutor(parse_executor("local-cluster:2"))
    try:
        guards = worker_dump_guards(executor.client)
        assert len(guards) == 2 and set(guards.values()) == {(0, 0)}, guards
    finally:
        executor.shutdown()
