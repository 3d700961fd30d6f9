"""`media retarget` — a medium copied by hand, and the refusals (P4, P9)."""
from __future__ import annotations

import hashlib
import shutil

import pytest

from media_tools import registry
from media_tools.retarget import RetargetRefused, retarget
from tests.cli import mailarchive
from tests.integration.test_consolidate import digests, fill
from toolkit.archive import Archive
from toolkit.errors import ForeignArchiveError, IntegrityError, MediumLabelError
from toolkit.pack import PackReader


@pytest.fixture
def two_media(tmp_path):
    """Media 1 and 2, each with two packs; 2 is active."""
    home = tmp_path / "home"
    archive = Archive.create(home, str(tmp_path / "m1"))
    try:
        fill(archive, tmp_path, 1)
        registry.add(archive, str(tmp_path / "m2"), activate=True)
        fill(archive, tmp_path, 2)
    finally:
        archive.close()
    return home


def test_copied_medium_retargeted_then_reads_and_verifies(tmp_path, two_media):
    """A medium copied with shutil.copytree and retargeted: exports the same mail, every pack verifies."""
    home = two_media
    with Archive.open(home) as archive:
        before = digests(archive)
    shutil.copytree(tmp_path / "m1", tmp_path / "m1-copy")
    r = mailarchive(home, "media", "retarget", "1", str(tmp_path / "m1-copy"), "--verify", json_out=True).result
    assert r["to"] == str(tmp_path / "m1-copy") and r["packs"] == 2 and r["verified"]
    shutil.rmtree(tmp_path / "m1")                 # the old location is gone: nothing reads it any more
    export = tmp_path / "export"
    mailarchive(home, "export", "eml", str(export))
    assert sorted(hashlib.sha256(p.read_bytes()).hexdigest() for p in export.rglob("*.eml")) == before
    with Archive.open(home) as archive:
        assert archive.config.medium(1).location == str(tmp_path / "m1-copy")
        with archive.catalog.reading() as con:
            names = con.execute("SELECT name, blake3 FROM packs WHERE medium_id = 1").fetchall()
            kinds = [k for (k,) in con.execute("SELECT kind FROM events").fetchall()]
            loc = con.execute("SELECT location FROM media WHERE medium_id = 1").fetchone()[0]
        assert loc == str(tmp_path / "m1-copy") and "medium-retargeted" in kinds
        for name, sha in names:
            reader = PackReader(archive.storage(1), name, archive.key, archive.uuid)
            assert all(exc is None for _, exc in reader.verify_all()) and reader.file_blake3.hex() == sha


def test_location_missing_a_pack_is_refused_naming_it(tmp_path, two_media):
    home = two_media
    shutil.copytree(tmp_path / "m1", tmp_path / "partial")
    gone = sorted((tmp_path / "partial" / "packs").rglob("*.pack"))[0]
    gone.unlink()
    name = gone.relative_to(tmp_path / "partial").as_posix()
    p = mailarchive(home, "media", "retarget", "1", str(tmp_path / "partial"), check=2)
    assert name in p.stderr and "missing" in p.stderr
    with Archive.open(home, writer=True) as archive:
        assert archive.config.medium(1).location == str(tmp_path / "m1")   # unchanged
        with pytest.raises(RetargetRefused) as info:
            retarget(archive, 1, str(tmp_path / "partial"))
        assert info.value.problems == [{"pack": name, "problem": "missing"}]
        # a pack with the right size but other bytes passes without --verify only
        shutil.copy(tmp_path / "m1" / name, gone)
        data = bytearray(gone.read_bytes())
        data[100] ^= 0xFF
        gone.write_bytes(bytes(data))
        with pytest.raises(IntegrityError, match=name):
            retarget(archive, 1, str(tmp_path / "partial"), verify=True)
        assert archive.config.medium(1).location == str(tmp_path / "m1")


def test_foreign_or_other_medium_label_refused_naming_it(tmp_path, two_media):
    """P4: another archive's medium, or another medium of this archive, is refused with its identity."""
    home = two_media
    other = Archive.create(tmp_path / "other-home", str(tmp_path / "foreign"))
    other_uuid = str(other.uuid)
    other.close()
    with Archive.open(home, writer=True) as archive:
        with pytest.raises(ForeignArchiveError) as info:
            retarget(archive, 1, str(tmp_path / "foreign"))
        assert other_uuid in str(info.value) and str(tmp_path / "foreign") in str(info.value)
        shutil.copytree(tmp_path / "m2", tmp_path / "m2-copy")
        with pytest.raises(MediumLabelError, match="medium 2"):
            retarget(archive, 1, str(tmp_path / "m2-copy"))
        with pytest.raises(MediumLabelError, match="MEDIUM.json"):
            retarget(archive, 1, str(tmp_path / "empty"))
        assert archive.config.medium(1).location == str(tmp_path / "m1")
    p = mailarchive(home, "media", "retarget", "1", str(tmp_path / "foreign"), check=2)
    assert "another archive" in p.stderr and other_uuid in p.stderr


def test_retarget_local_medium_to_smb(tmp_path, two_media, samba, smb_location):
    """A medium copied onto a share and retargeted there: read over SMB, password sealed in the config."""
    home = two_media
    sub = smb_location.rsplit("/", 1)[1]
    shutil.copytree(tmp_path / "m1", samba.share_dir / sub)
    shutil.chown(samba.share_dir / sub, user=samba.user)
    for p in (samba.share_dir / sub).rglob("*"):
        shutil.chown(p, user=samba.user)
    with Archive.open(home, writer=True) as archive:
        before = digests(archive)
        r = retarget(archive, 1, smb_location, smb_password=samba.password, verify=True)
        assert r["packs"] == 2
        m = archive.config.medium(1)
        assert m.location == smb_location and m.secret
        assert archive.open_secret(f"smb:{smb_location}", m.secret) == samba.password
        shutil.rmtree(tmp_path / "m1")   # only the share holds medium 1 now
        assert digests(archive) == before
