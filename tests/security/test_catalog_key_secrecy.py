"""No piece of the catalog key reaches a message; any home path works;
a failed init leaves nothing behind, and a killed one can be run again.
"""
from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.cli import mailarchive
from tests.corpora import REPO
from toolkit import crypto
from toolkit.archive import Archive
from toolkit.catalog import Catalog
from toolkit.config import ArchiveConfig
from toolkit.errors import CatalogError

pytestmark = pytest.mark.security

ODD_NAME = "it's a \"home\" with spaces – ümlaut ß 日本"


def _key_pieces(home: Path) -> list[str]:
    """The archive key and the catalog key, as hex, and every 16-hex-digit piece of them."""
    key = (home / "key").read_bytes()
    archive_uuid = uuid.UUID(ArchiveConfig.load(home / "archive.toml").uuid)
    pieces = []
    for k in (key, crypto.derive_key(key, archive_uuid, "catalog")):
        h = k.hex()
        pieces += [h[i:i + 16] for i in range(0, len(h) - 15, 8)]
    return pieces + [p.upper() for p in pieces]


def _assert_no_key(text: str, pieces: list[str]) -> None:
    leaked = [p for p in pieces if p in text]
    assert not leaked, f"key material in output: {leaked[:2]}"


def test_odd_home_path_works_and_no_output_shows_the_key(tmp_path):
    base = tmp_path / ODD_NAME
    home = base / "home 'x' \"y\""
    outputs = []
    for args in (
        ("init", "--medium", str(base / "medium 'm'"), "--key-backup", str(base / "kb 'k'.txt")),
        ("import", "eml", str(REPO / "sample_data" / "eml")),
        ("sql", "SELECT count(*) AS n FROM messages", "--format", "json"),
        ("verify",),
        ("stats",),
        ("export", "eml", str(base / "out 'o'")),
    ):
        p = mailarchive(home, *args)
        outputs.append(p.stdout + p.stderr)
    assert '"n":' in outputs[2] and '"n": 0' not in outputs[2]
    # Failures of several kinds, each with DuckDB's own text in the message.
    for args in (("sql", "SELECT * FROM no_such_table"), ("sql", f"SELECT * FROM read_blob('{home}/key')"),
                 ("export", "eml", str(base / "o2"), "--where", "no_such_column > 1")):
        p = mailarchive(home, *args, check=2)
        outputs.append(p.stdout + p.stderr)
    pieces = _key_pieces(home)
    for text in outputs:
        _assert_no_key(text, pieces)
        assert "Traceback" not in text


def test_attach_errors_are_scrubbed_and_the_key_is_not_in_sql(tmp_path):
    home = tmp_path / "h'o\"me"
    Archive.create(home, str(tmp_path / "m")).close()
    pieces = _key_pieces(home)
    catalog_file = home / "catalog.duckdb"
    data = bytearray(catalog_file.read_bytes())
    data[100:4096] = b"\x00" * (4096 - 100)  # the main header: the file no longer opens
    catalog_file.write_bytes(bytes(data))
    with pytest.raises(CatalogError) as err:
        with Archive.open(home).catalog.reading():
            pass
    _assert_no_key(str(err.value), pieces)
    # A message that did carry pieces of the key loses them.
    key = bytes(range(32))
    catalog = Catalog(tmp_path / "x.duckdb", key)
    text = f"LINE 1: ATTACH 'x' (ENCRYPTION_KEY '{key.hex()[:32]}' and {key.hex().upper()}) id 0123456789abcdef99"
    scrubbed = catalog._scrub(text)
    assert key.hex()[:16] not in scrubbed.lower() and key.hex()[16:32] not in scrubbed.lower()
    assert "0123456789abcdef99" in scrubbed  # other hex is left alone


def test_a_failed_init_leaves_nothing_behind(tmp_path):
    (tmp_path / "a-file").write_text("not a directory")
    home = tmp_path / "home 'q'"
    p = mailarchive(home, "init", "--medium", str(tmp_path / "a-file" / "medium"),
                    "--key-backup", str(tmp_path / "kb.txt"), check=3)
    assert "Traceback" not in p.stderr
    assert not home.exists()
    # A home the user made beforehand stays, empty.
    home.mkdir()
    mailarchive(home, "init", "--medium", str(tmp_path / "a-file" / "medium"),
                "--key-backup", str(tmp_path / "kb.txt"), check=3)
    assert home.is_dir() and sorted(x.name for x in home.iterdir()) == []
    # Then the same init with a good medium succeeds.
    mailarchive(home, "init", "--medium", str(tmp_path / "medium"), "--key-backup", str(tmp_path / "kb.txt"))
    mailarchive(home, "sql", "SELECT count(*) FROM messages")


@pytest.mark.parametrize("point", ["init_before_catalog", "init_before_medium", "init_before_last_step"])
def test_a_killed_init_can_be_run_again(tmp_path, point):
    home = tmp_path / "home"
    medium = tmp_path / "medium"
    args = ("init", "--medium", str(medium), "--key-backup", str(tmp_path / "kb.txt"))
    p = mailarchive(home, *args, env={"MAILARCHIVE_FAULT": point}, check=None)
    assert p.returncode == -9  # killed at the fault point
    assert (home / "init.incomplete").exists()
    if point == "init_before_last_step":  # archive.toml is there, but nothing may use the half-made archive
        refused = mailarchive(home, "import", "eml", str(REPO / "sample_data" / "eml"), check=10)
        assert "run the same init again" in " ".join(refused.stderr.split())
    p = mailarchive(home, *args, check=None)
    assert p.returncode == 0, p.stderr
    assert not (home / "init.incomplete").exists()
    mailarchive(home, "import", "eml", str(REPO / "sample_data" / "eml"))
    assert mailarchive(home, "verify", check=None).returncode == 0


def test_a_damaged_home_is_not_taken_for_a_failed_init(tmp_path):
    home = tmp_path / "home"
    mailarchive(home, "init", "--medium", str(tmp_path / "medium"), "--key-backup", str(tmp_path / "kb.txt"))
    key = (home / "key").read_bytes()
    (home / "archive.toml").unlink()
    p = mailarchive(home, "init", "--medium", str(tmp_path / "medium2"), "--key-backup", str(tmp_path / "kb2.txt"),
                    check=2)
    assert "damaged archive" in p.stderr
    assert (home / "key").read_bytes() == key and (home / "catalog.duckdb").exists()
