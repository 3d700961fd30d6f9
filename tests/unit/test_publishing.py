"""Exported files published in batches (exporters/layout.py ``Publishing``; docs/architecture.md "Exported files
published in batches"): each file's writeback starts when it is written, each is linked to its final name only after
its own fsync, a failed export publishes what was written whole and leaves no temporary file."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from exporters import layout
from exporters.layout import PartFile, Publishing
from toolkit.errors import UsageError


def _part(root: Path, name: str, data: bytes, hashed: bool = True) -> PartFile:
    part = PartFile(root, root / name, hashed=hashed)
    part.write(data)
    return part


def _names(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir())


@pytest.fixture
def calls(monkeypatch):
    """The order of fsyncs (by the path of the fd), links and writeback starts."""
    seen: list[tuple[str, str]] = []
    fsync, link = os.fsync, os.link

    def record_fsync(fd):
        seen.append(("fsync", os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))))
        return fsync(fd)

    def record_link(src, dst, **kw):
        seen.append(("link", os.path.basename(str(src))))
        return link(src, dst, **kw)

    def record_writeback(fd, offset, length):
        seen.append(("writeback", os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))))
        return True

    monkeypatch.setattr(os, "fsync", record_fsync)
    monkeypatch.setattr(os, "link", record_link)
    monkeypatch.setattr(layout, "start_writeback", record_writeback)
    return seen


def test_a_batch_is_published_when_full_and_each_link_follows_its_own_fsync(tmp_path, calls):
    linked = []
    publishing = Publishing(after=lambda: linked.append(_names(tmp_path)), batch=2)
    parts = [_part(tmp_path, f"m{i}.eml", b"mail %d\n" % i) for i in range(3)]
    publishing.add(parts[0])
    assert not (tmp_path / "m0.eml").exists()  # written, waiting for its batch
    publishing.add(parts[1])
    assert (tmp_path / "m0.eml").read_bytes() == b"mail 0\n" and (tmp_path / "m1.eml").read_bytes() == b"mail 1\n"
    publishing.add(parts[2])
    assert not (tmp_path / "m2.eml").exists() and parts[2].tmp.exists()
    publishing.flush()
    assert _names(tmp_path) == ["m0.eml", "m1.eml", "m2.eml"]  # no .part left
    assert len(linked) == 3  # `after` runs after each link, before the next one
    assert "m0.eml" in linked[0] and "m1.eml" not in linked[0] and "m1.eml" in linked[1]
    # every file's writeback was started when it was written, before any fsync of its batch
    order = [c for c in calls if c[1].endswith(".part")]
    for part in parts:
        name = part.tmp.name
        assert order.index(("writeback", name)) < order.index(("fsync", name)) < order.index(("link", name))
    assert order.index(("writeback", parts[1].tmp.name)) < order.index(("fsync", parts[0].tmp.name))


def test_an_error_inside_the_block_publishes_what_was_written_whole(tmp_path):
    with pytest.raises(RuntimeError):
        with Publishing(batch=10) as publishing:
            publishing.add(_part(tmp_path, "a.eml", b"a"))
            publishing.add(_part(tmp_path, "b.eml", b"b"))
            raise RuntimeError("the volume is full")
    assert _names(tmp_path) == ["a.eml", "b.eml"]


def test_a_file_that_cannot_be_published_fails_the_batch_and_leaves_no_temporary_file(tmp_path):
    (tmp_path / "b.eml").write_bytes(b"something else")  # appeared after the exporter looked
    publishing = Publishing(batch=10)
    for name in ("a.eml", "b.eml", "c.eml"):
        publishing.add(_part(tmp_path, name, name.encode(), hashed=False))
    with pytest.raises(UsageError, match="appeared there"):
        publishing.flush()
    assert _names(tmp_path) == ["a.eml", "b.eml"]  # a published, b kept as it was, c removed with the batch
    assert (tmp_path / "b.eml").read_bytes() == b"something else"


def test_a_failed_fsync_on_the_way_out_removes_the_rest_and_keeps_the_exports_error(tmp_path, monkeypatch):
    fsync = os.fsync
    count = [0]

    def failing(fd):
        count[0] += 1
        if count[0] == 2:
            raise OSError(28, "No space left on device")
        return fsync(fd)

    monkeypatch.setattr(os, "fsync", failing)
    with pytest.raises(KeyError):
        with Publishing(batch=10) as publishing:
            for name in ("a.eml", "b.eml", "c.eml"):
                publishing.add(_part(tmp_path, name, b"x"))
            raise KeyError("the export's own error")
    assert _names(tmp_path) == ["a.eml"]


def test_an_export_of_many_batches_writes_the_same_files(tmp_path, monkeypatch):
    """A maildir and an eml export of the sample mboxes with batches of 3: every mail under its name, with its
    bytes (the manifest's SHA-256), and nothing else in the tree."""
    import hashlib
    import json

    import importers
    import toolkit
    from exporters.eml import export_eml
    from exporters.maildir import export_maildir
    from tests.corpora import REPO

    monkeypatch.setattr(layout, "PUBLISH_BATCH", 3)
    batches = []
    flush = Publishing.flush
    monkeypatch.setattr(Publishing, "flush", lambda self: (batches.append(len(self._parts)), flush(self)))
    home = tmp_path / "home"
    toolkit.init_archive(home, password="correct horse battery staple 2018", key_backup=tmp_path / "kb.txt")
    with toolkit.open_archive(home, writer=True) as archive:
        toolkit.import_mail(archive, importers.MboxImporter(str(REPO / "sample_data" / "mbox" / "archive-2018.mbox")),
                            workers=0)
    with toolkit.open_archive(home) as archive:
        for kind, export in (("maildir", export_maildir), ("eml", export_eml)):
            dest = tmp_path / kind
            summary = export(archive, dest)
            assert summary.written > 3 and not summary.errors
            doc = json.loads((dest / "manifest.json").read_text())
            paths = {m["path"]: m["sha256"] for m in doc["messages"]}
            assert len(paths) == summary.written
            for rel, sha in paths.items():
                assert hashlib.sha256((dest / rel).read_bytes()).hexdigest() == sha
            files = {p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()}
            assert not [f for f in files if f.endswith(".part")]
            assert set(paths) <= files
    assert max(batches) == 3 and len(batches) > 4


def test_a_file_whose_last_bytes_the_volume_refuses_leaves_no_temporary_file(tmp_path):
    """The last buffered bytes leave the process when the file is handed over: a full volume refusing them raises,
    and the temporary file is gone (E4: no `.part` file after a full volume)."""
    part = _part(tmp_path, "a.eml", b"x" * 100)

    class Full:
        def __init__(self, f):
            self._f = f

        def flush(self):
            raise OSError(28, "No space left on device")

        def close(self):
            self._f.close()

        def __getattr__(self, name):
            return getattr(self._f, name)

    part._f = Full(part._f)
    publishing = Publishing(batch=10)
    with pytest.raises(OSError, match="No space left"):
        publishing.add(part)
    assert _names(tmp_path) == []
    publishing.flush()
    assert _names(tmp_path) == []
