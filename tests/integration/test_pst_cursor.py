"""The cursor of a PST/OST store names the store file (size, mtime), the folder (NID) and the item
(position and NID): a resume that finds another item at that place reads the store again."""
from __future__ import annotations

from tests.corpora import corpora_dir

STORE = corpora_dir() / "d-pst-msg" / "aspose-email" / "Outlook.pst"


def _scan(cursor):
    from importers.pst import PstImporter
    from toolkit.reporter import NullReporter

    return [(i.ref, getattr(i, "raw", None)) for i in PstImporter(str(STORE)).scan(cursor, NullReporter())]


def test_a_cursor_whose_item_is_not_at_its_place_reads_the_store_again():
    from importers.pst import PstImporter
    from toolkit.reporter import NullReporter

    full = list(PstImporter(str(STORE)).scan(None, NullReporter()))
    k = next(n for n, i in enumerate(full) if i.cursor and i.cursor.get("nid") and n > 3)
    cursor = dict(full[k].cursor)
    assert set(cursor) == {"path_b64", "identity", "folder", "pos", "nid"}
    assert _scan(cursor) == [(i.ref, getattr(i, "raw", None)) for i in full[k + 1:]]
    # same file identity, but the item at that position has another NID: nothing is skipped
    moved = {**cursor, "nid": cursor["nid"] + 32}
    assert _scan(moved) == [(i.ref, getattr(i, "raw", None)) for i in full]
    # a folder NID the store does not have: read again, not "skip every folder"
    gone = {**cursor, "folder": 0x7FFFFFF1}
    assert _scan(gone) == [(i.ref, getattr(i, "raw", None)) for i in full]
