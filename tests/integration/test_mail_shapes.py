"""Mail stores real tools write, each imported by the importer that owns its shape (docs/formats.md
"Mail stores of other tools").

The samples are written here after the formats' published descriptions: Apple Mail's ``.emlx`` (a line
with the message's byte count, the message, an XML plist), ...
"""
from __future__ import annotations

import pytest

import json
import mailbox

from importers.eml import (
    EMLX_LENGTH_MISMATCH, EMLX_PARTIAL, EMLX_WRAPPER_REMOVED, cut_wrapper, emlx_frame, mbox_messages, without_envelope,
)
from importers.share import PROBLEM, SKIP, detect
from toolkit.source import SourceMail
from tests.cli import mailarchive


def _mail(n: str, nl: bytes = b"\n") -> bytes:
    lines = [b"From: Alice <a@example.com>", b"To: b@example.com", f"Subject: shape {n}".encode(),
             f"Message-ID: <shape-{n}@example.com>".encode(), b"", f"Body of {n}.".encode(),
             b"From here on it is text."]
    return nl.join(lines) + nl


def _plist(flags: int, received: int = 1551783600) -> bytes:
    return (b'<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" '
            b'"http://www.apple.com/DTDs/PropertyList-1.0.dtd">\n<plist version="1.0">\n<dict>\n'
            b"\t<key>date-received</key>\n\t<integer>" + str(received).encode() + b"</integer>\n"
            b"\t<key>flags</key>\n\t<integer>" + str(flags).encode() + b"</integer>\n</dict>\n</plist>\n")


def emlx(message: bytes, flags: int = 1) -> bytes:
    """An Apple Mail .emlx: the byte count (padded with blanks as Mail writes it), the message, the plist."""
    return str(len(message)).encode().ljust(10) + b"\n" + message + _plist(flags)


def _archive(tmp_path, kind: str, source, env: dict | None = None):
    home = tmp_path / "home"
    mailarchive(home, "init", "--medium", str(tmp_path / "medium"), "--key-backup", str(tmp_path / "kb.txt"))
    imp = mailarchive(home, "import", kind, str(source), json_out=True, check=None, env=env)
    mailarchive(home, "export", "eml", str(tmp_path / "out"), check=None)
    rows = json.loads(mailarchive(home, "sql", "SELECT source_ref, folder, flags, internal_date FROM sightings "
                                  "ORDER BY source_ref", "--format", "json").stdout)
    texts = sorted(p.read_bytes() for p in (tmp_path / "out").rglob("*.eml"))
    return imp, texts, {r["source_ref"]: r for r in rows}


def _apple_mail_store(root):
    data = root / "V3/ACCOUNT/INBOX.mbox/FOLDER/Data"
    (data / "Messages").mkdir(parents=True)
    (data / "Attachments/3/2").mkdir(parents=True)
    (data / "Messages/1.emlx").write_bytes(emlx(_mail("1")))
    (data / "Messages/2.emlx").write_bytes(emlx(_mail("2", b"\r\n"), flags=1 | 4 | 16))   # read, answered, flagged
    (data / "Messages/3.partial.emlx").write_bytes(emlx(_mail("3"), flags=0))
    (data / "Attachments/3/2/report.pdf").write_bytes(b"%PDF-1.4\n")
    (root / "V3/ACCOUNT/INBOX.mbox/Info.plist").write_bytes(_plist(0))


def test_import_eml_archives_an_apple_mail_emlx_without_its_count_line_and_plist(tmp_path):
    """Before: every .emlx was skipped "not mail: no header block" and the run exited 1 (no mail found)."""
    src = tmp_path / "Mail"
    _apple_mail_store(src)
    imp, texts, rows = _archive(tmp_path, "eml", src)
    assert imp.returncode == 0, imp.stdout + imp.stderr
    result = imp.result
    assert result["archived"] == 3 and result["errors"] == 0 and result["skipped"] == 2, result
    assert texts == sorted([_mail("1"), _mail("2", b"\r\n"), _mail("3")])
    msgs = "V3/ACCOUNT/INBOX.mbox/FOLDER/Data/Messages/"
    flags = {ref.removeprefix(msgs): r["flags"] for ref, r in rows.items()}
    assert flags == {"1.emlx": f"\\Seen {EMLX_WRAPPER_REMOVED}",
                     "2.emlx": f"\\Answered \\Flagged \\Seen {EMLX_WRAPPER_REMOVED}",
                     "3.partial.emlx": f"{EMLX_PARTIAL} {EMLX_WRAPPER_REMOVED}"}
    assert {r["internal_date"][:19] for r in rows.values()} == {"2019-03-05 11:00:00"}
    assert {r["folder"] for r in rows.values()} == {"INBOX"}    # the mailbox, not Mail's storage directories


