"""``import share`` over a mixed tree (C8, N1, N2, M2), on the real Samba share and locally."""
from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import tarfile
import time
from pathlib import Path

import re

import pytest

from importers.share import ShareImporter, detect
from importers.walk import ref_bytes
from tests.cli import mailarchive
from tests.corpora import REPO
from toolkit.reporter import NullReporter
from toolkit.source import SourceMail

SAMPLE = REPO / "sample_data"
LONG_DIR = "/".join(["d" * 60] * 5)         # a path over 260 characters (C8)
NON_UTF8 = b"caf\xe9.eml"                    # Latin-1 name, not UTF-8 (N2)


def _eml(n: int, subject: str) -> bytes:
    return (
        f"From: sender{n}@example.com\r\nTo: archive@example.com\r\nSubject: {subject}\r\n"
        f"Date: Mon, 7 Jan 2019 09:{n:02d}:00 +0100\r\nMessage-ID: <share-{n}@example.com>\r\n\r\n"
        f"Body of mail {n}.\r\n"
    ).encode()


PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489") + b"\0" * 40

#: What lands where: EML files (relative path → subject); each must come out as one mail.
EML_FILES = {
    "eml/one.eml": "one",
    "eml/nested/deep/two.eml": "two",
    "A.eml": "upper-case A",
    "a.eml": "lower-case a",                  # C8: differs from A.eml only in case
    "noext": "no extension, detected by content",
    "trailing-dot.": "trailing dot",
    "trailing-space ": "trailing space",
    f"{LONG_DIR}/long.eml": "long path",
}
MBOX_COUNTS = {"mboxes/lists.mbox": 5, "mboxes/old-archive.gz": 8}
MAILDIR_COUNTS = {"Mail/INBOX": 3, "Mail/Projects": 3, "Mail/Archive/2019": 4, "Mail/Entwürfe": 1}
JUNK = {
    "pics/photo.png": "not mail: binary",
    "empty.txt": "empty file",
    "notes.txt": "not mail: no header block",
    "pics/Thumbs.db": "not mail: Windows/macOS folder metadata (Thumbs.db)",
    "desktop.ini": "not mail: Windows/macOS folder metadata (desktop.ini)",
}
#: The Maildir's own files that are not messages: tmp/.keep (4) and maildirfolder (3).
MAILDIR_SKIPS = 7


def build_tree(root: Path) -> None:
    for i, (rel, subject) in enumerate(sorted(EML_FILES.items())):
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(_eml(i, subject))
    (root / "mboxes").mkdir()
    shutil.copyfile(SAMPLE / "mbox" / "lists.mbox", root / "mboxes" / "lists.mbox")
    (root / "mboxes" / "old-archive.gz").write_bytes(gzip.compress((SAMPLE / "mbox" / "archive-2018.mbox").read_bytes()))
    shutil.copytree(SAMPLE / "maildir", root / "Mail")
    (root / "pics").mkdir()
    (root / "pics" / "photo.png").write_bytes(PNG)
    (root / "empty.txt").write_bytes(b"")
    (root / "notes.txt").write_bytes(b"Shopping list\nmilk\neggs\n")
    (root / "pics" / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 100)
    (root / "desktop.ini").write_bytes(b"[.ShellClassInfo]\r\nIconResource=C:\\x.ico,0\r\n")
    with open(os.path.join(os.fsencode(root), NON_UTF8), "wb") as f:
        f.write(_eml(90, "non-UTF-8 file name"))


def _all_files(root: Path) -> set[bytes]:
    out = set()
    for dirpath, dirnames, filenames in os.walk(os.fsencode(root)):
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            full = os.path.join(dirpath, name)
            out.add(os.path.relpath(full, os.fsencode(root)))
    return out


def _sightings(home: Path, env: dict | None = None) -> list[dict]:
    out = mailarchive(home, "sql", "SELECT source_ref, folder, flags, decision FROM sightings ORDER BY source_ref",
                      "--format", "json", env=env)
    return json.loads(out.stdout)


