"""Purging approved deletions (docs/retention.md "Purge and tombstones"): the purged mails' bytes leave
the media, every other mail stays readable and provable, the stamps still recompute from tombstones,
and a purge killed at each step completes when rerun."""
from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli import PASSWORD, mailarchive, run_cli
from tests.integration.verify_support import build_archive, clone, messages
from toolkit.archive import Archive
from toolkit.catalog import purge_rows, retention as retention_rows
from toolkit.pack import PackReader
from verify.evidence import verify_evidence

from fixtures_tsa import tsa  # noqa: F401

MARKER_A = b"line A: revenue"     # only in twin A's body
MARKER_B = b"line B: revenue"


@pytest.fixture(scope="module")
def base(tmp_path_factory, tsa):  # noqa: F811
    root = tmp_path_factory.mktemp("purge-base")
    build_archive(root, tsa)
    return root


def _twins(home: Path) -> tuple[dict, dict]:
    rows = messages(home)
    a = [r for r in rows.values() if r["subject"] == "Twin message A"][0]
    b = [r for r in rows.values() if r["subject"] == "Twin message B"][0]
    return a, b


def _approve(home: Path, msg_ids: list[int]) -> int:
    """An approved request for ``msg_ids``, whose senders' domains are under a 0-year policy (so the
    retention rules asked at purge time call them deletable)."""
    now = dt.datetime.now(dt.timezone.utc)
    with Archive.open(home, writer=True) as archive:
        with archive.catalog.writing() as con:
            domains = {r[0] for r in con.execute(
                "SELECT DISTINCT split_part(lower(from_addr), '@', -1) FROM messages "
                "WHERE msg_id IN (SELECT unnest(?::BIGINT[]))", [msg_ids]).fetchall()}
            for d in sorted(domains):
                retention_rows.set_policy(con, "domain", d, 0, "records-manager")
            return purge_rows.insert_approved_request(con, msg_ids, reason="test: wrongly archived",
                                                      requested_by="alice", approved_by="bob", now=now)


def _approved_twin(base, tmp_path):
    """A clone of the base archive whose twin A is approved for deletion: (home, A, its twin B, the other
    messages' ids)."""
    home = clone(base, tmp_path)
    a, b = _twins(home)
    others = set(messages(home)) - {a["msg_id"]}
    _approve(home, [a["msg_id"]])
    return home, a, b, others


def _plain_of_all_packs(home: Path) -> bytes:
    """Every mail byte the medium's packs hold, decrypted (the packs' own footers, not the catalog)."""
    out = []
    with Archive.open(home) as archive:
        storage = archive.storage(1)
        for e in storage.list("packs"):
            reader = PackReader(storage, e.name, archive.key, archive.uuid)
            for _entry, exc in reader.verify_all(on_data=lambda _e, chunk: out.append(bytes(chunk))):
                assert exc is None
    return b"".join(out)


def _purge(home: Path, fault: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "MAILARCHIVE_PASSWORD": PASSWORD, "MAILARCHIVE_ACTOR": "carol"}
    env.pop("MAILARCHIVE_FAULT", None)
    if fault:
        env["MAILARCHIVE_FAULT"] = fault
    return run_cli([sys.executable, "-m", "toolkit", "--archive", str(home), "--json", "purge"], env=env, timeout=300)


def _check_purged(home: Path, a: dict, b: dict, others: set[int]) -> None:
    """A is gone from catalog and media, B and every other mail readable, verify --full exits 0."""
    rows = messages(home)
    assert a["msg_id"] not in rows
    assert set(rows) == others
    plain = _plain_of_all_packs(home)
    assert MARKER_A not in plain and MARKER_B in plain
    assert not a["pack"].exists(), "the old pack of the purged mail is still on the medium"
    r = mailarchive(home, "verify", "--full", json_out=True).result
    q11 = [c for c in r["checks"] if c["id"] == "Q11"][0]
    assert "1 mail(s) deleted by approval" in q11["note"]
    with Archive.open(home) as archive:
        with archive.catalog.reading() as con:
            assert purge_rows.tombstones_of(con, [a["msg_id"]])[a["msg_id"]][0] == 1
            assert purge_rows.approved_requests(con) == []


