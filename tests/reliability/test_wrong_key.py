"""The archive opened with the wrong master key (docs/reliability.md G5).

The configuration holds a key check (a MAC over the archive UUID under a key derived from the
master key). A key file of another archive, or a damaged one, fails it before anything is read
or written: exit 12 with the way out, and the home and the medium stay byte for byte the same.
"""
from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

from tests.cli import mailarchive


def _tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != "lock"}


@pytest.mark.parametrize("key", ["other-archive", "flipped-bit", "random"])
def test_g5_wrong_master_key_is_refused_before_anything_is_written(tmp_path, key):
    src = tmp_path / "src"
    src.mkdir()
    (src / "1.eml").write_text("From: a@b.c\nSubject: g5\nMessage-ID: <g5@x>\n\nbody\n")
    home, medium = tmp_path / "home", tmp_path / "m1"
    mailarchive(home, "init", "--medium", str(medium))
    mailarchive(home, "import", "eml", str(src))
    if key == "other-archive":
        mailarchive(tmp_path / "other", "init", "--medium", str(tmp_path / "m-other"))
        shutil.copy2(tmp_path / "other" / "key", home / "key")
    elif key == "flipped-bit":
        data = bytearray((home / "key").read_bytes())
        data[0] ^= 1
        (home / "key").write_bytes(data)
    else:
        (home / "key").write_bytes(os.urandom(32))
    (src / "2.eml").write_text("From: a@b.c\nSubject: g5 new\nMessage-ID: <g5-2@x>\n\nnew\n")
    before = _tree(home), _tree(medium)
    for args in (("stats",), ("import", "eml", str(src)), ("verify", "--full")):
        p = mailarchive(home, *args, check=None)
        assert p.returncode == 12, (args, p.returncode, p.stderr)
        assert "Traceback" not in p.stderr
        err = " ".join(p.stderr.split())
        assert "is not the key of archive" in err and "key restore" in err, err
    assert (_tree(home), _tree(medium)) == before
