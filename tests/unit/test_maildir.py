"""Maildir importer: flags (M2), folder names (modified UTF-7), tmp/ and missing new/ (M1), vanished and
unreadable files (M1, M3), cursor resume."""
from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

import importers.maildir as md
from importers import utf7
from importers.maildir import MaildirImporter, folder_name, parse_flags
from tests.corpora import REPO
import toolkit.prepare as prepare_mod
from toolkit.archive import Archive
from toolkit.ingest import Ingest
from toolkit.reporter import ListReporter, NullReporter
from toolkit.source import SourceMail, SourceProblem, SourceSkip

SAMPLE = REPO / "sample_data" / "maildir"
EXPECTED = json.loads((REPO / "sample_data" / "EXPECTED.json").read_text())


# -- flags (M2) -----------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "name, flags",
    [
        ("1549353600.M4017P4204.host,S=662:2,S", ("\\Seen",)),
        ("1546938000.M2017P4202.host,S=613:2,RS", ("\\Answered", "\\Seen")),
        ("1549440000.M5017P4205.host,S=634:2,", ()),
        ("1549440000.M5017P4205.host!2,S", ("\\Seen",)),                      # Windows variant
        ("1035478339.27041_118.foo.org,S=1000,W=1030;2,RDF,", ("\\Answered", "\\Draft", "\\Flagged")),
        ("1549440000.M5.host\uf03a2,FS", ("\\Flagged", "\\Seen")),           # ':' mapped by Cygwin/catia
        ("1549440000.M5.host:2,PT", ("$Passed", "\\Deleted")),
        ("1491941793.M41850P8566.mx1,S=10956;2,STln",
         ("$maildir-keyword-l", "$maildir-keyword-n", "\\Deleted", "\\Seen")),
        ("1549526400.M6017P4206.host,S=625", ()),                             # new/: no info suffix
        ("15495~1Q", ()),                                                     # 8.3-mangled on a share
        ("1549440000.M5.host:1,experimental", ()),                           # info version 1: no flags
        ("1549440000.M5.host:2,S?X#", ("$maildir-flag-X", "\\Seen")),         # junk characters ignored
        ("odd:2,S:2,R", ("\\Answered",)),                                     # only the last suffix counts
    ],
)
def test_m2_flags_from_info_suffix(name, flags):
    assert parse_flags(name) == flags


def test_flag_field_is_one_imap_flag_list():
    assert md.flag_field(("\\Answered", "\\Seen")) == ("\\Answered \\Seen",)
    assert md.flag_field(()) == ()


# -- folder names ---------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "encoded, text",
    [
        ("Entw&APw-rfe", "Entwürfe"),
        ("Tom &- Jerry", "Tom & Jerry"),
        ("&-", "&"),
        ("&2D3eAA-", "\U0001F600"),                       # non-BMP: a surrogate pair in one run
        ("&ZeVnLIqe-", "日本語"),
        ("Plain ASCII", "Plain ASCII"),
        ("~peter/mail/&U,BTFw-/&ZeVnLIqe-", "~peter/mail/台北/日本語"),  # RFC 3501's example
    ],
)
def test_modified_utf7(encoded, text):
    assert utf7.decode(encoded) == text
    assert utf7.encode(text) == encoded


@pytest.mark.parametrize("bad", ["&AB", "&Jjo!", "caf\xe9", "&AGE-"[:-1], "&2D0-"])
def test_modified_utf7_rejects_malformed(bad):
    with pytest.raises(utf7.Utf7Error):
        utf7.decode(bad)
    assert utf7.decode_lenient(bad) == bad


@given(st.text(max_size=30))
def test_modified_utf7_round_trip(text):
    assert utf7.decode(utf7.encode(text)) == text


@pytest.mark.parametrize(
    "folder_dir, name",
    [
        (b"", "INBOX"),
        (b".Projects", "Projects"),
        (b".Archive.2019", "Archive/2019"),
        (b".Entw&APw-rfe", "Entwürfe"),
        (b".My Folder.Nested Folder", "My Folder/Nested Folder"),
        (b".A&-B.&2D3eAA-", "A&B/\U0001F600"),
        (b"foo/baz", "foo/baz"),                 # nested (notmuch) layout
        (b"caf\xe9", "caf\\xe9"),                # not UTF-8: shown with an escape, never crashes
    ],
)
def test_folder_names(folder_dir, name):
    assert folder_name(folder_dir) == name


