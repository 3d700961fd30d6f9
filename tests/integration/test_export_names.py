"""Hostile folder names (docs/reliability.md N3-N8) produce files only inside DEST.

The catalog's sightings carry the folder names (set in-process); eml
(--layout folder), mbox (--per-folder) and maildir exports must write every
file below DEST, never overwrite one message with another (case and NFC
clashes), and refuse a symlink inside DEST that points outside (N6).
"""
from __future__ import annotations

import hashlib
import os
import unicodedata
from pathlib import Path

import pytest

from exporters.eml import export_eml
from exporters.layout import placements
from exporters.maildir import export_maildir
from exporters.mbox import export_mbox
from exporters.manifest import read_manifest
from importers.eml import EmlImporter
from importers.maildir import MaildirImporter
from importers.mbox import split_mbox
from toolkit.archive import Archive
from toolkit.errors import UsageError
from toolkit.ingest import Ingest
from toolkit.retrieval import select_messages

HOSTILE = [
    "../../etc", "/abs", "C:\\x", "..\\..\\x", "CON", "aux.txt", "a:b", "a.txt:stream", "trailing.", "trailing ",
    "\u202egnp.exe", "..", ".", ".hidden", "INBOX/../..", "x/../../../y", "ctrl\x01\x1fchar", "Inbox2", "INBOX2",
    unicodedata.normalize("NFC", "Café"), unicodedata.normalize("NFD", "Café"), "v1.2", "a" * 300,
]


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    base = tmp_path_factory.mktemp("names")
    src = base / "src"
    src.mkdir()
    for i, _ in enumerate(HOSTILE):
        (src / f"{i:02d}.eml").write_bytes(
            f"From: s{i}@example.com\nTo: r@example.com\nMessage-ID: <n{i}@t>\nSubject: ../../n{i} CON\n"
            f"Date: Mon, 7 Jan 2019 09:15:00 +0000\n\nbody {i}\n".encode())
    Archive.create(base / "home", str(base / "medium")).close()
    a = Archive.open(base / "home", writer=True)
    Ingest(a, workers=0).run(EmlImporter(str(src)))
    with a.catalog.writing() as con:
        for i, folder in enumerate(HOSTILE):
            con.execute("UPDATE sightings SET folder = ?, via = 'maildir', flags = '\\Seen' "
                        "WHERE msg_id IN (SELECT msg_id FROM messages WHERE message_id = ?)", [folder, f"n{i}@t"])
    a.close()
    a = Archive.open(base / "home")
    yield a
    a.close()


def _all_inside(dest: Path, outside: Path) -> list[Path]:
    real = os.path.realpath(dest)
    files = []
    for dirpath, dirnames, filenames in os.walk(dest, followlinks=False):
        for n in filenames + dirnames:
            p = Path(dirpath) / n
            assert os.path.commonpath([real, os.path.realpath(p)]) == real, p
            if p.is_file() and not p.is_symlink():
                files.append(p)
    assert not any(outside.iterdir()), "something was written outside DEST"
    return files


@pytest.fixture
def outside(tmp_path) -> Path:
    d = tmp_path / "outside"
    d.mkdir()
    return d


def test_n3_n5_n8_eml_folder_layout(archive, tmp_path, outside):
    dest = tmp_path / "deep" / "dest"
    summary = export_eml(archive, dest, layout="folder")
    assert not summary.errors and summary.written == len(HOSTILE)
    files = [p for p in _all_inside(dest, outside) if p.suffix == ".eml"]
    assert len(files) == len(HOSTILE)  # nothing overwritten: case and NFC clashes got distinct names
    assert len({hashlib.sha256(p.read_bytes()).hexdigest() for p in files}) == len(HOSTILE)
    for p in files:
        for part in p.relative_to(dest).parts:
            assert part not in ("..", ".") and "\\" not in part and ":" not in part and "\u202e" not in part
            assert part.split(".")[0].upper() not in ("CON", "AUX") and not part.endswith((".", " "))
            assert len(part.encode()) <= 255
    assert not (tmp_path / "deep" / "etc").exists() and not Path("/abs").exists()
    doc = read_manifest(dest)
    assert {r["path"] for r in doc["messages"]} == {p.relative_to(dest).as_posix() for p in files}


def test_n3_n5_mbox_per_folder(archive, tmp_path, outside):
    dest = tmp_path / "dest"
    summary = export_mbox(archive, dest, per_folder=True)
    assert not summary.errors
    files = [p for p in _all_inside(dest, outside) if p.suffix == ".mbox"]
    assert len(files) == len(HOSTILE)
    got = set()
    for p in files:
        with open(p, "rb") as f:
            got |= {hashlib.sha256(m.raw).hexdigest() for m in split_mbox(f, "mboxrd")}
    assert got == {sm.blob_id for sm in select_messages(archive)}


def test_n4_n8_maildir_names_are_safe_and_reversible(archive, tmp_path, outside):
    dest = tmp_path / "md"
    summary = export_maildir(archive, dest)
    assert not summary.errors
    files = [p for p in _all_inside(dest, outside) if p.parent.name == "cur"]
    assert len(files) == len(HOSTILE)
    for d in dest.iterdir():
        assert d.name in ("cur", "new", "tmp", "manifest.csv", "manifest.json") or (
            d.name.startswith(".") and d.name not in (".", "..") and all(0x20 < ord(c) < 0x7F for c in d.name)
            and not set(d.name) & set('\\:*?"<>|'))
    # the importer maps the encoded names back to the original folder names (except the "~2" clash suffix)
    Archive.create(tmp_path / "h2", str(tmp_path / "m2")).close()
    b = Archive.open(tmp_path / "h2", writer=True)
    try:
        Ingest(b, workers=0).run(MaildirImporter(str(dest)))
        sel = select_messages(b)
        got = {p.folder for ps in placements(b, [sm.msg_id for sm in sel]).values() for p in ps}
    finally:
        b.close()
    want = {"/".join(x for x in f.split("/") if x) or "INBOX" for f in HOSTILE}
    assert len(got) == len(want)
    # all but two come back exactly: one of "Inbox2"/"INBOX2" got a "~2", the 300-character name was shortened
    lost = want - got
    assert len(lost) == 2 and "a" * 300 in lost and lost & {"Inbox2", "INBOX2"}


@pytest.mark.parametrize("export", ["eml", "mbox", "maildir"])
def test_n6_symlink_inside_dest_pointing_outside_is_refused(archive, tmp_path, outside, export):
    dest = tmp_path / "dest"
    dest.mkdir()
    # the first path component each exporter would create for folder "CON" / INBOX
    targets = {"eml": "_CON", "mbox": "messages.mbox", "maildir": "cur"}
    (dest / targets[export]).symlink_to(outside, target_is_directory=True)
    with pytest.raises(UsageError) as err:
        if export == "eml":
            export_eml(archive, dest, layout="folder")
        elif export == "mbox":
            export_mbox(archive, dest)
        else:
            export_maildir(archive, dest)
    assert "symlink" in str(err.value) or "outside" in str(err.value)
    assert not any(outside.iterdir())
    assert read_manifest(dest) is None
