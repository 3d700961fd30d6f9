"""libpff hanging or crashing inside a store (docs/reliability.md M5): the place is one problem naming
the store, folder and item, the rest of the store is read, nothing is handed on twice, and an import
killed while libpff hangs leaves no reader behind (its archive lock is free, the next run resumes).

libpff is C, so the hang and the crash are made where the reader calls into it: the fault points
``pst_item_<folder nid>_<index>`` and ``pst_folder_<folder nid>`` of importers/pst.py sleep (a stall: no
Python of the reader runs on, as inside libpff) or SIGKILL the reading process (a crash). Before
importers/pst_guard.py the store was read in the import's own process: the same stall held the import
for as long as it lasted, and the crash ended it.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from importers.pst import scan_store
from importers.pst_guard import guarded_scan_store
from tests.cli import PASSWORD, mailarchive
from tests.corpora import corpora_dir
from toolkit import faults
from toolkit.reporter import NullReporter
from toolkit.source import SourceMail, SourceProblem

pytestmark = pytest.mark.security

STORE = corpora_dir() / "d-pst-msg" / "aspose-email" / "Outlook.pst"


def _plain() -> list:
    return list(scan_store(os.fsencode(STORE), "m.pst", b"m.pst", None, NullReporter()))


def _inbox_nid(items) -> int:
    return next(i.cursor["folder"] for i in items if i.ref.startswith("m.pst#Inbox/") and i.cursor)


def _guarded(kill=None, slow=None, stall=2.0) -> list:
    faults.configure(kill=kill, slow=slow)
    try:
        return list(guarded_scan_store(os.fsencode(STORE), "m.pst", b"m.pst", None, NullReporter(),
                                       stall_limit=stall))
    finally:
        faults.configure()


def _mails(items) -> list[str]:
    return [i.ref for i in items if isinstance(i, SourceMail)]


def test_without_trouble_the_guarded_reader_hands_on_what_the_plain_one_does():
    plain, guarded = _plain(), _guarded()
    assert [(type(i), i.ref, getattr(i, "raw", None)) for i in guarded] == \
           [(type(i), i.ref, getattr(i, "raw", None)) for i in plain]
    assert [i.cursor for i in guarded] == [i.cursor for i in plain]


@pytest.mark.parametrize("how", ["stall", "crash"])
def test_libpff_stuck_on_one_item_is_one_problem_and_the_rest_of_the_store_is_read(how):
    plain = _plain()
    inbox = _inbox_nid(plain)
    point = f"pst_item_{inbox}_1"
    items = _guarded(kill=point) if how == "crash" else _guarded(slow=f"{point}:60", stall=1.0)
    problems = [i for i in items if isinstance(i, SourceProblem)]
    assert len(problems) == 1, problems
    assert problems[0].ref == "m.pst#Inbox/1"
    assert ("gave no answer within 1 s" if how == "stall" else "crashed (signal 9)") in problems[0].message
    assert "item 1 of the folder: it was not archived" in problems[0].message and "scanpst" in problems[0].message
    lost = [i.ref for i in plain if i.cursor and i.cursor.get("folder") == inbox and i.cursor.get("pos") == 1]
    assert len(lost) == 1
    assert _mails(items) == [r for r in _mails(plain) if r != lost[0]]  # each other mail once, in order


def test_libpff_stuck_listing_a_folder_is_one_problem_and_the_other_folders_are_read():
    plain = _plain()
    inbox = _inbox_nid(plain)
    items = _guarded(slow=f"pst_folder_{inbox}:60", stall=1.0)
    problems = [i for i in items if isinstance(i, SourceProblem)]
    assert [p.ref for p in problems] == ["m.pst#Inbox"]
    assert f"item list of folder nid={inbox}: its mails were not archived" in problems[0].message
    others = [r for r in _mails(plain) if not r.startswith("m.pst#Inbox/")]
    assert others and _mails(items) == others


def test_an_import_killed_while_libpff_hangs_leaves_no_reader_and_the_next_run_resumes(tmp_path):
    home = tmp_path / "home"
    mailarchive(home, "init", "--medium", str(tmp_path / "medium"), "--key-backup", str(tmp_path / "kb.txt"))
    store = tmp_path / "m.pst"
    store.write_bytes(STORE.read_bytes())
    inbox = _inbox_nid(_plain())
    env = {**os.environ, "MAILARCHIVE_PASSWORD": PASSWORD, "MAILARCHIVE_FAULT_SLOW": f"pst_item_{inbox}_3:600"}
    driver = subprocess.Popen([sys.executable, "-m", "toolkit", "--archive", str(home), "import", "pst", str(store)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        reader = None
        for _ in range(600):  # the reader: a fork of the driver (same command line), stuck at item 3
            reader = _forked_child(driver.pid)
            if reader is not None and _sleeping_for_long(reader):
                break
            time.sleep(0.1)
        assert reader is not None, "no store reader was started"
        driver.send_signal(signal.SIGKILL)
        driver.wait()
        for _ in range(300):
            if not os.path.exists(f"/proc/{reader}") or _state(reader) == "Z":
                break
            time.sleep(0.1)
        assert not os.path.exists(f"/proc/{reader}") or _state(reader) == "Z", "the stuck reader outlived the import"
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
    result = mailarchive(home, "import", "pst", str(store), json_out=True).result  # not "the archive is busy"
    total = mailarchive(home, "stats", json_out=True, check=None).result
    assert result["status"] == "complete" and result["errors"] == 0
    assert total["messages"] == len(_mails(_plain()))


def _forked_child(pid: int) -> int | None:
    """A child of ``pid`` with the same command line (a fork; spawned workers run another one)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            kids = [int(k) for k in f.read().split()]
        mine = open(f"/proc/{pid}/cmdline", "rb").read()
    except OSError:
        return None
    for k in kids:
        try:
            if open(f"/proc/{k}/cmdline", "rb").read() == mine:
                return k
        except OSError:
            continue
    return None


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0]
    except OSError:
        return "gone"


def _sleeping_for_long(pid: int) -> bool:
    """The reader sits in the fault's sleep (the kernel's nanosleep, not a pipe or a read)."""
    try:
        with open(f"/proc/{pid}/wchan") as f:
            return "nanosleep" in f.read()
    except OSError:
        return False
