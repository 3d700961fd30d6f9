"""The key-backup KDF profile is chosen at ``init`` and recorded in the archive's configuration
(docs/formats.md, "Key backup"): the default stays the strong Argon2id parameters; the cheap
``test`` profile exists only when asked for by name."""
from __future__ import annotations

import tomllib

from cli import mailarchive

STRONG_LINE = "argon2id m=65536 t=3 p=4"


def _kdf_line(backup_text: str) -> str:
    return next(line for line in backup_text.splitlines() if "argon2id" in line)


def test_a_default_init_uses_the_strong_kdf_and_records_no_profile(tmp_path):
    home, backup, again = tmp_path / "a", tmp_path / "key.txt", tmp_path / "again.txt"
    mailarchive(home, "init", "--key-backup", str(backup), kdf_profile=None)
    assert STRONG_LINE in _kdf_line(backup.read_text())
    config = tomllib.loads((home / "archive.toml").read_text())
    assert "kdf_profile" not in config  # a default archive's configuration is unchanged
    mailarchive(home, "key", "backup", "--out", str(again))
    assert STRONG_LINE in _kdf_line(again.read_text())


def test_the_test_profile_is_recorded_and_kept_by_later_backups_and_restores(tmp_path):
    home, backup, again = tmp_path / "a", tmp_path / "key.txt", tmp_path / "again.txt"
    mailarchive(home, "init", "--key-backup", str(backup), kdf_profile="test")
    assert "argon2id m=8 t=1 p=1" in _kdf_line(backup.read_text())
    assert tomllib.loads((home / "archive.toml").read_text())["kdf_profile"] == "test"
    mailarchive(home, "key", "backup", "--out", str(again))
    assert "argon2id m=8 t=1 p=1" in _kdf_line(again.read_text())
    key = (home / "key").read_bytes()
    (home / "key").unlink()
    r = mailarchive(home, "key", "restore", "--from", str(again), json_out=True).result
    assert r["status"] == "restored" and (home / "key").read_bytes() == key


def test_an_unknown_profile_is_a_usage_error_and_creates_nothing(tmp_path):
    home = tmp_path / "a"
    p = mailarchive(home, "init", kdf_profile="cheap", check=2)
    assert "cheap" in p.stderr
    assert not (home / "archive.toml").exists() and not (home / "key").exists()
