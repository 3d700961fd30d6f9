"""``import imap`` whose pack tasks fetch the mail in their worker processes (importers/imap_jobs.py).

The driver lists (UIDs, sizes, flags, dates) and hands over ImapUid jobs; each worker logs in itself and
fetches its task's UIDs. What must not change: the blobs stored, the decision of every arrival, the
folder, flags and INTERNALDATE of every sighting, and that a mail which vanished between the listing
and the worker's fetch is listed with its UID, never silently dropped (docs/reliability.md D4).
"""
from __future__ import annotations

import hashlib
import os
import ssl

import pytest
from imapclient import IMAPClient

from importers.imap import ImapImporter
from toolkit.archive import Archive
from toolkit.ingest import Ingest
from toolkit.retrieval import read_messages, select_messages


def _client(dovecot, user, password) -> IMAPClient:
    ctx = ssl.create_default_context(cafile=str(dovecot.ca_cert_path))
    c = IMAPClient("127.0.0.1", port=dovecot.imaps_port, ssl_context=ctx, timeout=30)
    c.login(user, password)
    return c


def _mail(n: int, size: int = 2_000) -> bytes:
    return (f"From: s{n}@example.org\r\nTo: r@example.org\r\nSubject: task fetch {n}\r\n"
            f"Message-ID: <task-{n}-{os.urandom(4).hex()}@example.org>\r\n\r\n").encode() + os.urandom(size).hex().encode() + b"\r\n"


def _fill(dovecot, user, pw) -> list[bytes]:
    """INBOX with 30 mails (3 of them appended twice: exact duplicates) and a folder of 6, flags on some."""
    mails = [_mail(i) for i in range(30)]
    c = _client(dovecot, user, pw)
    try:
        for i, m in enumerate(mails):
            c.append("INBOX", m, flags=[b"\\Flagged"] if i % 5 == 0 else [])
            if i % 10 == 3:
                c.append("INBOX", m)
        c.create_folder("Sent")
        for i in range(6):
            c.append("Sent", mails[i * 4])  # the same bytes in another folder: duplicates there
    finally:
        c.logout()
    return mails


def _importer(dovecot, user, pw, **kw) -> ImapImporter:
    return ImapImporter(f"imaps://{user}@127.0.0.1:{dovecot.imaps_port}", pw, ca_file=str(dovecot.ca_cert_path),
                        backoff=0.05, batch=4, **kw)


def _outcome(archive) -> tuple[set[str], list[tuple]]:
    blobs = set()
    for _m, data in read_messages(archive, select_messages(archive)):
        assert not isinstance(data, Exception), data
        blobs.add(hashlib.sha256(data).hexdigest())
    with archive.catalog.reading() as con:
        rows = con.execute("SELECT source_ref, folder, decision, flags, internal_date FROM sightings "
                           "ORDER BY source_ref").fetchall()
    return blobs, [tuple(str(v) for v in r) for r in rows]


def test_workers_fetching_store_the_same_blobs_and_decisions_as_the_reader_fetching(dovecot, mail_user, tmp_path):
    user, pw = mail_user
    mails = _fill(dovecot, user, pw)
    results, pools = {}, []
    for how, in_tasks, workers in (("reader", False, 0), ("workers", True, 2)):
        archive = Archive.create(tmp_path / f"home-{how}", str(tmp_path / f"medium-{how}"))
        try:
            ing = Ingest(archive, workers=workers, chunk=5)  # a first chunk inline, then tasks of 5 on the pool
            ing.on_executor = pools.append
            s = ing.run(_importer(dovecot, user, pw, fetch_in_tasks=in_tasks))
            assert (s.status, s.seen, s.errors) == ("complete", 39, 0), s
            assert (s.archived, s.duplicates) == (30, 9)
            results[how] = _outcome(archive)
        finally:
            archive.close()
    assert len(pools) == 1  # the second run did use worker processes
    assert results["workers"] == results["reader"]
    assert results["reader"][0] == {hashlib.sha256(m).hexdigest() for m in mails}


