"""Media consolidation with ID remapping (docs/reliability.md P1, P5, P6, P8, P10, E6).

The heavy matrix runs in-process (Archive + media_tools.consolidate); the CLI
is used end to end for the Samba case, the kill -9 points and one refusal.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from exporters.eml import export_eml
from importers.eml import EmlImporter
from media_tools import registry
from media_tools.consolidate import ConsolidationRefused, SourceDamaged, consolidate, plan_consolidation
from tests.cli import mailarchive
from toolkit.archive import Archive
from toolkit.ingest import Ingest
from toolkit.pack import PackReader
from toolkit.reporter import NullReporter
from toolkit.retrieval import read_messages, select_messages

KILL_POINTS = ["consolidate_after_copy", "consolidate_after_verify", "consolidate_after_meta", "consolidate_after_commit",
               "consolidate_before_retire"]


def write_mails(d: Path, tag: str, n: int) -> Path:
    d.mkdir(parents=True)
    for i in range(n):
        (d / f"{i:03d}.eml").write_bytes(
            f"From: a@example.com\r\nTo: b@example.com\r\nSubject: {tag} mail {i}\r\n"
            f"Message-ID: <{tag}.{i}@example.com>\r\nDate: Mon, 1 Jan 2024 00:00:{i % 60:02d} +0000\r\n\r\n"
            f"body of {tag} {i}: {os.urandom(64).hex()}\r\n".encode()
        )
    return d


def fill(archive: Archive, tmp: Path, medium_id: int, batches: int = 2, per_batch: int = 4) -> None:
    """Import ``batches`` separate runs (one pack each) into the active medium."""
    assert archive.active_medium_id() == medium_id
    for b in range(batches):
        src = write_mails(tmp / f"mails-{medium_id}-{b}-{os.urandom(3).hex()}", f"m{medium_id}b{b}", per_batch)
        assert Ingest(archive, NullReporter()).run(EmlImporter(str(src))).status == "complete"


def build(tmp: Path, locations: list[str], smb_password: str | None = None) -> Path:
    """Media 1..n at ``locations``, each filled while it was the active medium; the last stays active."""
    home = tmp / "home"
    archive = Archive.create(home, locations[0], smb_password=smb_password)
    try:
        fill(archive, tmp, 1)
        for i, loc in enumerate(locations[1:], start=2):
            registry.add(archive, loc, activate=True, smb_password=smb_password)
            fill(archive, tmp, i)
    finally:
        archive.close()
    return home


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """Three local media, two packs each, medium 3 active; built once and cloned per test."""
    root = tmp_path_factory.mktemp("template")
    build(root, [str(root / "m1"), str(root / "m2"), str(root / "m3")])
    return root


def clone(template: Path, tmp: Path) -> Path:
    """A copy of the template archive whose media point at the copied directories."""
    root = tmp / "a"
    shutil.copytree(template, root, symlinks=True)
    config = root / "home" / "archive.toml"
    config.write_text(config.read_text().replace(f'"{template}/', f'"{root}/'))
    with Archive.open(root / "home", writer=True) as archive:
        archive.sync_media_table()
    return root


def digests(archive: Archive) -> list[str]:
    out = []
    for sm, data in read_messages(archive, select_messages(archive)):
        assert not isinstance(data, Exception), f"mail {sm.msg_id}: {data}"
        out.append(hashlib.sha256(data).hexdigest())
    return sorted(out)


def export_digests(home: Path, dest: Path, cli: bool = True) -> list[str]:
    if cli:
        mailarchive(home, "export", "eml", str(dest))
    else:
        with Archive.open(home) as archive:
            assert not export_eml(archive, dest).errors
    return sorted(hashlib.sha256(p.read_bytes()).hexdigest() for p in dest.rglob("*.eml"))


def packs_by_medium(archive: Archive) -> dict[int, list[str]]:
    with archive.catalog.reading() as con:
        rows = con.execute("SELECT medium_id, pack_id FROM packs ORDER BY pack_id").fetchall()
    out: dict[int, list[str]] = {}
    for mid, pid in rows:
        out.setdefault(mid, []).append(pid)
    return out


def assert_consolidated(home: Path, sources: list[int], target: int, all_packs: list[str], before: list[str]) -> None:
    """P5 end state: every pack once, all on the target, each target copy verifies, mails unchanged."""
    with Archive.open(home) as archive:
        by = packs_by_medium(archive)
        assert sorted(by.get(target, [])) == sorted(all_packs)          # no lost, no doubled pack
        assert all(not by.get(s) for s in sources)
        with archive.catalog.reading() as con:
            names = con.execute("SELECT name, blake3 FROM packs WHERE medium_id = ?", [target]).fetchall()
        dst = archive.storage(target)
        for name, sha in names:
            reader = PackReader(dst, name, archive.key, archive.uuid)
            assert all(exc is None for _, exc in reader.verify_all())
            assert reader.file_blake3.hex() == sha
        for s in sources:
            m = archive.config.medium(s)
            assert (m.state, m.alias_of) == ("retired", target)
        assert digests(archive) == before


# ------------------------------------------------------------------------------- acceptance 1


def test_consolidate_local_and_smb_media_into_local_then_new_id(tmp_path, smb_location, samba):
    """Acceptance 1 (CLI end to end): media 1 (local), 2 (Samba), 3 (local); consolidate 1,2 → 3 (P1, P8)."""
    home = build(tmp_path, [str(tmp_path / "m1"), smb_location, str(tmp_path / "m3")], smb_password=samba.password)
    before = export_digests(home, tmp_path / "before", cli=False)
    assert len(before) == 24
    with Archive.open(home) as archive:
        all_packs = sorted(p for ps in packs_by_medium(archive).values() for p in ps)
    assert len(all_packs) == 6

    dry = mailarchive(home, "media", "consolidate", "--from", "1,2", "--into", "3", "--dry-run", json_out=True).result
    assert dry["plan"]["ok"] and len(dry["plan"]["packs"]) == 4 and dry["plan"]["free_space"] > 0
    with Archive.open(home) as archive:   # a dry run changes nothing
        assert set(packs_by_medium(archive)) == {1, 2, 3}

    r = mailarchive(home, "media", "consolidate", "--from", "1,2", "--into", "3", json_out=True).result
    assert r["status"] == "complete" and r["summary"]["packs_moved"] == 4 and r["lost"] == []
    assert {p["status"] for p in r["packs"]} == {"moved"}

    assert export_digests(home, tmp_path / "after") == before
    media = {m["id"]: m for m in mailarchive(home, "media", "list", json_out=True).result["media"]}
    assert (media[1]["state"], media[1]["alias_of"]) == ("retired", 3)
    assert (media[2]["state"], media[2]["alias_of"]) == ("retired", 3)
    assert media[3]["packs"] == 6 and media[3]["messages"] == 24
    assert media[1]["packs"] == media[2]["packs"] == 0
    # retired IDs are never handed out again (P1)
    assert mailarchive(home, "media", "add", str(tmp_path / "m4"), json_out=True).result["id"] == 4
    # the remap is logged (P8): one event per pack plus the media remap
    with Archive.open(home, writer=True) as archive:
        with archive.catalog.reading() as con:
            events = con.execute("SELECT kind, detail FROM events ORDER BY event_id").fetchall()
        assert [k for k, _ in events].count("pack-moved") == 4
        remap = json.loads(next(d for k, d in events if k == "media-consolidated"))
        assert remap["remap"] == {"1": 3, "2": 3}
        # rerunning a finished consolidation is a no-op
        assert consolidate(archive, [1, 2], 3)["summary"]["packs_moved"] == 0
    assert_consolidated(home, [1, 2], 3, all_packs, before)


def test_p8_stamps_verify_after_consolidation(template, tmp_path, tsa_ok):
    """P8: two batches stamped at the test TSA, their manifests on media 1 and 2; after consolidating 1,2 → 3
    and moving the old media's folders away, `verify --full` passes (every token, root and manifest), and
    each mail read back from medium 3 gives its batch's stamped root through its own inclusion path."""
    from verify.merkle import inclusion_path, leaf_hash_message, merkle_root, root_from_path
    from verify.stamping import batch_leaves
    from verify.tokens import verify_token

    root = clone(template, tmp_path)
    home = root / "home"
    mailarchive(home, "timestamp", "configure", "--tsa-url", tsa_ok.url, "--ca-cert", str(tsa_ok.ca_cert_path))
    mailarchive(home, "media", "activate", "1")
    first = mailarchive(home, "timestamp", "run", "--all", json_out=True).result["stamped"]
    mailarchive(home, "import", "eml", str(write_mails(root / "late", "late", 3)))
    mailarchive(home, "media", "activate", "2")
    second = mailarchive(home, "timestamp", "run", "--all", json_out=True).result["stamped"]
    assert [b["leaf_count"] for b in first + second] == [24, 3]
    assert (root / "m1" / first[0]["manifest"]).is_file() and (root / "m2" / second[0]["manifest"]).is_file()
    mailarchive(home, "media", "activate", "3")
    r = mailarchive(home, "media", "consolidate", "--from", "1,2", "--into", "3", json_out=True).result
    assert r["status"] == "complete" and r["summary"]["packs_moved"] == 5
    for old in ("m1", "m2"):  # only medium 3 can answer now
        (root / old).rename(root / f"{old}-gone")

    v = mailarchive(home, "verify", "--full", json_out=True).result
    checks = {c["id"]: c for c in v["checks"]}
    assert v["totals"]["findings"] == 0, [c for c in v["checks"] if c["count"]]
    assert all(checks[i]["count"] == 0 for i in ("F01", "F02", "F03", "F05", "F06", "F07"))
    assert checks["F06"]["note"].startswith("2 stamped batches")

    ca_pem = tsa_ok.ca_cert_path.read_bytes()
    with Archive.open(home) as archive:
        assert set(packs_by_medium(archive)) == {3}
        mails = {sm.msg_id: data for sm, data in read_messages(archive, select_messages(archive))}
        with archive.catalog.reading() as con:
            batches = con.execute("SELECT batch_id, merkle_root, token, nonce, medium_id FROM stamp_batches "
                                  "ORDER BY batch_id").fetchall()
            members = {b: [m for (m,) in con.execute("SELECT msg_id FROM messages WHERE batch_id = ? ORDER BY msg_id",
                                                     [b]).fetchall()] for b, *_ in batches}
            catalog_leaves = {b: [h for _, h in batch_leaves(con, b)] for b, *_ in batches}
    assert [b[4] for b in batches] == [3, 3]  # the manifests moved with their packs
    assert sorted(m for ms in members.values() for m in ms) == sorted(mails)
    for batch, root_hex, token, nonce, _medium in batches:
        stamped_root = bytes.fromhex(root_hex)
        assert verify_token(token, stamped_root, ca_pem, nonce=int(nonce)).ok
        leaves = [leaf_hash_message(hashlib.sha256(mails[m]).digest()) for m in members[batch]]
        assert leaves == catalog_leaves[batch] and merkle_root(leaves) == stamped_root
        for i, leaf in enumerate(leaves):
            assert root_from_path(leaf, i, len(leaves), inclusion_path(leaves, i)) == stamped_root