def test_import_eml_streams_a_large_emlx_without_its_wrapper(tmp_path):
    src = tmp_path / "1.emlx"
    message = _mail("big") + b"x" * 1000 + b"\n"
    src.write_bytes(emlx(message, flags=1))
    imp, texts, rows = _archive(tmp_path, "eml", src, env={"MAILARCHIVE_LARGE_MAIL": "100"})
    assert imp.returncode == 0 and imp.result["archived"] == 1, imp.stdout + imp.stderr
    assert texts == [message]
    assert rows["1.emlx"]["flags"] == f"\\Seen {EMLX_WRAPPER_REMOVED}"


def test_an_emlx_read_whole_loses_its_wrapper_too():
    """The path of a file on a share (read whole by the scan), and a count that disagrees with the file."""
    data = emlx(_mail("1"), flags=2)
    item = without_envelope(SourceMail(raw=data, ref="1.emlx"), lambda: data)
    assert item.raw == _mail("1") and item.flags == (EMLX_WRAPPER_REMOVED, "\\Deleted")
    short = b"12\n" + _mail("1")          # the count line lies: nothing after the line is dropped
    trimmed = cut_wrapper(short)
    assert trimmed.raw == _mail("1") and trimmed.removed == 3
    assert trimmed.note["flags"] == (EMLX_WRAPPER_REMOVED, EMLX_LENGTH_MISMATCH)
    assert emlx_frame(b"2019\nnot a header\n") is None      # a number, then text: not an .emlx


def _mbox_message(n: str) -> bytes:
    return b"From a@example.com Tue Mar  5 12:00:00 2019\n" + _mail(n) + b"\n"


def test_import_mbox_reads_the_mbox_inside_an_apple_mail_export_bundle(tmp_path):
    """Apple Mail's "Export Mailbox" writes ``Name.mbox/`` with a file ``mbox``, ``table_of_contents`` and
    ``Info.plist``. Before: exit 2 "is a directory" (and the file named itself became folder "mbox")."""
    bundle = tmp_path / "Export" / "Inbox.mbox"
    bundle.mkdir(parents=True)
    (bundle / "mbox").write_bytes(b"".join(_mbox_message(str(i)) for i in range(3)))
    (bundle / "table_of_contents").write_bytes(b"\x00\x00\x00\x02" + bytes(range(60)))
    (bundle / "Info.plist").write_bytes(_plist(0))
    imp, texts, rows = _archive(tmp_path, "mbox", bundle)
    assert imp.returncode == 0, imp.stdout + imp.stderr
    assert imp.result["archived"] == 3 and imp.result["skipped"] == 2 and imp.result["errors"] == 0, imp.result
    assert texts == sorted(_mail(str(i)) for i in range(3))
    assert {r["folder"] for r in rows.values()} == {"Inbox"}
    size = len(_mbox_message("0"))
    assert set(rows) == {f"Inbox.mbox@{i * size}" for i in range(3)}
    home = tmp_path / "home"
    again = mailarchive(home, "import", "mbox", str(bundle / "mbox"), json_out=True).result
    assert again["duplicates"] == 3 and again["skipped"] == 0, again
    folders = mailarchive(home, "sql", "SELECT DISTINCT folder FROM sightings", "--format", "json").stdout
    assert json.loads(folders) == [{"folder": "Inbox"}]


_DBX_HEADER = b"\xcf\xad\x12\xfe\xc5\xfd\x74\x6f\x66\xe3\xd1\x11\x9a\x4e\x00\xc0\x4f\xa3\x09\xd4"
_FOLDERS_DBX = b"\xcf\xad\x12\xfe\xc6\xfd\x74\x6f\x66\xe3\xd1\x11\x9a\x4e\x00\xc0\x4f\xa3\x09\xd4"


