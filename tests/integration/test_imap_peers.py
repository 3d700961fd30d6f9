"""IMAP servers other than Dovecot (Courier-IMAP 5.0, Cyrus IMAP 3.6): their behaviours that
Dovecot does not show, replayed by the scripted server (tests/services/evil_imap.py), each with the
real server's transcript it is based on (docs/reliability.md D4, D10)."""
from __future__ import annotations

import hashlib

import pytest

from importers.imap import CHANGED, ImapImporter
from importers.netutil import TlsRequiredError
from services.evil_imap import MAIL, start_evil_imap
from toolkit.archive import Archive
from toolkit.ingest import Ingest
from toolkit.reporter import ListReporter
from toolkit.source import SourceMail, SourceProblem


def _importer(server, **kw) -> ImapImporter:
    return ImapImporter(server.url(), "pw", allow_plaintext=True, timeout=10, retries=1, backoff=0.05, **kw)


@pytest.fixture
def archive(tmp_path):
    a = Archive.create(tmp_path / "home", str(tmp_path / "medium"))
    yield a
    a.close()


def test_D4_courier_placeholder_for_a_mail_expunged_meanwhile_is_listed_not_archived(archive):
    """Courier-IMAP answers the FETCH of a mail that another session expunged (before this session
    was told) with a placeholder whose RFC822.SIZE is its own length, so it passed the "bytes equal
    RFC822.SIZE" check and was archived in place of the mail. Real transcript (courier-imap
    5.0.13, Debian 12; session B expunged UID 5 after A's EXAMINE; UID 5 had RFC822.SIZE 158)::

        A: 3 UID FETCH 5 (BODY.PEEK[] INTERNALDATE FLAGS RFC822.SIZE)
        S: * 3 FETCH (UID 5 BODY[] {129}
        S: From: System Administrator <root@localhost>
        S: Subject: message unavailable
        S:
        S: This message is no longer available on the server.
        S:  INTERNALDATE "04-Dec-2026 15:47:10 +0000" FLAGS () RFC822.SIZE 129)
        S: 3 OK FETCH completed.

    In the size listing (``UID FETCH 1:4 (RFC822.SIZE FLAGS INTERNALDATE)`` after the expunge)
    Courier already gives ``* 3 FETCH (UID 3 RFC822.SIZE 129 FLAGS () INTERNALDATE "<now>")``.
    A mail never changes under its UID: a body of another size than the listing gave, or Courier's
    placeholder itself, is listed as "source changed during import" (D4), in both the reader's fetch
    and the pack task's.
    """
    server = start_evil_imap({"A-Good": "good", "B-Gone": "courier-expunged", "C-Gone": "courier-expunged-listed"})
    try:
        items = list(_importer(server, prefetch=0, fetch_in_tasks=False).scan(None, ListReporter()))
        summary = Ingest(archive, workers=0).run(_importer(server))
    finally:
        server.stop()
    assert [(i.folder, i.raw) for i in items if isinstance(i, SourceMail)] == [("A-Good", MAIL)]
    problems = {i.ref.split(";")[0]: i.message for i in items if isinstance(i, SourceProblem)}
    assert set(problems) == {"B-Gone", "C-Gone"} and all(p.startswith(CHANGED) for p in problems.values())
    assert (summary.archived, summary.errors) == (1, 2)
    with archive.catalog.reading() as con:
        stored = {r[0] for r in con.execute("SELECT blob_id FROM messages").fetchall()}
    assert stored == {hashlib.sha256(MAIL).hexdigest()}


CYRUS_NAMESPACE = b'* NAMESPACE (("INBOX." ".")) (("user." ".")) (("" "."))'
CYRUS_FOLDERS = {"INBOX": "good", "INBOX.Archive.2023": "good", "INBOX.Entw&APw-rfe": "good",
                 "user.bob.Shared": "good", "Public.Team": "good"}


def _folders(server, cursor=None, **kw) -> list[str]:
    """The folders of the mails one scan hands over, in order."""
    items = _importer(server, prefetch=0, fetch_in_tasks=False, **kw).scan(cursor, ListReporter())
    return [i.folder for i in items if isinstance(i, SourceMail)]