def test_purge_removes_bytes_keeps_others_and_stamps(base, tmp_path, tsa):  # noqa: F811
    home = clone(base, tmp_path)
    a, b = _twins(home)
    assert a["pack"] == b["pack"] and a["batch"] == b["batch"] == 1
    others = set(messages(home)) - {a["msg_id"]}
    _approve(home, [a["msg_id"]])
    dry = mailarchive(home, "purge", "--dry-run", "--actor", "carol", json_out=True).result
    assert dry["requests"][0]["to_purge"] == [a["msg_id"]] and a["pack"].exists()
    p = _purge(home)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)["requests"][0]
    assert out["status"] == "purged" and out["purged"] == [a["msg_id"]] and len(out["packs_rewritten"]) == 1
    _check_purged(home, a, b, others)
    # the purged mail cannot be exported, and its evidence is refused with the reason
    exp = mailarchive(home, "export", "eml", str(tmp_path / "out"), "--where", f"m.msg_id = {a['msg_id']}",
                      json_out=True, check=None)
    assert exp.returncode != 0 or not list((tmp_path / "out").rglob("*.eml"))
    ev = mailarchive(home, "export", "evidence", str(tmp_path / "ev"), "--where",
                     f"m.msg_id IN ({a['msg_id']}, {b['msg_id']})", json_out=True, check=1).result
    assert ev["written"] == 1
    (err,) = ev["errors"]
    assert err["msg_id"] == a["msg_id"] and "purged" in err["error"] and "request 1" in err["error"]
    # the other mail of the same batch still proves, with the batch's original root
    (bundle,) = [d for d in (tmp_path / "ev").iterdir() if d.is_dir()]
    res = verify_evidence(bundle, ca_pem=Path(tsa.ca_cert_path).read_bytes())
    assert res.ok, res.problems
    # a second purge has nothing to do
    again = json.loads(_purge(home).stdout)
    assert again["requests"] == []
    # the purge itself is proven by the next stamp batch, and the archive still verifies in full
    mailarchive(home, "timestamp", "run", "--all")
    with Archive.open(home) as archive:
        with archive.catalog.reading() as con:
            purged = con.execute("SELECT batch_id FROM events WHERE kind = 'deletion-purged'").fetchall()
    assert len(purged) == 1 and purged[0][0] is not None, purged
    mailarchive(home, "verify", "--full")


POINTS = ["pack.before_commit", "purge_after_new_pack", "purge_after_switch", "purge_after_old_removed",
          "purge_before_done"]


@pytest.mark.parametrize("point", POINTS)
def test_purge_killed_at_each_step_then_rerun(base, tmp_path, point):
    home, a, b, others = _approved_twin(base, tmp_path)
    p = _purge(home, fault=point)
    assert p.returncode == -signal.SIGKILL, (p.returncode, p.stderr)
    p = _purge(home)
    assert p.returncode == 0, p.stderr
    _check_purged(home, a, b, others)


def test_mirror_keeps_purged_pack_until_delete_and_restore_does_not_bring_it_back(base, tmp_path):
    home = clone(base, tmp_path)
    a, b = _twins(home)
    old_rel = str(a["pack"].relative_to(tmp_path / "medium"))
    dest = tmp_path / "mirror"
    mailarchive(home, "mirror", str(dest), json_out=True)
    assert (dest / "medium-1" / old_rel).exists()
    _approve(home, [a["msg_id"]])
    assert _purge(home).returncode == 0
    plain = mailarchive(home, "mirror", str(dest), json_out=True).result
    assert plain["kept_at_dest"] == [f"medium-1/{old_rel}"] and plain["deleted"] == []
    assert (dest / "medium-1" / old_rel).exists()
    # restore from the mirror that still holds the old pack: the purged mail stays purged
    kb = tmp_path / "key-backup.txt"
    mailarchive(home, "key", "backup", "--out", str(kb))
    new_home = tmp_path / "restored"
    r = mailarchive(tmp_path / "unused", "restore", "--from", str(dest), "--key-backup", str(kb),
                    "--archive", str(new_home), json_out=True, check=None)
    assert r.returncode in (0, 1), (r.returncode, r.stdout, r.stderr)
    assert (new_home / "archive.toml").exists(), (r.returncode, r.stdout, r.stderr)
    rows = messages(new_home)
    assert a["msg_id"] not in rows and b["msg_id"] in rows
    out = tmp_path / "export"
    mailarchive(new_home, "export", "eml", str(out), json_out=True)
    exported = b"".join(p.read_bytes() for p in out.rglob("*.eml"))
    assert MARKER_B in exported and MARKER_A not in exported
    with Archive.open(new_home) as archive:
        with archive.catalog.reading() as con:
            assert a["msg_id"] in purge_rows.tombstones_of(con, [a["msg_id"]])
    # mirror --delete removes it at DEST
    deleted = mailarchive(home, "mirror", str(dest), "--delete", json_out=True).result
    assert f"medium-1/{old_rel}" in deleted["deleted"] and deleted["kept_at_dest"] == []
    assert not (dest / "medium-1" / old_rel).exists()


