"""An older toolkit opening an archive written by a newer one (docs/reliability.md O8), and this toolkit
opening an archive of the format before it.

Places that carry a version: the archive's configuration (``format = N``), the catalog's list of
applied schema migrations (and its ``archive_info`` key ``format``), and each medium's label. A
newer value in any is refused with a message naming what is needed, by readers and writers
alike, and the archive is left byte for byte as it was. Format v2 made body hashes and
pack checksums BLAKE3; an archive of format v1 (SHA-256 checksums) is refused the same way, with
a message that says it is of the older format.
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from tests.cli import mailarchive
from toolkit import crypto
from toolkit.archive import Archive
from toolkit.config import FORMAT_VERSION
from toolkit.medium import LABEL_NAME, _canonical


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


def test_format_v2_is_what_a_new_archive_records(archive_home):
    """archive.toml, the catalog and the medium label of a new archive all say format 2."""
    home, _ = archive_home
    assert FORMAT_VERSION == 2
    assert re.search(r"(?m)^format = 2$", (home / "archive.toml").read_text())
    label = json.loads((home.parent / "m1" / LABEL_NAME).read_text())
    assert label["format"] == 2
    archive = Archive.open(home)
    try:
        with archive.catalog.reading() as con:
            assert con.execute("SELECT value FROM archive_info WHERE key = 'format'").fetchone() == ("2",)
            cols = {r[0] for r in con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'packs'").fetchall()}
            assert "blake3" in cols and "sha256" not in cols
    finally:
        archive.close()


@pytest.mark.parametrize("args", [("stats",), ("verify",), ("import", "eml", "SRC")])
def test_v1_archive_format_is_refused_as_older(archive_home, args):
    """An archive of format v1 (SHA-256 pack checksums) is refused, saying it is of the older format."""
    home, src = archive_home
    cfg = home / "archive.toml"
    cfg.write_text(re.sub(r"(?m)^format = \d+$", "format = 1", cfg.read_text()))
    before = _snapshot(home)
    p = mailarchive(home, *[str(src) if a == "SRC" else a for a in args], check=None)
    assert p.returncode == 3, (p.returncode, p.stderr)
    assert "Traceback" not in p.stderr
    err = " ".join(p.stderr.split())
    assert "archive format v1 is older than this toolkit reads (v2" in err, err
    assert _snapshot(home) == before


def _relabel(home: Path, medium: Path, fmt: int) -> None:
    """Rewrite the medium's label with another format and a valid HMAC (so only the format differs)."""
    archive = Archive.open(home)
    key, uuid = archive.key, archive.uuid
    archive.close()
    label = json.loads((medium / LABEL_NAME).read_text())
    label.pop("hmac")
    label["format"] = fmt
    tag = crypto.mac(crypto.derive_key(key, uuid, "medium-mac"), _canonical(label))
    (medium / LABEL_NAME).write_text(json.dumps({**label, "hmac": tag}, indent=2) + "\n")


@pytest.mark.parametrize("fmt, says", [(1, "an older format (SHA-256 pack checksums)"), (3, "needs a newer mailarchive-toolkit")])
def test_medium_of_another_format_is_refused(archive_home, fmt, says):
    """A medium whose label says format v1 (or a future v3) is neither read nor written."""
    home, src = archive_home
    medium = home.parent / "m1"
    _relabel(home, medium, fmt)
    before = {p.relative_to(medium).as_posix(): p.read_bytes() for p in medium.rglob("*") if p.is_file()}
    (src / "2.eml").write_text("From: a@b.c\nSubject: o8b\nMessage-ID: <o8b@x>\n\nother body\n")
    p = mailarchive(home, "import", "eml", str(src), check=None)
    assert p.returncode == 3, (p.returncode, p.stdout, p.stderr)
    assert "Traceback" not in p.stderr
    err = " ".join(p.stderr.split())
    assert f"holds archive format v{fmt}, this toolkit reads v2" in err and says in err, err
    after = {p.relative_to(medium).as_posix(): p.read_bytes() for p in medium.rglob("*") if p.is_file()}
    assert after == before