def test_D10_folders_of_a_dot_separated_server_are_named_as_in_the_archive():
    """Cyrus (``unixhierarchysep: no``, Debian's default) and Courier separate levels with ``.`` and
    keep personal folders under ``INBOX.``; the import kept those names, so Cyrus's
    ``INBOX.Archive.2023`` was one flat folder in the archive (``import maildir`` of the same
    mailbox says ``Archive/2023``; retention and revisor scopes by folder match ``F/...``; export
    maildir and imap wrote a folder named ``INBOX.Archive.2023``). Real transcript (cyrus-imapd
    3.6.1, Debian 12, user alice; bob and an admin had shared folders with her)::

        C: d LIST "" "*"
        S: * LIST (\\HasChildren) "." INBOX
        S: * LIST (\\HasChildren) "." INBOX.Archive.2023
        S: * LIST (\\HasNoChildren) "." INBOX.Entw&APw-rfe
        S: * LIST (\\HasNoChildren) "." user.bob.Shared
        S: * LIST (\\HasNoChildren) "." Public.Team
        C: f NAMESPACE
        S: * NAMESPACE (("INBOX." ".")) (("user." ".")) (("" "."))

    (Courier-IMAP 5.0: the same LIST shape and ``* NAMESPACE (("INBOX." ".")) NIL (("#shared." ".")("shared." ".")))``.)
    Now the separator becomes ``/`` and the personal prefix is left out; a filter may give either
    name, and a cursor written under the server's names is carried over (nothing read again).
    """
    from importers.maildir import folder_name as maildir_folder

    server = start_evil_imap(CYRUS_FOLDERS, delimiter=b".", namespace=CYRUS_NAMESPACE)
    try:
        names = _folders(server)
        picked = _folders(server, folders=["INBOX.Archive.2023", "Entwürfe"])
        # a cursor under the server's decoded names, as the earlier version wrote it
        resumed = _folders(server, {"folders": {"INBOX": [7, 1], "INBOX.Archive.2023": [7, 1], "INBOX.Entwürfe": [7, 1]}})
    finally:
        server.stop()
    assert names == ["INBOX", "Archive/2023", "Entwürfe", "Public/Team", "user/bob/Shared"]
    assert maildir_folder(b".Archive.2023") == "Archive/2023"  # the name `import maildir` gives the same folder
    assert picked == ["Archive/2023", "Entwürfe"]
    assert resumed == ["Public/Team", "user/bob/Shared"]


def test_D10_without_namespace_the_prefix_stays_and_a_nil_separator_keeps_names_whole():
    """A server without NAMESPACE keeps its ``INBOX.`` prefix (the separator still becomes ``/``);
    a flat server (``NIL`` separator, RFC 3501) keeps its names whole."""
    dotted = start_evil_imap({"INBOX": "good", "INBOX.Sent": "good"}, delimiter=b".")
    flat = start_evil_imap({"INBOX": "good", "a.b/c": "good"}, delimiter=None)
    try:
        assert _folders(dotted) == ["INBOX", "INBOX/Sent"]
        assert _folders(flat) == ["INBOX", "a.b/c"]
    finally:
        dotted.stop()
        flat.stop()


def test_D9_logindisabled_server_is_not_sent_the_password_and_is_not_called_a_wrong_password():
    """Cyrus without TLS (``allowplaintext: no``, its upstream default) announces LOGINDISABLED
    and offers no STARTTLS; with --allow-plaintext the import sent LOGIN anyway (the password in
    clear text, which RFC 3501 forbids a client here) and then called it a rejected login ("Check
    the user and password", exit 4). Real transcript (cyrus-imapd 3.6.1, Debian 12)::

        S: * OK [CAPABILITY IMAP4rev1 LITERAL+ ID ENABLE LOGINDISABLED] vm Cyrus IMAP 3.6.1 server ready
        C: b LOGIN alice secret
        S: b NO Login only available under a layer
        C: c AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==
        S: c NO encryption needed to use mechanism
    """
    server = start_evil_imap({"INBOX": "good"}, capabilities=b" LOGINDISABLED")
    try:
        with pytest.raises(TlsRequiredError, match="LOGINDISABLED.*the password was not sent"):
            list(_importer(server, prefetch=0).scan(None, ListReporter()))
    finally:
        server.stop()
    assert not any(b" LOGIN " in c.upper() for c in server.commands)


