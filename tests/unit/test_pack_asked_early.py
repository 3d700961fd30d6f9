"""Two-phase tasks ask before they compress (toolkit/pack_tasks.py ``build_pack``, docs/architecture.md): the
question goes to the driver once every mail is prepared, the worker compresses while the driver decides, and the
pack it seals holds exactly the kept records in the order read, whenever the answer comes in; once it is in, a
duplicate is no longer compressed, and a task that fails after it leaves no temporary file."""
from __future__ import annotations

import os
import uuid

import pytest

from toolkit import pack_tasks
from toolkit.pack import PackReader
from toolkit.pack_tasks import ANSWER_POLL, Asking, MediumAccess, PackTask, SealAs, Sealing, build_pack
from toolkit.storage.local import LocalStorage

KEY = bytes(range(32))
AU = uuid.UUID(int=7)


def mails(n: int) -> list[bytes]:
    return [(f"From: a{i}@example.com\r\nTo: b@example.org\r\nSubject: mail {i}\r\nMessage-ID: <m{i}@x>\r\n\r\n"
             f"body {i}\r\n" + "line of text\r\n" * i).encode() for i in range(n)]


class Counted:
    """pack_tasks.compress, counting its calls (and failing at call ``fail_at``)."""

    def __init__(self, real, fail_at: int | None = None):
        self.real, self.calls, self.fail_at = real, 0, fail_at

    def __call__(self, data, level=None):
        self.calls += 1
        if self.calls == self.fail_at:
            raise OSError(28, "no space left on device")
        return self.real(data)


class Late(Asking):
    """A driver that answers after ``polls`` looks of the worker (None: only when the worker waits for it)."""

    def __init__(self, keep_every: int, polls: int | None, counted: Counted, sealing=None):
        self.keep_every, self.polls, self.counted, self.sealing = keep_every, polls, counted, sealing
        self.looks = 0
        self.asked: tuple | None = None

    def ask(self, prepared, sizes):
        self.asked = (len(prepared), dict(sizes), self.counted.calls)

    def answer(self, wait):
        self.looks += 1
        if not wait and (self.polls is None or self.looks <= self.polls):
            return None
        keep = {b for i, b in enumerate(self.asked[1]) if i % self.keep_every == 0}
        return keep if self.sealing is None else SealAs(keep, self.sealing, MediumAccess(1, self.root))


def _build(tmp_path, monkeypatch, name: str, keep_every: int, polls: int | None, fail_at: int | None = None,
           ahead: bool = False):
    root = tmp_path / name
    root.mkdir()
    storage = LocalStorage(root)
    counted = Counted(pack_tasks.compress, fail_at)
    monkeypatch.setattr(pack_tasks, "compress", counted)
    sealing = Sealing(KEY, AU)
    # 60 distinct mails and 2 repeated within the task (written once): several polls' worth of records
    task = PackTask(mails(60) + mails(2), None if ahead else MediumAccess(1, str(root)), None if ahead else sealing,
                    pack_id=b"\1" * 16, two_phase=True)
    channel = Late(keep_every, polls, counted, sealing if ahead else None)
    channel.root = str(root)
    result = build_pack(task, storage=storage, decide=channel)
    index = PackReader(storage, result.pack.name, KEY, AU).index() if result.pack else []
    records = [PackReader(storage, result.pack.name, KEY, AU).read(e) for e in index]
    files = sorted(p.name for p in root.rglob("*") if p.is_file())
    return channel, [(e.blob_id, e.offset, e.length, e.size, e.csize) for e in index], records, files, counted.calls


@pytest.mark.parametrize("keep_every", [1, 3])
def test_the_pack_is_the_same_whenever_the_answer_comes(tmp_path, monkeypatch, keep_every):
    first = _build(tmp_path, monkeypatch, "first", keep_every, 0)          # before the first record is compressed
    middle = _build(tmp_path, monkeypatch, "middle", keep_every, 2)        # after 2 * ANSWER_POLL records
    waited = _build(tmp_path, monkeypatch, "waited", keep_every, None)     # once all are compressed: the worker waits for it
    kept = len(range(0, 60, keep_every))
    for got in (first, middle, waited):
        assert got[0].asked[:2] == first[0].asked[:2]         # the same question: 62 mails, 60 distinct sizes
        assert got[1] == first[1] and len(got[1]) == kept     # the same index: records, offsets, lengths
        assert got[2] == first[2] == [m for i, m in enumerate(mails(60)) if i % keep_every == 0]  # in the order read
        assert got[3] == first[3] and len(got[3]) == 1        # one pack file, no temporary file beside it
    assert first[0].asked[0] == 62 and sorted(first[0].asked[1].values()) == sorted(map(len, mails(60)))


def test_the_question_goes_before_any_mail_is_compressed_and_a_duplicate_is_not_compressed_after_the_answer(
        tmp_path, monkeypatch):
    first = _build(tmp_path, monkeypatch, "first", 3, 0)
    assert first[0].asked[2] == 0                      # asked before the first compression
    assert first[4] == len(range(0, 60, 3))            # answered at once: only the kept records compressed
    middle = _build(tmp_path, monkeypatch, "middle", 3, 2)
    before = 2 * ANSWER_POLL                           # compressed while the driver decided
    assert middle[4] == before + sum(1 for i in range(before, 60) if i % 3 == 0)
    waited = _build(tmp_path, monkeypatch, "waited", 3, None)
    assert waited[4] == 60                             # every distinct mail, compressed before the answer


def test_a_task_started_ahead_learns_its_key_and_medium_from_an_answer_that_comes_midway(tmp_path, monkeypatch):
    ahead = _build(tmp_path, monkeypatch, "ahead", 2, 1, ahead=True)
    usual = _build(tmp_path, monkeypatch, "usual", 2, 1)
    assert ahead[1] == usual[1] and ahead[2] == usual[2] and len(ahead[3]) == 1


@pytest.mark.parametrize("fail_at", [5, 40])
def test_a_task_that_fails_after_the_answer_leaves_no_temporary_file(tmp_path, monkeypatch, fail_at):
    with pytest.raises(OSError):
        _build(tmp_path, monkeypatch, "failed", 1, 0, fail_at=fail_at)
    assert [p for p in (tmp_path / "failed").rglob("*") if p.is_file()] == []


def test_a_plain_decide_function_still_answers(tmp_path):
    root = tmp_path / "plain"
    root.mkdir()
    storage = LocalStorage(root)
    asked = []

    def decide(prepared, sizes):
        asked.append(sizes)
        return set(list(sizes)[:5])

    task = PackTask(mails(20), MediumAccess(1, str(root)), Sealing(KEY, AU), two_phase=True)
    result = build_pack(task, storage=storage, decide=decide)
    assert len(asked) == 1 and len(asked[0]) == 20
    assert [e.blob_id.hex() for e in PackReader(storage, result.pack.name, KEY, AU).index()] == list(asked[0])[:5]
