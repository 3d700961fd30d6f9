"""One contract for every Storage: the same tests run on a local directory and on a real SMB share."""
from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from toolkit.errors import MailArchiveError, ObjectExistsError, ObjectMissingError, StorageError
from toolkit.storage.base import Storage
from toolkit.storage.location import open_storage, parse_location
from toolkit.storage.probe import probe


@dataclass
class Medium:
    storage: Storage
    raw: Path  # the same directory seen through the local file system (temp files included)

    def raw_files(self) -> list[str]:
        if not self.raw.exists():
            return []
        return sorted(p.relative_to(self.raw).as_posix() for p in self.raw.rglob("*") if p.is_file())


@pytest.fixture(params=["local", "smb"])
def medium(request, tmp_path):
    if request.param == "local":
        root = tmp_path / "medium"
        storage = open_storage(str(root))
        raw = root
    else:
        url = request.getfixturevalue("smb_location")
        samba = request.getfixturevalue("samba")
        storage = open_storage(url, samba.password, timeout=30)
        raw = samba.share_dir / parse_location(url).path
    yield Medium(storage, raw)
    storage.close()


@pytest.fixture
def storage(medium) -> Storage:
    return medium.storage


def test_put_read_round_trip(storage):
    storage.put("a/b/one.bin", b"hello world")
    assert storage.read("a/b/one.bin") == b"hello world"
    with storage.open_read("a/b/one.bin") as f:
        assert f.read() == b"hello world"
    st = storage.stat("a/b/one.bin")
    assert st is not None and st.size == 11 and st.name == "a/b/one.bin"
    assert storage.exists("a/b/one.bin")


def test_large_object_written_in_many_calls(storage):
    chunk = os.urandom(1 << 20)
    digest = hashlib.sha256()
    total = 0
    with storage.open_write("packs/big.pack") as w:
        for i in range(20):
            piece = bytes([i]) + chunk[1:]  # distinct chunks, so a lost or repeated one shows
            assert w.write(piece) == len(piece)
            digest.update(piece)
            total += len(piece)
            assert w.tell() == total
        w.commit()
    assert storage.stat("packs/big.pack").size == 20 << 20
    got = hashlib.sha256()
    with storage.open_read("packs/big.pack") as f:
        while block := f.read(3_000_001):
            got.update(block)
    assert got.hexdigest() == digest.hexdigest()


def test_create_only(medium):
    storage = medium.storage
    storage.put("x/obj", b"first")
    with pytest.raises(ObjectExistsError):
        storage.put("x/obj", b"second")
    assert storage.read("x/obj") == b"first"
    assert medium.raw_files() == ["x/obj"]  # the temp file of the refused write is gone


def test_create_only_with_writer(medium):
    storage = medium.storage
    storage.put("obj", b"first")
    w = storage.open_write("obj")
    w.write(b"second, longer content")
    with pytest.raises(ObjectExistsError):
        w.commit()
    w.abort()  # safe after a failed commit
    assert storage.read("obj") == b"first"
    assert medium.raw_files() == ["obj"]


def test_abort_leaves_nothing(medium):
    storage = medium.storage
    w = storage.open_write("d/gone")
    w.write(b"data" * 1000)
    w.abort()
    w.abort()
    assert storage.stat("d/gone") is None
    assert medium.raw_files() == []
    with pytest.raises(RuntimeError):
        with storage.open_write("d/also-gone") as w2:
            w2.write(b"x")
            raise RuntimeError("boom")
    assert medium.raw_files() == []


def test_list_is_recursive_sized_and_skips_temp_files(medium):
    storage = medium.storage
    storage.put("top", b"1")
    storage.put("a/mid", b"22")
    storage.put("a/b/c/deep", b"333")
    pending = storage.open_write("a/pending")  # an unfinished write: a temp file on the medium
    pending.write(b"4444")
    pending.tell()
    try:
        entries = {e.name: e.size for e in storage.list()}
        assert entries == {"top": 1, "a/mid": 2, "a/b/c/deep": 3}
        assert any(n.endswith(".tmp") for n in medium.raw_files())
        assert {e.name: e.size for e in storage.list("a")} == {"a/mid": 2, "a/b/c/deep": 3}
        assert [e.name for e in storage.list("a/b")] == ["a/b/c/deep"]
        assert list(storage.list("nowhere")) == []
        for e in storage.list():
            assert abs(e.mtime - time.time()) < 300
    finally:
        pending.abort()


def test_read_with_offset_and_length(storage):
    data = bytes(range(256)) * 40
    storage.put("r", data)
    assert storage.read("r", offset=100, length=50) == data[100:150]
    assert storage.read("r", offset=10_000) == data[10_000:]
    assert storage.read("r", offset=10_230, length=100) == data[10_230:]
    with storage.open_read("r") as f:
        f.seek(5000)
        assert f.read(3) == data[5000:5003]
        assert f.tell() == 5003


def test_stat_of_absent_is_none(storage):
    assert storage.stat("no/such/thing") is None
    assert not storage.exists("no/such/thing")