def digests_of(home: Path) -> list[str]:
    with Archive.open(home) as archive:
        return digests(archive)


def test_consolidate_local_onto_smb_and_purge(tmp_path, smb_location, samba):
    """Local media consolidated onto a Samba medium; --purge-sources deletes only verified, committed packs."""
    home = build(tmp_path, [str(tmp_path / "m1"), str(tmp_path / "m2"), smb_location], smb_password=samba.password)
    with Archive.open(home, writer=True) as archive:
        before = digests(archive)
        all_packs = sorted(p for ps in packs_by_medium(archive).values() for p in ps)
        result = consolidate(archive, [1, 2], 3, purge_sources=True)
        assert result["summary"]["packs_moved"] == 4 and len(result["purged"]) == 4
    assert not list((tmp_path / "m1" / "packs").rglob("*.pack"))
    assert not list((tmp_path / "m2" / "packs").rglob("*.pack"))
    assert (tmp_path / "m1" / "MEDIUM.json").exists()   # only pack files are purged
    assert_consolidated(home, [1, 2], 3, all_packs, before)


def test_consolidate_smb_onto_local(tmp_path, smb_location, samba):
    """An SMB medium consolidated onto a local one; its files stay on the share."""
    home = build(tmp_path, [smb_location, str(tmp_path / "m2")], smb_password=samba.password)
    with Archive.open(home, writer=True) as archive:
        before = digests(archive)
        all_packs = sorted(p for ps in packs_by_medium(archive).values() for p in ps)
        consolidate(archive, [1], 2)
    assert_consolidated(home, [1], 2, all_packs, before)


