"""The careless user's places: an export into a medium or the home, a mirror in or around a medium or the
home, a medium in or around another medium, the home or the mirror, is a usage error (exit 2) naming both
places, and nothing is written. (Each of these exited 0 before: plaintext mail sat beside the sealed packs,
or the "second copy" was on the first one.)"""
from __future__ import annotations

import os

import pytest

from tests.cli import mailarchive
from tests.corpora import REPO
from toolkit.places import inside
from toolkit.storage.location import parse_location


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    root = tmp_path_factory.mktemp("places")
    home = root / "home"
    mailarchive(home, "init", "--medium", str(root / "medium"), "--key-backup", str(root / "kb.txt"))
    mailarchive(home, "import", "eml", str(REPO / "sample_data" / "eml"))
    mailarchive(home, "config", "set", "mirror.dest", str(root / "mirror"))
    os.symlink(root / "medium", root / "link-to-medium")
    return root, home


def _files(path):
    return sorted(str(p.relative_to(path)) for p in path.rglob("*")) if path.exists() else []


REFUSED = [
    ("export", "eml", "{root}/medium/plain"),
    ("export", "mbox", "{root}/medium"),
    ("export", "maildir", "{root}/home/md"),
    ("export", "eml", "{root}/link-to-medium/plain"),
    ("mirror", "{root}/medium/m"),
    ("mirror", "{root}/home/m"),
    ("mirror", "{root}"),
    ("media", "add", "{root}/medium/sub"),
    ("media", "add", "{root}"),
    ("media", "add", "{root}/mirror/medium-9"),
    ("media", "move", "1", "{root}/medium/inner"),  # into its own old place: removing that removes it
    ("media", "move", "1", "{root}/mirror/m1"),
]


@pytest.mark.parametrize("args", REFUSED, ids=lambda a: " ".join(a).replace("{root}", "R"))
def test_an_overlapping_place_is_refused_and_nothing_written(archive, args):
    root, home = archive
    args = [a.format(root=root) for a in args]
    before = {p: _files(root / p) for p in ("medium", "home")}
    p = mailarchive(home, *args, check=2)
    assert "Traceback" not in p.stderr and args[-1] in p.stderr, p.stderr
    assert any(w in p.stderr for w in ("is inside", "holds")), p.stderr
    after = {p_: _files(root / p_) for p_ in ("medium", "home")}
    assert after["medium"] == before["medium"]
    assert [f for f in after["home"] if not f.startswith(("lock", "catalog.duckdb", "logs"))] == \
           [f for f in before["home"] if not f.startswith(("lock", "catalog.duckdb", "logs"))]


def test_places_apart_still_work(archive):
    root, home = archive
    mailarchive(home, "export", "eml", str(root / "exported"))
    mailarchive(home, "mirror")  # the configured mirror, apart from home and medium
    mailarchive(home, "media", "add", str(home / "medium-2"))  # inside the home, as init's first medium is
    assert (root / "exported").is_dir() and (root / "mirror").is_dir()


def test_smb_places_compare_by_host_share_and_path_without_case():
    medium = parse_location("smb://archiv@Files.example.org/Mail/archive")
    assert inside(parse_location("smb://other@files.example.org:445/mail/ARCHIVE/export"), medium)
    assert not inside(parse_location("smb://archiv@files.example.org/mail/archive2"), medium)
    assert not inside(parse_location("smb://archiv@files.example.org:4445/mail/archive/x"), medium)
    assert not inside(parse_location("/mail/archive/x"), medium)


def test_a_restore_into_the_mirror_is_refused_before_anything_is_restored(archive):
    root, home = archive
    mailarchive(home, "mirror")
    for extra in (["--archive", str(root / "mirror" / "restored")],
                  ["--archive", str(root / "restored"), "--media-to", str(root / "mirror" / "media")]):
        p = mailarchive(home, "restore", "--from", str(root / "mirror"), "--key-backup", str(root / "kb.txt"), *extra,
                        check=2)
        assert "Traceback" not in p.stderr and "mirror" in p.stderr, p.stderr
        assert not (root / "mirror" / "restored").exists() and not (root / "restored").exists()
        assert not (root / "mirror" / "media").exists()
