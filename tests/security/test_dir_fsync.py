"""A pack written into a new directory survives a crash: every new directory level is fsynced into its parent."""
from __future__ import annotations

import hashlib
import os
import stat
from uuid import UUID

import pytest

from toolkit.pack import PackWriter, pack_name
from toolkit.storage.local import LocalStorage

pytestmark = pytest.mark.security

KEY = bytes(range(32))
UUID1 = UUID("00000000-0000-4000-8000-000000000001")


@pytest.fixture
def events(monkeypatch):
    """Record, in order, directory creations, hard links and fsyncs of directories (by path)."""
    log: list[tuple[str, str]] = []
    real_mkdir, real_link, real_fsync = os.mkdir, os.link, os.fsync

    def mkdir(path, *a, **kw):
        real_mkdir(path, *a, **kw)
        log.append(("mkdir", os.path.abspath(path)))

    def link(src, dst, *a, **kw):
        real_link(src, dst, *a, **kw)
        log.append(("link", os.path.abspath(dst)))

    def fsync(fd):
        real_fsync(fd)
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            log.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))

    monkeypatch.setattr(os, "mkdir", mkdir)
    monkeypatch.setattr(os, "link", link)
    monkeypatch.setattr(os, "fsync", fsync)
    return log


def _after(log, first, then):
    """True when ``then`` happens after ``first`` in the log."""
    return first in log and any(e == then for e in log[log.index(first) + 1 :])


def test_first_pack_in_a_new_directory_fsyncs_every_level_up_to_the_medium_root(tmp_path, events):
    root = tmp_path / "medium"
    root.mkdir()
    storage = LocalStorage(root)
    events.clear()
    pack_id = bytes.fromhex("ab") + bytes(15)
    w = PackWriter(storage, KEY, UUID1, pack_id=pack_id)
    w.add(hashlib.sha256(b"a mail").digest(), b"a mail")
    w.seal()
    name = pack_name(pack_id)
    assert name.startswith("packs/ab/")
    packs, ab, pack = str(root / "packs"), str(root / "packs" / "ab"), str(root / name)
    assert _after(events, ("mkdir", packs), ("fsync", str(root))), events
    assert _after(events, ("mkdir", ab), ("fsync", packs)), events
    assert _after(events, ("link", pack), ("fsync", ab)), events
