"""The careless user's mistakes, one check each without servers (the scripted scenario
against the real Samba is tests/integration/test_careless_user.py)."""
from __future__ import annotations

import http.server
import os
import threading
import uuid

import pytest
from rich.console import Console

from importers.eml import EmlImporter
from importers.maildir import MaildirImporter
from toolkit.cli.output import Ui
from toolkit.errors import EXIT_STATUS_HELP, ExitCode, KeyBackupFormatError, SourceError
from toolkit.keybackup import KdfParams, export_key_backup, import_key_backup
from toolkit.reporter import ListReporter
from toolkit.source import SourceMail, SourceProblem, SourceSkip

MAIL = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: hi\r\nMessage-ID: <1@example.com>\r\n\r\nHello.\r\n"
JPEG = bytes.fromhex("ffd8ffe000104a46494600010101004800480000") + b"\0" * 200
ELF = b"\x7fELF\x02\x01\x01\0" + b"\0" * 8 + b"\x02\0>\0" + os.urandom(300)
TEXT = b"Shopping list\nmilk\neggs\n"


def _items(importer):
    return list(importer.scan(None, ListReporter()))


# -- 2. import eml: non-mail is skipped ("not mail"), never archived; --force-raw archives it ---------

def _junk_tree(root):
    root.mkdir()
    (root / "photo.eml").write_bytes(JPEG)
    (root / "program.eml").write_bytes(ELF)
    (root / "notes.eml").write_bytes(TEXT)
    (root / "mail.eml").write_bytes(MAIL)
    # Broken, but mail: a header line that breaks the block, and a line of blanks before the headers.
    (root / "broken.eml").write_bytes(b"Subject: x\r\nThis is not a header\r\nFrom: a@b\r\n\r\nbody\r\n")
    (root / "blanks.eml").write_bytes(b"    \nDelivered-To: a@example.com\nSubject: y\n\nbody\n")


def _ingest(tmp_path, importer, workers):
    from toolkit.archive import Archive
    from toolkit.ingest import ingest

    home = tmp_path / f"home-{workers}-{getattr(importer, 'force_raw', False)}"
    Archive.create(home, str(home.with_name(home.name + "-medium"))).close()
    with Archive.open(home, writer=True) as a:
        s = ingest(a, importer, workers=workers, chunk=2)
        with a.catalog.reading() as con:
            refs = sorted(r[0] for r in con.execute("SELECT source_ref FROM sightings").fetchall())
    return s, refs


@pytest.mark.parametrize("workers", [0, 2])  # checked inline, and in the worker processes that read the files
def test_import_eml_lists_non_mail_as_skipped(tmp_path, workers):
    _junk_tree(tmp_path / "src")
    s, refs = _ingest(tmp_path, EmlImporter(str(tmp_path / "src")), workers)
    skips = {p["ref"]: p["message"] for p in s.problems if p["kind"] == "skipped"}
    assert refs == ["blanks.eml", "broken.eml", "mail.eml"]
    assert set(skips) == {"photo.eml", "program.eml", "notes.eml"} and s.skipped == 3 and s.errors == 0
    assert skips["photo.eml"].startswith("not mail: binary") and "--force-raw" in skips["photo.eml"]
    assert skips["notes.eml"].startswith("not mail: no header block")


def test_import_eml_force_raw_archives_everything(tmp_path):
    _junk_tree(tmp_path / "src")
    s, refs = _ingest(tmp_path, EmlImporter(str(tmp_path / "src"), force_raw=True), 0)
    assert refs == ["blanks.eml", "broken.eml", "mail.eml", "notes.eml", "photo.eml", "program.eml"]
    assert s.skipped == 0


