"""export imap: the IMAP round trip, and a resume without duplicates, against a real Dovecot.

export imap into a fresh account → import imap into a third archive: the
same messages (blob ids; IMAP carries CRLF, so LF mail comes back as its
CRLF form, which the manifest's sha256 names), folders, flags and
INTERNALDATE. A killed export resumes from its state file without a
duplicate on the server; UIDPLUS UIDs are in the manifest.
"""
from __future__ import annotations

import hashlib
import json
import signal
import ssl
import time

import pytest
from imapclient import IMAPClient

from exporters.filters import Filters
from exporters.imap import ImapTarget, crlf, export_imap
from exporters.layout import placements
from exporters.manifest import read_manifest
from importers.eml import EmlImporter
from importers.imap import ImapImporter
from importers.maildir import MaildirImporter
from importers.mbox import MboxImporter
from tests.cli import mailarchive
from tests.corpora import REPO
from toolkit.archive import Archive
from toolkit.ingest import Ingest
from toolkit.retrieval import read_messages, select_messages

SAMPLE = REPO / "sample_data"


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    base = tmp_path_factory.mktemp("imapexport")
    Archive.create(base / "home", str(base / "medium")).close()
    a = Archive.open(base / "home", writer=True)
    for imp in [EmlImporter(str(SAMPLE / "eml")), EmlImporter(str(SAMPLE / "journal")),
                MaildirImporter(str(SAMPLE / "maildir"))] + [MboxImporter(str(p)) for p in sorted((SAMPLE / "mbox").iterdir())]:
        Ingest(a, workers=0).run(imp)
    a.close()
    a = Archive.open(base / "home")
    yield a
    a.close()


def _ctx(dovecot) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(dovecot.ca_cert_path))


def _target(dovecot, user, prefix="") -> ImapTarget:
    return ImapTarget("127.0.0.1", dovecot.imaps_port, user, True, prefix)


def _server_count(dovecot, user, password) -> dict[str, int]:
    c = IMAPClient("127.0.0.1", port=dovecot.imaps_port, ssl_context=_ctx(dovecot), timeout=30)
    c.login(user, password)
    try:
        out = {}
        for flags, _, name in c.list_folders():
            if b"\\Noselect" in flags or b"\\NonExistent" in flags:
                continue
            out[name] = c.select_folder(name, readonly=True)[b"EXISTS"]
        return out
    finally:
        c.logout()


def _expected(archive: Archive, prefix: str = "") -> dict[str, list]:
    """CRLF sha256 → sorted [(folder, flags, internal date as UTC timestamp)] the target should hold."""
    sel = select_messages(archive)
    pl = placements(archive, [sm.msg_id for sm in sel])
    out = {}
    for sm, data in read_messages(archive, sel):
        items = []
        for p in pl[sm.msg_id]:
            when = p.internal_date or sm.internal_date or sm.sent_date
            folder = "/".join(x for x in [prefix, p.folder or "INBOX"] if x)
            items.append((folder, p.flags, when.timestamp() if when else None))
        out[hashlib.sha256(crlf(data)).hexdigest()] = sorted(items)
    return out


def test_imap_roundtrip_blobs_folders_flags_internaldate(source, dovecot, mail_user, tmp_path):
    user, password = mail_user
    summary = export_imap(source, _target(dovecot, user), password, ssl_context=_ctx(dovecot),
                          state_path=tmp_path / "state.jsonl", manifest_dir=tmp_path / "manifest")
    assert not summary.errors and summary.written == summary.selected
    doc = read_manifest(tmp_path / "manifest")
    assert doc["complete"] and all(isinstance(r["uid"], int) for r in doc["messages"])  # UIDPLUS
    # D14: every copy read back; Dovecot keeps the bytes sent
    assert summary.read_back == {"checked": len(doc["messages"]), "altered": 0, "missing": 0, "without_uid": 0}

    Archive.create(tmp_path / "h3", str(tmp_path / "m3")).close()
    third = Archive.open(tmp_path / "h3", writer=True)
    try:
        run = Ingest(third, workers=0).run(ImapImporter(f"imaps://{user}@127.0.0.1:{dovecot.imaps_port}", password,
                                                        ca_file=str(dovecot.ca_cert_path)))
        assert run.errors == 0
        sel = select_messages(third)
        pl = placements(third, [sm.msg_id for sm in sel])
        got = {sm.blob_id: sorted((p.folder, p.flags, p.internal_date.timestamp()) for p in pl[sm.msg_id]) for sm in sel}
    finally:
        third.close()
    expected = _expected(source)
    assert set(got) == set(expected)
    assert got == expected
    # mail that already had CRLF line ends comes back with its very blob id
    crlf_native = {sm.blob_id for sm, d in read_messages(source, select_messages(source)) if crlf(d) == d}
    assert crlf_native and crlf_native <= set(got)
    assert {r["sha256"] for r in doc["messages"]} == set(expected)

    # a rerun appends nothing
    before = _server_count(dovecot, user, password)
    again = export_imap(source, _target(dovecot, user), password, ssl_context=_ctx(dovecot),
                        state_path=tmp_path / "state.jsonl", manifest_dir=tmp_path / "manifest")
    assert again.written == 0 and again.already_present == len(doc["messages"])
    assert again.read_back["checked"] == 0 and not again.errors   # a copy checked once is not read again
    assert _server_count(dovecot, user, password) == before