# -- the sample Maildir (M1: tmp/ ignored, no new/) -----------------------------------------------

def _scan(path, cursor=None):
    return list(MaildirImporter(str(path)).scan(cursor, NullReporter()))


def test_sample_maildir_counts_flags_and_tmp():
    items = _scan(SAMPLE)
    mails = [i for i in items if isinstance(i, SourceMail)]
    # EXPECTED.json names the Maildir++ folder ".Archive.2019" "Archive.2019"; as a folder it is Archive/2019.
    want = {k.replace("Archive.2019", "Archive/2019"): v for k, v in EXPECTED["maildir"].items()}
    assert Counter(m.folder for m in mails) == want
    assert not (SAMPLE / ".Entw&APw-rfe" / "new").exists()  # the folder without new/ still counts
    for m in mails:
        path = SAMPLE / m.ref
        assert m.content() == path.read_bytes()
        assert m.flags == md.flag_field(parse_flags(path.name))
        assert m.internal_date.timestamp() == int(path.name.split(".")[0])  # delivery time from the name
    flags = {Path(m.ref).name.split(",")[0]: m.flags for m in mails}
    assert flags["1546938000.M2017P4202.mail.example.com"] == ("\\Answered \\Seen",)
    assert flags["1556776800.M11017P4211.mail.example.com"] == ("\\Draft \\Seen",)
    assert flags["1549526400.M6017P4206.mail.example.com"] == ()
    skips = {i.ref: i.reason for i in items if isinstance(i, SourceSkip)}
    # tmp/ is never read but listed, as is the Maildir++ marker: every file is accounted for.
    assert {r for r, why in skips.items() if "tmp/" in why} == {
        "tmp/.keep", ".Projects/tmp/.keep", ".Archive.2019/tmp/.keep", ".Entw&APw-rfe/tmp/.keep"}
    assert all("metadata" in why for r, why in skips.items() if r.endswith("maildirfolder"))
    files = [p for p in SAMPLE.rglob("*") if p.is_file()]
    assert len(items) == len(files) and not any(isinstance(i, SourceProblem) for i in items)


@pytest.fixture
def maildir(tmp_path) -> Path:
    root = tmp_path / "Maildir"
    shutil.copytree(SAMPLE, root)
    return root


def test_m1_tmp_delivery_in_progress_is_never_read(maildir):
    (maildir / "tmp" / "1600000000.M1P1.host").write_bytes(b"From: a@b\nSubject: half-written\n\nbody\n")
    items = _scan(maildir)
    assert not any(isinstance(i, SourceMail) and "/tmp/" in "/" + i.ref for i in items)
    assert any(isinstance(i, SourceSkip) and i.ref == "tmp/1600000000.M1P1.host" for i in items)


def test_m1_missing_cur_and_new(maildir):
    shutil.rmtree(maildir / "cur")
    shutil.rmtree(maildir / ".Projects" / "new")
    mails = [i for i in _scan(maildir) if isinstance(i, SourceMail)]
    assert Counter(m.folder for m in mails) == {"INBOX": 1, "Projects": 2, "Archive/2019": 4, "Entwürfe": 1}


class _RenameAfterFirst:
    """The Maildir importer, with a MUA renaming one message after the tree was listed."""

    def __init__(self, inner, victim, to):
        self.inner, self.victim, self.to = inner, victim, to
        self.source_uri, self.via = inner.source_uri, inner.via

    def scan(self, cursor, reporter):
        for n, item in enumerate(self.inner.scan(cursor, reporter)):
            if n == 1:
                os.rename(self.victim, self.to)
            yield item


