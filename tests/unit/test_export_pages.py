"""The pieces that let an export of a million mails hold a page of its selection (docs/reliability.md K8):
the spill of rows sorted in runs, the zip's spilled central directory, the file names not remembered one by one,
and a mail purged while the export runs."""
from __future__ import annotations

import io
import random
import zipfile
from array import array

import pytest

from exporters import spill
from exporters.layout import FolderDirs
from exporters.naming import message_filename


@pytest.mark.parametrize("run,block", [(1, 1), (3, 2), (7, 100), (1000, 1000)])
def test_sorted_rows_read_back_as_a_stable_sort(tmp_path, run, block):
    rng = random.Random(run)
    rows = [(rng.randrange(20), i, "x" * rng.randrange(5)) for i in range(200)]
    got = spill.SortedRows(tmp_path, key=lambda r: r[0], run=run, block=block)
    for r in rows:
        got.add(r)
    want = sorted(rows, key=lambda r: r[0])  # equal keys keep the order they came in
    assert list(got) == want and list(got) == want and len(got) == 200  # read twice: the same
    got.close()
    assert list(tmp_path.iterdir()) == []  # the spill files have no name in the directory


def test_a_spill_keeps_its_items_in_order(tmp_path):
    s = spill.Spill(tmp_path, block=3)
    items = [("a", i, None, b"\x00" * i) for i in range(10)]
    for item in items:
        s.append(item)
    assert list(s) == items and len(s) == 10
    s.close()


def test_message_files_are_named_as_before_without_being_remembered(tmp_path):
    """A folder part named like a message file (hostile) gets the same names with and without the list of folders,
    whichever comes first; ordinary message files are not remembered."""
    folders = ["INBOX", "a/2019-01-07_000005_Hi.eml", "2019-01-07_000007_Yo.eml", "B/x"]
    names = [message_filename(i, s, None) for i, s in ((5, "Hi"), (7, "Yo"), (9, "other"))]
    names = [n.replace("nodate", "2019-01-07") for n in names]
    plan = [("a", names[0]), ("a/2019-01-07_000005_Hi.eml", names[1]), (None, names[1]),
            ("2019-01-07_000007_Yo.eml", names[2]), ("B/x", names[2]), ("INBOX", names[0])]
    old, new = FolderDirs(tmp_path), FolderDirs(tmp_path, folders)
    for folder, name in plan:
        assert new.member(folder, name) == old.member(folder, name)
        assert new.file(folder, name) == old.file(folder, name)
    assert FolderDirs(tmp_path, folders).member(None, names[1]) == names[1]
    remembered = new._files
    # only the names a folder part can take are remembered (those of mails 5 and 7, not 9's)
    assert {name for _, name in remembered} == {names[0], names[1]}
    assert new.member("a", "2019-01-07_000005_Hi.eml") == "a/2019-01-07_000005_Hi.eml"  # a directory took ~2
    with pytest.raises(Exception, match="not among the export's folders"):
        FolderDirs(tmp_path, []).directory("2019-01-07_000005_Hi.eml")


def test_a_zip_with_its_central_directory_spilled_reads_back(tmp_path, monkeypatch):
    from exporters import zip_package

    monkeypatch.setattr(spill, "BLOCK", 3)
    infos = zip_package._Infos(tmp_path)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
        zf.filelist, zf.NameToInfo = infos, zip_package._NoNames()
        for i in range(10):
            zip_package._write_member(zf, zip_package._info(f"d/{i}-\u00e9.eml", None, 0o600), [b"x" * i, b"y"])
    infos.close()
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as back:
        assert back.testzip() is None
        assert [i.filename for i in back.infolist()] == [f"d/{i}-\u00e9.eml" for i in range(10)]
        assert back.read("d/4-\u00e9.eml") == b"xxxxy"
        assert all(i.flag_bits & 0x800 for i in back.infolist())


def test_a_mail_purged_after_the_selection_is_named_gone(tmp_path):
    import toolkit
    from toolkit.retrieval import Selection, select_paged

    from tests.corpora import REPO
    import importers

    home = tmp_path / "home"
    toolkit.init_archive(home, password="correct horse battery staple 2018", key_backup=tmp_path / "kb.txt")
    with toolkit.open_archive(home, writer=True) as a:
        toolkit.import_mail(a, importers.MboxImporter(str(REPO / "sample_data" / "mbox" / "lists.mbox")), workers=0)
    with toolkit.open_archive(home) as a:
        sel = select_paged(a)
        ids = list(sel.ids)
        gone: list[int] = []
        pages = list(Selection(a, array("q", ids[:2] + [10**9] + ids[2:])).pages(size=2, gone=gone.append))
        assert gone == [10**9]
        assert [sm.msg_id for page in pages for sm in page] == ids
        assert [len(p) for p in pages][:2] == [2, 1]
