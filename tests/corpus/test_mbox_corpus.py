"""Every mbox of corpora/b-mbox-maildir: message counts (oracle: FEATURES.tsv "From_-lines"),
no byte lost, and import → export eml gives back exactly the split bytes (L1-L7, L9)."""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from importers.mbox import MboxImporter, MboxSplitter, open_decompressed
from toolkit.archive import Archive
from toolkit.errors import SourceError
from toolkit.ingest import Ingest
from toolkit.reporter import ListReporter
from tests.corpora import corpora_dir

# Where the count differs from FEATURES' From_-line count on purpose (that count is every line
# starting with "From ", and it has no figure for compressed or non-mbox files).
EXPECTED = {
    # "From time to time" after a blank line is body text (L1), not a From_ line: 1 message, not 2.
    "cpython/mailbox_01.mbox": 1,
    # Both "From Russia with love" lines are body text (unquoted mboxo); FEATURES also misses the first
    # "From -" because of the UTF-8 BOM before it: 2 messages.
    "mimekit/unmunged.mbox": 2,
    # "From this principle, all of life..." after a blank line is body text: 2 messages, not 3.
    "perl-Mail-Mbox-MessageParser/separators2.sep": 2,
    # Compressed copies: the same counts as the plain files.
    "perl-Mail-Mbox-MessageParser/mailarc-2.txt.gz": 5,
    "perl-Mail-Mbox-MessageParser/mailarc-2.txt.bz2": 5,
    "perl-Mail-Mbox-MessageParser/mailarc-2.txt.xz": 5,
    "perl-Mail-Mbox-MessageParser/mailbox with space.txt.gz": 3,
    # Not mboxes: 0 messages; everything is a reported prefix (apple is empty: a warning).
    "perl-Mail-Mbox-MessageParser/non-mailbox.txt.gz": 0,
    "neomutt-test-files/apple.mbox": 0,
    "neomutt-test-files/cherry.mbox": 0,
    "neomutt-test-files/endive.mbox": 0,
    "neomutt-test-files/fig.mbox": 0,
}
UNSUPPORTED = {"perl-Mail-Mbox-MessageParser/mailarc-2.txt.lz"}  # lzip: refused with a SourceError


def _mbox_files(corpora: Path) -> dict[str, int | None]:
    """local path (below b-mbox-maildir/) → FEATURES' From_-line count, for every mbox-like file."""
    out = {}
    for line in (corpora / "FEATURES.tsv").read_text(encoding="utf-8").splitlines()[1:]:
        path, _, _, feat = line.split("\t")[:4]
        if not path.startswith("b-mbox-maildir/"):
            continue
        if feat.startswith("mbox:") or feat.startswith("compressed") or path.endswith(".mbox"):
            m = re.search(r"From_-lines=(\d+)", feat)
            out[path.removeprefix("b-mbox-maildir/")] = int(m.group(1)) if m else None
    return out


@pytest.fixture(scope="module")
def corpus() -> tuple[Path, dict[str, int | None]]:
    root = corpora_dir()
    files = _mbox_files(root)
    assert len(files) >= 90
    return root / "b-mbox-maildir", files


def _expected(rel: str, feature_count: int | None) -> int:
    if rel in EXPECTED:
        return EXPECTED[rel]
    assert feature_count is not None, f"{rel}: no oracle; add it to EXPECTED with a reason"
    return feature_count


def test_counts_and_byte_accounting(corpus):
    """L1/L6/L7: per-file counts equal the oracle; prefix + every region == the (decompressed) file."""
    base, files = corpus
    wrong = {}
    for rel, feature_count in sorted(files.items()):
        if rel in UNSUPPORTED:
            continue
        with open(base / rel, "rb") as raw:
            stream = open_decompressed(raw)
            sp = MboxSplitter(stream)
            msgs = list(sp)
        with open(base / rel, "rb") as raw:
            size = len(open_decompressed(raw).read())
        assert sp.prefix_length + sum(m.end_offset - m.offset for m in msgs) == size, rel
        for m in msgs:
            assert m.end_offset - m.offset == len(m.from_line) + len(m.raw) + len(m.separator), rel
        if len(msgs) != _expected(rel, feature_count):
            wrong[rel] = (len(msgs), _expected(rel, feature_count))
    assert not wrong, f"(got, expected) per file: {wrong}"


