"""Damaged Outlook stores: every damage is a listed problem naming the store, folder or item, never a
traceback, and what can still be read is archived.

Each damage is one byte of a corpus store changed (found by mutating the d-pst-msg stores and
importing each copy; the byte is the one that alone brings the failure): pypff then raises
MemoryError building the root folder, IOError reading a folder's name, or gives no message store.
The code before this test ended each of these imports with a traceback.
"""
from __future__ import annotations

import json

import pytest

from importers.pst import _folders
from tests.cli import mailarchive
from tests.corpora import corpora_dir

pytestmark = pytest.mark.security


def _damaged(tmp_path, store: str, offset: int | None = None, value: int | None = None):
    data = bytearray((corpora_dir() / "d-pst-msg" / store).read_bytes())
    if offset is not None:
        data[offset] = value
    path = tmp_path / "m.pst"
    path.write_bytes(bytes(data))
    return path


@pytest.fixture
def home(tmp_path):
    h = tmp_path / "home"
    mailarchive(h, "init", "--medium", str(tmp_path / "medium"), "--key-backup", str(tmp_path / "kb.txt"))
    return h


def _import(home, path, check):
    p = mailarchive(home, "import", "pst", str(path), json_out=True, check=check)
    assert "Traceback" not in p.stderr, p.stderr
    return p.result, p.result["sources"][0]


def test_a_root_folder_pypff_cannot_build_is_one_problem_naming_the_store(home, tmp_path):
    result, source = _import(home, _damaged(tmp_path, "pstsdk/sample1.pst", 37449, 42), check=1)
    damaged = [p for p in source["problems"] if p["ref"] == "m.pst"]
    assert len(damaged) == 1 and "damaged PST/OST store" in damaged[0]["message"]
    assert "scanpst" in damaged[0]["message"]  # the next step
    assert result["archived"] == 0 and result["status"] == "complete"


def test_a_folder_name_that_cannot_be_read_is_listed_and_the_mails_still_archived(home, tmp_path):
    clean_home = tmp_path / "clean"
    mailarchive(clean_home, "init", "--medium", str(tmp_path / "m2"), "--key-backup", str(tmp_path / "kb2.txt"))
    _, clean = _import(clean_home, _damaged(tmp_path, "pstsdk/test_unicode.pst"), check=0)
    result, source = _import(home, _damaged(tmp_path, "pstsdk/test_unicode.pst", 24743, 7), check=1)
    assert result["archived"] == clean["archived"] == 2  # nothing of the store lost
    named = [p for p in source["problems"] if "folder name not readable" in p["message"]]
    assert len(named) == 1 and named[0]["ref"].startswith("m.pst#(folder nid=")
    assert "Traceback" not in json.dumps(source["problems"])


def test_a_store_without_a_readable_message_store_warns_and_reads_from_the_root(home, tmp_path):
    path = _damaged(tmp_path, "aspose-email/PersonalStorage.pst", 22552, 249)
    result, source = _import(home, path, check=1)  # the store holds no mail: exit 1 says so, as undamaged
    assert any("message store object is not readable" in w for w in result["warnings"]), result
    assert [p["message"] for p in source["problems"]] == ["no mail found: nothing in it; is this the right source?"]
    # without --json the warning is printed
    p = mailarchive(home, "import", "pst", str(path), check=1)
    assert "message store object is not readable" in p.stderr and "Traceback" not in p.stderr


class _Folder:
    """A folder of a damaged tree as pypff shows it (identifier, name, sub folders); the tree loops."""

    def __init__(self, nid, name, subs=()):
        self.identifier, self.name, self.subs = nid, name, list(subs)

    @property
    def number_of_sub_folders(self):
        return len(self.subs)

    def get_sub_folder(self, k):
        return self.subs[k]


def test_a_folder_tree_that_loops_is_walked_once():
    inbox = _Folder(3, "Inbox")
    top = _Folder(2, "Top", [inbox])
    root = _Folder(1, "", [top])
    inbox.subs.append(top)  # damaged: Inbox lists its own parent as a subfolder
    folders, damaged = _folders(root, ipm=2)
    assert [(path, nid) for _, path, nid in folders] == [(None, 1), (None, 2), ("Inbox", 3)]
    assert len(damaged) == 1 and "appears twice" in damaged[0][1]