def test_D6_unsolicited_flags_without_uid_never_give_another_mail_its_flags(monkeypatch):
    """Cyrus tells of flags another session changed at the start of the next command, as a FETCH
    answer without UID (RFC 3501 allows it; answers to UID FETCH itself always carry UID). The
    reader keyed an answer without UID by its sequence number as if it were a UID, so in a listing
    of more than one part (SIZE_CHUNK UIDs each) a mail of an earlier part whose UID equals that
    sequence number got the other mail's flags. Real transcript (cyrus-imapd 3.6.1, Debian 12;
    session B stored ``+FLAGS (\\Answered $Junk)`` on message 1 while A had the folder open)::

        A: a4 FETCH 2 (UID RFC822.SIZE)
        S: * FLAGS (\\Answered \\Flagged \\Draft \\Deleted \\Seen $Label1 $Junk)
        S: * OK [PERMANENTFLAGS ()] Ok
        S: * 1 FETCH (FLAGS (\\Recent \\Answered $Junk))
        S: * 2 FETCH (UID 2 RFC822.SIZE 161)
        S: a4 OK Completed (0.000 sec)

    and likewise before ``* SEARCH`` of a UID SEARCH. Here UIDs 2, 3, 5, 9 sit at sequence numbers
    1-4, the listing is read in parts of two, and before the second part comes
    ``* 2 FETCH (FLAGS (\\Recent \\Answered $Junk))`` (sequence number 2 is UID 3).
    """
    import importers.imap as imap_mod

    monkeypatch.setattr(imap_mod, "SIZE_CHUNK", 2)
    server = start_evil_imap({"Box": "cyrus-flags"})
    try:
        listed = list(_importer(server, prefetch=0).scan(None, ListReporter()))
        fetched = list(_importer(server, prefetch=0, fetch_in_tasks=False, batch=2, pipeline=2).scan(None, ListReporter()))
    finally:
        server.stop()
    for items in (listed, fetched):
        mails = {int(i.ref.rsplit("=", 1)[1]): i for i in items if isinstance(i, SourceMail)}
        assert sorted(mails) == [2, 3, 5, 9]
        assert all(m.flags == ("\\Seen",) for m in mails.values()), {u: m.flags for u, m in mails.items()}


def test_D10_a_slash_inside_a_level_never_merges_two_folders():
    """On a ``.``-separated server ``a/b`` is one level: it is named ``a&AC8-b`` (the modified UTF-7
    form of ``/``), never like ``a.b`` (``a/b``): both are read and neither is lost. A filter takes
    the archive's name first, then the server's (``a.b``)."""
    server = start_evil_imap({"INBOX": "good", "a.b": "good", "a/b": "good"}, delimiter=b".")
    try:
        names = _folders(server)
        picked = _folders(server, folders=["a&AC8-b", "a.b"])
    finally:
        server.stop()
    assert sorted(names) == ["INBOX", "a&AC8-b", "a/b"]
    assert sorted(picked) == ["a&AC8-b", "a/b"]


def test_D10_export_puts_folders_inside_the_personal_namespace(tmp_path):
    """``export imap`` named the target folders without the server's personal namespace prefix, and
    Cyrus and Courier keep every personal folder under ``INBOX.``: each mail outside INBOX was refused
    (13 of 18 of a Maildir with nested and non-ASCII folders, on both servers). Real transcripts
    (cyrus-imapd 3.6.1 and courier-imap 5.0.13, Debian 12, started by scripts/peer-servers)::

        C: b NAMESPACE
        S: * NAMESPACE (("INBOX." ".")) (("user." ".")) (("" "."))             (Courier: (("INBOX." ".")) NIL ...)
        C: d CREATE "Archive.2019"
        S: d NO Permission denied                                              (Courier: d NO Invalid mailbox name.)
        C: e APPEND "Archive.2019" (\\Seen) {5}
        S: e NO Mailbox does not exist                                         (Courier: e NO Invalid mailbox name.)

    Folders now go inside the first personal namespace (``Archive/2019`` → ``INBOX.Archive.2019``, the
    name ``import imap`` reads back as ``Archive/2019``; INBOX stays INBOX, never ``INBOX.INBOX``). With
    the fix, the same export into the real servers and ``import imap`` into a second archive gave the same
    18 (folder, flags, CRLF bytes) sightings, and a rerun appended nothing.
    """
    from tests.corpora import REPO

    summary, server = _export_to_cyrus_like(tmp_path, REPO / "sample_data" / "maildir", {"INBOX": "good"})
    assert summary.errors == [] and summary.written == summary.selected == 11
    assert sorted({name for name, _, _ in server.appended}) == [
        "INBOX", "INBOX.Archive.2019", "INBOX.Entw&APw-rfe", "INBOX.Projects"]
    assert sorted(n for n in server.folders if n != "INBOX") == ["INBOX.Archive.2019", "INBOX.Entw&APw-rfe",
                                                                  "INBOX.Projects"]