def test_one_content_check_for_share_and_eml():
    """The share's strict check and the eml importer's lenient one are the same function."""
    from importers.share import mail_content

    assert mail_content(MAIL, b"m.eml", len(MAIL)) is None
    assert mail_content(MAIL, b"m.eml", len(MAIL), strict=False) is None
    broken = b"Subject: x\r\nnot a header\r\n\r\nbody"
    assert mail_content(broken, b"b.eml", len(broken)) == "not mail: no header block"
    assert mail_content(broken, b"b.eml", len(broken), strict=False) is None
    for junk in (JPEG, ELF, TEXT, b"\nA body without any header.\n", b"Note: buy milk\n"):
        assert mail_content(junk, b"x.eml", len(junk), strict=False) is not None


# -- 1. a source that does not exist is a usage error; one that holds no mail a finding ---------------

@pytest.mark.parametrize("kind", [EmlImporter, MaildirImporter])
def test_missing_local_source_is_a_usage_error(tmp_path, kind):
    with pytest.raises(SourceError) as info:
        _items(kind(str(tmp_path / "does-not-exist")))
    assert info.value.exit_code == ExitCode.USAGE
    assert "does-not-exist" in str(info.value) and "does not exist" in str(info.value)


def _run_from_start(tmp_path, importer, name):
    """One run through the real pipeline, and the finding ``import`` adds to its summary."""
    from toolkit.archive import Archive
    from toolkit.cli.commands.import_eml import _no_mail_finding
    from toolkit.ingest import Ingest

    home = tmp_path / f"home-{name}"
    if not home.exists():
        Archive.create(home, str(tmp_path / f"medium-{name}")).close()
    with Archive.open(home, writer=True) as a:
        ing = Ingest(a, workers=0)
        s = ing.run(importer).as_dict()
    _no_mail_finding(s, ing.resumed)
    return s


def test_a_source_without_mail_ends_with_a_finding(tmp_path):
    from importers.mbox import MboxImporter

    (tmp_path / "empty").mkdir()
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.txt").write_bytes(TEXT)
    (tmp_path / "empty.mbox").write_bytes(b"")
    for name, importer, why in (
        ("eml-empty", EmlImporter(str(tmp_path / "empty")), "nothing in it"),
        ("eml-junk", EmlImporter(str(tmp_path / "junk")), "1 entries skipped as not mail"),
        ("maildir-junk", MaildirImporter(str(tmp_path / "junk")), "1 entries skipped as not mail"),  # no cur/ or new/
        ("mbox-empty", MboxImporter(str(tmp_path / "empty.mbox")), "no mail found"),
    ):
        s = _run_from_start(tmp_path, importer, name)
        assert s["seen"] == 0 and s["errors"] >= 1, name
        assert "no mail found" in s["problems"][-1]["message"] and why in s["problems"][-1]["message"], name


