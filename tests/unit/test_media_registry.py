"""The catalog's media table follows the registry in archive.toml (toolkit/catalog/media_registry.py)."""
from __future__ import annotations

from toolkit.archive import Archive


def _rows(archive):
    with archive.catalog.reading() as con:
        return con.execute("SELECT medium_id, location, kind, state, alias_of FROM media ORDER BY 1").fetchall()


def test_the_media_table_is_replaced_by_the_registry(tmp_path):
    archive = Archive.create(tmp_path / "home", str(tmp_path / "m1"))
    try:
        assert _rows(archive) == [(1, str(tmp_path / "m1"), "local", "active", None)]
        archive.add_medium(str(tmp_path / "m2"), activate=True)
        assert _rows(archive) == [
            (1, str(tmp_path / "m1"), "local", "standby", None),
            (2, str(tmp_path / "m2"), "local", "active", None),
        ]
        archive.config.media[0].state = "retired"
        archive.sync_media_table()
        assert [r[3] for r in _rows(archive)] == ["retired", "active"]  # replaced, not appended
        archive.config.media.clear()
        archive.sync_media_table()
        assert _rows(archive) == []
    finally:
        archive.close()