def test_a_mail_expunged_between_the_listing_and_the_workers_fetch_is_listed_not_dropped(dovecot, mail_user, tmp_path):
    user, pw = mail_user
    mails = _fill(dovecot, user, pw)
    c = _client(dovecot, user, pw)
    c.select_folder("INBOX", readonly=True)
    uids = sorted(c.search())
    c.logout()
    # INBOX positions 20 and 31 hold mails 18 and 28 (mails 3, 13, 23 come twice): listed once, no copy in Sent;
    # both fall in chunks the worker processes fetch (the first chunk of 5 is inline)
    gone = [uids[20], uids[31]]

    def expunge(_executor):  # the listing is done by then (39 small items read ahead); no task has run yet
        other = _client(dovecot, user, pw)
        other.select_folder("INBOX")
        assert [d[b"BODY[]"] for _u, d in sorted(other.fetch(gone, [b"BODY.PEEK[]"]).items())] == [mails[18], mails[28]]
        other.delete_messages(gone)
        other.expunge()
        other.logout()

    archive = Archive.create(tmp_path / "home", str(tmp_path / "medium"))
    try:
        ing = Ingest(archive, workers=2, chunk=5)
        ing.on_executor = expunge
        s = ing.run(_importer(dovecot, user, pw))
        assert s.status == "complete"
        assert (s.seen, s.archived, s.duplicates, s.errors) == (37, 28, 9, 2), s
        refs = sorted(p["ref"] for p in s.problems)
        assert [int(r.rsplit("UID=", 1)[1]) for r in refs] == sorted(gone) and all(r.startswith("INBOX;") for r in refs)
        assert all("source changed during import" in p["message"] for p in s.problems), s.problems
        blobs, _rows = _outcome(archive)
        assert blobs == {hashlib.sha256(m).hexdigest() for i, m in enumerate(mails) if i not in (18, 28)}
        with archive.catalog.reading() as con:
            errors = sorted(r[0] for r in con.execute("SELECT source_ref FROM run_errors").fetchall())
        assert errors == refs
        # the cursor went past them: a rerun reads nothing again and lists nothing again
        again = Ingest(archive, workers=2, chunk=5).run(_importer(dovecot, user, pw))
        assert (again.status, again.seen, again.errors) == ("complete", 0, 0)
    finally:
        archive.close()


@pytest.mark.parametrize("workers", [0, 2])
def test_a_folder_recreated_between_the_listing_and_the_fetch_is_listed_and_read_again_next_run(
        dovecot, mail_user, tmp_path, workers):
    """UIDVALIDITY changed under the fetch (the folder deleted and made again with other mail): each listed
    mail is listed as a problem, none is archived from the new folder under the old UIDs; the next run sees
    the new UIDVALIDITY and reads the folder again: nothing is lost."""
    user, pw = mail_user
    c = _client(dovecot, user, pw)
    c.create_folder("Box")
    first = [_mail(100 + i) for i in range(8)]
    second = [_mail(200 + i) for i in range(8)]
    for m in first:
        c.append("Box", m)
    c.logout()

    def recreate():
        other = _client(dovecot, user, pw)
        other.delete_folder("Box")
        other.create_folder("Box")
        for m in second:
            other.append("Box", m)
        other.logout()

    class RecreatedAfterListing:  # the folder's listing is complete when its first item is handed over
        def __init__(self, inner):
            self.inner, self.source_uri, self.via, self.incremental = inner, inner.source_uri, inner.via, True

        def scan(self, cursor, reporter):
            for i, item in enumerate(self.inner.scan(cursor, reporter)):
                if i == 0:
                    recreate()
                yield item

    archive = Archive.create(tmp_path / "home", str(tmp_path / "medium"))
    try:
        imp = RecreatedAfterListing(_importer(dovecot, user, pw, folders=["Box"], prefetch=0))
        s = Ingest(archive, workers=workers, chunk=3).run(imp)
        assert s.status == "complete"
        assert (s.seen, s.archived, s.errors) == (0, 0, 8), s
        assert all("UIDVALIDITY changed" in p["message"] for p in s.problems)
        again = Ingest(archive, workers=workers, chunk=3).run(_importer(dovecot, user, pw, folders=["Box"]))
        assert (again.status, again.archived, again.errors) == ("complete", 8, 0)
        blobs, _rows = _outcome(archive)
        assert blobs == {hashlib.sha256(m).hexdigest() for m in second}
    finally:
        archive.close()
