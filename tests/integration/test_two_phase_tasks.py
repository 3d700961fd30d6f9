"""Two-phase pack tasks (toolkit/pack_tasks.py, docs/architecture.md): a local worker seals its
records in memory, the driver decides on the prepared mails, and only the records it keeps are
written. So a duplicate's record never reaches the medium and the driver never copies records
out of a task's pack: every pack in the catalog is a task's own pack (its id from the run's id
source; the driver's packs take random ids), none is removed after its commit, and the result
equals a run with everything inline (one phase: write, then move).
"""
from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

from importers.eml import EmlImporter
from tests.cli import mailarchive
from toolkit.archive import Archive
from toolkit.ingest import Ingest

N = 40


def _source(root: Path) -> Path:
    """N mails, then 5 exact copies and 5 relayed copies (same dedup key) of earlier ones among them."""
    rng = random.Random(3)
    src = root / "src"
    src.mkdir()
    mails = []
    for i in range(N):
        body = "".join(rng.choice("abcdefgh ijklmnop\n") for _ in range(rng.randint(1500, 4000)))
        mails.append(f"From: a{i}@example.com\nTo: b@example.org\nSubject: two phases {i}\n"
                     f"Date: Tue, 2 Mar 2021 09:{i % 60:02d}:00 +0100\nMessage-ID: <tp-{i}@example.com>\n\n{body}")
        (src / f"{i:03d}.eml").write_text(mails[-1])
    for i in range(5):
        (src / f"{i + 15:03d}x.eml").write_text(mails[i])
        (src / f"{i + 25:03d}y.eml").write_text("Received: from relay.example.net\n" + mails[i + 5])
    return src


def _run(home: Path, medium: Path, src: Path, workers: int, ids) -> dict:
    archive = Archive.create(home, str(medium))
    try:
        summary = Ingest(archive, workers=workers, pack_target=12 * 1024, pack_ids=ids).run(EmlImporter(str(src)))
    finally:
        archive.close()
    assert summary.status == "complete" and summary.seen == N + 10, summary
    rows = json.loads(mailarchive(home, "sql", "SELECT s.source_ref, s.decision, m.blob_id, m.pack_id FROM sightings s "
                                  "JOIN messages m USING (msg_id)", "--format", "json").stdout)
    packs = json.loads(mailarchive(home, "sql", "SELECT pack_id, name FROM packs", "--format", "json").stdout)
    return {"sightings": sorted((Path(r["source_ref"]).name, r["decision"], r["blob_id"]) for r in rows),
            "packs": {p["pack_id"] for p in packs}, "names": {p["name"] for p in packs},
            "files": {f.relative_to(medium).as_posix() for f in medium.glob("packs/*/*.pack")}}


def test_workers_write_only_the_records_the_driver_keeps(tmp_path):
    counter = itertools.count(1)
    issued: list[str] = []

    def ids() -> bytes:
        pack_id = next(counter).to_bytes(16, "big")
        issued.append(pack_id.hex())
        return pack_id

    src = _source(tmp_path)
    two = _run(tmp_path / "two", tmp_path / "m-two", src, 2, ids)
    one = _run(tmp_path / "one", tmp_path / "m-one", src, 0, None)  # all inline: one phase, moves
    assert two["sightings"] == one["sightings"]
    decisions = [d for _n, d, _b in two["sightings"]]
    assert decisions.count("exact-duplicate") == 5 and decisions.count("duplicate") == 5
    # tasks after the first (inline) chunk hold duplicates, yet no committed pack is the driver's: nothing moved
    assert len(two["packs"]) > 3 and two["packs"] <= set(issued), two["packs"] - set(issued)
    assert two["files"] == two["names"]  # no pack written beside them, none left as an orphan
    checks = {c["id"]: c for c in mailarchive(tmp_path / "two", "verify", "--full", json_out=True, check=0).result["checks"]}
    assert checks["F01"]["status"] == "ok" and checks["Q03"]["status"] == "ok", (checks["F01"], checks["Q03"])
