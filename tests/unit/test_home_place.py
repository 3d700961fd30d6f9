"""toolkit/home_place.py: how a home tells where it lives, a moved home and a copy (docs/reliability.md O11)."""
from __future__ import annotations

import json
import os
import shutil
import stat

import pytest

from toolkit.archive import Archive
from toolkit.errors import HomeCopyError
from toolkit.home import PLACE_NAME, Home
from toolkit.home_place import find_place


@pytest.fixture
def home(tmp_path):
    Archive.create(tmp_path / "orig", str(tmp_path / "m1")).close()
    return tmp_path / "orig"


def test_init_records_the_real_path_mode_0600(home):
    record = json.loads((home / PLACE_NAME).read_text())
    assert record["path"] == os.path.realpath(home) and record["archive"] == Home(home).load_config().uuid
    assert stat.S_IMODE((home / PLACE_NAME).stat().st_mode) == 0o600
    assert find_place(Home(home), Home(home).load_config()).kind == "here"


def test_a_home_reached_through_a_symlink_is_the_same_home(home, tmp_path):
    link = tmp_path / "link"
    link.symlink_to(home)
    with Archive.open(link, writer=True) as archive:
        assert archive.home_note is None
    assert json.loads((home / PLACE_NAME).read_text())["path"] == os.path.realpath(home)


@pytest.mark.parametrize("record", [b"not json", b'{"archive": "another", "path": "/elsewhere"}'])
def test_a_damaged_or_foreign_record_is_replaced_by_a_writer_only(home, record):
    (home / PLACE_NAME).write_bytes(record)
    with Archive.open(home) as archive:  # a reader writes nothing
        assert archive.home_note is None
    assert (home / PLACE_NAME).read_bytes() == record
    with Archive.open(home, writer=True) as archive:
        assert archive.home_note is None
    assert json.loads((home / PLACE_NAME).read_text())["path"] == os.path.realpath(home)


def test_a_copy_is_refused_before_its_lock_is_taken_and_repointing_opens_it(home, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(home, copy, symlinks=True)
    (copy / "lock").unlink()
    with pytest.raises(HomeCopyError) as info:
        Archive.open(copy, writer=True)
    assert info.value.hint_args == {"copy": os.path.realpath(copy), "original": os.path.realpath(home)}
    assert not (copy / "lock").exists()
    place = find_place(Home(copy), Home(copy).load_config())
    assert place.kind == "copy" and place.shared == (f"medium 1 ({tmp_path / 'm1'})",)
    with Archive.open(copy, writer=True, repointing=True) as archive:
        assert "is a copy of the archive home" in archive.home_note
    assert json.loads((copy / PLACE_NAME).read_text())["path"] == os.path.realpath(home)  # nothing recorded