def test_D10_export_creates_a_folder_whose_name_holds_a_list_wildcard(tmp_path):
    """``export imap`` asked ``LIST "" NAME`` whether the target folder exists, and LIST reads ``*`` and
    ``%`` in NAME as wildcards: a folder ``Star*Folder`` "existed" when ``Star-Other-Folder`` did, was never
    created, and its mail was refused. Real transcript (courier-imap 5.0.13, Debian 12)::

        C: b LIST "" "INBOX.Again2.Star*Folder"
        S: * LIST (\\HasNoChildren) "." "INBOX.Again2.Star-Other-Folder"
        S: b OK LIST completed
        C: c APPEND "INBOX.Again2.Star*Folder" (\\Seen) {5}
        S: c NO [TRYCREATE] Must create mailbox before append

    Only a listed folder of the very name counts now. (Cyrus refuses ``%`` in a name, ``Invalid mailbox
    name``: that mail is listed as refused, exit 1.)
    """

    src = tmp_path / "src"
    for folder in ("", ".Star*Folder", ".100% done"):
        for sub in ("cur", "new", "tmp"):
            (src / folder / sub).mkdir(parents=True, exist_ok=True)
    for i, folder in enumerate(("", ".Star*Folder", ".100% done")):
        (src / folder / "cur" / f"170000000{i}.M{i}P1.h:2,S").write_bytes(
            b"From: a@example.com\nSubject: wild\nMessage-ID: <wild-%d@example.com>\n\nbody\n" % i)
    summary, server = _export_to_cyrus_like(
        tmp_path, src, {"INBOX": "good", "INBOX.Star-Other-Folder": "good", "INBOX.100 done": "good"})
    assert summary.errors == [] and summary.written == 3
    assert sorted(name for name, _, _ in server.appended) == ["INBOX", "INBOX.100% done", "INBOX.Star*Folder"]


def _courier_store(data: bytes) -> bytes:
    """Courier-IMAP 5.0 ends a message that has no final line end with a CRLF."""
    return data if data.endswith(b"\r\n") else data + b"\r\n"


def _cyrus_store(data: bytes) -> bytes:
    """Cyrus 3.6 (``munge8bit: yes``, its default) turns each 8-bit byte of the header into ``X``."""
    head, sep, body = data.partition(b"\r\n\r\n")
    return bytes(b if b < 0x80 else 0x58 for b in head) + sep + body


def _altering_source(tmp_path):
    src = tmp_path / "altering"
    for sub in ("cur", "new", "tmp"):
        (src / sub).mkdir(parents=True)
    mails = {"plain": b"From: a@example.com\nSubject: plain\nMessage-ID: <plain@example.com>\n\nbody\n",
             "no-final-line-end": b"From: a@example.com\nSubject: cut\nMessage-ID: <cut@example.com>\n\nno end",
             "8bit-header": "From: a@example.com\nSubject: Grüße\nMessage-ID: <umlaut@example.com>\n\nbody\n".encode()}
    for i, (name, raw) in enumerate(mails.items()):
        (src / "cur" / f"170000000{i}.M{i}P1.{name}:2,S").write_bytes(raw)
    return src


@pytest.mark.parametrize("store,altered,why", [(_courier_store, "<cut@example.com>", "added a line end at the end"),
                                                (_cyrus_store, "<umlaut@example.com>", "same size, other bytes")])
