"""Restore from a damaged SMB mirror (docs/reliability.md Q2, Q3, B6) and `db rebuild` (H7).

One source archive is built in-process (three imports → three packs, two
stamp batches from the local TSA plus unstamped mail, a full and an
incremental backup) and mirrored to the real Samba share; the tests then
run the real CLI against it.
"""
from __future__ import annotations

import hashlib
import json
import secrets
import shutil
from pathlib import Path

import pytest

from importers.eml import EmlImporter
from media_tools import backup as bk
from media_tools.mirror import mirror
from tests.cli import PASSWORD, mailarchive
from tests.corpora import REPO
from tests.integration.test_backup_mirror import write_new_mails
from toolkit.archive import Archive
from toolkit.ingest import ingest
from toolkit.keybackup import write_key_backup
from toolkit.storage import open_storage
from verify.merkle import merkle_root
from verify.stamping import batch_leaves, stamp_pending

SAMPLE = REPO / "sample_data" / "eml"


def _snapshot(home: Path) -> dict:
    with Archive.open(home) as a, a.catalog.reading() as con:
        return {
            "messages": con.execute("SELECT msg_id, blob_id, batch_id FROM messages ORDER BY msg_id").fetchall(),
            "batches": con.execute(
                "SELECT batch_id, first_msg_id, last_msg_id, leaf_count, merkle_root, token, status, manifest_name "
                "FROM stamp_batches ORDER BY batch_id").fetchall(),
            "packs": {name: (run_id, [r[0] for r in con.execute(
                "SELECT msg_id FROM messages WHERE pack_id = ? ORDER BY msg_id", [pid]).fetchall()])
                for pid, name, run_id in con.execute("SELECT pack_id, name, run_id FROM packs").fetchall()},
            "recipients": con.execute("SELECT count(*) FROM recipients").fetchone()[0],
        }


@pytest.fixture(scope="module")
def source(tmp_path_factory, samba, tsa):
    base = tmp_path_factory.mktemp("source")
    home, medium = base / "home", base / "m1"
    Archive.create(home, str(medium)).close()
    mailarchive(home, "timestamp", "configure", "--tsa-url", tsa.url, "--ca-cert", str(tsa.ca_cert_path))
    ca = tsa.ca_cert_path.read_bytes()
    with Archive.open(home, writer=True) as a:
        write_key_backup(base / "kb.txt", a.key, a.uuid, PASSWORD.encode())
        ingest(a, EmlImporter(str(SAMPLE / "2019")))
        ingest(a, EmlImporter(str(SAMPLE / "2020")))
        stamped = stamp_pending(a, tsa_url=tsa.url, ca_pem=ca, all_=True, batch_size=10)
        assert len(stamped) >= 2
        ingest(a, EmlImporter(str(SAMPLE / "2021")))  # stays unstamped
        full = bk.create_backup(a, "full")
        ingest(a, EmlImporter(str(write_new_mails(base / "new", 2, "late"))))
        incr = bk.create_backup(a, "incremental")
        sub = f"t-{secrets.token_hex(6)}"
        dest = open_storage(samba.url(sub), samba.password)
        try:
            s = mirror(a, dest)
        finally:
            dest.close()
        assert s.complete and not s.problems
    return {
        "base": base, "home": home, "medium": medium, "kb": base / "kb.txt", "url": samba.url(sub),
        "dest_dir": samba.share_dir / sub, "full": full.name, "incr": incr.name, "before": _snapshot(home),
        "env": {"MAILARCHIVE_SMB_PASSWORD": samba.password},
    }


