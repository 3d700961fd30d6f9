"""Config snapshots are bound to their name and time: an old one copied under a newer name fails, restore takes the newest that verifies."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from importers.eml import EmlImporter
from media_tools import backup as bk
from media_tools.mirror import mirror
from media_tools.restore import restore
from tests.corpora import REPO
from toolkit.archive import Archive
from toolkit.config import ArchiveConfig
from toolkit.errors import IntegrityError
from toolkit.ingest import ingest
from toolkit.keybackup import KdfParams, write_key_backup
from toolkit.storage import open_storage

pytestmark = pytest.mark.security

PASSWORD = b"correct horse battery staple"
CHEAP = KdfParams(memory_kib=64, iterations=1, lanes=1)
T0 = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def _snapshot_with(a: Archive, marker: str, when: dt.datetime) -> str:
    a.config.settings["marker"] = marker
    a.save_config()
    return bk.snapshot_config(a, a.storage(1), when)


def test_an_old_snapshot_copied_under_a_newer_name_fails_authentication(tmp_path):
    home = tmp_path / "home"
    Archive.create(home, str(tmp_path / "m1")).close()
    with Archive.open(home, writer=True) as a:
        old = _snapshot_with(a, "old", T0)
        new = _snapshot_with(a, "new", T0 + dt.timedelta(minutes=1))
        st = a.storage(1)
        old_bytes, new_bytes = st.read(old), st.read(new)
        assert 'marker = "new"' in bk.open_config_snapshot(a.key, a.uuid, new_bytes, new)
        # as a mirror holds it, under medium-<id>/
        assert 'marker = "old"' in bk.open_config_snapshot(a.key, a.uuid, old_bytes, f"medium-1/{old}")
        with pytest.raises(IntegrityError, match="copied under another name"):
            bk.open_config_snapshot(a.key, a.uuid, old_bytes, new)
        with pytest.raises(IntegrityError):
            bk.open_config_snapshot(a.key, a.uuid, new_bytes, old)
        renamed = f"{bk.CONFIG_DIR}/{(T0 + dt.timedelta(days=1)).strftime('%Y-%m-%dT%H%M%S.%fZ')}.sealed"
        with pytest.raises(IntegrityError):
            bk.open_config_snapshot(a.key, a.uuid, new_bytes, renamed)


@pytest.fixture
def mirrored(tmp_path):
    """A mirror at DEST holding three config snapshots (markers old, mid, new) and their backups."""
    home = tmp_path / "home"
    Archive.create(home, str(tmp_path / "m1")).close()
    dest = tmp_path / "dest"
    kb = tmp_path / "kb.txt"
    with Archive.open(home, writer=True) as a:
        assert ingest(a, EmlImporter(str(REPO / "sample_data" / "eml"))).archived > 0
        write_key_backup(kb, a.key, a.uuid, PASSWORD, kdf_params=CHEAP)
        names = {}
        for i, marker in enumerate(("old", "mid", "new")):
            a.config.settings["marker"] = marker
            a.save_config()
            names[marker] = bk.create_backup(a, "full", now=T0 + dt.timedelta(minutes=i)).config_snapshot
            assert mirror(a, open_storage(str(dest))).complete
    snaps = {m: dest / "medium-1" / n for m, n in names.items()}
    assert all(p.exists() for p in snaps.values())
    return dest, kb, snaps


def _restored_marker(dest: Path, kb: Path, home: Path):
    r = restore(open_storage(str(dest)), kb.read_text(), PASSWORD, home)
    return ArchiveConfig.load(home / "archive.toml").settings.get("marker"), r


def test_restore_skips_an_old_snapshot_swapped_in_under_the_newest_name(mirrored, tmp_path):
    dest, kb, snaps = mirrored
    snaps["new"].write_bytes(snaps["old"].read_bytes())
    marker, r = _restored_marker(dest, kb, tmp_path / "restored")
    assert marker == "mid"
    assert r.config_snapshot.endswith(snaps["mid"].name)
    assert any(snaps["new"].name in w and "refused" in w for w in r.warnings), r.warnings


def test_restore_skips_a_tampered_newest_snapshot_and_names_it(mirrored, tmp_path):
    dest, kb, snaps = mirrored
    data = bytearray(snaps["new"].read_bytes())
    data[-1] ^= 1
    snaps["new"].write_bytes(bytes(data))
    marker, r = _restored_marker(dest, kb, tmp_path / "restored")
    assert marker == "mid"
    assert any(snaps["new"].name in w for w in r.warnings), r.warnings


def test_restore_takes_the_newest_when_all_verify(mirrored, tmp_path):
    dest, kb, _snaps = mirrored
    marker, r = _restored_marker(dest, kb, tmp_path / "restored")
    assert marker == "new" and not any("config snapshot" in w for w in r.warnings)


def test_mirror_does_not_copy_a_tampered_newest_snapshot(tmp_path):
    home = tmp_path / "home"
    Archive.create(home, str(tmp_path / "m1")).close()
    with Archive.open(home, writer=True) as a:
        good = _snapshot_with(a, "old", T0)
        bad = _snapshot_with(a, "new", T0 + dt.timedelta(minutes=1))
        st = a.storage(1)
        st.replace(bad, st.read(good))  # an old snapshot's bytes under the newer name
        dest = tmp_path / "dest"
        mirror(a, open_storage(str(dest)))
    assert (dest / "medium-1" / good).exists()
    assert not (dest / "medium-1" / bad).exists()


def test_an_old_format_snapshot_is_used_only_when_no_bound_one_verifies(tmp_path):
    from toolkit import crypto

    home = tmp_path / "home"
    Archive.create(home, str(tmp_path / "m1")).close()
    with Archive.open(home, writer=True) as a:
        bound = _snapshot_with(a, "bound", T0)
        k = crypto.derive_key(a.key, a.uuid, "config")
        legacy_name = f"{bk.CONFIG_DIR}/9999-01-01T000000.000000Z.sealed"
        blobs = {bound: a.storage(1).read(bound),
                 legacy_name: crypto.seal_blob(k, b'marker = "legacy"\n', bk.LEGACY_CONFIG_SNAPSHOT_CONTEXT)}
        name, text, warnings = bk.newest_config_snapshot(a.key, a.uuid, list(blobs), blobs.__getitem__)
        assert name == bound and 'marker = "bound"' in text
        assert any(legacy_name in w for w in warnings)
        del blobs[bound]
        name, text, warnings = bk.newest_config_snapshot(a.key, a.uuid, list(blobs), blobs.__getitem__)
        assert name == legacy_name and "legacy" in text
        assert any("old format" in w and legacy_name in w for w in warnings)