def test_m1_file_vanishing_during_the_scan_is_a_skip_not_an_error(maildir, tmp_path):
    """The file goes after the listing and before the pipeline reads it (the read happens in the
    pipeline, in a worker for bigger sources): listed as skipped, never an error, nothing else lost."""
    victim = maildir / ".Archive.2019" / "cur" / "1554976800.M8017P4208.mail.example.com,S=567:2,S"
    importer = _RenameAfterFirst(MaildirImporter(str(maildir)), victim, maildir / ".Archive.2019" / "cur" / "moved-away")
    archive = Archive.create(tmp_path / "home", str(tmp_path / "medium"))
    try:
        run = Ingest(archive, ListReporter()).run(importer)
        with archive.catalog.reading() as con:
            skipped = con.execute("SELECT source_ref, message FROM run_errors WHERE kind = 'skipped'").fetchall()
            archived = con.execute("SELECT count(*) FROM messages").fetchone()[0]
    finally:
        archive.close()
    ref = ".Archive.2019/cur/1554976800.M8017P4208.mail.example.com,S=567:2,S"
    assert run.status == "complete" and run.errors == 0 and run.seen == 10
    assert [r for r in skipped if r[0] == ref] == [(ref, "vanished during the scan (changed during scan; a rerun picks up its new name)")]
    assert archived == 10
    # A rerun picks the file up under its new name (it is in cur/ no longer: listed, not lost).
    again = {i.ref: i for i in _scan(maildir)}
    assert ".Archive.2019/cur/moved-away" in again


def test_m3_unreadable_file_is_an_error_and_the_run_continues(maildir, tmp_path, monkeypatch):
    """We run as root, so chmod cannot deny a read: the pipeline's file read raises EACCES for one
    file instead (11 mails are one chunk, prepared in this process)."""
    real = prepare_mod.read_regular_file

    def read_regular_file(path):
        if path.endswith(b"1549353600.M4017P4204.mail.example.com,S=662:2,S"):
            raise PermissionError(13, "Permission denied")
        return real(path)

    monkeypatch.setattr(prepare_mod, "read_regular_file", read_regular_file)
    archive = Archive.create(tmp_path / "home", str(tmp_path / "medium"))
    try:
        run = Ingest(archive, ListReporter()).run(MaildirImporter(str(maildir)))
        with archive.catalog.reading() as con:
            errors = con.execute("SELECT kind, source_ref, message FROM run_errors WHERE kind = 'error'").fetchall()
            sightings = con.execute("SELECT folder, flags, source_ref FROM sightings").fetchall()
    finally:
        archive.close()
    assert run.status == "complete" and run.errors == 1 and run.seen == 10
    assert errors == [("error", ".Projects/cur/1549353600.M4017P4204.mail.example.com,S=662:2,S",
                       "cannot read: Permission denied")]
    assert len(sightings) == 10
    by_ref = {r[2]: r for r in sightings}
    assert by_ref["cur/1546938000.M2017P4202.mail.example.com,S=613:2,RS"][:2] == ("INBOX", "\\Answered \\Seen")
    assert by_ref[".Entw&APw-rfe/cur/1556776800.M11017P4211.mail.example.com,S=341:2,DS"][:2] == ("Entwürfe", "\\Draft \\Seen")


def test_m3_directory_where_a_file_is_expected(maildir):
    (maildir / "cur" / "1700000000.M1P1.host:2,S").mkdir()          # no file: walked into, nothing inside
    (maildir / "cur" / "1700000001.M1P1.host:2,S").mkdir()
    (maildir / "cur" / "1700000001.M1P1.host:2,S" / "inner").write_bytes(b"x")
    items = {i.ref: i for i in _scan(maildir)}
    assert isinstance(items["cur/1700000001.M1P1.host:2,S/inner"], SourceSkip)  # listed, not a message


def test_symlinks_and_fifos_in_a_maildir_are_listed_not_followed(maildir):
    os.symlink("/etc/passwd", maildir / "cur" / "1700000000.M1P1.host:2,S")
    os.mkfifo(maildir / "new" / "1700000001.M1P1.host")
    items = {i.ref: i for i in _scan(maildir)}
    assert items["cur/1700000000.M1P1.host:2,S"].reason == "symbolic link (never followed)"
    assert items["new/1700000001.M1P1.host"].reason == "FIFO (never opened)"


def test_cursor_resume_continues_after_the_last_committed_file(maildir):
    full = _scan(maildir)
    mails = [i for i in full if isinstance(i, SourceMail)]
    for k in (0, 4, len(full) - 2):
        cursor = json.loads(json.dumps(full[k].cursor))        # as stored in the catalog
        rest = _scan(maildir, cursor)
        assert [i.ref for i in rest] == [i.ref for i in full[k + 1:]]
    assert _scan(maildir, json.loads(json.dumps(full[-1].cursor))) == []
    # A file delivered behind the cursor is not seen by the resume but by the next full run.
    cursor = mails[-1].cursor                               # new/1547015400…: after cur/ in the order
    (maildir / "cur" / "0000000001.M1P1.host:2,S").write_bytes(b"From: a@b\nSubject: late\n\nx\n")
    assert "cur/0000000001.M1P1.host:2,S" not in {i.ref for i in _scan(maildir, cursor)}
    assert "cur/0000000001.M1P1.host:2,S" in {i.ref for i in _scan(maildir)}