def _check_accounting(files: set[bytes], sightings: list[dict], listed: list[dict]) -> None:
    """C8: every source file is a mail (or an mbox of mails), or listed with a reason; nothing else."""
    covered: dict[bytes, int] = {}
    for ref in [s["source_ref"] for s in sightings] + [p["ref"] for p in listed]:
        path = ref_bytes(ref)
        if path not in files:
            path = path.rpartition(b"@")[0]          # mbox message: path@offset
        assert path in files, ref
        covered[path] = covered.get(path, 0) + 1
    assert set(covered) == files


def _by(rows: list[dict], key: str) -> dict:
    out: dict = {}
    for r in rows:
        out[r[key]] = out.get(r[key], 0) + 1
    return out


MANGLED = re.compile(r"[0-9A-Z_]{6}~[0-9A-Z]")


@pytest.mark.samba
def test_share_on_samba_mixed_tree(tmp_path, samba, smb_location):
    """Acceptance 5: EML, mbox, gzipped mbox, Maildir++, junk, nested dirs, odd names on the real share.

    What Samba shows of odd names (SMB3, default `mangled names`): Maildir names with ':' and names with a
    trailing dot or space are listed under 8.3 mangled names (``12QLXW~U``) — they are imported, their
    Maildir flags are lost with the name (M2: "bytes imported either way"). A file name that is not valid
    UTF-8 (``caf\\xe9.eml``) is not listed by Samba at all, so no client can see or import it; that is the
    one file on disk missing from the counts, and the local run below imports it.
    """
    sub = smb_location.rstrip("/").rpartition("/")[2]
    root = samba.share_dir / sub
    root.mkdir()
    build_tree(root)
    files = _all_files(root)
    home = tmp_path / "home"
    mailarchive(home, "init", "--medium", str(tmp_path / "medium"), "--key-backup", str(tmp_path / "kb.txt"))
    r = mailarchive(home, "import", "share", smb_location, json_out=True, timeout=120).result
    listed = r["sources"][0]["problems"]
    sightings = _sightings(home)

    mails = len(EML_FILES) + sum(MBOX_COUNTS.values()) + sum(MAILDIR_COUNTS.values())   # without café
    assert r["errors"] == 0 and r["seen"] == r["archived"] == mails == len(sightings)
    assert r["skipped"] == len(JUNK) + MAILDIR_SKIPS
    assert {p["ref"]: p["message"] for p in listed if not p["ref"].startswith("Mail/")} == JUNK

    # C8 accounting: files on disk = files imported + files listed + the one name Samba cannot show.
    imported_files = {s["source_ref"].rpartition("@")[0] if "@" in s["source_ref"] else s["source_ref"] for s in sightings}
    assert len(imported_files) + len(listed) == len(files) - 1
    assert not any("caf" in ref for ref in [s["source_ref"] for s in sightings] + [p["ref"] for p in listed])

    by_ref = {s["source_ref"]: s for s in sightings}
    assert "A.eml" in by_ref and "a.eml" in by_ref                      # case collision: both, distinct refs
    top = [ref for ref in by_ref if "/" not in ref]
    assert sorted(ref for ref in top if not MANGLED.fullmatch(ref)) == ["A.eml", "a.eml", "noext"]
    assert len([ref for ref in top if MANGLED.fullmatch(ref)]) == 2      # "trailing-dot." and "trailing-space "
    assert f"{LONG_DIR}/long.eml" in by_ref                             # a path over 260 characters
    maildir_rows = [s for s in sightings if s["source_ref"].startswith("Mail/")]
    assert _by(maildir_rows, "folder") == MAILDIR_COUNTS
    for s in maildir_rows:                                              # ':' names mangled: no flags left
        name = s["source_ref"].rpartition("/")[2]
        assert MANGLED.fullmatch(name) or "/new/" in s["source_ref"]
        assert s["flags"] is None
    assert _by([s for s in sightings if "@" in s["source_ref"]], "folder") == {
        "mboxes/lists": 5, "mboxes/old-archive": 8}

    # The same Maildir with `import maildir` on smb://: the same folders, every mail a duplicate now.
    m = mailarchive(home, "import", "maildir", f"{smb_location}/Mail", json_out=True, timeout=120).result
    assert m["seen"] == 11 and m["duplicates"] == 11 and m["errors"] == 0 and m["skipped"] == MAILDIR_SKIPS
    rows = json.loads(mailarchive(home, "sql", "SELECT folder FROM sightings WHERE source_uri LIKE 'maildir:%'",
                                  "--format", "json").stdout)
    assert _by(rows, "folder") == {k.removeprefix("Mail/"): v for k, v in MAILDIR_COUNTS.items()}


