"""Early writeback of a medium's local files (toolkit/storage/writeback.py): the writer asks the kernel to start
writing each WRITEBACK_STEP bytes as they are written, in order and without gaps, before the commit's fsync; a
refusal stops the asking and changes nothing else; the file committed is the bytes written. (A file system that
refuses O_DIRECT: where it is allowed, a large file goes past the page cache, tests/unit/test_write_direct.py.)"""
from __future__ import annotations

import os

import pytest

from toolkit.storage import local
from toolkit.storage.local import LocalStorage
from toolkit.storage.writeback import WRITEBACK_STEP, start_writeback


@pytest.fixture
def started(monkeypatch):
    calls: list[tuple[int, int, bool]] = []  # (offset, length, committed yet?)
    state = {"committed": False, "answer": True}

    def fake(fd, offset, length):
        assert os.fstat(fd).st_size >= offset + length  # only bytes the kernel has are asked for
        calls.append((offset, length, state["committed"]))
        return state["answer"]

    monkeypatch.setattr(local, "start_writeback", fake)
    monkeypatch.setattr(local, "set_direct", lambda fd, on: False)  # the file system refuses O_DIRECT
    return calls, state


def _write(tmp_path, state, pieces: list[bytes], name="packs/ab/x.pack"):
    storage = LocalStorage(tmp_path)
    w = storage.open_write(name)
    for piece in pieces:
        w.write(piece)
    state["committed"] = True
    w.commit()
    return (tmp_path / name).read_bytes()


def test_each_step_written_is_started_in_order_before_the_commit(tmp_path, started):
    calls, state = started
    pieces = [os.urandom(1 << 20) for _ in range(3 * (WRITEBACK_STEP >> 20) + 3)] + [b"tail"]
    assert _write(tmp_path, state, pieces) == b"".join(pieces)
    assert len(calls) == 3 and not any(committed for *_, committed in calls)
    assert calls[0][0] == 0 and all(a + n == b for (a, n, _), (b, _m, _c) in zip(calls, calls[1:]))  # no gap
    assert all(n >= WRITEBACK_STEP for _, n, _ in calls)


def test_a_copy_made_by_the_kernel_is_started_too(tmp_path, started):
    calls, state = started
    src = LocalStorage(tmp_path / "src")
    data = os.urandom(2 * WRITEBACK_STEP + 12345)
    src.replace("packs/cd/y.pack", data)
    dest = LocalStorage(tmp_path / "dest")
    dest.copy_in("packs/cd/y.pack", src, "packs/cd/y.pack", chunk=1 << 20)
    assert (tmp_path / "dest/packs/cd/y.pack").read_bytes() == data
    assert [(a, n) for a, n, _ in calls] == [(0, WRITEBACK_STEP), (WRITEBACK_STEP, WRITEBACK_STEP)]


def test_a_refusal_stops_the_asking_and_the_file_is_whole(tmp_path, started):
    calls, state = started
    state["answer"] = False
    pieces = [os.urandom(1 << 20) for _ in range(2 * (WRITEBACK_STEP >> 20) + 1)]
    assert _write(tmp_path, state, pieces) == b"".join(pieces)
    assert len(calls) == 1


def test_the_hint_itself_never_raises(tmp_path):
    path = tmp_path / "f"
    with open(path, "wb") as f:
        f.write(b"x" * 100_000)
        f.flush()
        assert start_writeback(f.fileno(), 0, 100_000) is (os.uname().sysname == "Linux")
    r, w = os.pipe()
    try:
        assert start_writeback(w, 0, 10) is False  # a pipe: the kernel refuses (ESPIPE), nothing is raised
    finally:
        os.close(r)
        os.close(w)