def test_restore_reports_losses_and_refuses_truncated_backup(source, tmp_path):
    """Q2: one pack missing and one corrupt at DEST → exactly their messages listed, exit 1.
    B6: the newest (incremental) backup truncated → refused, the previous verified chain used.
    Q3: the mirror's own state names a newer backup than the one usable → reported as behind, with the
    packs and mails the restored catalog lacks against the mirror's last run."""
    before = source["before"]
    dest_dir = Path(str(source["dest_dir"]) + "-damaged")
    shutil.copytree(source["dest_dir"], dest_dir)
    url = source["url"] + "-damaged"
    by_run = {run: (name, ids) for name, (run, ids) in before["packs"].items()}
    missing_pack, missing_ids = by_run[1]
    corrupt_pack, corrupt_ids = by_run[2]
    (dest_dir / "medium-1" / missing_pack).unlink()
    p = dest_dir / "medium-1" / corrupt_pack
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0x01
    p.write_bytes(bytes(data))
    b = dest_dir / "medium-1" / source["incr"]
    b.write_bytes(b.read_bytes()[:-100])

    new_home = tmp_path / "restored"
    r = mailarchive(new_home, "restore", "--from", url, "--key-backup", str(source["kb"]),
                    env=source["env"], json_out=True, check=1).result
    assert r["status"] == "restored with losses"
    assert [x["backup"] for x in r["refused_backups"]] == [source["incr"]]
    assert "authentication failed" in r["refused_backups"][0]["problem"]
    assert r["chain"] == [source["full"]]
    losses = {x["pack"]: x for x in r["losses"]}
    assert set(losses) == {missing_pack, corrupt_pack}
    assert losses[missing_pack]["problem"] == "missing" and losses[missing_pack]["msg_ids"] == missing_ids
    assert "BLAKE3" in losses[corrupt_pack]["problem"] and losses[corrupt_pack]["msg_ids"] == corrupt_ids
    assert r["lost_messages"] == len(missing_ids) + len(corrupt_ids)
    assert r["packs"] == 3 and r["packs_ok"] == 1
    assert r["packs_not_in_catalog"] == 1  # the pack of the late import: newer than the full backup
    assert any("1 backup(s) behind" in w for w in r["warnings"])
    # Q3 with numbers: against the mirror's last run the restored catalog lacks the late import's pack
    assert r["behind"] == {"mails": 2, "packs": 1, "batches": 0}
    assert any(w.startswith("the restored catalog is 0 stamp batch(es), 1 pack(s) and 2 mail(s) behind the "
                            "mirror's last run") for w in r["warnings"]), r["warnings"]
    # the restored home is usable: the intact pack exports, the lost ones are named
    s = mailarchive(new_home, "stats", json_out=True, env=source["env"]).result
    assert s["messages"] == len(before["messages"]) - 2  # the full backup predates the 2 late mails


def test_rebuild_from_media(source, tmp_path):
    """H7: total loss of the catalog → `db rebuild` gives the same messages, blob ids and stamp batches."""
    home = tmp_path / "home"
    shutil.copytree(source["home"], home)  # the medium stays where the config points
    (home / "catalog.duckdb").unlink()
    before = source["before"]
    r = mailarchive(home, "db", "rebuild", json_out=True).result
    assert r["messages"] == len(before["messages"]) and r["packs"] == len(before["packs"])
    assert r["stamp_batches"] == len(before["batches"]) and not r["stamp_problems"] and not r["unreadable"]
    assert r["lost"]["sightings"] is None  # nothing to count from: reported lost, not invented
    after = _snapshot(home)
    assert {m[1] for m in after["messages"]} == {m[1] for m in before["messages"]}
    assert {(m[1], m[2]) for m in after["messages"]} == {(m[1], m[2]) for m in before["messages"]}
    assert after["batches"] == before["batches"]  # msg_id ranges included: batches keep their order
    assert after["recipients"] == before["recipients"]
    with Archive.open(home) as a, a.catalog.reading() as con:
        for batch_id, *_rest, root, _tok, _st, _mf in after["batches"]:
            assert merkle_root([leaf for _, leaf in batch_leaves(con, batch_id)]).hex() == root
        assert con.execute("SELECT count(*) FROM sightings").fetchone()[0] == 0

    out = tmp_path / "export"
    mailarchive(home, "export", "eml", str(out))
    rows = json.loads((out / "manifest.json").read_text())["messages"]
    assert {row["sha256"] for row in rows} == {m[1] for m in before["messages"]}
    assert all(hashlib.sha256((out / row["path"]).read_bytes()).hexdigest() == row["sha256"] for row in rows)

    mailarchive(home, "verify", "--full")  # exit 0, stamps included

    again = mailarchive(home, "db", "rebuild", check=2)
    assert "--force" in again.stderr
