"""Writing a medium's local files past the page cache (toolkit/storage/local.py ``_LocalWriter``): whatever the
pieces, the committed file holds exactly the bytes written and ``tell`` follows them; a file larger than one write
buffer goes past the page cache; a file system that refuses O_DIRECT, at the switch or at a write, gets the same
bytes through it; a failed write or an abort leaves no file behind."""
from __future__ import annotations

import errno
import fcntl
import os
import random
import threading

import pytest

from toolkit import direct_read
from toolkit.direct_read import open_direct
from toolkit.errors import ObjectExistsError, StorageFullError
from toolkit.read_ahead import cached
from toolkit.storage import direct_write, local
from toolkit.storage.local import WRITE_BUFFER, LocalStorage

MIB = 1 << 20


def _pieces(seed: int, total: int) -> list[bytes]:
    rnd = random.Random(seed)
    out, n = [], 0
    while n < total:
        size = min(total - n, rnd.choice((1, 7, 4095, 4096, 4097, 25_000, MIB, WRITE_BUFFER, WRITE_BUFFER + 1)))
        out.append(rnd.randbytes(size))
        n += size
    return out


def _write(storage: LocalStorage, name: str, pieces: list[bytes]) -> list[int]:
    w = storage.open_write(name)
    tells = []
    for piece in pieces:
        assert w.write(piece) == len(piece)
        tells.append(w.tell())
    w.commit()
    return tells


@pytest.mark.parametrize("total", [0, 1, 4096, WRITE_BUFFER - 1, WRITE_BUFFER, WRITE_BUFFER + 1, 2 * WRITE_BUFFER,
                                   3 * WRITE_BUFFER + 12345])
def test_the_file_committed_is_the_bytes_written_whatever_the_pieces(tmp_path, total):
    storage = LocalStorage(tmp_path)
    pieces = _pieces(total, total)
    tells = _write(storage, "packs/ab/x.pack", pieces)
    data = b"".join(pieces)
    assert (tmp_path / "packs/ab/x.pack").read_bytes() == data
    assert tells == [len(b"".join(pieces[:i + 1])) for i in range(len(pieces))]
    assert not [p for p in (tmp_path / "packs/ab").iterdir() if p.name != "x.pack"]  # no temporary file left


def test_a_large_file_goes_past_the_page_cache(tmp_path):
    storage = LocalStorage(tmp_path)
    pieces = _pieces(1, 6 * WRITE_BUFFER + 999)
    _write(storage, "packs/cd/y.pack", pieces)
    path = tmp_path / "packs/cd/y.pack"
    probe = open_direct(os.fsencode(path))
    if probe is None:
        pytest.skip("this file system refuses O_DIRECT")
    os.close(probe)
    fd = os.open(path, os.O_RDONLY)
    try:
        assert cached(fd, WRITE_BUFFER, 5 * WRITE_BUFFER, probes=16) is False  # none of the full buffers came in
    finally:
        os.close(fd)
    assert path.read_bytes() == b"".join(pieces)


def test_a_refusal_of_direct_writes_gives_the_same_file_through_the_page_cache(tmp_path, monkeypatch):
    pieces = _pieces(2, 3 * WRITE_BUFFER + 77)
    data = b"".join(pieces)
    monkeypatch.setattr(local, "set_direct", lambda fd, on: False)  # refused at the switch
    monkeypatch.setattr(direct_write, "WriteBehind", None)  # (it is never started)
    _write(LocalStorage(tmp_path / "a"), "packs/ef/z.pack", pieces)
    assert (tmp_path / "a/packs/ef/z.pack").read_bytes() == data
    monkeypatch.undo()

    real = local.set_direct
    switched = []

    def refusing_writes(fd, on):  # switched on, but every direct write fails with EINVAL (as on some file systems)
        switched.append(on)
        return real(fd, on)

    class Refusing:
        def __init__(self, f):
            self.f = f

        def write(self, view):
            if os.O_DIRECT & fcntl.fcntl(self.f.fileno(), fcntl.F_GETFL):
                raise OSError(errno.EINVAL, "Invalid argument")
            return self.f.write(view)

        def __getattr__(self, name):
            return getattr(self.f, name)

    monkeypatch.setattr(local, "set_direct", refusing_writes)
    monkeypatch.setattr(direct_write, "set_direct", refusing_writes)
    w = LocalStorage(tmp_path / "b").open_write("packs/ef/z.pack")
    w._f = Refusing(w._f)
    for piece in pieces:
        w.write(piece)
    w.commit()
    assert (tmp_path / "b/packs/ef/z.pack").read_bytes() == data
    assert switched[:2] == [True, False]  # tried once, then through the page cache for the rest


