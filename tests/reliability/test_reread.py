"""One garbled read of a pack (RELIABILITY B8): verify --full reads a pack that fails its check a
second time. Clean on the second read, it is a warning ("ok on 2nd read"), not a finding; garbled
on both reads, it is a finding.

The garbled read is injected in process into the local storage's ``open_read``: the first
``bad`` opens of one pack return its bytes with one bit flipped in the middle of a record,
later opens return the file as it is on disk (which is never changed).
"""
from __future__ import annotations

import io
from pathlib import Path

import pytest

from tests.integration.verify_support import build_archive, clone, messages
from toolkit.archive import Archive
from toolkit.storage import local
from verify.checks import verify_archive


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    root = tmp_path_factory.mktemp("reread-base")
    build_archive(root, None, stamp=False)
    return root


def _garble_first_opens(monkeypatch, pack: Path, at: int, bad: int) -> list[int]:
    """The first ``bad`` opens of ``pack`` read one flipped bit at offset ``at``; returns the open count."""
    real_open_read = local.LocalStorage.open_read
    opens = [0]

    def open_read(self, name):
        f = real_open_read(self, name)
        if self._path(name).resolve() != pack.resolve():
            return f
        opens[0] += 1
        if opens[0] > bad:
            return f
        with f:
            data = bytearray(f.read())
        data[at] ^= 0x10
        return io.BytesIO(bytes(data))

    monkeypatch.setattr(local.LocalStorage, "open_read", open_read)
    return opens


def _verify(home: Path):
    with Archive.open(home) as archive:
        return verify_archive(archive, full=True, workers=1)


def test_b8_garbled_first_read_is_ok_on_the_second_read(base, tmp_path, monkeypatch):
    """The first check of the pack opens it twice (footer index, then the records): both garbled."""
    home = clone(base, tmp_path / "copy")
    victim = messages(home)[5]
    before = victim["pack"].read_bytes()
    opens = _garble_first_opens(monkeypatch, victim["pack"], victim["offset"] + victim["length"] // 2, 2)
    r = _verify(home)
    assert opens[0] > 2, "the pack was not read again"
    assert r.exit_code == 0, [c.items for c in r.checks if c.status == "finding"]
    warned = [(c.id, i) for c in r.checks for i in c.items if "ok on 2nd read" in i["detail"]]
    assert len(warned) == 1, warned
    cid, item = warned[0]
    assert r.get(cid).status == "warning"
    assert item["pack"] == victim["pack_id"] and item["medium"] == 1
    assert "authentication failed" in item["detail"] or "SHA-256" in item["detail"]
    assert victim["pack"].read_bytes() == before


def test_b8_garbled_on_both_reads_is_a_finding(base, tmp_path, monkeypatch):
    home = clone(base, tmp_path / "copy")
    victim = messages(home)[5]
    opens = _garble_first_opens(monkeypatch, victim["pack"], victim["offset"] + victim["length"] // 2, 1000)
    r = _verify(home)
    assert opens[0] >= 4, "the pack was not read twice"
    assert r.exit_code == 1
    f02 = r.get("F02")
    assert f02.status == "finding" and [i["msg_id"] for i in f02.items] == [5]
    assert not any("ok on 2nd read" in i["detail"] for c in r.checks for i in c.items)
