"""Consolidation moves stamps/, db-backups/ and config/ too, and its dry-run estimate is the real data.

A medium holding the archive's stamp manifests and catalog backups is
consolidated into another: the files arrive at the target with the same
bytes, the catalog's stamp and backup rows name the target, the retired
medium keeps its files, and the plan's bytes to copy match the bytes that
really landed on the target within a few percent (no fixed margin in it).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from tests.cli import mailarchive


def _files(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in root.rglob("*") if p.is_file() and not p.name.endswith(".tmp")}


def _sql(home: Path, query: str) -> list[dict]:
    return json.loads(mailarchive(home, "sql", query, "--format", "json").stdout)


def test_consolidation_moves_stamps_and_backups_and_estimates_right(tmp_path, tsa_ok):
    src = tmp_path / "mails"
    src.mkdir()
    for i in range(30):
        (src / f"{i}.eml").write_text(f"From: a@example.com\nSubject: c{i}\nMessage-ID: <c{i}@x>\n\n" + f"text {i}\n" * 40)
    home, m1, m2 = tmp_path / "home", tmp_path / "m1", tmp_path / "m2"
    mailarchive(home, "init", "--medium", str(m1), "--key-backup", str(tmp_path / "kb.txt"))
    mailarchive(home, "import", "eml", str(src))
    mailarchive(home, "timestamp", "configure", "--tsa-url", tsa_ok.url, "--ca-cert", str(tsa_ok.ca_cert_path))
    mailarchive(home, "timestamp", "run", "--all")
    mailarchive(home, "db", "backup", "--full")
    mailarchive(home, "media", "add", str(m2), "--activate")
    on_m1 = _files(m1)
    meta = sorted(n for n in on_m1 if n.split("/")[0] in ("stamps", "db-backups", "config"))
    assert any(n.startswith("stamps/") for n in meta) and any(n.startswith("db-backups/") for n in meta)
    before_m2 = _files(m2)

    plan = mailarchive(home, "media", "consolidate", "--from", "1", "--into", "2", "--dry-run", json_out=True).result["plan"]
    assert _files(m1) == on_m1 and _files(m2) == before_m2          # the dry run wrote nothing
    mailarchive(home, "media", "consolidate", "--from", "1", "--into", "2")

    after_m2 = _files(m2)
    landed = sum((m2 / n).stat().st_size for n in after_m2 if n not in before_m2)
    space = plan["needed"] - plan.get("margin", 0)                    # the space the data takes
    assert landed > 0 and abs(space - landed) <= 0.03 * landed, (space, landed)
    assert plan["copy_bytes"] == space
    for n in meta:                                                   # same bytes at the target
        assert after_m2.get(n) == on_m1[n], n
    assert plan["meta_files"] == len(meta)
    assert _files(m1) == on_m1                                       # the retired medium is untouched
    assert {r["medium_id"] for r in _sql(home, "SELECT medium_id FROM stamp_batches WHERE status = 'stamped'")} == {2}
    assert {r["medium_id"] for r in _sql(home, "SELECT medium_id FROM db_backups WHERE medium_id IS NOT NULL")} == {2}
    # the stamps are read from the target now: the evidence check finds them with medium 1 gone
    (m1).rename(tmp_path / "m1-gone")
    mailarchive(home, "verify", "--full")