def test_delete(storage):
    storage.put("del/me", b"x")
    storage.delete("del/me")
    assert storage.stat("del/me") is None
    with pytest.raises(ObjectMissingError):
        storage.delete("del/me")


def test_open_read_missing(storage):
    with pytest.raises(ObjectMissingError):
        storage.open_read("missing")
    with pytest.raises(ObjectMissingError):
        storage.read("missing/deeper")


def test_replace_overwrites(medium):
    storage = medium.storage
    storage.replace("MEDIUM.json", b'{"v": 1}')
    assert storage.read("MEDIUM.json") == b'{"v": 1}'
    storage.replace("MEDIUM.json", b'{"v": 2, "longer": true}')
    assert storage.read("MEDIUM.json") == b'{"v": 2, "longer": true}'
    assert medium.raw_files() == ["MEDIUM.json"]


@pytest.mark.parametrize("name", ["../escape", "a/../../b", "a/./b", ".."])
def test_dot_names_rejected(medium, name):
    storage = medium.storage
    with pytest.raises(StorageError):
        storage.put(name, b"x")
    with pytest.raises(StorageError):
        storage.read(name)
    with pytest.raises(StorageError):
        storage.stat(name)
    assert medium.raw_files() == []


def test_probe_succeeds_and_cleans_up(medium):
    probe(medium.storage)
    assert medium.raw_files() == []


def test_free_space(medium):
    """Both storages report the free space of the volume they write to (the figure the import
    preflight compares with), as the operating system sees that volume."""
    free = medium.storage.free_space()
    assert free is not None
    p = medium.raw
    while not p.exists():
        p = p.parent
    st = os.statvfs(p)
    expected = st.f_bavail * st.f_frsize
    # others write to the same disk meanwhile: a margin, but far below any real mistake
    assert abs(free - expected) <= max(expected // 20, 256 << 20), (free, expected)


def test_free_space_of_a_small_volume(tmp_path):
    """On an 8 MiB volume the local storage reports at most 8 MiB, and 3 MiB less after 3 MiB are written."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)], check=True)
    try:
        storage = open_storage(str(mnt / "medium"))
        before = storage.free_space()
        assert 7 << 20 <= before <= 8 << 20
        storage.put("packs/three.bin", os.urandom(3 << 20))
        after = storage.free_space()
        assert (3 << 20) <= before - after <= (3 << 20) + (64 << 10), (before, after)
        storage.close()
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


# --- C4: a medium that cannot be written is refused before any work -------------------------------


def test_probe_on_unwritable_local_location(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a regular file where a directory should be")
    storage = open_storage(str(blocker / "medium"))
    with pytest.raises(StorageError) as info:
        probe(storage)
    msg = str(info.value)
    assert str(blocker / "medium") in msg
    assert "create" in msg


def test_probe_on_read_only_smb_directory(samba, monkeypatch):
    ro = samba.share_dir / "read-only"
    ro.mkdir(exist_ok=True)
    os.chown(ro, 0, 0)
    ro.chmod(0o555)  # the share's forced user is not root: it may read, not create
    storage = open_storage(samba.url("read-only"), password=samba.password, timeout=10)
    try:
        with pytest.raises(StorageError) as info:
            probe(storage)
    finally:
        storage.close()
    msg = str(info.value)
    assert samba.url("read-only") in msg
    assert r"\\127.0.0.1\mail\read-only" in msg
    assert "access denied" in msg and "right" in msg
    assert list(ro.iterdir()) == []


# --- SMB only: authentication and deadlines -------------------------------------------------------


def test_smb_wrong_password(samba):
    start = time.monotonic()
    with pytest.raises(StorageError) as info:
        open_storage(samba.url("x"), password="wrong-" + samba.password, timeout=10)
    assert type(info.value).__module__ == "toolkit.errors"
    assert "logon" in str(info.value) and "password" in str(info.value)
    assert f"127.0.0.1:{samba.port}" in str(info.value)
    assert time.monotonic() - start < 15


def test_smb_refused_port_fails_fast():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    timeout = 5.0
    start = time.monotonic()
    with pytest.raises(StorageError) as info:
        open_storage(f"smb://u@127.0.0.1:{port}/mail", password="pw", timeout=timeout)
    assert time.monotonic() - start < timeout + 5
    assert f"127.0.0.1:{port}" in str(info.value)
    assert "rerun" in str(info.value)


def test_smb_silent_server_fails_within_timeout():
    """A server that accepts the connection but never answers (smbprotocol alone would wait minutes)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    port = listener.getsockname()[1]
    timeout = 3.0
    try:
        start = time.monotonic()
        with pytest.raises(StorageError) as info:
            open_storage(f"smb://u@127.0.0.1:{port}/mail", password="pw", timeout=timeout)
        elapsed = time.monotonic() - start
    finally:
        listener.close()
    assert elapsed < timeout + 5
    assert f"127.0.0.1:{port}" in str(info.value)


class _Proxy:
    """A TCP relay to the SMB server that can be switched to swallow all traffic (a blackhole)."""

    def __init__(self, target_port: int):
        self.blackhole = threading.Event()
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(4)
        self.port = self._listener.getsockname()[1]
        self._target = target_port
        self._socks: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self._target))
            self._socks += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()

    def _pump(self, src, dst):
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                return
            if not data:
                return
            if self.blackhole.is_set():
                continue  # swallowed
            try:
                dst.sendall(data)
            except OSError:
                return

    def drop(self):
        """Cut every relayed connection (a TCP reset or a server restart, as the client sees it)."""
        for s in self._socks:
            try:
                s.close()
            except OSError:
                pass
        self._socks.clear()

    def close(self):
        self._listener.close()
        for s in self._socks:
            try:
                s.close()
            except OSError:
                pass


