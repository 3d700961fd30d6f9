"""Every Maildir of b-mbox-maildir (M1, M2, C8): counts per folder, flags, bytes.

The Maildirs (MANIFEST.md): notmuch ``default`` (nested cur/new folders foo/, foo/baz, bar/, bar/baz and
ten loose files that are not in any cur/ or new/), notmuch ``lkml`` (210 files, 34 of them byte-identical
copies under other names), notmuch ``threading/parent-priority``, and the stalwart Maildir++ (``;2,`` info,
2-byte placeholder messages). Names hold ':' (notmuch) and ';' ',' (stalwart). No tmp/ directories.
"""
from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import pytest

from exporters.eml import export_eml
from importers.maildir import MaildirImporter
from importers.share import ShareImporter
from importers.walk import ref_bytes
from tests.corpora import corpora_dir
from toolkit.archive import Archive
from toolkit.ingest import Ingest
from toolkit.reporter import ListReporter, NullReporter
from toolkit.source import SourceMail, SourceProblem, SourceSkip

#: Maildir → (messages per folder, files listed as skipped because they are in no cur/ or new/).
MAILDIRS = {
    "notmuch-corpora/default": ({"INBOX": 26, "foo": 5, "foo/baz": 4, "bar": 4, "bar/baz": 4}, 10),
    "notmuch-corpora/lkml": ({"INBOX": 210}, 0),
    "notmuch-corpora/threading/parent-priority": ({"INBOX": 3}, 0),
    "stalwart-maildir-plus-plus": ({"INBOX": 2, "My Folder": 2, "My Folder/Nested Folder": 2}, 0),
}

STALWART_FLAGS = {
    "cur/1491941793.M41850P8566V0000000000000015I0000000004F3030E_0.mx1.example.com,S=10956;2,STln":
        "$maildir-keyword-l $maildir-keyword-n \\Deleted \\Seen",
    "new/1234567890.M20046P2137.mailserver,S=4542,W=4642;2,Sb": "$maildir-keyword-b \\Seen",
    ".My Folder/cur/1035478339.27041_118.foo.org,S=1000,W=1030;2,TDR": "\\Answered \\Deleted \\Draft",
    ".My Folder/new/1276528487.M364837P9451.kurkku,S=1355,W=1394;2,": None,
    ".My Folder.Nested Folder/cur/1276533073.M242911P3632.kurkku;2,FP": "$Passed \\Flagged",
    ".My Folder.Nested Folder/new/1035478339.27041_118.foo.org,S=1000,W=1030;2,RDF,": "\\Answered \\Draft \\Flagged",
}


@pytest.fixture(scope="module")
def base() -> Path:
    return corpora_dir() / "b-mbox-maildir"


@pytest.mark.parametrize("rel", sorted(MAILDIRS))
def test_maildir_counts_per_folder_and_bytes(base, rel):
    folders, strays = MAILDIRS[rel]
    root = base / rel
    items = list(MaildirImporter(str(root)).scan(None, NullReporter()))
    mails = [i for i in items if isinstance(i, SourceMail)]
    assert Counter(m.folder for m in mails) == folders
    for m in mails:
        assert m.content() == (root / m.ref).read_bytes()          # byte-exact, whatever the name holds (':', ';')
    skips = [i for i in items if isinstance(i, SourceSkip)]
    assert len(skips) == strays and all("not in a cur/ or new/" in s.reason for s in skips)
    assert not any(isinstance(i, SourceProblem) for i in items)
    files = [p for p in root.rglob("*") if p.is_file()]
    assert len(files) == len(mails) + len(skips)              # C8: every file accounted for
    if rel.startswith("stalwart"):
        assert {m.ref: (m.flags[0] if m.flags else None) for m in mails} == STALWART_FLAGS
        assert all(len(m.content()) == 2 for m in mails)            # the placeholders