# ------------------------------------------------------------------------------- acceptance 2


@pytest.mark.parametrize("point", KILL_POINTS)
def test_kill_at_each_step_then_rerun(template, tmp_path, point):
    """P5: kill -9 at each named step, rerun the same command: same end state, no lost or doubled pack."""
    home = clone(template, tmp_path) / "home"
    with Archive.open(home) as archive:
        before = digests(archive)
        all_packs = sorted(p for ps in packs_by_medium(archive).values() for p in ps)
    args = ["media", "consolidate", "--from", "1,2", "--into", "3"]
    p = mailarchive(home, *args, env={"MAILARCHIVE_FAULT": point}, check=None)
    assert p.returncode == -9, p.stderr
    with Archive.open(home) as archive:   # after the kill, every mail is still readable
        assert digests(archive) == before
        assert sorted(p for ps in packs_by_medium(archive).values() for p in ps) == all_packs
    r = mailarchive(home, *args, json_out=True).result
    assert r["status"] == "complete"
    assert_consolidated(home, [1, 2], 3, all_packs, before)
    if point == "consolidate_after_commit":   # the killed run had moved every pack in its one remap commit
        assert r["summary"]["packs_moved"] == 0


def test_kill_before_the_remap_commit_moves_no_pack_and_no_backup_row(template, tmp_path):
    """P5: the remap is one transaction for the packs and the stamp/backup rows: a kill after every copy
    (packs and a catalog backup of a source) but before that commit leaves every row on the sources; the
    rerun reuses the verified copies and moves packs and backup rows together."""
    home = clone(template, tmp_path) / "home"
    mailarchive(home, "media", "activate", "1")
    mailarchive(home, "db", "backup", "--full")                      # a backup file on source medium 1
    mailarchive(home, "media", "activate", "3")
    backup_media = "SELECT medium_id FROM db_backups WHERE medium_id IS NOT NULL"
    with Archive.open(home) as archive:
        all_packs = sorted(p for ps in packs_by_medium(archive).values() for p in ps)
        on_source = {mid: ids for mid, ids in packs_by_medium(archive).items() if mid in (1, 2)}
        with archive.catalog.reading() as con:
            assert {r[0] for r in con.execute(backup_media).fetchall()} == {1}
    args = ["media", "consolidate", "--from", "1,2", "--into", "3"]
    p = mailarchive(home, *args, env={"MAILARCHIVE_FAULT": "consolidate_after_meta"}, check=None)
    assert p.returncode == -9, p.stderr
    with Archive.open(home) as archive:
        assert {mid: ids for mid, ids in packs_by_medium(archive).items() if mid in (1, 2)} == on_source
        with archive.catalog.reading() as con:
            assert {r[0] for r in con.execute(backup_media).fetchall()} == {1}
    r = mailarchive(home, *args, json_out=True).result
    assert r["summary"]["already_copied"] == sum(map(len, on_source.values())) and r["summary"]["bytes_copied"] == 0
    backups = [m for m in r["meta"] if m["file"].startswith("db-backups/")]
    assert backups and not any(m["copied"] for m in backups)         # the killed run's copies, reused
    with Archive.open(home) as archive:
        assert sorted(packs_by_medium(archive).get(3, [])) == all_packs
        with archive.catalog.reading() as con:
            assert {r[0] for r in con.execute(backup_media).fetchall()} == {3}