def test_unsupported_compression_is_an_operator_error(corpus):
    base, _ = corpus
    importer = MboxImporter(str(base / "perl-Mail-Mbox-MessageParser/mailarc-2.txt.lz"))
    with pytest.raises(SourceError, match="lzip"):
        list(importer.scan(None, ListReporter()))


def test_content_length_files(corpus):
    """L5 on real files: consistent Content-Length values (Mail::Box, LF and CRLF) are used; MimeKit's
    off-by-some values are ignored without losing a message; a claim past EOF (separators1) is ignored."""
    base, _ = corpus
    for rel in ("perl5-Mail-Box/mbox-content-length.mbox", "perl5-Mail-Box/mbox-content-length-crlf.mbox"):
        msgs = list(MboxSplitter(open(base / rel, "rb")))
        assert len(msgs) == 45 and all("content-length-ignored" not in m.flags for m in msgs)
        assert all(m.variant == "mboxcl" for m in msgs)
    msgs = list(MboxSplitter(open(base / "mimekit/content-length.mbox", "rb")))
    assert len(msgs) == 29 and any("content-length-ignored" in m.flags for m in msgs)
    msgs = list(MboxSplitter(open(base / "perl-Mail-Mbox-MessageParser/separators1.sep", "rb")))
    assert "content-length-ignored" in msgs[0].flags and len(msgs) == 4


class _AllFiles:
    """One import run over many mbox files (one Ingest run per file would cost ~1 s each)."""

    source_uri = "mbox-corpus"
    via = "mbox"

    def __init__(self, importers):
        self.importers = importers

    def scan(self, cursor, reporter):
        for importer in self.importers:
            for item in importer.scan(None, reporter):
                item.ref = f"{importer.location.path}:{item.ref}"
                item.cursor = None
                yield item


def test_import_then_export_gives_the_split_bytes(corpus, tmp_path):
    """Acceptance: import every mbox, export eml: each exported file is one of the split messages, and
    each split message is exported or was recorded as a duplicate of an exported one (same dedup key)."""
    from exporters.eml import export_eml
    from toolkit.headers import scan

    base, files = corpus
    want: dict[str, bytes] = {}
    seen = problems = 0
    for rel in sorted(files):
        if rel in UNSUPPORTED:
            continue
        with open(base / rel, "rb") as raw:
            sp = MboxSplitter(open_decompressed(raw))
            for m in sp:
                if m.raw.strip():
                    want[hashlib.sha256(m.raw).hexdigest()] = m.raw
                    seen += 1
            problems += bool(sp.prefix_length and not sp.prefix_blank_only)
    archive = Archive.create(tmp_path / "home", str(tmp_path / "medium"))
    try:
        importer = _AllFiles([MboxImporter(str(base / rel)) for rel in sorted(files) if rel not in UNSUPPORTED])
        run = Ingest(archive, ListReporter()).run(importer)
        summary = export_eml(archive, tmp_path / "export")
        with archive.catalog.reading() as con:
            keys = {r[0] for r in con.execute("SELECT dedup_key FROM messages").fetchall()}
    finally:
        archive.close()
    assert run.status == "complete" and run.seen == seen and run.errors == problems == 4  # cherry, endive, fig, non-mailbox
    assert not summary.errors and summary.written == run.archived
    manifest = json.loads((tmp_path / "export" / "manifest.json").read_text())["messages"]
    got = {}
    for row in manifest:
        data = (tmp_path / "export" / row["path"]).read_bytes()
        got[hashlib.sha256(data).hexdigest()] = data
    assert set(got) <= set(want)   # byte-exact: every exported file is a split message
    for digest in set(want) - set(got):
        assert scan(want[digest]).dedup_key.hex() in keys
