"""The archive home (toolkit/home.py): its layout, and the key file written in one place only.

The layout is part of the archive format (docs/formats.md): a restored or
rebuilt home must have the same file names as one made by init.
"""
from __future__ import annotations

import os
import re
import stat
import uuid as uuidlib
from pathlib import Path

import pytest

from tests.corpora import REPO
from toolkit import crypto
from toolkit.archive import Archive, key_check
from toolkit.errors import UsageError, WrongKeyError
from toolkit.home import Home
from toolkit.storage import open_storage


def test_layout_names(tmp_path):
    h = Home(tmp_path / "home")
    assert h.config_path == tmp_path / "home" / "archive.toml"
    assert h.key_path == tmp_path / "home" / "key"
    assert h.catalog_path == tmp_path / "home" / "catalog.duckdb"
    assert h.lock_path == tmp_path / "home" / "lock"
    assert h.init_marker_path == tmp_path / "home" / "init.incomplete"
    assert h.default_medium == tmp_path / "home" / "medium-1"
    assert h.default_key_backup == tmp_path / "home" / "key-backup.txt"
    assert h.default_log_file == tmp_path / "home" / "mailarchive.log"
    assert h.mirror_status_path == tmp_path / "home" / "mirror-status.json"
    assert h.export_state_dir == tmp_path / "home" / "export-state"
    assert os.fspath(h) == str(tmp_path / "home")


def test_an_initialised_home_holds_exactly_the_layout(tmp_path):
    home = tmp_path / "home"
    archive = Archive.create(home, str(tmp_path / "m1"))
    try:
        h = Home(home)
        assert archive.catalog.path == h.catalog_path
        names = {p.name for p in home.iterdir()}
        assert {h.config_path.name, h.key_path.name, h.catalog_path.name, h.lock_path.name} <= names
        assert h.init_marker_path.name not in names  # a finished init removes its marker
        assert not [n for n in names if n.endswith(".tmp")]
        assert stat.S_IMODE(h.key_path.stat().st_mode) == 0o600
        assert stat.S_IMODE(home.stat().st_mode) == 0o700
        config = h.load_config()
        assert h.read_key(config.uuid, config.key_check) == archive.key
    finally:
        archive.close()


def test_write_key_is_0600_whatever_the_umask(tmp_path):
    key = crypto.new_archive_key()
    old = os.umask(0)
    try:
        Home(tmp_path).write_key(key)
    finally:
        os.umask(old)
    path = tmp_path / "key"
    assert path.read_bytes() == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["key"]  # no temporary file left


def test_write_key_never_replaces_a_key(tmp_path):
    first, second = crypto.new_archive_key(), crypto.new_archive_key()
    h = Home(tmp_path)
    h.write_key(first)
    with pytest.raises(FileExistsError):
        h.write_key(second)
    assert h.key_path.read_bytes() == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["key"]


def test_write_key_refuses_a_key_of_the_wrong_size(tmp_path):
    with pytest.raises(ValueError):
        Home(tmp_path).write_key(b"short")
    assert not (tmp_path / "key").exists()


def test_a_failed_key_write_leaves_no_key_file(tmp_path, monkeypatch):
    """A write that fails before the data is on the disk leaves no (empty or partial) key under the name:
    the next `key restore` or init must not find a key file that is not a key."""
    def disk_error(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", disk_error)
    with pytest.raises(OSError):
        Home(tmp_path).write_key(crypto.new_archive_key())
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []


def test_install_key_statuses(tmp_path):
    key, other = crypto.new_archive_key(), crypto.new_archive_key()
    h = Home(tmp_path)
    assert h.install_key(key) == "restored"
    assert h.install_key(key) == "already-present"
    h.key_path.unlink()
    h.write_key(other)
    assert h.install_key(key) == "replaced-damaged"
    assert h.key_path.read_bytes() == key
    assert (tmp_path / "key.damaged").read_bytes() == other  # set aside, never deleted
    assert stat.S_IMODE(h.key_path.stat().st_mode) == 0o600


def test_read_key_checks_the_key_against_the_config(tmp_path):
    key = crypto.new_archive_key()
    u = uuidlib.uuid4()
    h = Home(tmp_path)
    with pytest.raises(WrongKeyError, match="is missing"):
        h.read_key(str(u), key_check(key, u))
    h.write_key(crypto.new_archive_key())
    with pytest.raises(WrongKeyError, match="is not the key of archive"):
        h.read_key(str(u), key_check(key, u))
    h.key_path.unlink()
    h.write_key(key)
    assert h.read_key(str(u), key_check(key, u)) == key


def test_init_marker_and_leftovers(tmp_path):
    h = Home(tmp_path)
    assert not h.init_pending() and h.init_leftovers() == []
    h.write_init_marker("0b3c6a52-0000-4000-8000-000000000000", "/media/one")
    assert h.init_pending()
    assert h.read_init_marker() == ("0b3c6a52-0000-4000-8000-000000000000", "/media/one")
    h.write_key(crypto.new_archive_key())
    h.catalog_path.write_bytes(b"x")
    (tmp_path / "unrelated.txt").write_text("kept")
    (tmp_path / ".key.4242.tmp").write_bytes(b"k" * 32)  # a key write killed before its link
    assert h.init_leftovers() == ["key", "catalog.duckdb"]
    h.remove_init_files()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["unrelated.txt"]


def _source_files():
    for top in ("toolkit", "media_tools", "importers", "exporters", "verify"):
        yield from (REPO / top).rglob("*.py")


def test_only_home_builds_paths_in_the_home():
    """The key file's name and its writing live in toolkit/home.py alone (one writer of the key), and
    no other module joins a name to the home directory."""
    offenders = []
    for path in _source_files():
        if path == REPO / "toolkit" / "home.py":
            continue
        text = path.read_text(encoding="utf-8")
        if re.search(r"\bKEY_NAME\b|/ \"key\"|\.home / |Path\((archive\.)?home\) / |\bhome / \"", text):
            offenders.append(str(path.relative_to(REPO)))
    assert offenders == []


def test_the_core_reads_no_smb_password_from_the_environment(monkeypatch):
    """With the variable set, a core call without a password is still refused: the CLI passes it in."""
    monkeypatch.setenv("MAILARCHIVE_SMB_PASSWORD", "from-the-environment")
    with pytest.raises(UsageError, match="no SMB password"):
        open_storage("smb://user@127.0.0.1:9/share/medium", None, timeout=2)
    for path in _source_files():
        if "cli" in path.relative_to(REPO).parts:
            continue
        assert "MAILARCHIVE_SMB_PASSWORD\")" not in path.read_text(encoding="utf-8").replace("'", '"'), path
