"""mbox and Maildir export round trips, and the export manifests (docs/reliability.md E4, L3).

Source: every sample_data source (eml, journal reports, Maildir++, both
mboxes) plus every ``*.mbox`` of corpora/b-mbox-maildir. Export → import
into a second archive must give back the same set of blob ids (and for
Maildir the same folders and flags); an export killed after its first
file has no manifest, and the rerun completes it without duplicate files.
"""
from __future__ import annotations

import hashlib
import json
import mailbox
import re
import signal
from pathlib import Path

import pytest

from exporters.layout import placements
from exporters.maildir import export_maildir, flag_letters, folder_dir_name
from exporters.manifest import read_manifest
from exporters.mbox import export_mbox, from_line, quote
from importers.eml import EmlImporter
from importers.maildir import MaildirImporter
from importers.mbox import MboxImporter, split_mbox
from tests.cli import mailarchive
from tests.corpora import REPO, corpora_dir
from toolkit.archive import Archive
from toolkit.ingest import Ingest
from toolkit.retrieval import read_messages, select_messages

SAMPLE = REPO / "sample_data"


class _Chain:
    """Many mbox files in one import run (one run per file costs ~0.5 s each)."""

    via = "mbox"
    source_uri = "mbox-chain:test"

    def __init__(self, importers):
        self.importers = importers

    def scan(self, cursor, reporter):
        for imp in self.importers:
            for item in imp.scan(None, reporter):
                item.cursor = None
                yield item


def _new_archive(base: Path, name: str) -> Archive:
    Archive.create(base / f"{name}-home", str(base / f"{name}-medium")).close()
    return Archive.open(base / f"{name}-home", writer=True)


def _blobs(archive: Archive) -> set[str]:
    return {sm.blob_id for sm in select_messages(archive)}


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    corpus = corpora_dir() / "b-mbox-maildir"
    base = tmp_path_factory.mktemp("roundtrip")
    a = _new_archive(base, "src")
    runs = [EmlImporter(str(SAMPLE / "eml")), EmlImporter(str(SAMPLE / "journal")),
            MaildirImporter(str(SAMPLE / "maildir")),
            _Chain([MboxImporter(str(p)) for p in sorted((SAMPLE / "mbox").iterdir())]
                   + [MboxImporter(str(p)) for p in sorted(corpus.rglob("*.mbox"))])]
    for imp in runs:
        Ingest(a, workers=0).run(imp)
    a.close()
    a = Archive.open(base / "src-home")
    yield a
    a.close()


def test_source_is_varied(source):
    """The round trips below mean something: CRLF, no trailing newline, From-quoting, folders, flags."""
    raws = [d for _, d in read_messages(source, select_messages(source))]
    assert len(raws) > 400
    assert any(not d.endswith(b"\n") for d in raws)
    assert any(b"\r\n" in d for d in raws)
    assert any(d.startswith(b"From ") or b"\nFrom " in d for d in raws)
    assert any(b"\n>From " in d for d in raws)
    flags = {f for ps in placements(source, [sm.msg_id for sm in select_messages(source)]).values() for p in ps for f in p.flags}
    assert {"\\Seen", "\\Answered", "\\Draft"} <= flags


def test_mbox_roundtrip_same_blob_ids(source, tmp_path):
    """L3: export mboxrd → import mbox --variant mboxrd → exactly the archived bytes."""
    summary = export_mbox(source, tmp_path / "out")
    assert not summary.errors and summary.written == summary.selected  # one copy each without --per-folder
    files = sorted((tmp_path / "out").glob("*.mbox"))
    # the mail without a trailing newline stands alone in a file of its own
    assert [p.name for p in files][:2] == ["messages-2.mbox", "messages.mbox"]
    b = _new_archive(tmp_path, "mbox")
    try:
        for p in files:
            assert Ingest(b, workers=0).run(MboxImporter(str(p), variant="mboxrd")).errors == 0
        assert _blobs(b) == _blobs(source)
    finally:
        b.close()
    # the manifest lists every exported message with its SHA-256, written last
    doc = read_manifest(tmp_path / "out")
    assert doc["complete"] and {r["sha256"] for r in doc["messages"]} == _blobs(source)
    assert {r["path"] for r in doc["messages"]} == {p.name for p in files}


def test_mbox_per_folder_roundtrip(source, tmp_path):
    out = tmp_path / "out"
    summary = export_mbox(source, out, per_folder=True)
    assert not summary.errors
    got: dict[str, set[str]] = {}
    for p in out.rglob("*.mbox"):
        with open(p, "rb") as f:
            got[p.relative_to(out).as_posix()] = {hashlib.sha256(m.raw).hexdigest() for m in split_mbox(f, "mboxrd")}
    assert set().union(*got.values()) == _blobs(source)
    assert {"2019.mbox", "2021/projects.mbox", "Archive/2019.mbox", "Entwürfe.mbox", "INBOX.mbox"} <= set(got)
    doc = read_manifest(out)
    for row in doc["messages"]:
        assert row["sha256"] in got[row["path"]]