def test_D14_export_reads_back_and_lists_a_copy_the_server_altered(tmp_path, store, altered, why):
    """Courier and Cyrus store other bytes than ``export imap`` sent (see the two store functions), and the export
    reported success: the target held copies that were not byte-identical, silently. Each appended copy is now
    read back by UID at the end of the run; the altered one is an error naming the folder, the UID, both sizes and
    hashes, and what the server did, and a rerun lists it again instead of counting it as present."""
    summary, server = _export_to_cyrus_like(tmp_path, _altering_source(tmp_path), {"INBOX": "good"}, store=store)
    assert summary.written == 3 and summary.read_back == {"checked": 2, "altered": 1, "missing": 0, "without_uid": 0}
    [err] = summary.errors
    assert "other bytes than were sent to 'INBOX' (UID" in err["error"] and why in err["error"]
    fetched = [c for c in server.commands if b"FETCH" in c.upper()]
    assert len(fetched) == 1 and b"BODY.PEEK[]" in fetched[0].upper()   # one read-back FETCH for the folder

    again, server2 = _export_to_cyrus_like(tmp_path, None, {"INBOX": "good"}, store=store, reuse=True)
    assert again.written == 0 and again.already_present == 3 and server2.appended == []
    assert [e["blob_id"] for e in again.errors] == [err["blob_id"]]
    assert "earlier run's read-back" in again.errors[0]["error"]
    assert again.read_back["checked"] == 0 and again.read_back["altered"] == 1   # nothing read back twice


def test_D14_without_uidplus_the_copies_that_could_not_be_read_back_are_counted(tmp_path):
    summary, server = _export_to_cyrus_like(tmp_path, _altering_source(tmp_path), {"INBOX": "good"})
    assert summary.errors == [] and summary.read_back == {"checked": 0, "altered": 0, "missing": 0, "without_uid": 3}
    assert not [c for c in server.commands if b"FETCH" in c.upper()]


def test_D14_a_copy_courier_lengthened_is_found_after_a_dropped_append_and_not_appended_twice(tmp_path):
    """After a link dropped between storing an APPEND and its OK, the export asks whether the copy arrived: same
    Message-ID and same size. Courier stores a mail without a final line end 2 bytes longer, so the copy that had
    arrived was not found and was appended a second time. Both sizes count now, and the read-back still lists the
    copy as altered."""
    summary, server = _export_to_cyrus_like(tmp_path, _altering_source(tmp_path), {"INBOX": "good"},
                                            store=_courier_store, drop_after_store=2)
    kept = server.stored["INBOX"]
    assert len(server.appended) == 3 and len(kept) == 3          # the dropped APPEND was not repeated
    assert sum(b"<cut@example.com>" in m for m in kept) == 1
    assert summary.written == 3 and summary.read_back["altered"] == 1
    assert [e for e in summary.errors if "added a line end" in e["error"]]


def _export_to_cyrus_like(tmp_path, maildir, folders: dict, store=None, reuse=False, drop_after_store=0):
    """Import ``maildir`` into a new archive (``reuse``: the one made before) and ``export imap`` it to a scripted
    server with Cyrus's '.' separator and ``INBOX.`` namespace holding ``folders`` (``store``: see start_evil_imap);
    (the export's summary, the stopped server)."""
    from exporters.imap import ImapTarget, export_imap
    from importers.maildir import MaildirImporter

    if not reuse:
        Archive.create(tmp_path / "home", str(tmp_path / "medium")).close()
    a = Archive.open(tmp_path / "home", writer=True)
    try:
        if not reuse:
            Ingest(a, workers=0).run(MaildirImporter(str(maildir)))
        server = start_evil_imap(folders, delimiter=b".", namespace=CYRUS_NAMESPACE, store=store,
                                 drop_after_store=drop_after_store)
        try:
            summary = export_imap(a, ImapTarget("127.0.0.1", server.port, "u", False), "pw", allow_plaintext=True,
                                  timeout=10, retries=1, backoff=0.05, state_path=tmp_path / "state.jsonl",
                                  manifest_dir=tmp_path / "manifest")
        finally:
            server.stop()
    finally:
        a.close()
    return summary, server