def test_purged_mail_with_a_stamped_journal_envelope_keeps_its_leaf(tmp_path, tsa):  # noqa: F811
    """The envelope's leaf is SHA-256(text) with the mail's blob id: it stays through the tombstone,
    its text goes; the batch's root still recomputes and the other mail still proves."""
    from importers.eml import EmlImporter
    from tests.corpora import REPO
    from tests.integration.verify_support import twin
    from toolkit.ingest import Ingest
    from verify.stamping import stamp_pending

    home = tmp_path / "home"
    archive = Archive.create(home, str(tmp_path / "medium"))
    try:
        src = tmp_path / "src"
        src.mkdir()
        (src / "direct.eml").write_bytes((REPO / "sample_data/eml/2021/projects/2021-03-15_vertragsentwurf.eml").read_bytes())
        (src / "journal.eml").write_bytes((REPO / "sample_data/journal/journal-report-1.eml").read_bytes())
        (src / "b.eml").write_bytes(twin("B"))
        Ingest(archive, workers=0).run(EmlImporter(str(src)))
        stamp_pending(archive, tsa_url=tsa.url, ca_pem=Path(tsa.ca_cert_path).read_bytes(), all_=True)
        archive.config.settings["timestamp"] = {"tsa_url": tsa.url, "ca_pem": Path(tsa.ca_cert_path).read_text()}
        archive.save_config()
    finally:
        archive.close()
    rows = messages(home)
    journaled = [r for r in rows.values() if r["subject"] != "Twin message B"][0]
    other = [r for r in rows.values() if r["subject"] == "Twin message B"][0]
    _approve(home, [journaled["msg_id"]])
    assert _purge(home).returncode == 0
    assert set(messages(home)) == {other["msg_id"]}
    mailarchive(home, "verify", "--full", json_out=True)
    ev = mailarchive(home, "export", "evidence", str(tmp_path / "ev"), json_out=True).result
    assert ev["written"] == 1 and ev["errors"] == []
    (bundle,) = [d for d in (tmp_path / "ev").iterdir() if d.is_dir()]
    assert verify_evidence(bundle, ca_pem=Path(tsa.ca_cert_path).read_bytes()).ok
    with Archive.open(home) as archive:
        with archive.catalog.reading() as con:
            from toolkit.catalog import stamps

            msgs, envs = stamps.batch_members(con, 1)
            texts = con.execute("SELECT text FROM envelopes").fetchall()
    assert texts == [("",)], "the purged mail's envelope keeps its hash and batch, not its text"
    assert journaled["blob_id"] in msgs and [b for b, _ in envs] == [journaled["blob_id"]]


def test_mail_not_deletable_now_stays_with_its_request(base, tmp_path):
    """When the rules asked at purge time refuse a mail — a legal hold placed on its sender after the
    approval — nothing of it moves and its request stays approved."""
    import media_tools.purge as purge_mod

    home = clone(base, tmp_path)
    a, _b = _twins(home)
    _approve(home, [a["msg_id"]])
    with Archive.open(home, writer=True) as archive:
        with archive.catalog.writing() as con:
            sender = con.execute("SELECT from_addr FROM messages WHERE msg_id = ?", [a["msg_id"]]).fetchone()[0]
            retention_rows.add_hold(con, "address", sender, "litigation", "legal")
    before = messages(home)
    with Archive.open(home, writer=True) as archive:
        (out,) = purge_mod.purge_approved(archive, actor="carol")
        with archive.catalog.reading() as con:
            assert [r[0] for r in purge_rows.approved_requests(con)] == [1]
    assert out.status == "approved" and out.kept == [a["msg_id"]] and out.purged == []
    assert messages(home) == before and a["pack"].exists()