def test_imap_killed_export_resumes_without_duplicates(source, dovecot, mail_user, tmp_path):
    """E4/D: killed after the third APPEND; the rerun (CLI, state file in HOME) completes it, no duplicate."""
    user, password = mail_user
    pw = tmp_path / "pw"
    pw.write_text(password)
    url = f"imaps://{user}@127.0.0.1:{dovecot.imaps_port}/Migrated"
    args = ["export", "imap", url, "--password-file", str(pw), "--ca-file", str(dovecot.ca_cert_path),
            "--folder", "2019", "--folder", "Archive", "--manifest-dir", str(tmp_path / "man")]
    killed = mailarchive(source.home, *args, env={"MAILARCHIVE_FAULT": "export_after_file:3"}, check=None)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert read_manifest(tmp_path / "man") is None
    assert sum(_server_count(dovecot, user, password).values()) == 3
    done = mailarchive(source.home, "--json", *args, check=0)
    result = json.loads(done.stdout)
    assert result["already_present"] == 3 and result["errors"] == []
    counts = _server_count(dovecot, user, password)
    f = Filters(folders=("2019", "Archive"))
    sel = select_messages(source, *f.sql())
    wanted = [p.folder for ps in placements(source, [sm.msg_id for sm in sel], f).values() for p in ps]
    assert sum(counts.values()) == len(wanted)
    assert counts["Migrated/2019"] == wanted.count("2019")
    assert counts["Migrated/Archive/2019"] == wanted.count("Archive/2019")
    assert counts.get("INBOX", 0) == 0
    # D14: the 3 copies appended before the kill were never read back; the rerun reads them back with its own
    assert result["read_back"] == {"checked": len(wanted), "altered": 0, "missing": 0, "without_uid": 0}
    doc = read_manifest(tmp_path / "man")
    assert doc["complete"] and len(doc["messages"]) == len(wanted)
    assert len({(r["target"], r["uid"]) for r in doc["messages"]}) == len(wanted)


def test_imap_throttling(source, dovecot, mail_user, tmp_path):
    user, password = mail_user
    f = Filters(folders=("INBOX",))
    n = len(select_messages(source, *f.sql()))
    assert n >= 3
    t0 = time.monotonic()
    s = export_imap(source, _target(dovecot, user, "T"), password, f, ssl_context=_ctx(dovecot), max_per_second=10,
                    state_path=tmp_path / "s.jsonl", manifest_dir=tmp_path / "m")
    assert s.written == n and not s.errors
    assert time.monotonic() - t0 >= (n - 1) / 10


def test_D14_a_copy_deleted_on_the_server_before_its_read_back_is_an_error(source, dovecot, mail_user, tmp_path):
    """An export without read-back, a copy then expunged on the server, and a rerun with read-back: the rerun
    reads back the copies the first run left unchecked and lists the lost one (exit 1 in the CLI)."""
    user, password = mail_user
    f = Filters(folders=("INBOX",))
    kw = dict(ssl_context=_ctx(dovecot), state_path=tmp_path / "s.jsonl", manifest_dir=tmp_path / "m")
    first = export_imap(source, _target(dovecot, user, "RB"), password, f, read_back=False, **kw)
    assert first.written >= 2 and first.read_back is None
    c = IMAPClient("127.0.0.1", port=dovecot.imaps_port, ssl_context=_ctx(dovecot), timeout=30)
    try:
        c.login(user, password)
        c.select_folder("RB/INBOX")
        uids = c.search()
        c.delete_messages(uids[:1])
        c.expunge()
    finally:
        c.logout()
    again = export_imap(source, _target(dovecot, user, "RB"), password, f, **kw)
    assert again.written == 0 and again.already_present == first.written
    assert again.read_back == {"checked": first.written - 1, "altered": 0, "missing": 1, "without_uid": 0}
    [err] = again.errors
    assert f"'RB/INBOX' (UID {uids[0]}) is not there when read back" in err["error"]
    third = export_imap(source, _target(dovecot, user, "RB"), password, f, **kw)
    assert [e["msg_id"] for e in third.errors] == [err["msg_id"]] and third.read_back["checked"] == 0