def test_share_local_mixed_tree_with_symlinks_and_fifo(tmp_path):
    """N1, N2, C8 locally: symlink out of the root, symlink loop, FIFO all listed, never followed or opened."""
    root = tmp_path / "tree"
    root.mkdir()
    build_tree(root)
    os.symlink("/etc/passwd", root / "passwd-link.eml")
    os.symlink("loop-b", root / "loop-a")
    os.symlink("loop-a", root / "loop-b")
    os.symlink("/etc", root / "etc-dir-link")
    os.mkfifo(root / "eml" / "pipe.eml")
    files = _all_files(root)
    home = tmp_path / "home"
    mailarchive(home, "init", "--medium", str(tmp_path / "medium"), "--key-backup", str(tmp_path / "kb.txt"))
    started = time.monotonic()
    r = mailarchive(home, "import", "share", str(root), json_out=True, timeout=60).result
    assert time.monotonic() - started < 30                              # the FIFO never blocks
    listed = r["sources"][0]["problems"]
    sightings = _sightings(home)

    mails = len(EML_FILES) + 1 + sum(MBOX_COUNTS.values()) + sum(MAILDIR_COUNTS.values())
    assert r["errors"] == 0 and r["seen"] == r["archived"] == mails == len(sightings)
    reasons = {p["ref"]: p["message"] for p in listed}
    assert reasons["passwd-link.eml"] == reasons["loop-a"] == reasons["loop-b"] == reasons["etc-dir-link"] \
        == "symbolic link (never followed)"
    assert reasons["eml/pipe.eml"] == "FIFO (never opened)"
    assert r["skipped"] == len(JUNK) + MAILDIR_SKIPS + 5
    _check_accounting(files, sightings, listed)

    by_ref = {s["source_ref"]: s for s in sightings}
    # N2: the non-UTF-8 name is recorded losslessly.
    odd = [ref for ref in by_ref if ref.startswith("base64:")]
    assert len(odd) == 1 and ref_bytes(odd[0]) == NON_UTF8
    for name in ("A.eml", "a.eml", "trailing-dot.", "trailing-space ", "noext", f"{LONG_DIR}/long.eml"):
        assert by_ref[name]["decision"] == "new"
    assert _by([s for s in sightings if s["source_ref"].startswith("Mail/")], "folder") == MAILDIR_COUNTS
    # Locally the Maildir names keep their ':2,' suffix: flags recorded (M2).
    assert by_ref["Mail/cur/1546938000.M2017P4202.mail.example.com,S=613:2,RS"]["flags"] == "\\Answered \\Seen"
    assert by_ref["Mail/.Entw&APw-rfe/cur/1556776800.M11017P4211.mail.example.com,S=341:2,DS"]["folder"] == "Mail/Entwürfe"
    assert not any(s["source_ref"].startswith("Mail/") and s["source_ref"].endswith(".keep") for s in sightings)

    # The same command again (the last run completed): everything is read again and is a duplicate.
    again = mailarchive(home, "import", "share", str(root), json_out=True, timeout=60).result
    assert again["seen"] == mails and again["archived"] == 0 and again["decisions"] == {
        "new": 0, "id-conflict": 0, "exact-duplicate": mails, "duplicate": 0, "journal-merge": 0,
        "converted-twin": 0}
    assert again["skipped"] == r["skipped"] and again["errors"] == 0