def test_maildir_roundtrip_blobs_folders_flags(source, tmp_path):
    out = tmp_path / "md"
    summary = export_maildir(source, out)
    assert not summary.errors
    assert (out / ".Entw&APw-rfe" / "cur").is_dir() and (out / ".2021.projects" / "maildirfolder").exists()
    b = _new_archive(tmp_path, "md")
    try:
        run = Ingest(b, workers=0).run(MaildirImporter(str(out)))
        assert run.errors == 0
        assert _blobs(b) == _blobs(source)

        def layout(archive):
            sel = select_messages(archive)
            pl = placements(archive, [sm.msg_id for sm in sel])
            return {sm.blob_id: sorted((p.folder or "INBOX", p.flags) for p in pl[sm.msg_id]) for sm in sel}

        assert layout(b) == layout(source)
    finally:
        b.close()
    # manifest: one row per file, the file's SHA-256
    doc = read_manifest(out)
    files = [p for p in out.rglob("*") if p.is_file() and p.parent.name == "cur"]
    assert len(doc["messages"]) == len(files)
    for row in doc["messages"]:
        assert hashlib.sha256((out / row["path"]).read_bytes()).hexdigest() == row["sha256"] == row["blob_id"]
    # a second run writes nothing new
    again = export_maildir(source, out)
    assert again.written == 0 and again.already_present == len(files) and not again.errors
    assert len([p for p in out.rglob("*") if p.is_file() and p.parent.name == "cur"]) == len(files)


def test_maildir_rerun_finds_earlier_files_whatever_their_letters_and_never_replaces_other_content(source, tmp_path):
    """A rerun recognises each earlier file by its name before ':2,' (exporters/earlier_files.py): a file whose info
    letters a mail client changed is already present under its new name; a file of that name with other bytes, or a
    symlink in its place, is reported and left as it is; a file removed by hand is written again; nothing is doubled."""
    out = tmp_path / "md"
    first = export_maildir(source, out)
    assert not first.errors and first.written > 3
    files = sorted(p for p in out.rglob("*") if p.parent.name == "cur" and p.is_file())
    relettered, changed, linked, removed = files[0], files[1], files[2], files[3]
    renamed = relettered.with_name(relettered.name.split(":2,", 1)[0] + ":2,FRS")
    relettered.rename(renamed)
    changed_bytes = changed.read_bytes() + b"\n"
    changed.write_bytes(changed_bytes)
    outside = tmp_path / "outside.eml"
    outside.write_bytes(linked.read_bytes())
    linked.unlink()
    linked.symlink_to(outside)
    removed.unlink()
    again = export_maildir(source, out)
    assert again.already_present == len(files) - 3
    assert sorted(e["error"].split(" exists with other content")[0] for e in again.errors) == sorted(
        [str(changed), str(linked)])
    assert changed.read_bytes() == changed_bytes
    assert linked.is_symlink() and renamed.is_file() and not relettered.exists() and removed.is_file()
    after = sorted(p for p in out.rglob("*") if p.parent.name == "cur" and (p.is_file() or p.is_symlink()))
    assert len(after) == len(files)


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() or p.is_symlink())


@pytest.mark.parametrize("kind", ["mbox", "maildir", "eml"])
def test_killed_export_has_no_manifest_and_rerun_completes(source, tmp_path, kind):
    """E4: killed after its first finished file → no manifest; the rerun completes it, no duplicate files."""
    out = tmp_path / "out"
    args = ["export", kind, str(out), "--folder", "2019", "--folder", "Projects"]
    if kind == "mbox":
        args.append("--per-folder")
    if kind == "eml":
        args += ["--layout", "folder"]
    killed = mailarchive(source.home, *args, env={"MAILARCHIVE_FAULT": "export_after_file:1"}, check=None)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not (out / "manifest.json").exists()
    partial = _files(out)
    assert partial, "the kill point comes after the first finished file"
    done = mailarchive(source.home, "--json", *args, check=0)
    result = json.loads(done.stdout)
    assert result["errors"] == [] and result["already_present"] >= 1
    doc = read_manifest(out)
    assert doc is not None and doc["complete"]
    files = _files(out)
    assert not [f for f in files if f.endswith(".part")]
    content = [f for f in files if not f.startswith("manifest.")]
    finished = {f for f in partial if not f.endswith(".part")} - {"manifest.csv"}
    assert finished and finished <= set(files)  # kept, not written again under another name
    paths = {r["path"] for r in doc["messages"]}
    assert set(content) - {f for f in content if f.endswith("maildirfolder")} == paths
    for r in doc["messages"]:
        data = (out / r["path"]).read_bytes()
        if kind == "mbox":
            with open(out / r["path"], "rb") as f:
                assert r["sha256"] in {hashlib.sha256(m.raw).hexdigest() for m in split_mbox(f, "mboxrd")}
        else:
            assert hashlib.sha256(data).hexdigest() == r["sha256"]
    if kind == "maildir":  # no message twice in one folder
        stems = [f.split(":2,")[0] for f in content if "/cur/" in f or f.startswith("cur/")]
        assert len(stems) == len(set(stems))
    expected = len(select_messages(source, "m.msg_id IN (SELECT msg_id FROM sightings WHERE folder IN ('2019', 'Projects'))"))
    assert len({r["msg_id"] for r in doc["messages"]}) == expected


