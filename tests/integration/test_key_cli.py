"""Key backup round trip, typo line report, wrong password, foreign backup (G1, G2, G4)."""
from __future__ import annotations

import os
import re

from tests.cli import PASSWORD, mailarchive


def _init(tmp_path, name="home"):
    home = tmp_path / name
    mailarchive(home, "init", "--key-backup", str(tmp_path / f"{name}-kb.txt"))
    return home, tmp_path / f"{name}-kb.txt"


def test_backup_restores_identical_key(tmp_path):
    home, kb = _init(tmp_path)
    key = (home / "key").read_bytes()
    assert oct((home / "key").stat().st_mode & 0o777) == "0o600"
    fp = mailarchive(home, "key", "fingerprint").stdout.strip()
    assert fp in kb.read_text()
    second = tmp_path / "second.txt"
    mailarchive(home, "key", "backup", "--out", str(second))
    assert fp in second.read_text()
    (home / "key").unlink()
    # Without the key, the archive cannot be opened: a clear error with the next step.
    p = mailarchive(home, "stats", check=12)
    assert "key restore" in p.stderr
    r = mailarchive(home, "key", "restore", "--from", str(second), json_out=True).result
    assert r["status"] == "restored" and r["fingerprint"] == fp
    assert (home / "key").read_bytes() == key
    mailarchive(home, "stats")


def test_typo_is_reported_with_its_line(tmp_path):
    home, kb = _init(tmp_path)
    lines = kb.read_text().splitlines()
    n = next(i for i, l in enumerate(lines) if re.match(r"0?3:", l))
    line = lines[n]
    pos = line.index(":") + 3
    typo = "X" if line[pos] != "X" else "Y"
    lines[n] = line[:pos] + typo + line[pos + 1:]
    bad = tmp_path / "typo.txt"
    bad.write_text("\n".join(lines) + "\n")
    (home / "key").unlink()
    p = mailarchive(home, "key", "restore", "--from", str(bad), check=2)
    assert f"line {n + 1}" in p.stderr
    assert not (home / "key").exists()


def test_wrong_password_writes_nothing(tmp_path):
    home, kb = _init(tmp_path)
    (home / "key").unlink()
    before = sorted(os.listdir(home))
    p = mailarchive(home, "key", "restore", "--from", str(kb), env={"MAILARCHIVE_PASSWORD": "wrong " + PASSWORD}, check=12)
    assert "wrong password" in p.stderr
    assert sorted(os.listdir(home)) == before


def test_foreign_backup_refused_by_uuid(tmp_path):
    home, _ = _init(tmp_path, "a")
    _, other_kb = _init(tmp_path, "b")
    key = (home / "key").read_bytes()
    p = mailarchive(home, "key", "restore", "--from", str(other_kb), check=2)
    uuid_a = re.search(r'uuid = "([^"]+)"', (home / "archive.toml").read_text()).group(1)
    assert uuid_a in p.stderr and "archive" in p.stderr
    assert (home / "key").read_bytes() == key


def test_password_file_and_no_password(tmp_path):
    pw = tmp_path / "pw"
    pw.write_text("file password\n")
    home = tmp_path / "h"
    env = {"MAILARCHIVE_PASSWORD": ""}
    p = mailarchive(home, "init", env=env, check=2)
    assert "--password-file" in p.stderr and not (home / "archive.toml").exists()
    mailarchive(home, "init", "--password-file", str(pw), env=env)
    (home / "key").unlink()
    mailarchive(home, "key", "restore", "--from", str(home / "key-backup.txt"), "--password-file", str(pw), env=env)


def test_a_key_backup_is_never_written_into_the_home_a_medium_or_the_mirror(tmp_path):
    home = tmp_path / "home"
    mailarchive(home, "init", "--kdf-profile", "test", "--medium", str(tmp_path / "m1"), "--key-backup",
                str(tmp_path / "kb.txt"))
    mailarchive(home, "config", "set", "mirror.dest", str(tmp_path / "mirror"))
    for out, where in ((home / "kb2.txt", "the archive home"), (tmp_path / "m1" / "kb2.txt", "medium 1"),
                       (tmp_path / "mirror" / "kb2.txt", "the configured mirror")):
        p = mailarchive(home, "key", "backup", "--out", str(out), check=2)
        assert f"lies inside {where}" in " ".join(p.stderr.split()) and not out.exists(), where
    (tmp_path / "usb").mkdir()
    mailarchive(home, "key", "backup", "--out", str(tmp_path / "usb" / "kb2.txt"))
    assert (tmp_path / "usb" / "kb2.txt").exists()


def test_init_refuses_a_key_backup_inside_its_first_medium(tmp_path):
    p = mailarchive(tmp_path / "home", "init", "--kdf-profile", "test", "--medium", str(tmp_path / "m1"),
                    "--key-backup", str(tmp_path / "m1" / "kb.txt"), check=2)
    assert "lies inside medium 1" in p.stderr and not (tmp_path / "home").exists() and not (tmp_path / "m1").exists()