def test_kill_mid_copy_leaves_reusable_copies(template, tmp_path):
    """P5: a copy finished by a killed run is verified and reused, not copied twice."""
    home = clone(template, tmp_path) / "home"
    p = mailarchive(home, "media", "consolidate", "--from", "1", "--into", "3",
                    env={"MAILARCHIVE_FAULT": "consolidate_after_verify:2"}, check=None)
    assert p.returncode == -9
    r = mailarchive(home, "media", "consolidate", "--from", "1", "--into", "3", json_out=True).result
    assert r["summary"]["packs_moved"] == 2
    assert r["summary"]["already_copied"] >= 1


# ------------------------------------------------------------------------------- acceptance 3


def _corrupt_one_record(home: Path, medium_dir: Path) -> dict:
    """Flip a byte inside the first record of a pack on the medium; return that mail's catalog row."""
    with Archive.open(home) as archive, archive.catalog.reading() as con:
        name = sorted(p.relative_to(medium_dir).as_posix() for p in (medium_dir / "packs").rglob("*.pack"))[0]
        row = con.execute(
            """SELECT m.msg_id, m.subject, m."offset", m.message_id FROM messages m JOIN packs p USING (pack_id)
               WHERE p.name = ? ORDER BY m."offset" LIMIT 1""",
            [name],
        ).fetchone()
    path = medium_dir / name
    data = bytearray(path.read_bytes())
    data[row[2] + 20] ^= 0x01
    path.chmod(0o644)
    path.write_bytes(bytes(data))
    return {"msg_id": row[0], "subject": row[1], "message_id": row[3], "pack": name}