def test_an_outlook_express_mailbox_and_a_utf16_mail_are_errors_naming_the_conversion(tmp_path):
    """Mail in a form no importer archives is an error with the next step, the run exits 1. Before: both
    were skipped "not mail: binary" and the run exited 0 with the mail of an Inbox.dbx left behind."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "Inbox.dbx").write_bytes(_DBX_HEADER + bytes(0x24BC))
    (src / "Folders.dbx").write_bytes(_FOLDERS_DBX + bytes(0x24BC))
    (src / "saved.eml").write_bytes(_mail("utf16", b"\r\n").decode("ascii").encode("utf-16"))
    (src / "plain.eml").write_bytes(_mail("plain"))
    for env in (None, {"MAILARCHIVE_LARGE_MAIL": "100"}):  # read in a worker, and looked at by the scan
        if env is None:
            mailarchive(tmp_path / "home", "init", "--medium", str(tmp_path / "medium"),
                        "--key-backup", str(tmp_path / "kb.txt"))
        imp = mailarchive(tmp_path / "home", "import", "eml", str(src), json_out=True, check=1, env=env)
        assert imp.result["errors"] == 2 and imp.result["skipped"] == 1, imp.result
        assert "Inbox.dbx: Outlook Express mailbox (.dbx): not supported; convert it" in imp.stdout
        assert "saved.eml: a mail saved as UTF-16 text" in imp.stdout and "iconv -f UTF-16" in imp.stdout
    assert detect(_DBX_HEADER + bytes(100), b"Inbox.dbx", 120)[0] == PROBLEM    # import share: an error too
    assert detect(_FOLDERS_DBX + bytes(100), b"Folders.dbx", 120) == (SKIP, "not mail: the folder list of "
                                                                              "Outlook Express (Folders.dbx)")
    utf16 = "Subject: x\r\n".encode("utf-16")
    assert detect(utf16, b"x.eml", len(utf16))[0] == PROBLEM


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_a_utf16_mail_without_a_byte_order_mark_is_an_error_naming_the_conversion(tmp_path, encoding):
    """Windows tools save UTF-16 without a byte-order mark too; such a mail was archived as a binary blob with no
    header (exit 0). An mbox saved so is caught as well; a mail with a NUL-heavy body after a normal head is not."""
    raw = _mail("utf16-nobom", b"\r\n").decode("ascii").encode(encoding)
    assert detect(raw, b"x.eml", len(raw))[0] == PROBLEM
    box = ("From a@b Mon Jan  1 00:00:00 2020\n" + _mail("in-mbox").decode("ascii")).encode(encoding)
    assert detect(box, b"x.mbox", len(box))[0] == PROBLEM
    normal = _mail("plain-then-nul") + bytes(200)
    assert detect(normal, b"y.eml", len(normal))[0] != PROBLEM
    src = tmp_path / "src"
    src.mkdir()
    (src / "saved.eml").write_bytes(raw)
    (src / "plain.eml").write_bytes(_mail("plain"))
    mailarchive(tmp_path / "home", "init", "--medium", str(tmp_path / "medium"), "--key-backup", str(tmp_path / "kb"))
    imp = mailarchive(tmp_path / "home", "import", "eml", str(src), json_out=True, check=1)
    assert imp.result["errors"] == 1 and imp.result["archived"] == 1, imp.result
    assert f"saved.eml: a mail saved as UTF-16 text" in imp.stdout and f"iconv -f {encoding.upper()} " in imp.stdout


#: the storage file ``doveadm save`` wrote into an mdbox (Dovecot 2.3.19): two mails, each with its metadata
DBOX = (b"2 M1e C6b12df54\n\x01\x02N          0000000000000083\n" + b"From: a@example.com\nTo: b@example.com\n"
        b"Subject: dovecot 1\nMessage-ID: <dv1@example.com>\nDate: Tue, 05 Mar 2019 12:00:00 +0100\n\nbody\n\n"
        b"\x01\x03\nR6b12df54\nV8a\nG34873c2454df126bb518000083ecc375\nBINBOX\n\n")


def test_a_dovecot_dbox_store_is_an_error_naming_the_conversion(tmp_path):
    """Before: import maildir listed storage/m.1 as a stray ("not in a cur/ or new/ directory"), import eml
    as "not mail: no header block": the mail in it was named nowhere."""
    mdbox = tmp_path / "mdbox"
    (mdbox / "storage").mkdir(parents=True)
    (mdbox / "storage/m.1").write_bytes(DBOX)
    (mdbox / "storage/dovecot.map.index.log").write_bytes(b"\x01\x02")
    (mdbox / "mailboxes/INBOX/dbox-Mails").mkdir(parents=True)
    (mdbox / "mailboxes/INBOX/dbox-Mails/u.7").write_bytes(DBOX)       # sdbox: one file per mail
    mailarchive(tmp_path / "home", "init", "--medium", str(tmp_path / "medium"), "--key-backup", str(tmp_path / "kb"))
    for kind in ("maildir", "eml"):
        out = mailarchive(tmp_path / "home", "import", kind, str(mdbox), json_out=True, check=1).stdout
        problems = {p["ref"]: p for p in json.loads(out)["sources"][0]["problems"]}
        for ref in ("storage/m.1", "mailboxes/INBOX/dbox-Mails/u.7"):
            assert problems[ref]["kind"] == "error", (kind, problems)
            assert "Dovecot dbox mail file" in problems[ref]["message"]
            assert "doveadm backup -u USER maildir:PATH" in problems[ref]["message"]


def _thunderbird(n: str, status: bytes) -> bytes:
    return (b"From - Tue Mar  5 12:00:00 2019\nX-Mozilla-Status: " + status + b"\nX-Mozilla-Status2: 00000000\n"
            + _mail(n) + b"\n")


def test_a_thunderbird_folder_keeps_its_expunged_but_not_compacted_mail_flagged(tmp_path):
    """Before: the deleted message was archived with nothing to tell it from the others."""
    folder = tmp_path / "Local Folders"
    (folder / "Archives.sbd").mkdir(parents=True)
    (folder / "Inbox").write_bytes(_thunderbird("1", b"0001") + _thunderbird("2", b"0009") + _thunderbird("3", b"0005"))
    (folder / "Inbox.msf").write_bytes(b'// <!-- <mdb:mork:z v="1.4"/> -->\n')
    imp, texts, rows = _archive(tmp_path, "mbox", folder / "Inbox")
    assert imp.returncode == 0 and imp.result["archived"] == 3, imp.stdout + imp.stderr
    assert texts == sorted(_thunderbird(str(i), s)[32:-1] for i, s in ((1, b"0001"), (2, b"0009"), (3, b"0005")))
    size = len(_thunderbird("1", b"0001"))
    assert {ref: r["flags"] for ref, r in rows.items()} == {
        "Inbox@0": "variant=unknown", f"Inbox@{size}": "mozilla-expunged,variant=unknown",
        f"Inbox@{2 * size}": "variant=unknown"}


def test_import_share_of_a_thunderbird_profile_names_subfolders_as_thunderbird_shows_them(tmp_path):
    """A Thunderbird profile's ``Local Folders`` under ``import share``: the subfolders of ``Inbox`` live in
    ``Inbox.sbd/``; they were archived under the folder ``Inbox.sbd/Projects``, which no mail program shows and an
    export then wrote as such. Now ``Inbox/Projects``; the index files (.msf) are skipped."""
    folder = tmp_path / "Local Folders"
    (folder / "Inbox.sbd" / "Projects.sbd").mkdir(parents=True)
    (folder / "Inbox").write_bytes(_thunderbird("1", b"0001"))
    (folder / "Inbox.sbd" / "Projects").write_bytes(_thunderbird("2", b"0001"))
    (folder / "Inbox.sbd" / "Projects.sbd" / "2019").write_bytes(_thunderbird("3", b"0001"))
    for msf in ("Inbox.msf", "Inbox.sbd/Projects.msf", "Inbox.sbd/Projects.sbd/2019.msf"):
        (folder / msf).write_bytes(b'// <!-- <mdb:mork:z v="1.4"/> -->\n')
    imp, texts, rows = _archive(tmp_path, "share", folder)
    assert imp.returncode == 0 and imp.result["archived"] == 3 and imp.result["skipped"] == 3, imp.stdout
    assert sorted(r["folder"] for r in rows.values()) == ["Inbox", "Inbox/Projects", "Inbox/Projects/2019"]


def test_import_notes_of_mbox_and_eml_files_on_a_share_are_never_exported_as_flags(tmp_path):
    """``import share`` recorded its sightings under ``via = share``, whose flags field holds a mail store's flags;
    for an mbox or EML file on the share that field holds import notes (``variant=unknown``,
    ``mozilla-expunged``, ``holds-more-from-lines``), and ``export imap`` sent them as IMAP keywords. Such a mail
    is now recorded as read from an mbox or EML file; a Maildir on the share keeps its flags."""
    from exporters.layout import placements
    from toolkit.archive import Archive
    from toolkit.retrieval import select_messages

    src = tmp_path / "share"
    (src / "Mail" / "cur").mkdir(parents=True)
    for sub in ("new", "tmp"):
        (src / "Mail" / sub).mkdir()
    (src / "Mail" / "cur" / "1700000000.M1P1.h:2,FS").write_bytes(_mail("maildir"))
    (src / "Inbox").write_bytes(_thunderbird("1", b"0009") + _thunderbird("2", b"0001"))
    (src / "two.eml").write_bytes(b"From a@b Mon Jan  1 00:00:00 2020\n" + _mail("eml") + b"\n"
                                  b"From b@c Mon Jan  1 00:00:00 2020\n" + _mail("eml-2"))
    (src / "plain.eml").write_bytes(_mail("plain"))
    imp, texts, rows = _archive(tmp_path, "share", src)
    assert imp.result["archived"] == 6, imp.stdout
    notes = {r["flags"] for r in rows.values()}
    assert any(f and "mozilla-expunged" in f for f in notes), notes          # the notes are still recorded
    with Archive.open(tmp_path / "home") as a:
        sel = select_messages(a)
        flags = {p.folder: p.flags for ps in placements(a, [m.msg_id for m in sel]).values() for p in ps}
    assert flags.pop("Mail/INBOX") == ("\\Flagged", "\\Seen")
    assert all(f == () for f in flags.values()), flags


def test_import_eml_lists_mail_programs_files_as_skipped_with_what_they_are(tmp_path):
    """An MH tree and a Thunderbird profile under import eml: every message archived, the programs' own files
    skipped (never errors) with what they are. Before: "not mail: no header block" / "not mail: binary"."""
    src = tmp_path / "Mail"
    (src / "inbox").mkdir(parents=True)
    for n in (1, 2, 5):
        (src / "inbox" / str(n)).write_bytes(_mail(f"mh-{n}"))
    (src / "inbox/.mh_sequences").write_bytes(b"unseen: 2 5\n")
    (src / "context").write_bytes(b"Current-Folder: inbox\n")
    (src / "Inbox.msf").write_bytes(b'// <!-- <mdb:mork:z v="1.4"/> -->\n< <(a=c)> // (f=iso-8859-1)\n')
    (src / "Inbox.mbox").mkdir()
    (src / "Inbox.mbox/table_of_contents").write_bytes(b"\x00\x00\x00\x02" + bytes(range(60)))
    (src / "Inbox.mbox/Info.plist").write_bytes(_plist(0))
    (src / "dovecot-uidlist").write_bytes(b"3 V1 N2\n")
    imp, texts, rows = _archive(tmp_path, "eml", src)
    assert imp.returncode == 0, imp.stdout + imp.stderr
    assert imp.result["archived"] == 3 and imp.result["errors"] == 0 and imp.result["skipped"] == 6, imp.result
    reasons = {p["ref"]: p["message"] for p in imp.result["sources"][0]["problems"]}
    assert reasons["inbox/.mh_sequences"].startswith("MH sequences")
    assert reasons["Inbox.msf"].startswith("Thunderbird folder index (.msf)")
    assert reasons["Inbox.mbox/table_of_contents"].startswith("Apple Mail export bundle index")
    assert reasons["dovecot-uidlist"].startswith("Maildir/Dovecot/Courier metadata")
    assert reasons.pop("context").startswith("not mail: no header block")  # a common word: read, then skipped
    assert all(r.endswith("a mail program's file beside the mail, not mail") for r in reasons.values())
    assert {r["folder"] for r in rows.values()} == {"inbox"}


def test_import_eml_warns_when_a_file_is_an_mbox_archived_as_one_message(tmp_path):
    """A Thunderbird folder file under import eml: with three or more messages it is refused (an error naming
    the count, reliability M6); with two it stays one message (import eml never splits), and the run says so
    and the sighting is flagged. Before: archived as one mail with nothing said."""
    src = tmp_path / "Local Folders"
    src.mkdir()
    (src / "Inbox").write_bytes(b"".join(_thunderbird(str(i), b"0001") for i in range(3)))
    (src / "Sent").write_bytes(b"".join(_thunderbird(f"s{i}", b"0001") for i in range(2)))
    (src / "single.eml").write_bytes(_mbox_message("single"))
    imp, texts, rows = _archive(tmp_path, "eml", src)
    assert imp.returncode == 1 and imp.result["archived"] == 2, imp.stdout + imp.stderr
    errors = {p["ref"]: p["message"] for p in imp.result["sources"][0]["problems"] if p["kind"] == "error"}
    assert list(errors) == ["Inbox"] and errors["Inbox"].startswith("an mbox file holding 3 messages")
    warnings = imp.result["warnings"]
    assert [w for w in warnings if "single.eml" in w] == []
    assert any(w.startswith("Sent: archived as one message, but 1 more From_ line(s) followed by a header block")
               for w in warnings), warnings
    assert rows["Sent"]["flags"] == "from-line-removed holds-more-from-lines"
    assert rows["single.eml"]["flags"] == "from-line-removed"
    assert mbox_messages(b"x\n\nFrom here on\nSubject: no\n\nFrom a@b Tue Mar  5 12:00:00 2019\nbody\n") == 1


def test_import_msg_names_an_rfc822_file_named_msg_as_an_error(tmp_path):
    """Some tools save plain RFC 822 mail as ``.msg``. Before: import msg skipped it ("not an Outlook .msg
    file") and, beside real .msg files, exited 0 with the mail left behind."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "rfc822.msg").write_bytes(_mail("msg-named"))
    (src / "notes.msg").write_bytes(b"just some text\n")
    mailarchive(tmp_path / "home", "init", "--medium", str(tmp_path / "medium"), "--key-backup", str(tmp_path / "kb"))
    out = json.loads(mailarchive(tmp_path / "home", "import", "msg", str(src), json_out=True, check=1).stdout)
    problems = {p["ref"]: p for p in out["sources"][0]["problems"]}
    assert problems["rfc822.msg"]["kind"] == "error"
    assert problems["rfc822.msg"]["message"].startswith("an RFC 822 mail, not an Outlook .msg file")
    assert problems["notes.msg"]["kind"] == "skipped"


