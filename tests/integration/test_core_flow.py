"""Init → import eml → export eml → byte-identical, counts match (local and SMB)."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from importers.eml import envelope_length
from importers.share import HEAD
from tests.cli import mailarchive
from tests.corpora import REPO, corpora_dir, single_message_files


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _archived_sha(p: Path) -> str:
    """What `import eml` archives: the file, less a leading From_ line (the mbox envelope)."""
    data = p.read_bytes()
    return hashlib.sha256(data[envelope_length(data[:HEAD], len(data) <= HEAD):]).hexdigest()


@pytest.fixture(scope="module")
def source_tree(tmp_path_factory) -> Path:
    """The sample mail plus every single-message file of a-mime-edge, in one tree (600+ files)."""
    root = tmp_path_factory.mktemp("source")
    shutil.copytree(REPO / "sample_data" / "eml", root / "sample")
    corpora = corpora_dir()
    files = single_message_files(corpora)
    assert len(files) >= 500
    for f in files:
        dest = root / "corpus" / f.relative_to(corpora / "a-mime-edge")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, dest)
    return root


def _flow(tmp_path: Path, source: Path, medium: str, env: dict | None = None) -> None:
    home = tmp_path / "home"
    mailarchive(home, "init", "--medium", medium, "--key-backup", str(tmp_path / "kb.txt"), env=env)
    files = sorted(p for p in source.rglob("*") if p.is_file())
    assert len(files) >= 200

    imp = mailarchive(home, "import", "eml", str(source), json_out=True, env=env).result
    # A few corpus files hold no header block at all (a bare body): listed as "not mail", never archived.
    not_mail = [p for p in imp["sources"][0]["problems"] if p["message"].startswith("not mail: no header block")]
    assert imp["seen"] + len(not_mail) == len(files) and len(not_mail) <= 10
    assert imp["errors"] == 0 and imp["skipped"] == len(not_mail)
    assert imp["archived"] + imp["duplicates"] == imp["seen"]

    out = tmp_path / "export"
    exp = mailarchive(home, "export", "eml", str(out), json_out=True, env=env).result
    assert exp["written"] == imp["archived"] and not exp["errors"]

    manifest = json.loads((out / "manifest.json").read_text())["messages"]
    exported = {row["sha256"]: out / row["path"] for row in manifest}
    for digest, path in exported.items():
        assert _sha(path) == digest  # byte-identical to what was archived

    # Every source file is either exported byte-for-byte or recorded as a duplicate of an exported message.
    sightings = mailarchive(
        home, "sql",
        "SELECT s.source_ref, s.decision, m.blob_id FROM sightings s JOIN messages m USING (msg_id)",
        "--format", "json", env=env,
    )
    by_ref = {r["source_ref"]: r for r in json.loads(sightings.stdout)}
    skipped = {p["ref"] for p in not_mail}
    assert len(by_ref) == len(files) - len(skipped)
    for f in files:
        if f.relative_to(source).as_posix() in skipped:
            continue
        row = by_ref[f.relative_to(source).as_posix()]
        if row["decision"] in ("new", "id-conflict", "exact-duplicate"):
            assert _archived_sha(f) == row["blob_id"] and row["blob_id"] in exported, f
        else:
            assert row["decision"] == "duplicate" and row["blob_id"] in exported, f

    stats = mailarchive(home, "stats", json_out=True, env=env).result
    assert stats["messages"] == imp["archived"] == len(exported)
    assert stats["sightings"] == len(files) - len(skipped)
    assert sum(m["messages"] for m in stats["media"]) == stats["messages"]


def test_flow_local_medium(tmp_path, source_tree):
    _flow(tmp_path, source_tree, str(tmp_path / "medium-1"))


@pytest.mark.samba
def test_flow_smb_medium(tmp_path, source_tree, smb_location):
    _flow(tmp_path, source_tree, smb_location)


def test_import_smb_source(tmp_path, samba, smb_location):
    """EML files read from the share itself (import eml smb://...)."""
    sub = smb_location.rsplit("/", 1)[1]
    src = samba.share_dir / sub
    shutil.copytree(REPO / "sample_data" / "eml", src)
    n = sum(1 for p in src.rglob("*") if p.is_file())
    home = tmp_path / "home"
    mailarchive(home, "init", "--key-backup", str(tmp_path / "kb.txt"))
    imp = mailarchive(home, "import", "eml", smb_location, json_out=True).result
    assert imp["seen"] == n and imp["errors"] == 0
