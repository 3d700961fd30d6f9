"""RELIABILITY B5, C9: an import meets, under the name of the pack it publishes, a file it did not write.

The import's pack ids come from an id source the test gives (``Ingest(pack_ids=...)``; the ids are
16 random bytes otherwise), and a stranger is put under the first id's name on the medium first:
on a local medium and on the real Samba share. The create-only publish refuses to replace it; the
whole run stops with an error naming the medium and the pack and the next step (exit 3); the
stranger's bytes are untouched, no temp file stays, nothing of the run is committed; `verify`
lists the stranger as an unknown pack (a warning, never deleted); a rerun completes beside it.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from importers.eml import EmlImporter
from toolkit.archive import Archive
from toolkit.cli.hints import with_hint
from toolkit.errors import ExitCode, PackNameTakenError
from toolkit.ingest import Ingest
from toolkit.pack import pack_name
from toolkit.storage.location import parse_location

STRANGER = b"not a pack of this archive: written by something else\n" * 40


@pytest.fixture(params=["local", "smb"])
def medium(request, tmp_path) -> tuple[str, Path, str | None]:
    """(location, the directory holding its files, SMB password or None)"""
    if request.param == "local":
        return str(tmp_path / "medium"), tmp_path / "medium", None
    url = request.getfixturevalue("smb_location")
    samba = request.getfixturevalue("samba")
    return url, samba.share_dir / parse_location(url).path, samba.password


def _source(root: Path) -> Path:
    root.mkdir()
    for i in range(5):
        (root / f"{i}.eml").write_bytes(
            f"From: a{i}@example.org\r\nTo: b@example.org\r\nSubject: c9 {i}\r\nMessage-ID: <c9-{i}@example.org>\r\n"
            f"Date: Mon, 7 Jan 2019 09:15:00 +0000\r\n\r\nbody {i}\r\n".encode())
    return root


def _temp_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and p.name.endswith(".tmp"))


def test_c9_b5_an_import_meeting_a_pack_name_it_did_not_write_stops_and_leaves_it(medium, tmp_path):
    from verify.checks import verify_archive

    location, files, password = medium
    src = _source(tmp_path / "src")
    ids = [bytes([0xC9]) * 16, bytes([0xB5]) * 16]
    taken = pack_name(ids[0])
    archive = Archive.create(tmp_path / "home", location, smb_password=password)
    try:
        archive.storage(1).put(taken, STRANGER)  # another writer on the medium (through SMB on the share)
        with pytest.raises(PackNameTakenError) as err:
            Ingest(archive, workers=0, pack_ids=iter(ids).__next__).run(EmlImporter(str(src)))
        text = str(err.value)
        assert text.startswith(f"medium 1 ({archive.config.medium(1).location}): pack {taken} is already there")
        assert "did not write it" in text and "possible ID reuse" in text and "5 mails" in text, text
        assert err.value.exit_code == ExitCode.OPERATIONAL  # exit 3: a rerun picks a new id
        hinted = with_hint(err.value)
        assert "`mailarchive verify`" in hinted and "unknown pack" in hinted, hinted
        # nothing written over it, nothing left behind, nothing committed, the run recorded as failed
        assert (files / taken).read_bytes() == STRANGER
        assert _temp_files(files) == []
        with archive.catalog.reading() as con:
            assert con.execute("SELECT count(*) FROM messages").fetchone()[0] == 0
            assert con.execute("SELECT count(*) FROM packs").fetchone()[0] == 0
            assert con.execute("SELECT status FROM runs ORDER BY run_id DESC LIMIT 1").fetchone()[0] == "failed"
        # verify lists the stranger as an unknown pack: a warning, not deleted
        q03 = verify_archive(archive).get("Q03")
        assert q03.status == "warning" and [i["name"] for i in q03.items] == [taken], q03.items
        # the rerun (fresh random ids) archives the mail beside it
        s = Ingest(archive, workers=0).run(EmlImporter(str(src)))
        assert (s.status, s.archived) == ("complete", 5)
        assert (files / taken).read_bytes() == STRANGER
        assert [i["name"] for i in verify_archive(archive).get("Q03").items] == [taken]
    finally:
        archive.close()