def test_an_mmdf_mailbox_is_an_error_naming_the_conversion(tmp_path):
    """MMDF, as Python's mailbox.MMDF (and mutt with mbox_type=MMDF) writes it. Before: import mbox said
    "N bytes before the first From_ line are not a message", import eml "not mail: no header block"."""
    path = tmp_path / "mutt.mmdf"
    box = mailbox.MMDF(str(path))
    for i in range(2):
        box.add(_mail(f"mmdf-{i}"))
    box.close()
    assert path.read_bytes().startswith(b"\x01\x01\x01\x01\nFrom MAILER-DAEMON ")
    bare = tmp_path / "bare.mmdf"     # without the optional From_ line
    bare.write_bytes(b"".join(b"\x01\x01\x01\x01\n" + _mail(f"bare-{i}") + b"\x01\x01\x01\x01\n" for i in range(2)))
    mailarchive(tmp_path / "home", "init", "--medium", str(tmp_path / "medium"), "--key-backup", str(tmp_path / "kb"))
    for kind, src, ref in (("mbox", path, "mutt.mmdf@0"), ("eml", path, "mutt.mmdf"), ("mbox", bare, "bare.mmdf@0"),
                           ("eml", bare, "bare.mmdf")):
        out = json.loads(mailarchive(tmp_path / "home", "import", kind, str(src), json_out=True, check=1).stdout)
        problems = {p["ref"]: p for p in out["sources"][0]["problems"]}
        assert problems[ref]["kind"] == "error", problems
        assert problems[ref]["message"].startswith("an MMDF mailbox (each message between lines of four Ctrl-A")
        assert out["archived"] == 0 and out["seen"] == 0, out  # never split at its From_ lines, separators left in