def test_a_failed_write_and_an_abort_leave_nothing(tmp_path):
    storage = LocalStorage(tmp_path)
    w = storage.open_write("packs/aa/f.pack")
    w.write(os.urandom(2 * WRITE_BUFFER + 5))
    w.abort()
    assert not list((tmp_path / "packs/aa").iterdir())

    class Full:
        def __init__(self, f):
            self.f = f

        def write(self, view):
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, name):
            return getattr(self.f, name)

    w = storage.open_write("packs/aa/g.pack")
    w._f = Full(w._f)
    w.write(b"x" * 100)  # held in the buffer
    with pytest.raises(StorageFullError):
        w.commit()  # the write at the commit fails: no file, no temporary file
    assert not list((tmp_path / "packs/aa").iterdir())
    w = storage.open_write("packs/aa/h.pack")
    w._f = Full(w._f)
    with pytest.raises(StorageFullError):  # a full buffer's write fails in the thread: raised at a later write
        for _ in range(8):                 # (once the thread has failed) or at the commit, never lost
            w.write(b"y" * (WRITE_BUFFER + 1))
        w.commit()
    assert not list((tmp_path / "packs/aa").iterdir())


def test_create_only_stays_create_only(tmp_path):
    storage = LocalStorage(tmp_path)
    _write(storage, "packs/bb/k.pack", [b"first"])
    w = storage.open_write("packs/bb/k.pack")
    w.write(os.urandom(WRITE_BUFFER + 10))
    with pytest.raises(ObjectExistsError):
        w.commit()
    assert (tmp_path / "packs/bb/k.pack").read_bytes() == b"first"
    assert [p.name for p in (tmp_path / "packs/bb").iterdir()] == ["k.pack"]


class _Recording:
    """A file whose writes are recorded with the thread that made them; ``hold`` keeps the first write waiting."""

    def __init__(self, f, hold: threading.Event | None = None):
        self.f, self.hold, self.writes = f, hold, []

    def write(self, view):
        if self.hold is not None and not self.writes and not self.hold.wait(10):
            raise OSError(errno.EIO, "the held write was never let go: the caller waited for it")
        self.writes.append((threading.current_thread().name, len(view)))
        return self.f.write(view)

    def __getattr__(self, name):
        return getattr(self.f, name)


def test_full_buffers_are_written_by_a_thread_while_the_next_is_filled(tmp_path):
    if not _direct_ok(tmp_path):
        pytest.skip("this file system refuses O_DIRECT")
    data = random.Random(5).randbytes(3 * WRITE_BUFFER + 4321)
    hold = threading.Event()
    w = LocalStorage(tmp_path).open_write("packs/ab/t.pack")
    w._f = rec = _Recording(w._f, hold)
    # the first full buffer's write is held: the caller still hands on the next and fills another (its buffers: the
    # one held, DEPTH - 1 queued, one being filled)
    ahead = (1 + direct_write.DEPTH) * WRITE_BUFFER - 1
    w.write(data[:ahead])
    assert w.tell() == ahead and rec.writes == []
    hold.set()
    w.write(data[ahead:])
    w.commit()
    assert (tmp_path / "packs/ab/t.pack").read_bytes() == data
    full = [n for name, n in rec.writes if name == "write-behind"]
    assert full == [WRITE_BUFFER] * 3  # every full buffer by the thread, whole
    assert [(name, n) for name, n in rec.writes if name != "write-behind"] == [(threading.current_thread().name,
                                                                               4096 + 4096)]  # the tail, padded


