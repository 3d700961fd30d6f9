"""Message files on an SMB share are read by the workers over their own connection (toolkit/share_file.py).

The driver lists the Maildir on the real Samba share and hands over ShareFile jobs (file name, the listing's
size and mtime, the share access with its password, which no environment variable carries here); the
archive equals an import of the same directory read locally. A file rewritten or removed between the
listing and the read is listed (a problem naming it, a skip), never archived with other bytes.
"""
from __future__ import annotations

import pytest

from importers.maildir import MaildirImporter
from importers.share import ShareImporter
from toolkit.archive import Archive
from toolkit.ingest import Ingest
from toolkit.reporter import ListReporter
from toolkit.share_file import ShareFile

pytestmark = pytest.mark.samba


def _maildir(root, n: int) -> list[str]:
    names = []
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True)
    for i in range(n):
        name = f"{'cur' if i % 2 else 'new'}/16000000{i:02d}.M{i}P7.host"
        (root / name).write_bytes(b"From: a%d@example.com\nSubject: share %d\nMessage-ID: <share-%d@example.com>\n\n"
                                  b"body %d\n" % (i, i, i, i) + b"x" * (i * 700))
        names.append(name)
    return names


class _Touched:
    """An importer's items; once its scan has ended (before the pack task reads them), ``change`` runs."""

    via = "maildir"

    def __init__(self, inner, change):
        self.inner, self.change, self.source_uri = inner, change, inner.source_uri

    def scan(self, cursor, reporter):
        yield from self.inner.scan(cursor, reporter)
        self.change()


def _blobs(archive: Archive) -> set[str]:
    with archive.catalog.reading() as con:
        return {r[0] for r in con.execute("SELECT blob_id FROM messages").fetchall()}


def test_a_maildir_on_the_share_is_read_by_the_workers(tmp_path, samba, monkeypatch):
    monkeypatch.delenv("MAILARCHIVE_SMB_PASSWORD", raising=False)  # the workers get it from their jobs only
    sub = "t-jobs-maildir"
    _maildir(samba.share_dir / sub / "Mail", 14)
    sent: list = []

    def spy(executor):
        submit = executor.submit

        def recording(fn, task, *args):
            sent.extend(task.jobs)
            return submit(fn, task, *args)
        executor.submit = recording

    results = {}
    for name, importer in (("smb", MaildirImporter(samba.url(f"{sub}/Mail"), smb_password=samba.password)),
                           ("local", MaildirImporter(str(samba.share_dir / sub / "Mail")))):
        archive = Archive.create(tmp_path / f"home-{name}", str(tmp_path / f"m-{name}"))
        try:
            ingest = Ingest(archive, ListReporter(), chunk=4, workers=1)  # the first 4 inline, 10 sent
            if name == "smb":
                ingest.on_executor = spy
            run = ingest.run(importer)
            results[name] = (run.status, run.archived, run.errors, run.bytes, _blobs(archive))
        finally:
            archive.close()
    assert len(sent) == 10 and all(isinstance(job, ShareFile) for job in sent)
    assert all(job.access.password == samba.password for job in sent)
    assert samba.password not in repr(sent[0])
    assert results["smb"] == results["local"] and results["smb"][:3] == ("complete", 14, 0)


def test_a_file_changed_or_gone_after_the_listing_is_listed_not_archived(tmp_path, samba):
    sub = "t-jobs-changed"
    root = samba.share_dir / sub
    names = _maildir(root / "Mail", 5)
    (root / "big.eml").write_bytes(b"From: big@example.com\nSubject: big\n\n" + b"y" * (100 << 10))  # past the head

    def change():
        (root / "Mail" / names[1]).write_bytes(b"Subject: other bytes\n\nnot what the listing saw\n")
        (root / "Mail" / names[3]).unlink()
        (root / "big.eml").write_bytes(b"From: big@example.com\nSubject: big\n\n" + b"z" * (99 << 10))

    archive = Archive.create(tmp_path / "home", str(tmp_path / "m"))
    try:
        importer = ShareImporter(samba.url(sub), smb_password=samba.password)
        run = Ingest(archive, ListReporter(), workers=0).run(_Touched(importer, change))
        with archive.catalog.reading() as con:
            subjects = {r[0] for r in con.execute("SELECT subject FROM messages").fetchall()}
    finally:
        archive.close()
    problems = {p["ref"]: (p["kind"], p["message"]) for p in run.problems}
    assert run.status == "complete" and run.archived == 3 and (run.errors, run.skipped) == (2, 1)
    assert problems[f"Mail/{names[1]}"][0] == "error" and "changed after the scan" in problems[f"Mail/{names[1]}"][1]
    assert problems[f"Mail/{names[3]}"][0] == "skipped" and "vanished" in problems[f"Mail/{names[3]}"][1]
    assert problems["big.eml"][0] == "error" and "changed after the scan" in problems["big.eml"][1]
    assert "other bytes" not in subjects and "big" not in subjects