def test_mboxrd_units():
    assert quote(b"From a\n>From b\n>>From c\nFromage\n From d\n") == b">From a\n>>From b\n>>>From c\nFromage\n From d\n"
    with pytest.raises(ValueError):
        quote(b"Subject: x\n\nFrom\n")
    import datetime as dt

    line = from_line("anna@example.com", dt.datetime(2019, 1, 7, 10, 15, tzinfo=dt.timezone(dt.timedelta(hours=1))))
    assert line == b"From anna@example.com Mon Jan  7 09:15:00 2019\n"
    assert from_line("two words@x", None).startswith(b"From MAILER-DAEMON Thu Jan  1 ")


def test_maildir_names_units():
    assert folder_dir_name(None) == folder_dir_name("INBOX") == ""
    assert folder_dir_name("Entwürfe") == ".Entw&APw-rfe"
    assert folder_dir_name("Archive/2019") == ".Archive.2019"
    assert folder_dir_name("v1.2") == ".v1&AC4-2"
    assert flag_letters(("\\Seen", "\\Answered", "\\Flagged", "$Passed", "NonJunk", "$maildir-keyword-a")) == "FPRSa"


_FLAG_FIELD = re.compile(rb"(?im)^(?:status|x-status|x-mozilla-status)[ \t]*:.*\n(?:[ \t].*\n)*")
_SYSTEM = {"\\Seen": "R", "\\Answered": "A", "\\Flagged": "F", "\\Draft": "T", "\\Deleted": "D"}


def _head_and_rest(raw: bytes) -> tuple[bytes, bytes]:
    if re.match(rb"[ \t\r]*\n", raw):  # no header: a blank first line
        return b"", raw
    m = re.search(rb"\n[ \t\r]*\n", raw)  # the first blank (or blanks-only) line
    return (raw[:m.start() + 1], raw[m.start() + 1:]) if m else (b"", raw)


def test_mbox_flags_reach_mutt_s_reader_and_nothing_else_changes(source, tmp_path):
    """`export mbox --flags`: each copy carries its folder's flags in Status:/X-Status: (read back by the
    standard library's mutt-convention reader) and X-Mozilla-Status:, exactly one of each; apart from those
    fields every message is its archived bytes; the manifest names the bytes as written."""
    out = tmp_path / "out"
    summary = export_mbox(source, out, per_folder=True, flags=True)
    assert not summary.errors
    sel = select_messages(source)
    archived = {sm.msg_id: d for sm, d in read_messages(source, sel)}
    wanted = {(p.folder or "INBOX", sm.msg_id): p.flags
              for sm in sel for p in placements(source, [sm.msg_id])[sm.msg_id]}
    doc = read_manifest(out)
    rows = {(r["path"], r["sha256"]): r for r in doc["messages"]}
    assert doc["flag_fields"] is True and len(rows) == len(doc["messages"]) == len(wanted)
    had_old_fields = seen = 0
    for path in sorted(out.rglob("*.mbox")):
        rel = path.relative_to(out).as_posix()
        with open(path, "rb") as f:
            written = [m.raw for m in split_mbox(f, "mboxrd")]
        for raw, msg in zip(written, mailbox.mbox(str(path))):
            row = rows[(rel, hashlib.sha256(raw).hexdigest())]
            flags = wanted[(row["folder"] or "INBOX", row["msg_id"])]
            letters = {_SYSTEM[f] for f in flags if f in _SYSTEM} | {"O"}
            assert set(msg.get_flags()) == letters, (rel, row["msg_id"], flags)
            head, rest = _head_and_rest(raw)
            assert len(re.findall(rb"(?im)^status[ \t]*:", head)) == 1
            assert len(re.findall(rb"(?im)^x-mozilla-status[ \t]*:", head)) == 1
            bits = int(msg["X-Mozilla-Status"], 16)
            assert bool(bits & 1) == ("\\Seen" in flags) and bool(bits & 2) == ("\\Answered" in flags)
            old_head, old_rest = _head_and_rest(archived[row["msg_id"]])
            had_old_fields += bool(_FLAG_FIELD.search(old_head))
            if old_head:
                assert rest == old_rest and _FLAG_FIELD.sub(b"", head) == _FLAG_FIELD.sub(b"", old_head)
            else:  # no blank line after the header: the fields come first, the message after them unchanged
                assert raw.endswith(archived[row["msg_id"]])
            seen += 1
    assert seen == len(wanted)
    assert had_old_fields, "the source should hold mbox mail with Status: fields of its own"
    # without --flags the same export writes the archived bytes (test_mbox_per_folder_roundtrip)
