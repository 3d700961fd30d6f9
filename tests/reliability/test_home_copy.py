"""RELIABILITY O11: a copy of an archive home (``cp -a``, rsync) keeps the absolute medium locations and the
mirror of ``archive.toml``.

Before, every writing command on such a copy wrote into the original's media behind the original's catalog
(a helper's `timestamp run` on a copy wrote ten stamp manifests into a shared archive's medium). Now the
home records where it lives (``home-place.json``, toolkit/home_place.py): a writer on a copy whose media or
mirror are still the original's is refused (exit 2) with a message naming both homes and the next steps,
before anything is written; readers keep working on the copy and write nothing to it; a moved home records
its new place and works; a copy whose media and mirror were pointed at copies of them (``media move``,
``media retarget``, ``config set mirror.dest``, or by hand) is an archive of its own.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from tests.cli import mailarchive
from tests.corpora import REPO
from toolkit.api import open_archive
from toolkit.errors import ExitCode, HomeCopyError
from toolkit.home import PLACE_NAME

SAMPLE = REPO / "sample_data" / "eml"


def _files(root: Path) -> dict[str, tuple[int, int, str]]:
    """Every file below ``root``: relative name → (size, mtime in ns, BLAKE2 of the bytes)."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            st = p.stat()
            out[str(p.relative_to(root))] = (st.st_size, st.st_mtime_ns, hashlib.blake2b(p.read_bytes()).hexdigest())
    return out


def _recorded(home: Path) -> str:
    return json.loads((home / PLACE_NAME).read_text())["path"]


@pytest.fixture
def original(tmp_path) -> Path:
    """A home with 14 mails on medium 1 outside it (tmp/m1), mirrored to tmp/mirror (its mirror.dest)."""
    home = tmp_path / "orig"
    mailarchive(home, "init", "--medium", str(tmp_path / "m1"), "--key-backup", str(tmp_path / "kb.txt"))
    mailarchive(home, "import", "eml", str(SAMPLE / "2019"))
    mailarchive(home, "config", "set", "mirror.dest", str(tmp_path / "mirror"))
    mailarchive(home, "mirror")
    return home


def _copy(original: Path) -> Path:
    copy = original.parent / "copy"
    shutil.copytree(original, copy, symlinks=True)  # what `cp -a` does
    return copy


WRITERS = [
    ("import", "eml", str(SAMPLE / "2020")),
    ("timestamp", "run", "--all"),
    ("db", "backup"),
    ("db", "adopt"),
    ("media", "gc", "--temp", "--older-than", "1s"),
    ("media", "consolidate", "--from", "1", "--into", "1"),
    ("purge", "--actor", "tester"),
    ("delete", "request", "--where", "msg_id = 1", "--reason", "test", "--actor", "tester"),
    ("mirror", "--delete"),  # to the configured mirror; opens the home as a reader but writes the mirror
    ("lock", "break", "--yes"),  # the shared lock of the original's medium
]


@pytest.mark.parametrize("args", WRITERS, ids=[" ".join(a[:2]) for a in WRITERS])
def test_o11_a_writer_on_a_copy_is_refused_and_writes_nothing(original, args):
    copy = _copy(original)
    medium, mirror = original.parent / "m1", original.parent / "mirror"
    before_medium, before_orig, before_copy = _files(medium), _files(original), _files(copy)
    before_mirror = _files(mirror)
    p = mailarchive(copy, *args, check=None)
    assert p.returncode == ExitCode.USAGE, p.stderr
    err = " ".join(p.stderr.split())
    assert f"{copy} is a copy of the archive home {original}" in err
    assert f"its medium 1 ({medium}), the configured mirror ({mirror}) are the original's" in err
    assert "nothing was done" in err
    assert f"mailarchive --archive {copy} media move ID NEW-LOCATION" in err and "restore --from MIRROR" in err
    assert _files(medium) == before_medium  # not a byte written into, or deleted from, the original's medium
    assert _files(mirror) == before_mirror  # nor its mirror
    assert _files(original) == before_orig
    assert _files(copy) == before_copy  # the copy's catalog untouched, its record still the original's
    assert _recorded(copy) == str(original)


def test_o11_the_api_refuses_a_writer_on_a_copy(original):
    copy = _copy(original)
    with pytest.raises(HomeCopyError, match="is a copy of the archive home"):
        open_archive(copy, writer=True)
    with open_archive(copy) as archive:  # a reader opens it, and notes what it is
        assert "is a copy of the archive home" in archive.home_note


def test_o11_readers_on_a_copy_work_and_write_nothing_to_it(original, tmp_path):
    copy = _copy(original)
    before_medium, before_copy = _files(tmp_path / "m1"), _files(copy)
    assert mailarchive(copy, "stats", json_out=True).result["messages"] == 14
    p = mailarchive(copy, "stats")
    assert f"note: {copy} is a copy of the archive home {original}" in " ".join(p.stderr.split())
    mailarchive(copy, "sql", "SELECT count(*) FROM messages")
    p = mailarchive(copy, "export", "eml", str(tmp_path / "out"))  # opens the archive twice: says it once
    assert " ".join(p.stderr.split()).count(f"note: {copy} is a copy") == 1
    text = " ".join(p.stderr.split())
    assert "until it points elsewhere" in text or "until they point elsewhere" in text, text
    assert len(list((tmp_path / "out").rglob("*.eml"))) == 14
    assert _files(copy) == before_copy and _files(tmp_path / "m1") == before_medium


