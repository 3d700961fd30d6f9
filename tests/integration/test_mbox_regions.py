"""``import mbox`` hands the pack tasks regions of the file, not mail bytes (toolkit/file_region.py).

The worker reads each message itself and checks the region against the scan's CRC-32:
an mbox rewritten or truncated between the scan and the read gives a problem naming the
mbox and the message, never a different mail; bytes appended meanwhile change nothing.
"""
from __future__ import annotations

import gzip
import hashlib

import pytest

from importers.mbox import VARIANTS, MboxImporter, MboxSplitter
from toolkit.archive import Archive
from toolkit.file_region import QUOTED_FROM, FileRegion
from toolkit.ingest import Ingest
from toolkit.reporter import ListReporter
from toolkit.source import SourceMail

FROM = b"From alice@example.com Mon Jan  7 09:15:00 2019\n"


def _mail(i: int, body: bytes = b"") -> bytes:
    return (b"From: a%d@example.com\nSubject: region %d\nMessage-ID: <region-%d@example.com>\n\nbody %d\n"
            % (i, i, i, i)) + body


def _mbox(n: int) -> bytes:
    """n messages: some with quoted From_ lines (mboxrd), a CRLF one, a Content-Length one, no final newline."""
    parts = []
    for i in range(n):
        body = b""
        if i % 5 == 1:
            body = b"\n>From the quoted line\n>>From twice quoted\n"
        if i % 7 == 3:
            parts.append(FROM + _mail(i).replace(b"\n", b"\r\n") + b"\r\n")
            continue
        if i % 11 == 4:
            text = b"Content-Length: 24\nSubject: cl %d\n\nFrom inside the body ok\n" % i
            parts.append(FROM + text + b"\n")
            continue
        parts.append(FROM + _mail(i, body) + b"\n")
    return b"".join(parts) + FROM + b"Subject: last\n\nno final newline"


class _Touched:
    """The mbox importer's items; once the scan has ended (before the pack task reads the regions,
    all in one chunk here), ``change`` is applied to the file."""

    via = "mbox"

    def __init__(self, inner: MboxImporter, change):
        self.inner, self.change = inner, change
        self.source_uri = inner.source_uri

    def scan(self, cursor, reporter):
        yield from self.inner.scan(cursor, reporter)
        self.change()


def _blobs(archive: Archive) -> set[str]:
    with archive.catalog.reading() as con:
        return {r[0] for r in con.execute("SELECT blob_id FROM messages").fetchall()}


@pytest.mark.parametrize("variant", VARIANTS)
def test_regions_read_back_the_bytes_the_splitter_gives(tmp_path, variant):
    """Each region job reads exactly what the splitter hands over as bytes for the same stream (a .gz copy
    of the mbox: offsets of a decompressed stream are not the file's, so those stay bytes)."""
    data = _mbox(40)
    plain, packed = tmp_path / "box.mbox", tmp_path / "box.mbox.gz"
    plain.write_bytes(data)
    packed.write_bytes(gzip.compress(data))
    regions = list(MboxImporter(str(plain), variant=variant).scan(None, ListReporter()))
    held = list(MboxImporter(str(packed), variant=variant).scan(None, ListReporter()))
    assert len(regions) == len(held) == 41
    assert all(isinstance(i.job, FileRegion) and i.raw is None for i in regions)
    assert all(i.job is None and i.raw is not None for i in held)
    assert [i.job.read() for i in regions] == [i.raw for i in held]
    assert [i.length for i in regions] == [len(i.raw) for i in held]  # the run's byte count is unchanged
    assert [(i.flags, i.cursor["crc32"], i.internal_date) for i in regions] == \
           [(i.flags, i.cursor["crc32"], i.internal_date) for i in held]
    if variant == "mboxrd":
        assert any(b"\nFrom the quoted line" in i.raw for i in held)
    # a region is unquoted by its worker only where the scan counted quoted lines in its bytes (mboxrd only)
    quoted = [QUOTED_FROM.search(data[r.offset + r.head:r.offset + r.length - r.tail]) is not None
              for r in (i.job for i in regions)]
    assert [i.job.unquote for i in regions] == [q and variant == "mboxrd" for q in quoted]
    assert any(quoted) and not all(quoted)


def test_the_driver_sends_regions_never_mail_bytes(tmp_path):
    """Every job the driver sends to the workers is a FileRegion; the import equals one of the same
    messages handed over as bytes (a gzip copy of the mbox: same blob ids, same decisions)."""
    data = _mbox(30)
    (tmp_path / "box.mbox").write_bytes(data)
    (tmp_path / "gz").mkdir()
    (tmp_path / "gz" / "box.mbox.gz").write_bytes(gzip.compress(data))
    sent: list = []

    def spy(executor):
        submit = executor.submit

        def recording(fn, task, *args):
            sent.extend(type(job) for job in task.jobs)
            return submit(fn, task, *args)
        executor.submit = recording

    results = {}
    for name, path in (("regions", tmp_path / "box.mbox"), ("bytes", tmp_path / "gz" / "box.mbox.gz")):
        archive = Archive.create(tmp_path / f"home-{name}", str(tmp_path / f"m-{name}"))
        try:
            ingest = Ingest(archive, ListReporter(), chunk=4, workers=1)  # 31 mails: the first 4 inline, the rest sent
            if name == "regions":
                ingest.on_executor = spy
            run = ingest.run(MboxImporter(str(path), variant="mboxrd"))
            results[name] = (run.status, run.archived, run.errors, run.bytes, run.decisions, _blobs(archive))
        finally:
            archive.close()
    assert sent and set(sent) == {FileRegion}, sent
    assert len(sent) == 31 - 4
    assert results["regions"] == results["bytes"]
    assert results["regions"][:3] == ("complete", 31, 0)


