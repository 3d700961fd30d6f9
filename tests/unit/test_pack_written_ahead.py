"""Two-phase tasks that write ahead (toolkit/pack_tasks.py ``build_pack``): a worker whose last answer kept
every record writes the next task's records to the pack's temporary file before it asks; the pack it seals
then equals the one written after the answer (same records, same offsets), and when the answer drops some
records the file written ahead is dropped and only the kept ones are written, in order."""
from __future__ import annotations

import os
import uuid

import pytest

from toolkit import pack_tasks
from toolkit.pack import PackReader
from toolkit.pack_tasks import MediumAccess, PackTask, Sealing, build_pack
from toolkit.storage.local import LocalStorage

KEY = bytes(range(32))


def mails(n: int) -> list[bytes]:
    return [(f"From: a{i}@example.com\r\nTo: b@example.org\r\nSubject: mail {i}\r\nMessage-ID: <m{i}@x>\r\n\r\n"
             f"body {i}\r\n" + "line of text\r\n" * i).encode() for i in range(n)]


def _build(tmp_path, name: str, ahead: bool, keep_every: int):
    root = tmp_path / name
    root.mkdir()
    storage, au = LocalStorage(root), uuid.UUID(int=7)
    task = PackTask(mails(25) + mails(2), MediumAccess(1, str(root)), Sealing(KEY, au), pack_id=b"\1" * 16,
                    two_phase=True)
    asked: list = []

    def decide(prepared, records):
        asked.append((len(prepared), dict(records)))
        return {b for i, b in enumerate(records) if i % keep_every == 0}

    pack_tasks._SPECULATION[0] = ahead
    try:
        result = build_pack(task, storage=storage, decide=decide)
        after = pack_tasks._SPECULATION[0]
    finally:
        pack_tasks._SPECULATION[0] = True
    index = PackReader(storage, result.pack.name, KEY, au).index() if result.pack else []
    files = sorted(p.name for p in root.rglob("*") if p.is_file())
    records = [PackReader(storage, result.pack.name, KEY, au).read(e) for e in index] if result.pack else []
    return asked, [(e.blob_id, e.offset, e.length, e.size, e.csize) for e in index], records, files, after


@pytest.mark.parametrize("keep_every", [1, 3])
def test_a_pack_written_ahead_equals_one_written_after_the_answer(tmp_path, keep_every):
    ahead = _build(tmp_path, "ahead", True, keep_every)
    held = _build(tmp_path, "held", False, keep_every)
    assert ahead[0] == held[0]   # the same question
    assert ahead[1] == held[1] and len(ahead[1]) == len(range(0, 25, keep_every))  # the same index: records, offsets
    assert ahead[2] == held[2]   # the same mails read back
    assert ahead[3] == held[3] and len(ahead[3]) == 1  # one pack file, no temporary file left beside it
    assert ahead[4] == held[4] == (keep_every == 1)  # written ahead next time only after an answer that kept all
