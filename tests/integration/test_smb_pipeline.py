"""Pipelined SMB writes and read-backs on a real Samba share (docs/media.md, "Copies onto and from SMB").

Several packs written at once over several connections arrive byte-identical, create-only and
without temporary files; a write that fails in one of them (an error answer, or fewer bytes
acknowledged than sent) leaves no file under the final name and no temporary file, while the
others complete; a consolidation's pack connections are signed, not encrypted.
"""
from __future__ import annotations

import os
import threading

import pytest
from smbprotocol.open import Open

from toolkit.errors import ObjectExistsError, StorageError, StorageFullError
from toolkit.hashes import checksum_hasher
from toolkit.storage.location import open_storage
from toolkit.storage.smb_pipeline import CHUNK, ShortWrite

STATUS_DISK_FULL = 0xC000007F
SMB2_WRITE = 0x09

# sizes around the request size: empty, one byte, exactly one request, one more, several with a tail
SIZES = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 5 * CHUNK + 12345]


def _blake3(data: bytes) -> str:
    h = checksum_hasher()
    h.update(data)
    return h.hexdigest()


def _share_files(root) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_parallel_pack_writes_over_several_connections_are_byte_identical(samba, smb_location, tmp_path):
    src = open_storage(str(tmp_path / "src"))
    blobs = {f"packs/{i:02x}/p{i}.pack": os.urandom(n) for i, n in enumerate(SIZES)}
    for name, data in blobs.items():
        src.put(name, data)
    conns = [open_storage(smb_location, samba.password, timeout=30, encrypt=False) for _ in range(3)]
    errors: list[BaseException] = []

    def copy(k: int) -> None:
        try:
            for j, name in enumerate(blobs):
                if j % len(conns) == k:
                    assert conns[k].copy_in(name, src, name) == len(blobs[name])
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=copy, args=(k,)) for k in range(len(conns))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert not errors, errors
        root = samba.share_dir / smb_location.rsplit("/", 1)[1]
        assert _share_files(root) == sorted(blobs)  # no temporary file left
        for name, data in blobs.items():
            assert (root / name).read_bytes() == data
            # the pipelined read-back gives the same checksum and size
            assert conns[0].blake3(name) == (_blake3(data), len(data))
        with pytest.raises(ObjectExistsError):  # still create-only
            conns[1].copy_in(next(iter(blobs)), src, next(iter(blobs)))
    finally:
        for c in conns:
            c.close()


def test_writes_are_in_flight_together(samba, smb_location):
    """write() returns before the server's answers are collected: several WRITE requests are outstanding."""
    storage = open_storage(smb_location, samba.password, timeout=30, encrypt=False)
    try:
        w = storage.open_write("packs/aa/p.pack")
        data = os.urandom(6 * CHUNK)
        w.write(data)
        conn = next(iter(storage._cache.values()))
        assert len(conn.outstanding_requests) >= 2
        w.commit()
        assert storage.blake3("packs/aa/p.pack") == (_blake3(data), len(data))
    finally:
        storage.close()


def test_a_failed_write_among_parallel_copies_leaves_no_partial_file(samba, smb_location, tmp_path):
    """One connection's third WRITE is answered STATUS_DISK_FULL (a fault proxy in between); its copy fails
    with the share-full error and leaves neither the final name nor a temporary file; the copies running at
    the same time on the other connections complete byte-identical."""
    from tests.services.faultproxy import FaultProxy

    src = open_storage(str(tmp_path / "src"))
    data = {f"packs/0{i}/p{i}.pack": os.urandom(20 * CHUNK + i) for i in range(3)}
    for name, blob in data.items():
        src.put(name, blob)
    sub = smb_location.rsplit("/", 1)[1]
    with FaultProxy(samba.host, samba.port) as proxy:
        proxy.mode("ntstatus", status=STATUS_DISK_FULL, command=SMB2_WRITE, after=2, times=1)
        faulty_url = f"smb://{samba.user}@127.0.0.1:{proxy.port}/{samba.share}/{sub}"
        faulty = open_storage(faulty_url, samba.password, timeout=30, encrypt=False)
        good = [open_storage(smb_location, samba.password, timeout=30, encrypt=False) for _ in range(2)]
        names = list(data)
        results: dict[str, BaseException | int] = {}

        def copy(storage, name) -> None:
            try:
                results[name] = storage.copy_in(name, src, name)
            except BaseException as exc:
                results[name] = exc

        threads = [threading.Thread(target=copy, args=(s, n)) for s, n in zip([faulty, *good], names)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for s in [faulty, *good]:
            s.close()
    assert isinstance(results[names[0]], StorageFullError), results
    root = samba.share_dir / sub
    assert _share_files(root) == sorted(names[1:])
    for name in names[1:]:
        assert results[name] == len(data[name])
        assert (root / name).read_bytes() == data[name]


def test_a_short_write_fails_the_copy_and_leaves_nothing(samba, smb_location, tmp_path, monkeypatch):
    """A server that acknowledges fewer bytes than a WRITE carried (its answer is cut by one byte here):
    the copy fails naming the short write, and nothing is left on the share."""
    answered = Open._write_response
    calls = {"n": 0}

    def short(self, request, wait=True):
        n = answered(self, request, wait)
        calls["n"] += 1
        return n - 1 if calls["n"] == 2 else n

    src = open_storage(str(tmp_path / "src"))
    src.put("packs/ab/p.pack", os.urandom(4 * CHUNK))
    storage = open_storage(smb_location, samba.password, timeout=30, encrypt=False)
    try:
        monkeypatch.setattr(Open, "_write_response", short)
        with pytest.raises(ShortWrite) as info:
            storage.copy_in("packs/ab/p.pack", src, "packs/ab/p.pack")
        monkeypatch.undo()
        assert isinstance(info.value, StorageError)
        assert "incomplete" in str(info.value)
        assert list(storage.list(include_temp=True)) == []
    finally:
        storage.close()


def test_consolidation_moves_packs_on_signed_unencrypted_connections(tmp_path, smb_location, samba, monkeypatch):
    """Local media consolidated onto an SMB medium: the copying threads' connections are signed and not
    encrypted (packs are sealed), the medium's own connection stays encrypted, and the packs arrive intact."""
    from media_tools.consolidate import consolidate
    from tests.integration.test_consolidate import build, digests
    from toolkit.archive import Archive

    home = build(tmp_path, [str(tmp_path / "m1"), str(tmp_path / "m2"), smb_location], smb_password=samba.password)
    opened = []
    real = Archive.extra_connection

    def spy(self, medium_id, *args, **kwargs):
        s = real(self, medium_id, *args, **kwargs)
        inner = getattr(s, "_inner", s)
        if hasattr(inner, "_cache"):  # an SMB storage: its sessions as negotiated
            opened.extend((x.signing_required, x.encrypt_data)
                          for c in inner._cache.values() for x in c.session_table.values())
        return s

    monkeypatch.setattr(Archive, "extra_connection", spy)
    with Archive.open(home, writer=True) as archive:
        before = digests(archive)
        result = consolidate(archive, [1, 2], 3)
        assert result["summary"]["packs_moved"] == 4
        assert archive.storage(3).encrypted
        assert opened, "the copy to SMB opened no connection of its own"
        assert all(signed and not encrypted for signed, encrypted in opened), opened
        assert sorted(digests(archive)) == sorted(before)