def test_import_round_trip_and_duplicates(base, tmp_path):
    """Import all four Maildirs, export, and find the source bytes again; lkml's 34 copies are exact duplicates."""
    archive = Archive.create(tmp_path / "home", str(tmp_path / "medium"))
    try:
        runs = {rel: Ingest(archive, ListReporter()).run(MaildirImporter(str(base / rel))) for rel in sorted(MAILDIRS)}
        summary = export_eml(archive, tmp_path / "export")
        with archive.catalog.reading() as con:
            blobs = {r[0] for r in con.execute("SELECT blob_id FROM messages").fetchall()}
            flags = dict(con.execute(
                "SELECT source_ref, flags FROM sightings WHERE source_uri LIKE '%stalwart%'").fetchall())
    finally:
        archive.close()
    lkml = runs["notmuch-corpora/lkml"]
    assert lkml.seen == 210 and lkml.decisions.get("exact-duplicate") == 34
    for rel, run in runs.items():
        assert run.status == "complete" and run.errors == 0
        assert run.seen == sum(MAILDIRS[rel][0].values()) and run.skipped == MAILDIRS[rel][1]
    # the stalwart files are 2-byte placeholders: each whose name gives a size (,S=1000) is noted as not that size
    assert flags == {ref: (" ".join(filter(None, [f, "size-differs-from-name"])) if ",S=" in ref else f)
                     for ref, f in STALWART_FLAGS.items()}
    sources = {hashlib.sha256(p.read_bytes()).hexdigest()
               for rel in MAILDIRS for p in (base / rel).rglob("*") if p.is_file() and p.parent.name in ("cur", "new")}
    assert blobs <= sources                                   # every archived blob is a source file's bytes
    manifest = json.loads((tmp_path / "export" / "manifest.json").read_text())["messages"]
    assert not summary.errors and len(manifest) == len(blobs)
    exported = {hashlib.sha256((tmp_path / "export" / row["path"]).read_bytes()).hexdigest() for row in manifest}
    assert exported == blobs


def test_share_sweep_accounts_for_every_file(base):
    """C8 over the whole b-mbox-maildir tree: every file is a mail source, a skip or an error, none missing.

    The four Maildirs are detected as Maildirs, the ten loose notmuch files and the 9 notmuch
    duplicate/ files by content as EML; mbox message counts are the mbox tests' business."""
    items = list(ShareImporter(str(base)).scan(None, NullReporter()))
    files = {p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_file()}
    covered = set()
    for i in items:
        ref = ref_bytes(i.ref).decode("utf-8")
        if ref not in files:
            ref = ref.rpartition("@")[0]                      # an mbox message: path@offset
        assert ref in files, i.ref
        covered.add(ref)
    assert covered == files
    mails = [i for i in items if isinstance(i, SourceMail)]
    in_maildir = Counter(m.folder for m in mails if m.ref.rpartition("/")[0].rpartition("/")[2] in ("cur", "new"))
    assert in_maildir["notmuch-corpora/default/INBOX"] == 26
    assert in_maildir["notmuch-corpora/default/bar/baz"] == 4
    assert in_maildir["stalwart-maildir-plus-plus/My Folder/Nested Folder"] == 2
    assert in_maildir["notmuch-corpora/lkml/INBOX"] == 210
    loose = Counter(m.folder for m in mails if "@" not in m.ref and m.ref.rpartition("/")[0].rpartition("/")[2] not in ("cur", "new"))
    assert loose["notmuch-corpora/default"] == 2               # 01:2, and 02:2, lie in default/: EML by content
    assert loose["notmuch-corpora/default/bar/baz"] == 3       # the loose files next to bar/baz/cur
    assert loose["notmuch-corpora/duplicate"] == 9
    assert sum(loose[f] for f in loose if f.startswith("notmuch-corpora/default")) == 10
    skipped = {i.ref: i.reason for i in items if isinstance(i, SourceSkip)}
    assert skipped["notmuch-corpora/README"] == "not mail: no header block"
    assert skipped["neomutt-test-files/apple.mbox"] == "empty file"
    problems = {i.ref for i in items if isinstance(i, SourceProblem)}
    assert "perl-Mail-Mbox-MessageParser/mailarc-2.txt.lz" in problems   # lzip: listed as an error, not dropped