def test_p7_adopt_never_brings_a_purged_mail_back(base, tmp_path):
    """A purge killed after its switch leaves the old pack (with the purged mail) on the medium, unknown to
    the catalog: `db adopt` reads it, finds the purged mail's tombstone and the kept mails archived, and
    adopts nothing; the rerun of the purge then removes the old pack."""
    home, a, b, others = _approved_twin(base, tmp_path)
    assert _purge(home, fault="purge_after_switch").returncode == -signal.SIGKILL
    assert a["pack"].exists()
    r = mailarchive(home, "db", "adopt", json_out=True).result
    assert not r["adopted"] and not r["refused"], r
    [old] = r["nothing_new"]
    assert old["purged"] == 1 and old["exact_duplicates"] == old["records"] - 1 and "purged" in old["reason"]
    assert a["msg_id"] not in messages(home)
    assert _purge(home).returncode == 0
    _check_purged(home, a, b, others)


def test_two_packs_two_batches_killed_between_packs(base, tmp_path):
    """A request over mails in two packs and two stamp batches, killed after the first pack's switch:
    the rerun finishes the second pack and removes both old packs."""
    home = clone(base, tmp_path)
    a, b = _twins(home)
    c = [r for r in messages(home).values() if r["subject"] == "Twin message C"][0]
    assert c["pack"] != a["pack"] and c["batch"] == 2
    others = set(messages(home)) - {a["msg_id"], c["msg_id"]}
    _approve(home, [a["msg_id"], c["msg_id"]])
    assert _purge(home, fault="purge_after_switch:1").returncode == -signal.SIGKILL
    assert len(set(messages(home)) & {a["msg_id"], c["msg_id"]}) == 1, "exactly one pack was switched"
    assert _purge(home).returncode == 0
    assert set(messages(home)) == others
    plain = _plain_of_all_packs(home)
    assert MARKER_A not in plain and b"line C: revenue" not in plain and MARKER_B in plain
    assert not a["pack"].exists() and not c["pack"].exists()
    r = mailarchive(home, "verify", "--full", json_out=True).result
    assert [ch["note"] for ch in r["checks"] if ch["id"] == "Q11"] == ["2 mail(s) deleted by approval"]


def _rebuilt_deletions(home: Path) -> tuple[list, list]:
    with Archive.open(home) as archive:
        with archive.catalog.reading() as con:
            tombs = con.execute("SELECT msg_id, blob_id, batch_id, request_id FROM tombstones").fetchall()
            reqs = con.execute("SELECT request_id, status, requested_by, decided_by, reason, purged_at IS NOT NULL "
                               "FROM deletion_requests").fetchall()
    return tombs, reqs


def _check_rebuilt_after_purge(home: Path, a: dict, b: dict, others: set[int]) -> None:
    """``db rebuild --force`` after the purge: the purged mail is a tombstone again (same msg_id, blob,
    batch, request), its request is purged, nothing of it is archived, and verify --full finds no missing
    leaf (F05 recomputes every root with the tombstone) and counts it under Q11."""
    r = mailarchive(home, "db", "rebuild", "--force", json_out=True, check=None)
    assert r.returncode in (0, 1), r.stderr
    res = json.loads(r.stdout)
    assert res["restored"]["tombstones"] == 1 and res["restored"]["deletion_requests"] == 1, res
    assert not res["deletion_records_unreadable"] and not res["purged_packs_left"], res
    assert not [p for p in res["stamp_problems"] if "not found on the media" in p["problem"]], res["stamp_problems"]
    tombs, reqs = _rebuilt_deletions(home)
    assert tombs == [(a["msg_id"], a["blob_id"], a["batch"], 1)]
    assert reqs == [(1, "purged", "alice", "bob", "test: wrongly archived", True)]
    rows = messages(home)
    assert set(rows) == others and a["blob_id"] not in {x["blob_id"] for x in rows.values()}
    v = mailarchive(home, "verify", "--full", json_out=True, check=None).result
    checks = {c["id"]: c for c in v["checks"]}
    assert checks["F05"]["status"] != "finding", checks["F05"]
    assert "1 mail(s) deleted by approval" in checks["Q11"]["note"]
    assert all(c["status"] != "finding" for c in v["checks"] if c["id"] not in ("F05",)), \
        [c for c in v["checks"] if c["status"] == "finding"]


