"""Key backup passwords: short, common and trivially patterned ones are refused with the reason, exit 2, nothing written."""
from __future__ import annotations

import pytest

from tests.cli import PASSWORD, mailarchive
from toolkit.keybackup import password_problem

pytestmark = pytest.mark.security

WEAK = [
    ("short-pass1", "too short: 11 < 12"),
    ("Password1234", "is in the list of common passwords"),
    ("QWERTYUIOP123", "is in the list of common passwords"),
    ("iloveyou1234", "is in the list of common passwords"),
    ("zzzzzzzzzzzzzzzz", "one character repeated"),
    ("PasswordPassword", "short piece repeated"),
    ("abcXYZabcXYZabcXYZ", "short piece repeated"),
    ("345678901234", "simple run"),
]


def _files(root):
    return sorted(p.relative_to(root) for p in root.rglob("*")) if root.exists() else []


@pytest.mark.parametrize("password,reason", WEAK)
def test_init_refuses_a_weak_password_and_writes_nothing(tmp_path, password, reason):
    home = tmp_path / "home"
    kb = tmp_path / "kb.txt"
    p = mailarchive(home, "init", "--key-backup", str(kb), env={"MAILARCHIVE_PASSWORD": password}, check=2)
    assert reason in p.stderr
    assert password not in p.stderr
    assert not home.exists() and not kb.exists()


def test_key_backup_refuses_a_weak_password_and_writes_nothing(tmp_path):
    home = tmp_path / "home"
    mailarchive(home, "init", "--key-backup", str(tmp_path / "kb.txt"))
    before = {p: p.read_bytes() for p in home.rglob("*") if p.is_file()}
    out = tmp_path / "second.txt"
    pw = tmp_path / "pw"
    for password, reason in WEAK:
        pw.write_text(password + "\n")
        p = mailarchive(home, "key", "backup", "--out", str(out), "--password-file", str(pw), check=2)
        assert reason in p.stderr, (password, p.stderr)
        assert not out.exists()
        assert list(tmp_path.glob(".second.txt.*")) == []
    assert {p: p.read_bytes() for p in home.rglob("*") if p.is_file()} == before


def test_acceptable_passwords_work(tmp_path):
    assert password_problem(PASSWORD) is None
    assert password_problem("file password") is None
    home = tmp_path / "home"
    mailarchive(home, "init", "--key-backup", str(tmp_path / "kb.txt"))
    pw = tmp_path / "pw"
    pw.write_text("Tr0mbone-gazebo-Lantern\n")
    out = tmp_path / "second.txt"
    mailarchive(home, "key", "backup", "--out", str(out), "--password-file", str(pw))
    (home / "key").unlink()
    r = mailarchive(home, "key", "restore", "--from", str(out), "--password-file", str(pw), json_out=True).result
    assert r["status"] == "restored"


def test_every_listed_password_is_refused_whatever_its_case():
    from toolkit.keybackup import _common_passwords

    listed = _common_passwords()
    assert len(listed) >= 300
    assert PASSWORD.casefold() not in listed
    for word in listed:
        assert password_problem(word) is not None
        assert password_problem(word.upper()) is not None
