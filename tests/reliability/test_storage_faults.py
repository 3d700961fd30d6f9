"""Torn writes on the medium (docs/reliability.md B4): the pack's temp file is complete, but the
create-only rename into place fails with EIO. The run stops with a clear error, the temp file
is removed, and a retry produces exactly one final pack per mail and no duplicate catalog row.

The error is injected into the local storage's link() call (its create-only rename), in process.
"""
from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from importers.eml import EmlImporter
from tests.cli import mailarchive
from toolkit.archive import Archive
from toolkit.errors import StorageError
from toolkit.ingest import Ingest
from toolkit.storage import local


def _make_source(root: Path, n: int = 60) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (root / f"{i:03d}.eml").write_text(
            f"From: a{i}@example.com\nSubject: b4 {i}\nMessage-ID: <b4-{i}@x>\n\n" + f"line {i}\n" * 200)


def _run(home: Path, source: Path):
    archive = Archive.open(home, writer=True)
    try:
        return Ingest(archive, workers=0, pack_target=16 * 1024).run(EmlImporter(str(source)))
    finally:
        archive.close()


def _rows(home: Path) -> list[tuple[str, str]]:
    archive = Archive.open(home)
    try:
        with archive.catalog.reading() as con:
            return con.execute(
                "SELECT m.blob_id, p.name FROM messages m JOIN packs p USING (pack_id)").fetchall()
    finally:
        archive.close()


@pytest.mark.parametrize("nth", [1, 3])
def test_b4_eio_on_rename_then_retry(tmp_path, monkeypatch, nth):
    source = tmp_path / "src"
    _make_source(source)
    home, medium = tmp_path / "home", tmp_path / "m1"
    mailarchive(home, "init", "--medium", str(medium))
    real_link = local.os.link
    calls = [0]

    def failing_link(src, dst, *a, **k):
        if str(dst).endswith(".pack"):
            calls[0] += 1
            if calls[0] == nth:
                raise OSError(errno.EIO, os.strerror(errno.EIO), str(dst))
        return real_link(src, dst, *a, **k)

    monkeypatch.setattr(local.os, "link", failing_link)
    with pytest.raises(StorageError) as info:
        _run(home, source)
    assert "Input/output error" in str(info.value)
    monkeypatch.setattr(local.os, "link", real_link)
    assert not list(medium.rglob("*.tmp"))  # the complete temp file was removed, not left to be counted
    before = _rows(home)
    assert len(before) == len({b for b, _ in before})
    summary = _run(home, source)  # the retry
    assert summary.status == "complete" and summary.errors == 0
    rows = _rows(home)
    blobs = [b for b, _ in rows]
    assert len(blobs) == 60 and len(set(blobs)) == 60  # every mail once, no duplicate row
    on_medium = sorted(p.relative_to(medium).as_posix() for p in medium.rglob("*.pack"))
    assert on_medium == sorted({name for _, name in rows})  # exactly one final object per pack, no stray
    assert not list(medium.rglob("*.tmp"))