def test_corrupt_source_stops_before_anything_moves(template, tmp_path):
    """P6: a damaged source pack stops the consolidation, naming the mail; --accept-loss proceeds and lists it."""
    tmp_path = clone(template, tmp_path)
    home = tmp_path / "home"
    with Archive.open(home) as archive:
        layout = packs_by_medium(archive)
        target_files_before = sorted(p.name for p in (tmp_path / "m3" / "packs").rglob("*.pack"))
    bad = _corrupt_one_record(home, tmp_path / "m2")

    with Archive.open(home, writer=True) as archive:
        with pytest.raises(SourceDamaged) as info:
            consolidate(archive, [1, 2], 3)
        assert packs_by_medium(archive) == layout                     # nothing moved
        assert archive.config.medium(1).state == "standby"
    assert str(bad["msg_id"]) in str(info.value) and bad["subject"] in str(info.value)
    assert [m["msg_id"] for d in info.value.damaged for m in d["mails"]] == [bad["msg_id"]]
    assert sorted(p.name for p in (tmp_path / "m3" / "packs").rglob("*.pack")) == target_files_before

    # the CLI names the mail too, exits 1, and still moves nothing
    p = mailarchive(home, "media", "consolidate", "--from", "1,2", "--into", "3", check=1)
    assert bad["subject"] in p.stderr and "--accept-loss" in p.stderr

    with Archive.open(home, writer=True) as archive:
        result = consolidate(archive, [1, 2], 3, accept_loss=True, purge_sources=True)
        assert [m["msg_id"] for m in result["lost"]] == [bad["msg_id"]]
        assert set(packs_by_medium(archive)) == {3}
        readable = {sm.msg_id: data for sm, data in read_messages(archive, select_messages(archive))}
    assert sum(isinstance(v, Exception) for v in readable.values()) == 1
    assert isinstance(readable[bad["msg_id"]], Exception)
    # the damaged pack is never purged from its source; the clean ones are
    assert (tmp_path / "m2" / bad["pack"]).exists()
    assert len(result["purged"]) == 3


# ------------------------------------------------------------------------------- refusals


def test_refusals_up_front(template, tmp_path):
    """P10 source == target, E6 not enough space, unknown/active sources: refused, nothing copied."""
    tmp_path = clone(template, tmp_path)
    home = tmp_path / "home"
    p = mailarchive(home, "media", "consolidate", "--from", "2,3", "--into", "3", check=2)
    assert "both a source and the target" in p.stderr
    p = mailarchive(home, "media", "consolidate", "--from", "3", "--into", "3", check=2)  # 3: the active one
    assert "both a source and the target" in p.stderr and "media activate" not in p.stderr  # no hint that cannot help
    p = mailarchive(home, "media", "consolidate", "--from", "1,2,1", "--into", "3", check=2)
    assert "--from 1,2,1: medium 1 named twice" in p.stderr
    with Archive.open(home, writer=True) as archive:
        layout = packs_by_medium(archive)
        with pytest.raises(ConsolidationRefused, match="bytes free"):
            consolidate(archive, [1, 2], 3, margin=10**18)   # needs more than any disk has (E6)
        with pytest.raises(ConsolidationRefused, match="activate another medium first"):
            consolidate(archive, [3], 1)
        with pytest.raises(ConsolidationRefused, match="does not exist"):
            consolidate(archive, [9], 3)
        plan = plan_consolidation(archive, [1, 2], 3, margin=10**18, probe_media=False)
        assert not plan.ok and plan.copy_bytes == sum(p.bytes for p in plan.packs) > 0
        assert packs_by_medium(archive) == layout
    assert not [p for p in (tmp_path / "m3").rglob("*") if p.is_file() and p.parent.name == ".probe"]
    assert len(list((tmp_path / "m3" / "packs").rglob("*.pack"))) == 2


