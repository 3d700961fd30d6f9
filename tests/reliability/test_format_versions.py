"""An older toolkit opening an archive written by a newer one (docs/reliability.md O8).

Two places carry a version: the archive's configuration (``format = N``) and the catalog's list of
applied schema migrations. A newer value in either is refused with a message naming what is
needed, by readers and writers alike, and the archive is left byte for byte as it was.
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from tests.cli import mailarchive
from toolkit.archive import Archive


def _snapshot(home: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(home.iterdir())
            if p.is_file() and p.name != "lock"}


@pytest.fixture
def archive_home(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "1.eml").write_text("From: a@b.c\nSubject: o8\nMessage-ID: <o8@x>\n\nbody\n")
    home = tmp_path / "home"
    mailarchive(home, "init", "--medium", str(tmp_path / "m1"))
    mailarchive(home, "import", "eml", str(src))
    return home, src


@pytest.mark.parametrize("args", [("stats",), ("verify",), ("import", "eml", "SRC")])
def test_o8_newer_archive_format_is_refused(archive_home, args):
    home, src = archive_home
    cfg = home / "archive.toml"
    cfg.write_text(re.sub(r"(?m)^format = \d+$", "format = 99", cfg.read_text()))
    before = _snapshot(home)
    p = mailarchive(home, *[str(src) if a == "SRC" else a for a in args], check=None)
    assert p.returncode == 3, (p.returncode, p.stderr)
    assert "Traceback" not in p.stderr
    err = " ".join(p.stderr.split())
    assert "archive format v99 needs a newer mailarchive-toolkit" in err, err
    assert _snapshot(home) == before


def test_o8_newer_catalog_schema_is_refused(archive_home):
    """A catalog that a newer toolkit migrated further: this toolkit must not write into a schema it
    does not know (nor read it as if it knew it)."""
    home, src = archive_home
    archive = Archive.open(home, writer=True)
    try:
        with archive.catalog.writing() as con:
            con.execute("INSERT INTO schema_migrations VALUES ('9999_from_a_newer_toolkit', now())")
    finally:
        archive.close()
    before = _snapshot(home)
    for args in (("stats",), ("import", "eml", str(src))):
        p = mailarchive(home, *args, check=None)
        assert p.returncode == 3, (args, p.returncode, p.stdout, p.stderr)
        assert "Traceback" not in p.stderr
        err = " ".join(p.stderr.split())
        assert "9999_from_a_newer_toolkit" in err and "newer mailarchive-toolkit" in err, err
    assert _snapshot(home) == before