def test_a_run_that_finds_nothing_new_is_no_finding(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.eml").write_bytes(MAIL)
    first = _run_from_start(tmp_path, EmlImporter(str(tmp_path / "src")), "x")
    again = _run_from_start(tmp_path, EmlImporter(str(tmp_path / "src")), "x")  # read again: a duplicate
    assert (first["errors"], again["errors"], again["seen"]) == (0, 0, 1)


# -- 4. one exit status table: a rejected login is 4, not "3 (network, auth, I/O)" --------------------

def test_exit_table_says_login_rejected_is_4():
    assert "auth" not in next(line for line in EXIT_STATUS_HELP.splitlines() if line.strip().startswith("3 "))
    line4 = next(line for line in EXIT_STATUS_HELP.splitlines() if line.strip().startswith("4 "))
    for what in ("SMB", "IMAP", "POP3", "TSA"):
        assert what in line4


class _Needs401(http.server.BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(401, "Unauthorized")
        self.send_header("WWW-Authenticate", 'Basic realm="tsa"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_tsa_rejecting_the_login_exits_4():
    from verify.tsa_client import request_stamp

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Needs401)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        with pytest.raises(Exception) as info:
            request_stamp(f"http://127.0.0.1:{server.server_port}/tsa", b"\0" * 32, timeout=10)
    finally:
        server.shutdown()
        server.server_close()
    assert info.value.exit_code == ExitCode.AUTH_FAILED and "rejected the login" in str(info.value)


# -- 8. summaries add up, in human units ---------------------------------------------------------------

def test_summary_names_every_decision_kind_and_adds_up():
    from toolkit.cli.commands.import_eml import summary_line

    r = {"seen": 64, "archived": 61, "duplicates": 2, "merged": 1, "skipped": 3, "errors": 0,
         "decisions": {"new": 60, "id-conflict": 1, "exact-duplicate": 1, "duplicate": 1, "journal-merge": 1}}
    line = summary_line(r)
    assert line.startswith("64 seen = 61 archived (60 new, 1 id-conflict) + 2 duplicates (1 exact-duplicate, 1 duplicate)")
    assert "+ 1 journal-merge" in line and "3 skipped, 0 errors" in line


@pytest.mark.parametrize("n, text", [(0, "0 B"), (512, "512 B"), (34_200, "34.2 KB"), (1_500_000, "1.5 MB"), (2 * 10**9, "2.0 GB")])
def test_human_bytes(n, text):
    from toolkit.cli.output import human_bytes

    assert human_bytes(n) == text


# -- 13. the key backup reads O as 0 everywhere it says so; typos named by the printed line number ----

FAST = KdfParams(memory_kib=64, iterations=1, lanes=1)
KEY = bytes(range(32))
U = uuid.UUID("00000000-1111-4000-8000-0000000000a0")


def _backup() -> list[str]:
    return export_key_backup(KEY, U, b"pw", kdf_params=FAST).split("\n")


def test_o_i_l_read_as_digits_in_the_archive_and_fingerprint_lines():
    lines = _backup()
    for i, s in enumerate(lines):
        if s.startswith(("archive:", "fingerprint:")):
            label, _, value = s.partition(":")
            lines[i] = label + ":" + value.replace("0", "O").replace("1", "l")
    text = "\n".join(lines)
    assert "O" in text.split("archive:")[1].split("\n")[0]
    assert import_key_backup(text, b"pw").key == KEY


def test_a_typo_names_the_numbered_data_line():
    lines = _backup()
    i = next(n for n, s in enumerate(lines) if s.startswith("03:"))
    pos = lines[i].index(":") + 3
    lines[i] = lines[i][:pos] + ("X" if lines[i][pos] != "X" else "Y") + lines[i][pos + 1:]
    with pytest.raises(KeyBackupFormatError) as info:
        import_key_backup("\n".join(lines), b"pw")
    assert str(info.value).startswith(f"line 03 (line {i + 1} of the file): check character does not match")
    assert info.value.line == i + 1


# -- 14. tables never cut a location -----------------------------------------------------------------

def test_table_wraps_long_locations_on_a_narrow_terminal(monkeypatch):
    import toolkit.cli.output as output

    location = "smb://smbtest@127.0.0.1:44445/mail/a/very/long/path/to/the/medium-0001"
    console = Console(width=50, record=True, force_terminal=True, color_system=None)
    monkeypatch.setattr(output, "Console", lambda **kw: console)  # a 50-column terminal
    Ui().table("Media", ["id", "state", "location", "packs"], [[1, "active", location, 3]])
    text = console.export_text()
    assert "…" not in text
    joined = "".join(line.split("│")[3].strip() for line in text.splitlines() if line.count("│") == 5)
    assert location in joined


def test_a_maildir_import_of_a_tree_of_single_messages_names_the_import_that_reads_it(tmp_path):
    # the Enron corpus' layout: numbered files in plain folders, no cur/ or new/
    (tmp_path / "allen-p" / "inbox").mkdir(parents=True)
    (tmp_path / "allen-p" / "inbox" / "1.").write_bytes(MAIL)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_bytes(b"no mail here\n")
    for root, hint in ((tmp_path, True), (tmp_path / "junk", False)):
        rep = ListReporter()
        items = list(MaildirImporter(str(root)).scan(None, rep))
        assert items and all(isinstance(i, SourceSkip) for i in items)
        (warning,) = [w for w in rep.warnings if "no file in any cur/ or new/" in w]
        assert ("look like single messages (allen-p/inbox/1.): `import eml" in warning) is hint, warning