def test_target_that_reads_back_differently_stops_and_leaves_no_copy(template, tmp_path, monkeypatch):
    """The copy is verified by reading it back: a target that changes a byte stops the run, nothing moves,
    and the copies of this run are removed (the source stays the good one)."""
    from toolkit.errors import IntegrityError
    from toolkit.storage import local

    tmp_path = clone(template, tmp_path)
    home = tmp_path / "home"
    target_dir = tmp_path / "m3"
    before = sorted(p.name for p in (target_dir / "packs").rglob("*.pack"))
    real = local.LocalStorage.copy_in

    def flaky(self, name, src, src_name, chunk=8 << 20):
        n = real(self, name, src, src_name, chunk)
        if Path(self.root) == target_dir:
            path = target_dir / name
            path.chmod(0o644)
            data = bytearray(path.read_bytes())
            data[len(data) // 2] ^= 0x40
            path.write_bytes(bytes(data))
        return n

    monkeypatch.setattr(local.LocalStorage, "copy_in", flaky)
    with Archive.open(home, writer=True) as archive:
        layout = packs_by_medium(archive)
        with pytest.raises(IntegrityError, match="reads back differently.*unreliable"):
            consolidate(archive, [1, 2], 3)
        assert packs_by_medium(archive) == layout
        assert archive.config.medium(1).state == "standby"
    assert sorted(p.name for p in (target_dir / "packs").rglob("*.pack")) == before


def test_every_copy_is_read_back_and_the_catalog_is_opened_twice(template, tmp_path, monkeypatch):
    """The shorter fixed cost keeps the checks: each pack copied onto the target is read back once (its
    BLAKE3 compared with the catalog's), and the run attaches the catalog twice after the writer's open
    (one read for the plan, one read-write session for the remap's and the retire's commits)."""
    from toolkit.catalog.connection import Catalog
    from toolkit.storage import local

    tmp_path = clone(template, tmp_path)
    home, target_dir = tmp_path / "home", tmp_path / "m3"
    read_back: list[str] = []
    real_blake3 = local.LocalStorage.blake3

    def blake3(self, name):
        if Path(self.root) == target_dir and name.startswith("packs/"):
            read_back.append(name)
        return real_blake3(self, name)

    attaches: list[bool] = []
    real_attach = Catalog._attach_on

    def attach(self, con, read_only):
        attaches.append(read_only)
        return real_attach(self, con, read_only)

    monkeypatch.setattr(local.LocalStorage, "blake3", blake3)
    monkeypatch.setattr(Catalog, "_attach_on", attach)
    archive = Archive.open(home, writer=True)
    try:
        assert attaches == [False]  # newer schema refused, migrations, dead runs: one read-write session
        with archive.catalog.reading() as con:
            moved = sorted(r[0] for r in con.execute("SELECT name FROM packs WHERE medium_id IN (1, 2)").fetchall())
        del attaches[:]
        result = consolidate(archive, [1, 2], 3)
    finally:
        archive.close()
    copied = sorted(p["pack"] for p in result["packs"] if p["copied"])
    assert copied == moved and len(moved) == 4
    assert sorted(read_back) == moved  # each copy read back once
    assert attaches == [True, False]


def test_read_ahead_names_the_packs_the_plan_copies_first(template, tmp_path):
    """``media consolidate`` hints the kernel to read the first source packs before the catalog opens:
    they are the plan's first packs (by medium, then name), local media only, retired ones left out."""
    from media_tools.read_ahead import first_packs

    tmp_path = clone(template, tmp_path)
    home = tmp_path / "home"
    with Archive.open(home, writer=True) as archive:
        plan = plan_consolidation(archive, [2, 1], 3, probe_media=False)
    paths = [tmp_path / f"m{p.source}" / p.name for p in plan.packs]
    assert len(paths) == 4 and all(p.is_file() for p in paths)
    assert first_packs(home, [2, 1]) == paths
    assert first_packs(home, [1, 2], count=1) == paths[:1]
    with Archive.open(home, writer=True) as archive:
        archive.config.medium(2).state = "retired"
        archive.save_config()
    assert first_packs(home, [1, 2]) == [p for p in paths if p.is_relative_to(tmp_path / "m1")]
    assert first_packs(tmp_path / "no-home", [1]) == []