def test_an_mbox_rewritten_after_the_scan_gives_a_problem_for_that_message(tmp_path):
    """One byte of message 3's body changed in place after the scan: that message is listed as an error
    naming the mbox and the message, never archived with the new bytes; the others are archived."""
    data = _mbox(6)
    box = tmp_path / "box.mbox"
    box.write_bytes(data)
    offsets = [m.offset for m in MboxSplitter(open(box, "rb"))]
    at = data.index(b"body 2\n", offsets[2])

    def rewrite():
        with open(box, "r+b") as f:
            f.seek(at)
            f.write(b"BODY")

    archive = Archive.create(tmp_path / "home", str(tmp_path / "m"))
    try:
        run = Ingest(archive, ListReporter(), workers=0).run(_Touched(MboxImporter(str(box)), rewrite))
        blobs = _blobs(archive)
    finally:
        archive.close()
    assert run.status == "complete" and run.archived == 6 and run.errors == 1
    [problem] = run.problems
    assert problem["ref"] == f"box.mbox@{offsets[2]}" and problem["kind"] == "error"
    assert "box.mbox: message 3 of this run" in problem["message"] and "changed after the scan" in problem["message"]
    changed = box.read_bytes()
    assert hashlib.sha256(changed[offsets[2] + len(FROM):offsets[3] - 1]).hexdigest() not in blobs
    assert hashlib.sha256(data[offsets[2] + len(FROM):offsets[3] - 1]).hexdigest() not in blobs


def test_a_truncated_mbox_lists_the_lost_messages_and_an_appended_one_reads(tmp_path):
    """Cut after the scan: the messages past the cut are errors that say so. Appended to after the scan:
    the regions the scan read are unchanged, every message is archived."""
    data = _mbox(5)
    box = tmp_path / "box.mbox"
    box.write_bytes(data)
    offsets = [m.offset for m in MboxSplitter(open(box, "rb"))]
    archive = Archive.create(tmp_path / "home", str(tmp_path / "m"))
    try:
        cut = Ingest(archive, ListReporter(), workers=0).run(
            _Touched(MboxImporter(str(box)), lambda: box.write_bytes(data[:offsets[4] + 10])))
        box.write_bytes(data)
        grown = Ingest(archive, ListReporter(), workers=0).run(
            _Touched(MboxImporter(str(box)), lambda: box.write_bytes(data + FROM + b"Subject: new\n\nnew\n")))
    finally:
        archive.close()
    assert (cut.archived, cut.errors) == (4, 2)
    assert [p["ref"] for p in cut.problems] == [f"box.mbox@{offsets[4]}", f"box.mbox@{offsets[5]}"]
    assert [p["message"].split(" of this run")[0] for p in cut.problems] == ["box.mbox: message 5", "box.mbox: message 6"]
    assert all(f"the file now ends at byte {offsets[4] + 10}" in p["message"] for p in cut.problems)
    assert grown.status == "complete" and grown.errors == 0 and grown.archived == 2  # 4 + 2 = all 6 now


def test_an_mbox_in_a_share_tree_changed_after_the_scan_names_its_path_in_the_tree(tmp_path):
    """``import share`` of a local tree: the mbox inside is read by regions too; a message changed after
    the scan is listed under the tree's ref (``dir/box.mbox@offset``) and the share's own cursor."""
    from importers.share import ShareImporter

    data = _mbox(3)
    box = tmp_path / "tree" / "lists" / "box.mbox"
    box.parent.mkdir(parents=True)
    box.write_bytes(data)
    offsets = [m.offset for m in MboxSplitter(open(box, "rb"))]

    def rewrite():
        with open(box, "r+b") as f:
            f.seek(data.index(b"body 1\n", offsets[1]))
            f.write(b"BODY")

    archive = Archive.create(tmp_path / "home", str(tmp_path / "m"))
    try:
        run = Ingest(archive, ListReporter(), workers=0).run(_Touched(ShareImporter(str(tmp_path / "tree")), rewrite))
    finally:
        archive.close()
    assert run.status == "complete" and (run.archived, run.errors) == (3, 1)
    [problem] = run.problems
    assert problem["ref"] == f"lists/box.mbox@{offsets[1]}"
    assert "box.mbox: message 2 of this run" in problem["message"] and "changed after the scan" in problem["message"]