def _direct_ok(path) -> bool:
    fd = os.open(path / "probe", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        return direct_write.set_direct(fd, True)
    finally:
        os.close(fd)
        os.unlink(path / "probe")


def test_without_a_thread_the_file_is_written_through_the_page_cache(tmp_path, monkeypatch):
    def no_thread(*args, **kwargs):
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(direct_write.threading.Thread, "start", no_thread)
    data = random.Random(6).randbytes(2 * WRITE_BUFFER + 99)
    w = LocalStorage(tmp_path).open_write("packs/ab/n.pack")
    w._f = rec = _Recording(w._f)
    w.write(data)
    assert not os.O_DIRECT & fcntl.fcntl(w._f.fileno(), fcntl.F_GETFL)  # switched back
    w.commit()
    assert (tmp_path / "packs/ab/n.pack").read_bytes() == data
    assert {name for name, _ in rec.writes} == {threading.current_thread().name}
    assert [n for _, n in rec.writes] == [WRITE_BUFFER, WRITE_BUFFER, 99]  # nothing padded


def test_the_buffers_go_back_to_the_pool_after_a_commit_and_after_an_abort(tmp_path):
    direct_read._forget_pool()
    for end in ("commit", "abort"):
        w = LocalStorage(tmp_path).open_write(f"packs/ab/{end}.pack")
        w.write(os.urandom(3 * WRITE_BUFFER + 1))
        getattr(w, end)()
        pooled = direct_read._POOL.get(WRITE_BUFFER, [])
        assert len(pooled) == 1 + direct_write.DEPTH and len({id(b) for b in pooled}) == len(pooled)
    assert (tmp_path / "packs/ab/commit.pack").stat().st_size == 3 * WRITE_BUFFER + 1
    assert not (tmp_path / "packs/ab/abort.pack").exists()


def test_a_slow_device_is_written_through_the_page_cache_after_the_probe(tmp_path, monkeypatch):
    if not _direct_ok(tmp_path):
        pytest.skip("this file system refuses O_DIRECT")
    monkeypatch.setattr(direct_write, "_SLOW_DEVICES", set())

    class Slow(_Recording):  # each write at about 40 MB/s, and whether it was direct
        def write(self, view):
            direct = bool(os.O_DIRECT & fcntl.fcntl(self.f.fileno(), fcntl.F_GETFL))
            if direct:
                import time
                time.sleep(len(view) / 40e6)
            self.writes.append((direct, len(view)))
            return self.f.write(view)

    storage = LocalStorage(tmp_path)
    probe = direct_write.PROBE_BYTES // WRITE_BUFFER
    data = random.Random(7).randbytes((probe + 3) * WRITE_BUFFER + 10)
    w = storage.open_write("packs/ab/s.pack")
    w._f = rec = Slow(w._f)
    w.write(data)
    w.commit()
    assert (tmp_path / "packs/ab/s.pack").read_bytes() == data
    # the probe's writes direct, the rest of the file (the tail unpadded) through the page cache
    assert rec.writes == [(True, WRITE_BUFFER)] * probe + [(False, WRITE_BUFFER)] * 3 + [(False, 10)]
    assert direct_write._SLOW_DEVICES == {os.stat(tmp_path).st_dev}

    w = storage.open_write("packs/ab/t.pack")  # the next file on that device: never direct
    w._f = rec = Slow(w._f)
    w.write(data)
    w.commit()
    assert (tmp_path / "packs/ab/t.pack").read_bytes() == data
    assert {direct for direct, _ in rec.writes} == {False}
    assert not any(t.name == "write-behind" for t in threading.enumerate())


def test_a_fast_device_stays_direct_after_the_probe(tmp_path, monkeypatch):
    if not _direct_ok(tmp_path):
        pytest.skip("this file system refuses O_DIRECT")
    monkeypatch.setattr(direct_write, "_SLOW_DEVICES", set())
    monkeypatch.setattr(direct_write, "SLOW_BYTES_PER_S", 1.0)  # any device is fast enough
    data = random.Random(8).randbytes(direct_write.PROBE_BYTES + 2 * WRITE_BUFFER + 5)
    w = LocalStorage(tmp_path).open_write("packs/ab/f.pack")
    w._f = rec = _Recording(w._f)
    w.write(data)
    w.commit()
    assert (tmp_path / "packs/ab/f.pack").read_bytes() == data
    assert rec.writes[-1] == (threading.current_thread().name, 4096)  # the tail padded: still direct at the end
    assert direct_write._SLOW_DEVICES == set()