def test_share_cursor_resumes_inside_an_mbox(tmp_path):
    """The cursor names the unit and, inside an mbox or a Maildir, the inner importer's cursor."""
    root = tmp_path / "tree"
    root.mkdir()
    build_tree(root)
    full = list(ShareImporter(str(root)).scan(None, NullReporter()))
    mbox_at = [k for k, i in enumerate(full) if i.ref.startswith("mboxes/old-archive.gz@")]
    maildir_at = [k for k, i in enumerate(full) if i.ref.startswith("Mail/.Projects/")]
    for k in (0, mbox_at[3], maildir_at[1], len(full) - 2):
        cursor = json.loads(json.dumps(full[k].cursor))
        if k == mbox_at[3]:
            assert cursor["inner"]["offset"] > 0
        rest = list(ShareImporter(str(root)).scan(cursor, NullReporter()))
        assert [i.ref for i in rest] == [i.ref for i in full[k + 1:]]
        assert all(a.raw == b.raw for a, b in zip(rest, full[k + 1:]) if isinstance(a, SourceMail))


def _tar(members: dict[str, bytes]) -> bytes:
    """A tar archive (POSIX, with the directory of the first member) of ``members``."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        first = next(iter(members)).split("/")[0]
        d = tarfile.TarInfo(first)
        d.type = tarfile.DIRTYPE
        tar.addfile(d)
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.mark.parametrize(
    "head, name, kind, reason",
    [
        (b"From alice@example.com Mon Jan  7 09:15:00 2019\nFrom: a@b\n\nx\n", b"x", "mbox", None),
        (b"\n\nFrom alice@example.com Mon Jan  7 09:15:00 2019\nFrom: a@b\n\nx\n", b"x", "mbox", None),
        (b"From - Mon Jan  7 09:15:00 2019\r\nFrom: a@b\r\n\r\nx\r\n", b"x", "mbox", None),
        (b"From here on we talk.\nNothing else\n", b"x", "skip", "not mail: no header block"),
        (b"Received: from x\n\tby y\nFrom: a@b\nSubject: s\n\nbody\n", b"x", "eml", None),
        (b"\xef\xbb\xbfFrom: a@b\r\nSubject: s\r\n", b"x", "eml", None),    # BOM, headers only
        (b"Note: buy milk\n\nand eggs\n", b"x", "skip", "not mail: no header block"),
        (b"\x89PNG\r\n\x1a\n\0\0\0", b"x.png", "skip", "not mail: binary"),
        (gzip.compress(b"From a@b Mon Jan  7 09:15:00 2019\nFrom: a@b\n\nx\n", mtime=0), b"x.gz", "mbox", None),
        (gzip.compress(b"From: a@b\nSubject: s\n\nx\n", mtime=0), b"x.gz", "problem",
         "gzip-compressed single message: not imported; decompress it (`gzip -dk FILE`), then import the result"),
        (b"LZIP\x01rest", b"x.lz", "problem", None),
        (b"\x28\xb5\x2f\xfd\x00rest", b"x.mbox.zst", "problem", None),
        (_tar({"backup/Maildir/cur/1727776800.M1P2.host:2,S": b"From: a@b\n\nx\n"}), b"b.tar", "problem",
         "a tar archive holding mail ('backup/Maildir/cur/1727776800.M1P2.host:2,S', ...): not read; extract it (`tar -xf FILE -C DIR`) and import DIR"),
        (gzip.compress(_tar({"export/2019.mbox": b"From a@b Mon Jan  7 09:15:00 2019\n"})), b"b.tgz", "problem",
         "a gzip-compressed tar archive holding mail ('export/2019.mbox', ...): not read; extract it "
         "(`tar -xf FILE -C DIR`) and import DIR"),
        (b"\x00\x00\x00\x0dcyrus index", b"user/alice/cyrus.index", "skip",
         "not mail: Cyrus IMAP mailbox metadata (its messages are the files named N. beside it)"),
        (b"Cyrus mailbox header\n\"The best thing\"\n", b"cyrus.header", "skip",
         "not mail: Cyrus IMAP mailbox metadata (its messages are the files named N. beside it)"),
        (_tar({"src/new/readme.txt": b"x" * 2000, "src/main.c": b"int main;"}), b"sw.tar", "skip",
         "not mail: a tar archive (no mail among its first 3 members)"),
    ],
)
def test_detect_by_content(head, name, kind, reason):
    got_kind, got_reason = detect(head, name, len(head))
    assert got_kind == kind
    if reason is not None:
        assert got_reason == reason


def test_maildir_detection_by_layout(tmp_path):
    """A ``.Sub`` with the Maildir++ marker makes its parent the Maildir even when INBOX is empty; a
    plain directory that happens to be called ``new`` is not a Maildir: its files are detected by content."""
    root = tmp_path / "tree"
    (root / "Mail2" / ".Sub" / "cur").mkdir(parents=True)
    (root / "Mail2" / ".Sub" / "cur" / "1600000000.M1P1.host:2,FS").write_bytes(_eml(1, "sub"))
    (root / "Mail2" / ".Sub" / "maildirfolder").write_bytes(b"")
    (root / "Projects" / "new").mkdir(parents=True)
    (root / "Projects" / "new" / "report.eml").write_bytes(_eml(2, "report"))
    (root / "Projects" / "new" / "Thumbs.db").write_bytes(b"\0" * 10)
    items = {i.ref: i for i in ShareImporter(str(root)).scan(None, NullReporter())}
    sub = items["Mail2/.Sub/cur/1600000000.M1P1.host:2,FS"]
    assert sub.folder == "Mail2/Sub" and sub.flags == ("\\Flagged \\Seen",)
    assert items["Projects/new/report.eml"].folder == "Projects/new"
    assert items["Projects/new/Thumbs.db"].reason == "not mail: Windows/macOS folder metadata (Thumbs.db)"
    assert items["Mail2/.Sub/maildirfolder"].reason == "Maildir metadata, not a message"
    assert len(items) == 4


@pytest.mark.samba
@pytest.mark.parametrize("what", ["share", "folder"])
def test_c8_a_missing_share_or_folder_is_an_error_naming_it(tmp_path, samba, what):
    """C8: a share or folder that does not exist on the server is a usage error naming it, not an empty run."""
    home = tmp_path / "home"
    mailarchive(home, "init", "--medium", str(tmp_path / "medium"), "--key-backup", str(tmp_path / "kb.txt"))
    missing = f"no-such-share-{os.getpid()}" if what == "share" else f"{samba.share}/no-such-folder-{os.getpid()}"
    url = f"smb://{samba.user}@{samba.host}:{samba.port}/{missing}"
    p = mailarchive(home, "import", "share", url, check=None, env={"MAILARCHIVE_SMB_PASSWORD": samba.password})
    err = " ".join(p.stderr.split())
    assert p.returncode not in (0, 1), (p.returncode, p.stdout, p.stderr)
    assert "Traceback" not in err and missing.rpartition("/")[2] in err, err
    assert mailarchive(home, "stats", json_out=True).result["messages"] == 0


def test_mail_packed_in_a_tar_or_compressed_alone_is_an_error_not_a_skip(tmp_path):
    """A hoster's tar of Maildirs and a gzipped single message hold mail the share import does not read: the run
    names them as errors and exits 1, where it used to list them as skipped and exit 0."""
    root = tmp_path / "tree"
    root.mkdir()
    (root / "kept.eml").write_bytes(b"From: a@example.org\nSubject: kept\nMessage-ID: <kept@x>\n\nbody\n")
    (root / "mailboxes.tar.gz").write_bytes(gzip.compress(_tar({
        "alice/Maildir/cur/1727776800.M1P2.host,S=40:2,S": b"From: b@example.org\nSubject: in the tar\n\nx\n"})))
    (root / "one.eml.gz").write_bytes(gzip.compress(b"From: c@example.org\nSubject: gzipped\n\nx\n"))
    (root / "tools.tar").write_bytes(_tar({"bin/tool.sh": b"#!/bin/sh\n"}))
    home = tmp_path / "home"
    mailarchive(home, "init", "--kdf-profile", "test", "--key-backup", str(tmp_path / "kb.txt"))
    r = mailarchive(home, "import", "share", str(root), json_out=True, check=1).result
    assert r["archived"] == 1 and r["errors"] == 2 and r["skipped"] == 1
    listed = {p["ref"]: p["message"] for p in r["sources"][0]["problems"]}
    assert "tar archive holding mail ('alice/Maildir" in listed["mailboxes.tar.gz"]
    assert "gzip-compressed single message: not imported" in listed["one.eml.gz"]
    assert listed["tools.tar"].startswith("not mail: a tar archive")