def test_rebuild_after_a_purge_keeps_the_purge_and_reports_no_missing_leaf(base, tmp_path):
    """The deletion record the purge wrote beside the packs (docs/formats.md "Deletion records") brings the
    tombstone and the request back into a catalog rebuilt from the media."""
    home, a, b, others = _approved_twin(base, tmp_path)
    assert _purge(home).returncode == 0
    names = {p.name for p in (tmp_path / "medium" / "deletions").iterdir()}
    assert len(names) == 2 and "00000001-done.deletion" in names, names
    assert f"00000001-{a['pack_id']}.deletion" in names, names  # request 1, the pack it purged
    mailarchive(home, "mirror", str(tmp_path / "mirror"), json_out=True)  # the mirror carries the records
    assert {p.name for p in (tmp_path / "mirror" / "medium-1" / "deletions").iterdir()} == names
    _check_rebuilt_after_purge(home, a, b, others)
    # a record altered on the medium does not open: the rebuild names it and exits 1, it invents nothing
    rec = tmp_path / "medium" / "deletions" / f"00000001-{a['pack_id']}.deletion"
    data = bytearray(rec.read_bytes())
    data[-5] ^= 1
    rec.write_bytes(bytes(data))
    r = mailarchive(home, "db", "rebuild", "--force", json_out=True, check=1)
    res = json.loads(r.stdout)
    assert [u["record"] for u in res["deletion_records_unreadable"]] == [f"deletions/{rec.name}"], res
    assert _rebuilt_deletions(home)[0] == []


@pytest.mark.parametrize("point", ["purge_after_record", "purge_after_done_record"])
def test_purge_killed_after_its_deletion_record_resumes_and_rebuilds_alike(base, tmp_path, point):
    """Killed between writing a deletion record and the catalog commit: the rerun finds the record and
    uses it as it is (its purge time too); the rebuild after it equals the one after an uninterrupted purge."""
    home, a, b, others = _approved_twin(base, tmp_path)
    p = _purge(home, fault=point)
    assert p.returncode == -signal.SIGKILL, (p.returncode, p.stderr)
    written = {p.name: p.read_bytes() for p in (tmp_path / "medium" / "deletions").iterdir()}
    assert len(written) == (1 if point == "purge_after_record" else 2), written
    p = _purge(home)
    assert p.returncode == 0, p.stderr
    after = {p.name: p.read_bytes() for p in (tmp_path / "medium" / "deletions").iterdir()}
    assert len(after) == 2 and all(after[n] == data for n, data in written.items())  # kept as they were
    _check_purged(home, a, b, others)
    with Archive.open(home) as archive:
        with archive.catalog.reading() as con:
            purged_at = con.execute("SELECT purged_at FROM tombstones").fetchone()[0]
        from media_tools import deletion_records

        storage = archive.storage(1)
        (rec,) = [d for d in deletion_records.read_records(archive, storage)[0] if d["kind"] == "pack-purged"]
    assert dt.datetime.fromisoformat(rec["purged_at"]) == purged_at  # the killed run's record gave the time
    _check_rebuilt_after_purge(home, a, b, others)


def test_rebuild_between_a_purge_s_switch_and_its_removal_never_takes_the_old_pack_back(base, tmp_path):
    """Killed after the catalog switch, before the old pack is removed, and the catalog then rebuilt from
    the media: the old pack (which still holds the purged mail) is left out by its deletion record and
    named; the request is approved again (its done record was never written), and the rerun purge removes
    the old pack and finishes the request."""
    home, a, b, others = _approved_twin(base, tmp_path)
    assert _purge(home, fault="purge_after_switch").returncode == -signal.SIGKILL
    assert a["pack"].exists()
    res = mailarchive(home, "db", "rebuild", "--force", json_out=True, check=None)
    res = json.loads(res.stdout)
    assert res["purged_packs_left"] == [f"medium 1: {a['pack'].relative_to(tmp_path / 'medium')}"], res
    assert a["blob_id"] not in {x["blob_id"] for x in messages(home).values()}
    tombs, reqs = _rebuilt_deletions(home)
    assert tombs == [(a["msg_id"], a["blob_id"], a["batch"], 1)] and reqs[0][1] == "approved", (tombs, reqs)
    p = _purge(home)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["requests"][0]["status"] == "purged"
    _check_purged(home, a, b, others)