def test_not_a_directory_is_a_source_error(tmp_path):
    from toolkit.errors import SourceError

    f = tmp_path / "file"
    f.write_bytes(b"x")
    with pytest.raises(SourceError):
        _scan(f)
    reporter = ListReporter()
    (tmp_path / "empty").mkdir()
    assert list(MaildirImporter(str(tmp_path / "empty")).scan(None, reporter)) == []
    assert "not a Maildir" in reporter.warnings[0]


# -- Maildirs other tools write (docs/sources.md) -------------------------------------------------

def test_an_offlineimap_name_dates_the_mail_by_its_time_stamp(tmp_path):
    """offlineimap writes ``<time>_<n>.<pid>.<host>,U=<uid>,FMD5=<md5>``; before, the ``_`` after the time
    stamp hid it and a copied Maildir's mails were dated by the copy's mtime."""
    cur = tmp_path / "INBOX" / "cur"
    cur.mkdir(parents=True)
    (cur / "1551783600_0.1234.host,U=1,FMD5=7e33429f656f1e6e9d79b29c3f82c57e:2,S").write_bytes(b"From: a@b\n\nx\n")
    [mail] = _scan(tmp_path)
    assert mail.internal_date.timestamp() == 1551783600 and mail.date_source == "maildir-name-time"
    assert mail.flags == ("\\Seen",)


def test_courier_keyword_files_are_metadata_not_strays(tmp_path):
    """Courier keeps IMAP keywords in ``courierimapkeywords/`` beside cur/new (before: "not in a cur/ or
    new/ directory", as for a stray file)."""
    for d in ("cur", "courierimapkeywords", ".Trash/courierimapkeywords"):
        (tmp_path / d).mkdir(parents=True)
    (tmp_path / "cur" / "1551783600.M1P2.host:2,S").write_bytes(b"From: a@b\n\nx\n")
    (tmp_path / "courierimapkeywords" / ":list").write_bytes(b"$Label1\n\n1551783600.M1P2.host:0\n")
    (tmp_path / ".Trash" / "courierimapkeywords" / ".1.1551783601.M2P2.host").write_bytes(b"0\n")
    skips = {i.ref: i.reason for i in _scan(tmp_path) if isinstance(i, SourceSkip)}
    assert skips == {"courierimapkeywords/:list": "Maildir metadata, not a message",
                     ".Trash/courierimapkeywords/.1.1551783601.M2P2.host": "Maildir metadata, not a message"}


def test_dovecot_keyword_letters_become_the_keywords_the_folder_names(tmp_path):
    """The shape ``doveadm save`` + ``doveadm flags add '\\Seen Work $Label1'`` wrote (Dovecot 2.3.19,
    LAYOUT=fs). Before: ``$maildir-keyword-a``, whose meaning lay in dovecot-keywords, which is never archived."""
    (tmp_path / "new").mkdir()
    (tmp_path / "Lists/dev/new").mkdir(parents=True)
    (tmp_path / "new/1796398924.M343976P5454.vm,S=131,W=138:2,Sab").write_bytes(b"From: a@b\n\nx\n")
    (tmp_path / "dovecot-keywords").write_bytes(b"0 Work\n1 $Label1\n")
    (tmp_path / "Lists/dev/new/1796398924.M376997P5455.vm,S=131,W=138:2,Fac").write_bytes(b"From: a@b\n\ny\n")
    (tmp_path / "Lists/dev/dovecot-keywords").write_bytes(b"0 Urgent\n1 two words\n")  # no keyword for c
    flags = {m.folder: m.flags for m in _scan(tmp_path) if isinstance(m, SourceMail)}
    assert flags == {"INBOX": ("$Label1 Work \\Seen",), "Lists/dev": ("$maildir-keyword-c Urgent \\Flagged",)}
    assert md.dovecot_keywords(b"0 Work\n1 two words\nx y\n30 Late\n2 (bad)\n") == {"a": "Work"}
