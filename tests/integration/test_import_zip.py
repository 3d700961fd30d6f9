"""Zip files as input (RELIABILITY K7): ``import share`` and ``import eml`` read the mail inside a zip
where it lies, never extract it, keep zip-slip names as labels only, and stop a zip bomb."""
from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

from tests.cli import mailarchive
from tests.security.child_rusage import mailarchive_measured


def _eml(n: int, subject: str) -> bytes:
    return (f"From: s{n}@example.com\r\nTo: a@example.com\r\nSubject: {subject}\r\n"
            f"Date: Mon, 7 Jan 2019 09:{n:02d}:00 +0100\r\nMessage-ID: <zip-{n}@example.com>\r\n\r\nBody {n}.\r\n").encode()


MBOX = (b"From a@example.com Mon Jan  7 09:15:00 2019\n" + _eml(10, "mbox one").replace(b"\r\n", b"\n")
        + b"\nFrom b@example.com Mon Jan  7 09:16:00 2019\n" + _eml(11, "mbox two").replace(b"\r\n", b"\n"))


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name, (2019, 1, 7, 9, 0, 0)), data, zipfile.ZIP_DEFLATED)
    return buf.getvalue()


def _init(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    mailarchive(home, "init", "--medium", str(tmp_path / "medium"), "--key-backup", str(tmp_path / "kb.txt"))
    return home


def _sightings(home: Path) -> dict[str, dict]:
    out = mailarchive(home, "sql", "SELECT source_ref, folder FROM sightings", "--format", "json")
    return {s["source_ref"]: s for s in json.loads(out.stdout)}


def _tree_files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_share_reads_mail_inside_zips_without_extracting(tmp_path):
    work = tmp_path / "work"
    root = work / "share" / "in"
    root.mkdir(parents=True)
    inner = _zip({"deep/inner.eml": _eml(3, "nested")})
    (root / "outer.zip").write_bytes(_zip({
        "a.eml": _eml(1, "plain member"),
        "../../escape.eml": _eml(2, "zip-slip name"),
        "/abs/evil.eml": _eml(4, "absolute name"),
        "Entwürfe/ümlaut.eml": _eml(5, "non-ASCII member name"),
        "box/list.mbox": MBOX,
        "notes.txt": b"just text\n",
        "inner.zip": inner,
        "bad\x01name.eml": _eml(6, "control character in the name"),
    }))
    (root / "deep4.zip").write_bytes(_zip({"l2.zip": _zip({"l3.zip": _zip({"l4.zip": _zip({"x.eml": _eml(7, "too deep")})})})}))
    before = _tree_files(work)
    home = _init(tmp_path)
    r = mailarchive(home, "import", "share", str(root), json_out=True, timeout=120, check=1).result
    assert _tree_files(work) == before                      # nothing extracted, nothing written next to it
    refs = _sightings(home)
    expect = {"outer.zip!a.eml": "outer.zip", "outer.zip!../../escape.eml": "outer.zip",
              "outer.zip!/abs/evil.eml": "outer.zip/abs", "outer.zip!Entwürfe/ümlaut.eml": "outer.zip/Entwürfe",
              "outer.zip!inner.zip!deep/inner.eml": "outer.zip/deep", "outer.zip!bad\\x01name.eml": "outer.zip"}
    for ref, folder in expect.items():
        assert refs[ref]["folder"] == folder, ref
    mbox_refs = sorted(ref for ref in refs if ref.startswith("outer.zip!box/list.mbox@"))
    assert len(mbox_refs) == 2 and refs[mbox_refs[0]]["folder"] == "outer.zip/box/list"
    assert r["archived"] == len(refs) == len(expect) + 2
    listed = {p["ref"]: p["message"] for p in r["sources"][0]["problems"]}
    assert listed["outer.zip!notes.txt"] == "not mail: no header block"
    assert "nested more than 3 deep" in listed["deep4.zip!l2.zip!l3.zip!l4.zip"]
    assert r["errors"] == 1


def test_zip_bomb_is_a_problem_naming_the_member_within_bounded_memory(tmp_path):
    root = tmp_path / "in"
    root.mkdir()
    with zipfile.ZipFile(root / "bomb.zip", "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr("first.eml", _eml(1, "before the bomb"))
        with zf.open("zeros.eml", "w") as f:
            f.write(_eml(2, "bomb")[:-2])
            block = b"\0" * (1 << 20)
            for _ in range(400):                             # 400 MiB of zeros in about 400 KB
                f.write(block)
        zf.writestr("after.eml", _eml(3, "after the bomb"))
    assert (root / "bomb.zip").stat().st_size < 2 << 20
    home = _init(tmp_path)
    m = mailarchive_measured(home, "import", "share", str(root), timeout=120)
    assert m.returncode == 1, m.stderr
    problems = {p["ref"]: p["message"] for p in m.result["sources"][0]["problems"]}
    assert "zip bomb" in problems["bomb.zip!zeros.eml"]
    assert "bomb.zip!after.eml" not in _sightings(home)      # the rest of a bomb's container is not read
    assert "bomb.zip!first.eml" in _sightings(home)
    assert m.maxrss_mib < 200, m.maxrss_mib                  # never the 400 MiB member in memory


def test_import_eml_reads_a_zip_in_the_directory(tmp_path):
    root = tmp_path / "in"
    root.mkdir()
    (root / "loose.eml").write_bytes(_eml(1, "loose"))
    (root / "mails.ZIP").write_bytes(_zip({"x/one.eml": _eml(2, "one"), "two.eml": _eml(3, "two"),
                                           "../../slip.eml": _eml(4, "slip"), "pic.png": b"\x89PNG\r\n\x1a\n\0\0"}))
    home = _init(tmp_path)
    r = mailarchive(home, "import", "eml", str(root), json_out=True, timeout=120).result
    refs = _sightings(home)
    assert set(refs) == {"loose.eml", "mails.ZIP!x/one.eml", "mails.ZIP!two.eml", "mails.ZIP!../../slip.eml"}
    assert refs["mails.ZIP!x/one.eml"]["folder"] == "mails.ZIP/x"
    assert not (tmp_path / "slip.eml").exists() and sorted(os.listdir(root)) == ["loose.eml", "mails.ZIP"]
    listed = {p["ref"]: p["message"] for p in r["sources"][0]["problems"]}
    assert listed["mails.ZIP!pic.png"] == "not mail: binary"


def test_share_resumes_inside_a_zip(tmp_path):
    """A cursor saved after the second member continues with the third, not from the zip's start."""
    from importers.share import ShareImporter
    from toolkit.reporter import NullReporter

    root = tmp_path / "in"
    root.mkdir()
    (root / "m.zip").write_bytes(_zip({f"{i}.eml": _eml(i, f"member {i}") for i in range(5)}))
    first = list(ShareImporter(str(root)).scan(None, NullReporter()))
    assert [i.ref for i in first] == [f"m.zip!{i}.eml" for i in range(5)]
    assert first[-1].cursor["inner"] is None and first[1].cursor["inner"] == {"zip_items": 2}
    rest = list(ShareImporter(str(root)).scan(first[1].cursor, NullReporter()))
    assert [i.ref for i in rest] == [f"m.zip!{i}.eml" for i in range(2, 5)]
    assert [i.raw for i in rest] == [i.raw for i in first[2:]]


def test_share_reads_a_zip_on_the_real_samba_share(samba, smb_location, tmp_path):
    """On ``smb://`` the zip is copied to a private temporary file for its reader, as a PST is; its
    members are read from there and never extracted, on the share or locally."""
    sub = smb_location.rstrip("/").rpartition("/")[2]
    root = samba.share_dir / sub
    root.mkdir()
    (root / "mails.zip").write_bytes(_zip({"a.eml": _eml(1, "on the share"), "../../slip.eml": _eml(2, "slip")}))
    home = _init(tmp_path)
    r = mailarchive(home, "import", "share", smb_location, json_out=True, timeout=120).result
    assert r["archived"] == 2 and r["errors"] == 0
    assert set(_sightings(home)) == {"mails.zip!a.eml", "mails.zip!../../slip.eml"}
    assert os.listdir(root) == ["mails.zip"] and not (samba.share_dir / "slip.eml").exists()


def test_import_eml_reads_a_zip_on_the_real_samba_share(samba, smb_location, tmp_path):
    sub = smb_location.rstrip("/").rpartition("/")[2]
    root = samba.share_dir / sub
    root.mkdir()
    (root / "loose.eml").write_bytes(_eml(1, "loose"))
    (root / "mails.zip").write_bytes(_zip({"x/one.eml": _eml(2, "one"), "/abs.eml": _eml(3, "abs")}))
    home = _init(tmp_path)
    r = mailarchive(home, "import", "eml", smb_location, json_out=True, timeout=120).result
    assert r["archived"] == 3 and r["errors"] == 0
    assert set(_sightings(home)) == {"loose.eml", "mails.zip!x/one.eml", "mails.zip!/abs.eml"}
