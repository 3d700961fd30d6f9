"""``mailarchive import eml|mbox|maildir`` started as a process of its own spawns its workers before click, rich, DuckDB
and Arrow load (toolkit/cli/early.py, docs/cli.md "import: workers from the start"): the run takes them and gives
the same report and catalog as a run that spawns them where it always did; a command line that fails before the
import (a usage error, a locked archive) is reported as always and leaves no worker behind, as does a SIGTERM or
Ctrl-C during the start-up."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.processes import assert_gone
from tests.cli import PASSWORD, mailarchive

ROOT = Path(__file__).resolve().parents[2]

#: the command line as the ``mailarchive`` console script runs it, recording the early workers: their pids, and
#: whether the run took them (EARLY_SIGNAL: the process signals itself right after spawning them; with
#: EARLY_SIGNAL_AT=pool, as soon as the pool has started, before the early module's handler is in place)
SCRIPT = """
import atexit, json, os, sys, threading, time
sys.argv = ["mailarchive"] + json.loads(os.environ["EARLY_ARGV"])
if os.environ.get("EARLY_SLOW_POOL_THREAD"):  # the pool's thread slow to end once its workers are gone
    import concurrent.futures.process as cfp
    join_internals = cfp._ExecutorManagerThread.join_executor_internals
    def slowly(self):
        time.sleep(float(os.environ["EARLY_SLOW_POOL_THREAD"]))
        join_internals(self)
    cfp._ExecutorManagerThread.join_executor_internals = slowly
record = {"pids": [], "taken": False}
def written():
    if os.environ.get("EARLY_SIGNAL"):  # the threads still running as the process ends
        record["threads"] = [t.name for t in threading.enumerate() if t is not threading.current_thread()]
    open(os.environ["EARLY_OUT"], "w").write(json.dumps(record))
if os.environ.get("EARLY_SIGNAL_AT") == "pool":  # the signal comes as the pool has started, before early's handler
    from toolkit import executors
    started = executors.StartedPool.__init__
    def signalled(self, *args):
        started(self, *args)
        record["pids"] = self.pids()
        atexit.register(written)
        os.kill(os.getpid(), int(os.environ["EARLY_SIGNAL"]))
    executors.StartedPool.__init__ = signalled
if os.environ.get("EARLY_SIGNAL_AT") == "walk":  # the signal comes while the start-up walks the tree (task ahead)
    from importers import walk
    walked = walk.walk_local
    def signalled_walk(root):
        from toolkit.cli import early
        record["pids"] = early._started["import"].pids()
        atexit.register(written)
        os.kill(os.getpid(), int(os.environ["EARLY_SIGNAL"]))
        time.sleep(20)  # a large tree's walk: the signal does not wait for its end
        return walked(root)
    walk.walk_local = signalled_walk
from toolkit.cli import early
early.start()
pool = early._started.get("import")
record["pids"] = pool.pids() if pool is not None else []
record["ahead"] = [a.pack_id.hex() for a in pool.ahead] if pool is not None else []  # the task started ahead
if pool is not None:
    take = pool.take
    def recording(*args):
        got = take(*args)
        record["taken"] = got is not None
        return got
    pool.take = recording
atexit.register(written)
if os.environ.get("EARLY_SIGNAL") and not os.environ.get("EARLY_SIGNAL_AT"):
    os.kill(os.getpid(), int(os.environ["EARLY_SIGNAL"]))
    time.sleep(60)
from toolkit.cli.main import main
main()
"""

MAIL = "From: a{i}@example.org\r\nTo: b@example.org\r\nSubject: mail {i}\r\nMessage-ID: <{i}@early>\r\n\r\nbody {i}\r\n"


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """More files than the import's first chunk holds (toolkit/ingest.py FIRST_CHUNK): the run starts its pool."""
    root = tmp_path_factory.mktemp("early-import") / "eml"
    for d in range(3):
        (root / str(d)).mkdir(parents=True)
        for i in range(d * 100, d * 100 + 100):
            (root / str(d) / f"{i:04}.eml").write_text(MAIL.format(i=i % 280))  # 20 duplicates
    return root


def _home(tmp_path: Path, name: str) -> Path:
    home = tmp_path / name
    mailarchive(home, "init", "--medium", str(tmp_path / f"{name}-medium"))
    return home