def test_smb_blackhole_mid_write_fails_within_timeout(samba):
    """docs/reliability.md C1: the link goes dead in the middle of a write; we fail within our deadline."""
    proxy = _Proxy(samba.port)
    timeout = 4.0
    sub = f"blackhole-{os.getpid()}-{time.monotonic_ns()}"
    storage = open_storage(
        f"smb://{samba.user}@127.0.0.1:{proxy.port}/{samba.share}/{sub}", password=samba.password, timeout=timeout
    )
    try:
        w = storage.open_write("packs/p1")
        w.write(os.urandom(3 << 20))
        proxy.blackhole.set()
        start = time.monotonic()
        with pytest.raises(StorageError) as info:
            for _ in range(20):
                w.write(os.urandom(1 << 20))
            w.commit()
        elapsed = time.monotonic() - start
        assert elapsed < timeout + 5
        assert isinstance(info.value, MailArchiveError)
        assert f"127.0.0.1:{proxy.port}" in str(info.value)
    finally:
        storage.close()
        proxy.close()
    # Nothing was published; a later run ignores the temp file.
    assert not (samba.share_dir / sub / "packs" / "p1").exists()


def test_smb_reconnects_after_deadline(samba):
    """After a timed-out call, the next call opens a fresh connection (resume works)."""
    proxy = _Proxy(samba.port)
    sub = f"reconnect-{time.monotonic_ns()}"
    url = f"smb://{samba.user}@127.0.0.1:{proxy.port}/{samba.share}/{sub}"
    storage = open_storage(url, password=samba.password, timeout=3)
    try:
        storage.put("before", b"1")
        proxy.blackhole.set()
        with pytest.raises(StorageError):
            storage.put("during", b"2")
        proxy.blackhole.clear()
        storage.put("after", b"3")
        assert [e.name for e in storage.list()] == ["after", "before"]
    finally:
        storage.close()
        proxy.close()


def test_smb_connection_reset_gives_clean_error_then_reconnects(samba):
    """docs/reliability.md C2 (client side): a dropped connection is a StorageError; the next call reconnects."""
    proxy = _Proxy(samba.port)
    url = f"smb://{samba.user}@127.0.0.1:{proxy.port}/{samba.share}/reset-{time.monotonic_ns()}"
    storage = open_storage(url, password=samba.password, timeout=5)
    try:
        storage.put("before", b"1")
        proxy.drop()
        time.sleep(0.3)
        with pytest.raises(StorageError) as info:
            storage.put("during", b"2")
        assert f"127.0.0.1:{proxy.port}" in str(info.value)
        storage.put("after", b"3")
        assert [e.name for e in storage.list()] == ["after", "before"]
    finally:
        storage.close()
        proxy.close()


def test_write_after_folder_removed_behind_our_back(medium):
    import shutil

    storage = medium.storage
    storage.put("d/e/one", b"1")
    shutil.rmtree(medium.raw / "d")
    storage.put("d/e/two", b"2")
    assert [e.name for e in storage.list()] == ["d/e/two"]


@pytest.mark.parametrize("from_kind", ["local", "same"])
def test_copy_in_is_exact_atomic_and_create_only(medium, tmp_path, from_kind):
    """copy_in from a local directory (copy_file_range when both ends are local) and within one storage."""
    src = open_storage(str(tmp_path / "src")) if from_kind == "local" else medium.storage
    data = os.urandom(3 * 1024 * 1024 + 17)
    src.put("in/one.pack", data)
    n = medium.storage.copy_in("out/one.pack", src, "in/one.pack", chunk=1024 * 1024)
    assert n == len(data) and medium.storage.read("out/one.pack") == data
    assert not [f for f in medium.raw_files() if f.endswith(".tmp")]
    with pytest.raises(ObjectExistsError):
        medium.storage.copy_in("out/one.pack", src, "in/one.pack")
    assert medium.storage.read("out/one.pack") == data
    with pytest.raises(ObjectMissingError):
        medium.storage.copy_in("out/two.pack", src, "in/absent.pack")
    assert medium.storage.stat("out/two.pack") is None and not [f for f in medium.raw_files() if f.endswith(".tmp")]