def test_rebuild_gets_the_stamped_deletion_events_back_from_the_manifests(base, tmp_path, tsa):  # noqa: F811
    """Request, approval and purge through the command line, each stamped: the manifests carry the events'
    canonical documents, so a rebuilt catalog has the three events again with their ids, times and
    batches, every batch's root recomputes (messages, tombstone and event leaves) and verify --full is clean."""
    home = clone(base, tmp_path)
    a, b = _twins(home)
    dom = [r for r in mailarchive(home, "sql", f"SELECT from_addr FROM messages WHERE msg_id = {a['msg_id']}",
                                  "--format", "json").stdout.split('"') if "@" in r][0].split("@")[-1]
    mailarchive(home, "retention", "set", "--years", "0", "--domain", dom, "--actor", "lead")
    mailarchive(home, "delete", "request", "--where", f"m.msg_id = {a['msg_id']}", "--reason", "wrongly archived",
                "--actor", "alice")
    mailarchive(home, "delete", "approve", "1", "--actor", "bob")
    mailarchive(home, "timestamp", "run", "--all")
    assert _purge(home).returncode == 0
    mailarchive(home, "timestamp", "run", "--all")

    def stamped_events():
        with Archive.open(home) as archive:
            with archive.catalog.reading() as con:
                rows = con.execute("SELECT event_id, at_time, kind, detail, batch_id FROM events WHERE kind LIKE "
                                   "'deletion-%' AND batch_id IS NOT NULL ORDER BY event_id").fetchall()
        return [(i, at, k, json.loads(d), bat) for i, at, k, d, bat in rows]  # the detail's text may order keys
    before = stamped_events()
    assert [e[2] for e in before] == ["deletion-requested", "deletion-approved", "deletion-purged"], before
    res = json.loads(mailarchive(home, "db", "rebuild", "--force", json_out=True, check=None).stdout)
    assert res["restored"]["stamped_events"] == 3, res["restored"]
    assert not [p for p in res["stamp_problems"] if "event" in p["problem"] or "not found" in p["problem"]], \
        res["stamp_problems"]
    assert stamped_events() == before
    tombs, reqs = _rebuilt_deletions(home)
    assert tombs == [(a["msg_id"], a["blob_id"], a["batch"], 1)]
    assert reqs == [(1, "purged", "alice", "bob", "wrongly archived", True)]
    v = mailarchive(home, "verify", "--full", json_out=True).result
    assert "1 mail(s) deleted by approval" in [c for c in v["checks"] if c["id"] == "Q11"][0]["note"]


def test_a_purge_beyond_its_catalog_memory_limit_is_a_clear_error_and_a_rerun_completes(base, tmp_path, monkeypatch):
    """A read of the purge that needs more than its DuckDB memory limit was a traceback (branch purgewal met one
    under a lowered limit); now it is the operator's error, and a rerun under the real limit completes the purge."""
    from media_tools.purge import purge_approved
    from toolkit.errors import CatalogMemoryLimitError

    home, a, _b, _others = _approved_twin(base, tmp_path)
    monkeypatch.setattr(retention_rows, "MEMORY_LIMIT", 256 << 10)
    with Archive.open(home, writer=True) as archive:
        with pytest.raises(CatalogMemoryLimitError, match="rerun the command to complete it"):
            purge_approved(archive, actor="bob")
    monkeypatch.undo()
    with Archive.open(home, writer=True) as archive:
        assert [o.status for o in purge_approved(archive, actor="bob")] == ["purged"]
    assert a["msg_id"] not in messages(home)
    assert not list(home.glob("catalog.duckdb.wal")) and not list(home.glob("catalog.duckdb.guard"))