def _script(tmp_path: Path, argv: list[str], sig: int | None = None,
            env_more: dict | None = None) -> tuple[subprocess.CompletedProcess, dict]:
    script = tmp_path / "mailarchive"  # the console script's name: early.start() acts for it
    script.write_text(SCRIPT)
    out = tmp_path / "early.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILARCHIVE_")}
    env.update(PYTHONPATH=str(ROOT), MAILARCHIVE_PASSWORD=PASSWORD, MAILARCHIVE_WORKERS="2",
               EARLY_ARGV=json.dumps(argv), EARLY_OUT=str(out), EARLY_SIGNAL=str(sig or ""), **(env_more or {}))
    p = subprocess.run([sys.executable, str(script)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    return p, json.loads(out.read_text())


def _catalog(home: Path) -> list:
    query = "SELECT m.blob_id, m.message_id, s.source_ref FROM messages m JOIN sightings s USING (msg_id) ORDER BY s.source_ref"
    return json.loads(mailarchive(home, "sql", query, "--format", "json").stdout)


def _report(p: subprocess.CompletedProcess) -> dict:
    r = json.loads(p.stdout)
    for s in (r, *r["sources"]):
        for k in ("seconds", "run_ids", "run_id"):
            s.pop(k, None)
    return r


def _taken_up_as_a_late_run(tmp_path: Path, name: str, command: list[str]) -> tuple[subprocess.CompletedProcess, dict]:
    """``command`` (``import KIND [options] SOURCE``) run as the console script, with its workers and its first chunk
    sent ahead at start-up, and again by a run that spawns its workers where it always did: the first took its
    pool and the task ahead up (the task's pack is in its catalog: toolkit/early_tasks.py); both give the same
    report and catalog, and no worker is left. Returns the early run and its record."""
    early_home, late_home = _home(tmp_path, f"early-{name}"), _home(tmp_path, f"late-{name}")
    p, record = _script(tmp_path, ["--archive", str(early_home), "--json", *command])
    assert p.returncode == 0, p.stderr
    assert len(record["pids"]) == 2 and record["taken"] and len(record["ahead"]) == 1
    late = mailarchive(late_home, *command, json_out=True, env={"MAILARCHIVE_WORKERS": "2"})
    assert _report(p) == _report(late)
    assert _catalog(early_home) == _catalog(late_home)
    packs = json.loads(mailarchive(early_home, "sql", "SELECT name FROM packs", "--format", "json").stdout)
    assert any(record["ahead"][0] in json.dumps(row) for row in packs), (record["ahead"], packs)
    assert "Traceback" not in p.stderr
    assert_gone(record["pids"])
    return p, record


def test_the_early_workers_give_the_usual_report_and_catalog(tmp_path, source):
    p, _record = _taken_up_as_a_late_run(tmp_path, "eml", ["import", "eml", str(source)])
    assert _report(p)["archived"] == 280 and _report(p)["duplicates"] == 20


def test_a_maildir_s_first_chunk_goes_ahead_and_the_run_takes_it_up(tmp_path):
    """``import maildir`` of a local Maildir: the start-up sends its first chunk ahead as for ``import eml``; the run
    takes it up (its pack is in the catalog) and reports and catalogs what a run without it does."""
    maildir = tmp_path / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True)
    for i in range(300):
        name = f"{1700000000 + i}.M{i}P1.host:2,S" if i % 3 else f"{1700000000 + i}.M{i}P1.host"
        (maildir / ("cur" if i % 3 else "new") / name).write_text(MAIL.format(i=i % 290))
    p, _record = _taken_up_as_a_late_run(tmp_path, "md", ["import", "maildir", str(maildir)])
    assert _report(p)["archived"] == 290 and _report(p)["duplicates"] == 10


@pytest.mark.parametrize("variant", ["mboxrd", "auto"])
def test_an_mbox_s_first_chunk_goes_ahead_and_the_run_takes_it_up(tmp_path, variant):
    """``import mbox`` of a local mbox: the start-up scans its first chunk (regions of the file, read by the worker)
    and sends it ahead with the command line's ``--variant``; the run takes it up and reports and catalogs what a run
    without it does, quoted From_ lines unquoted as for mboxrd."""
    mbox = tmp_path / "box.mbox"  # more bytes than the import's first chunk holds (8 MiB): the run starts its pool
    with open(mbox, "w") as f:
        for i in range(300):
            body = (">From the quoted line\n" if i % 7 == 0 else "") + ("x" * 75 + "\n") * 400
            f.write(f"From a{i}@example.org Mon Jan  7 09:15:00 2019\n" + MAIL.format(i=i % 290).replace("\r\n", "\n")
                    + body + "\n")
    args = ["--variant", variant] if variant != "auto" else []
    _taken_up_as_a_late_run(tmp_path, "mbox", ["import", "mbox", *args, str(mbox)])


def test_an_mbox_with_a_size_limit_given_sends_nothing_ahead(tmp_path):
    mbox = tmp_path / "box.mbox"
    mbox.write_text("".join(f"From a@example.org Mon Jan  7 09:15:00 2019\n" + MAIL.format(i=i).replace("\r\n", "\n")
                            + ("x" * 75 + "\n") * 400 + "\n" for i in range(300)))
    home = _home(tmp_path, "limit-mbox")
    p, record = _script(tmp_path, ["--archive", str(home), "--json", "import", "mbox", "--max-message-size", "1M",
                                   str(mbox)])
    assert p.returncode == 0, p.stderr
    assert record["taken"] and record["ahead"] == []


def test_a_small_source_spawns_no_early_workers(tmp_path, source):
    home = _home(tmp_path, "small")
    p, record = _script(tmp_path, ["--archive", str(home), "--json", "import", "eml", str(source / "0")])
    assert p.returncode == 0, p.stderr
    assert record == {"pids": [], "taken": False, "ahead": []}


def test_a_usage_error_after_the_spawn_is_reported_as_always(tmp_path, source):
    home = _home(tmp_path, "usage")
    p, record = _script(tmp_path, ["--archive", str(home), "import", "mbox", "--variant", "nonsense", str(source)])
    assert p.returncode == 2
    assert "nonsense" in p.stderr and "Traceback" not in p.stderr
    assert len(record["pids"]) == 2 and not record["taken"]
    assert_gone(record["pids"])


def test_a_locked_archive_refuses_the_import_as_always(tmp_path, source):
    from toolkit.archive import Archive

    home = _home(tmp_path, "locked")
    medium = tmp_path / "locked-medium"
    before = sorted(medium.rglob("*"))
    with Archive.open(home, writer=True):
        p, record = _script(tmp_path, ["--archive", str(home), "import", "eml", str(source)])
    assert p.returncode == 11, p.stderr
    assert "lock" in p.stderr and "Traceback" not in p.stderr
    assert len(record["pids"]) == 2 and not record["taken"]
    assert len(record["ahead"]) == 1  # the first chunk went ahead before the lock was asked for ...
    assert sorted(medium.rglob("*")) == before  # ... and wrote nothing: it waits for the run's answer (O12)
    assert_gone(record["pids"])


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_the_start_up_ends_the_early_workers_quietly(tmp_path, source, sig):
    """The window between the early spawn and main()'s own handling of signals (its imports): the run stops as
    interrupted (exit 130), without a traceback or warning, and leaves none of the workers behind."""
    home = _home(tmp_path, "signal")
    p, record = _script(tmp_path, ["--archive", str(home), "import", "eml", str(source)], sig=sig)
    assert p.returncode == 130, p.stderr
    assert p.stderr.strip() == "interrupted"
    assert len(record["pids"]) == 2 and not record["taken"]
    assert record["threads"] == []
    assert_gone(record["pids"])


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_as_the_pool_starts_waits_for_the_handler_and_ends_the_run_quietly(tmp_path, source, sig):
    """A signal that comes as the pool has started, before the early module's handler is in place, is held until
    it is: the run stops as interrupted, no traceback (a Ctrl-C was a KeyboardInterrupt in the start-up, a SIGTERM
    killed the process at once), and the workers end."""
    home = _home(tmp_path, "pool-start")
    p, record = _script(tmp_path, ["--archive", str(home), "import", "eml", str(source)], sig=sig,
                        env_more={"EARLY_SIGNAL_AT": "pool"})
    _ended_quietly(p, record)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_the_start_up_ends_the_pool_s_thread_before_the_process(tmp_path, source, sig):
    """The pool's thread ends before the process does, also when it is slow to (a loaded machine): one still
    closing the pool's pipes and semaphores as the process ended printed a traceback ("Exception in thread
    Thread-1", a fresh-clone run) or left a semaphore to the resource tracker's warning."""
    home = _home(tmp_path, "slow")
    p, record = _script(tmp_path, ["--archive", str(home), "import", "eml", str(source)], sig=sig,
                        env_more={"EARLY_SLOW_POOL_THREAD": "0.5"})
    _ended_quietly(p, record)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_while_the_start_up_walks_the_tree_ends_the_run_at_once_and_quietly(tmp_path, source, sig):
    """The start-up walks the tree for the task it sends ahead (toolkit/early_tasks.py) with signals not held (a
    large tree's walk takes seconds): a Ctrl-C or SIGTERM then ends the run as interrupted, quietly, and the
    workers with it."""
    home = _home(tmp_path, "walk")
    started = time.monotonic()
    p, record = _script(tmp_path, ["--archive", str(home), "import", "eml", str(source)], sig=sig,
                        env_more={"EARLY_SIGNAL_AT": "walk"})
    assert time.monotonic() - started < 15  # not after the walk's 20 s (signals held during it: they waited)
    _ended_quietly(p, record)


def _ended_quietly(p, record) -> None:
    """Exit 130 with "interrupted" alone on stderr, no thread left at exit, both early workers started and gone."""
    assert p.returncode == 130, p.stderr
    assert p.stderr.strip() == "interrupted"
    assert record["threads"] == []
    assert len(record["pids"]) == 2 and not record["taken"]
    assert_gone(record["pids"])