@pytest.mark.parametrize("how", ["rename", "copy-then-delete"])
def test_o11_a_moved_home_works_and_records_its_new_place(original, tmp_path, how):
    assert _recorded(original) == str(original)  # init records it
    moved = tmp_path / "moved"
    if how == "rename":
        os.rename(original, moved)
    else:  # another file system: a new directory, the old one gone
        shutil.copytree(original, moved, symlinks=True)
        shutil.rmtree(original)
    p = mailarchive(moved, "import", "eml", str(SAMPLE / "2020"))
    assert f"note: the archive home moved from {original} to {moved}" in " ".join(p.stderr.split())
    assert _recorded(moved) == str(moved)
    p = mailarchive(moved, "import", "eml", str(SAMPLE / "2021"))
    assert "note:" not in p.stderr  # recorded once
    assert mailarchive(moved, "stats", json_out=True).result["messages"] > 14


def test_o11_a_copy_whose_media_and_mirror_were_moved_is_an_archive_of_its_own(original, tmp_path):
    copy = _copy(original)
    medium = tmp_path / "m1"
    # the way out the refusal names: allowed on the copy, writing nothing into the original's places
    mailarchive(copy, "media", "move", "1", str(tmp_path / "copy-m1"))
    mirrored = _files(tmp_path / "mirror")
    for args in (("import", "eml", str(SAMPLE / "2020")), ("mirror",), ("mirror", "--delete")):
        p = mailarchive(copy, *args, check=None)  # the mirror is still shared
        assert p.returncode == ExitCode.USAGE and "the configured mirror" in p.stderr, p.stderr
    assert _files(tmp_path / "mirror") == mirrored
    mailarchive(copy, "config", "set", "mirror.dest", str(tmp_path / "copy-mirror"))
    before_medium, before_orig = _files(medium), _files(original)
    p = mailarchive(copy, "import", "eml", str(SAMPLE / "2020"))
    assert f"note: {copy} is a copy of the archive home {original} with media and mirror of its own" in \
        " ".join(p.stderr.split())
    assert _recorded(copy) == str(copy) and _recorded(original) == str(original)
    assert _files(medium) == before_medium and _files(original) == before_orig
    # both are archives of their own now: each writes to its own medium, neither says anything
    p = mailarchive(copy, "db", "backup")  # onto the copy's medium
    assert "note:" not in p.stderr and list((tmp_path / "copy-m1").rglob("*.dbk"))
    assert _files(medium) == before_medium
    p = mailarchive(original, "import", "eml", str(SAMPLE / "2021"))
    assert "note:" not in p.stderr
    assert mailarchive(original, "stats", json_out=True).result["messages"] != \
        mailarchive(copy, "stats", json_out=True).result["messages"]


def test_o11_a_copy_with_its_medium_copied_and_repointed_by_hand_works(original, tmp_path):
    """What tests/integration/verify_support.py clone() and bench/bench_big_catalog.py do."""
    copy = _copy(original)
    shutil.copytree(tmp_path / "m1", tmp_path / "copy-m1")
    cfg = copy / "archive.toml"
    cfg.write_text(cfg.read_text().replace(str(tmp_path / "m1"), str(tmp_path / "copy-m1"))
                   .replace(str(tmp_path / "mirror"), str(tmp_path / "copy-mirror")))
    before = _files(tmp_path / "m1")
    p = mailarchive(copy, "import", "eml", str(SAMPLE / "2020"))
    assert "with media and mirror of its own" in " ".join(p.stderr.split())
    assert _recorded(copy) == str(copy)
    assert _files(tmp_path / "m1") == before


def test_o11_the_copy_at_the_recorded_place_is_the_home_and_the_other_is_refused(original, tmp_path):
    """`mv orig orig.old; cp -a orig.old orig`: the one at the recorded place writes, orig.old is the copy."""
    old = tmp_path / "orig.old"
    os.rename(original, old)
    shutil.copytree(old, original, symlinks=True)
    mailarchive(original, "import", "eml", str(SAMPLE / "2020"))
    p = mailarchive(old, "import", "eml", str(SAMPLE / "2021"), check=None)
    assert p.returncode == ExitCode.USAGE and f"{old} is a copy of the archive home {original}" in \
        " ".join(p.stderr.split())


def test_o11_a_copy_of_a_home_without_a_record_is_known_by_its_medium_inside_the_original(tmp_path):
    """A home made before homes recorded their place (no home-place.json), medium 1 inside it as `init` puts
    it: its copy still points into the original's home, and that is enough to refuse its writers."""
    original = tmp_path / "orig"
    mailarchive(original, "init", "--key-backup", str(tmp_path / "kb.txt"))
    mailarchive(original, "import", "eml", str(SAMPLE / "2019"))
    (original / PLACE_NAME).unlink()
    copy = _copy(original)
    before = _files(original)
    p = mailarchive(copy, "import", "eml", str(SAMPLE / "2020"), check=None)
    assert p.returncode == ExitCode.USAGE
    assert f"{copy} is a copy of the archive home {original}" in " ".join(p.stderr.split())
    assert _files(original) == before and not (copy / PLACE_NAME).exists()
    # the original is not a copy of anything: its next writer records its place
    mailarchive(original, "import", "eml", str(SAMPLE / "2020"))
    assert _recorded(original) == str(original)
    # retargeting the copy's medium 1 at the copy of it that `cp -a` made makes it an archive of its own
    mailarchive(copy, "media", "retarget", "1", str(copy / "medium-1"))
    mailarchive(copy, "import", "eml", str(SAMPLE / "2021"))
    assert _recorded(copy) == str(copy)
