"""`verify` quick and --full: a clean archive passes; the tamper matrix of issue 5 (acceptance 1–2) is caught.

Each tamper is made on a fresh copy of one small stamped archive (two batches, tokens from
the local test TSA) and must be found by the right check, naming the right message, pack or
batch: F1, F2, F3, B1, a deleted pack, H5, I3, I5, I6, I7, I9, I11, I14, F8; quick verify finds
the deleted pack and catalog edits of pack references.
"""
from __future__ import annotations

import datetime as dt
import os
import secrets
import shutil
from pathlib import Path

import pytest

from tests.cli import mailarchive
from tests.integration.verify_support import build_archive, by_subject, clone, messages, run_verify, sql
from tests.tampering import flip_bit as _flip

from fixtures_tsa import tsa  # noqa: F401  (also loaded by conftest's pytest_plugins)


@pytest.fixture(scope="module")
def base(tmp_path_factory, tsa):  # noqa: F811
    root = tmp_path_factory.mktemp("verify-base")
    build_archive(root, tsa)
    return root


@pytest.fixture
def home(base, tmp_path) -> Path:
    return clone(base, tmp_path / "copy")


def _items(report, check_id: str) -> list[dict]:
    c = report.get(check_id)
    assert c.status == "finding", f"{check_id} is {c.status}: {c.items}"
    return c.items


def _findings(report) -> set[str]:
    return {c.id for c in report.checks if c.status == "finding"}


def _batch_token(home: Path, batch: int) -> bytes:
    from toolkit.archive import Archive

    with Archive.open(home) as a, a.catalog.reading() as con:
        return bytes(con.execute("SELECT token FROM stamp_batches WHERE batch_id = ?", [batch]).fetchone()[0])


def _batch_root(home: Path, batch: int) -> bytes:
    from toolkit.archive import Archive

    with Archive.open(home) as a, a.catalog.reading() as con:
        return bytes.fromhex(con.execute("SELECT merkle_root FROM stamp_batches WHERE batch_id = ?", [batch]).fetchone()[0])


def _set_token(home: Path, batch: int, token: bytes) -> None:
    sql(home, "UPDATE stamp_batches SET token = ? WHERE batch_id = ?", [token, batch])


def _token_problem(report, batch: int, tag: str) -> str:
    items = _items(report, "F06")
    assert [i["batch"] for i in items] == [batch], items
    assert tag in items[0]["detail"], items[0]["detail"]
    return items[0]["detail"]


# ----------------------------------------------------------------------------- clean
def test_clean_archive_quick_and_full_exit_0(home):
    """Acceptance 1 (our part): real tokens from the local TSA, quick and full, exit 0 through the CLI."""
    quick = mailarchive(home, "verify", json_out=True, check=0).result
    assert quick["mode"] == "quick" and quick["totals"]["exit_code"] == 0
    assert {c["id"]: c["status"] for c in quick["checks"]}["F02"] == "skipped"
    full = mailarchive(home, "verify", "--full", json_out=True, check=0).result
    status = {c["id"]: c["status"] for c in full["checks"]}
    assert all(status[f"F0{i}"] == "ok" for i in range(1, 8)), status
    assert status["Q08"] == "warning"  # no catalog backup yet: a warning, exit stays 0
    assert full["stats"]["stamps"]["batches_stamped"] == 2
    assert full["stats"]["records_ok"] == full["stats"]["messages"] == 40


# ----------------------------------------------------------------------------- F, B
def test_f1_flipped_bit_in_a_record(home):
    rows = messages(home)
    victim = rows[5]
    _flip(victim["pack"], victim["offset"] + victim["length"] // 2)
    r = run_verify(home)
    assert r.exit_code == 1
    items = _items(r, "F02")
    assert [i["msg_id"] for i in items] == [5]
    assert items[0]["pack"] == victim["pack_id"] and items[0]["medium"] == 1 and items[0]["batch"] == victim["batch"]
    assert "authentication failed" in items[0]["detail"]
    assert any(i.get("name") == str(victim["pack"].relative_to(home.parent / "medium")) for i in _items(r, "F01"))  # pack checksum (BLAKE3)
    assert _findings(r) == {"F01", "F02"}
    # F6: quick verify does not read packs, so it does not see this (documented)
    assert run_verify(home, full=False).exit_code == 0


def test_f1_through_worker_processes(home):
    """The same detection when packs fan out over a process pool."""
    victim = messages(home)[7]
    _flip(victim["pack"], victim["offset"] + 3)
    r = run_verify(home, workers=2, pool_min_bytes=0)
    assert [i["msg_id"] for i in _items(r, "F02")] == [7]
    assert r.stats["records_ok"] == 39


def test_worker_processes_report_as_the_parent_does(home):
    """The pool path (quick checks in the parent while the workers read, rows handed over as Arrow) finds
    the same things, in the same words and order, as checking the packs in this process after the quick checks;
    so does the pool the command line forks before it opens the archive (EarlyWorkers)."""
    rows = messages(home)
    _flip(rows[7]["pack"], rows[7]["offset"] + 3)
    sql(home, "UPDATE recipients SET address = 'someone-else@example.net' WHERE msg_id = ? AND kind IN ('to', 'cc')", [9])
    sql(home, "UPDATE messages SET subject = 'edited' WHERE msg_id = ?", [12])

    def view(r):
        return [(c.id, c.status, c.count, c.note, c.items) for c in r.checks]

    from verify.deep import EarlyWorkers

    pooled = run_verify(home, workers=2, pool_min_bytes=0)
    inline = run_verify(home, workers=1)
    with EarlyWorkers(home, None, 2) as early:  # forked before the archive opens, as `verify --full` does
        forked = run_verify(home, pool_min_bytes=0, early=early)
    assert view(pooled) == view(inline) == view(forked)
    ids = [c.id for c in pooled.checks]
    assert ids.index("Q11") < ids.index("F01")  # quick checks first in the report, as before
    assert [i["msg_id"] for i in _items(pooled, "F02")] == [7]
    assert sorted(i["msg_id"] for i in _items(pooled, "F04")) == [9, 12]
    assert pooled.stats["records_ok"] == 39


def test_pooled_full_queries_on_one_duckdb_thread_then_restores_the_setting(home):
    """With worker processes, the parent's catalog queries run on one DuckDB thread (the workers want the
    cores); the archive's own setting is back afterwards, and the findings are those of a run in this process.
    The stamp batches (F05–F08) are checked beside the packs, yet the report lists F01–F08 last and its stats
    in the order they had."""
    from toolkit.archive import Archive
    from verify.checks import verify_archive

    seen = []
    with Archive.open(home) as archive:
        archive.catalog.use_threads(None)
        real = archive.catalog.reading

        def reading(*a, **k):
            seen.append(archive.catalog.threads)
            return real(*a, **k)

        archive.catalog.reading = reading
        pooled = verify_archive(archive, full=True, workers=2, pool_min_bytes=0)
        assert archive.catalog.threads is None
    assert seen and set(seen) == {1}
    # the stamp batches are checked while the packs are read; the report keeps its order
    assert [c.id for c in pooled.checks][-8:] == [f"F0{i}" for i in range(1, 9)]
    assert list(pooled.stats)[-3:] == ["bytes_read", "records_ok", "protection"]
    assert pooled.stats["protection"]
    inline = run_verify(home, workers=1)
    assert [(c.id, c.status, c.count, c.items) for c in pooled.checks] == \
        [(c.id, c.status, c.count, c.items) for c in inline.checks]


def test_f2_two_records_swapped(home):
    rows = messages(home)
    a, b = by_subject(rows, "Twin message A"), by_subject(rows, "Twin message B")
    assert a["pack"] == b["pack"] and a["length"] == b["length"], "the twins must share a pack and a record length"
    data = bytearray(a["pack"].read_bytes())
    ra, rb = data[a["offset"]:a["offset"] + a["length"]], data[b["offset"]:b["offset"] + b["length"]]
    data[a["offset"]:a["offset"] + a["length"]], data[b["offset"]:b["offset"] + b["length"]] = rb, ra
    a["pack"].write_bytes(bytes(data))
    r = run_verify(home)
    items = {i["msg_id"]: i for i in _items(r, "F02")}
    assert set(items) == {a["msg_id"], b["msg_id"]}
    assert "bound to another blob id" in items[a["msg_id"]]["detail"]
    assert items[a["msg_id"]]["name"] == f"bound_to:{b['blob_id']}"
    assert items[b["msg_id"]]["name"] == f"bound_to:{a['blob_id']}"


def test_f3_record_copied_into_another_pack(home):
    rows = messages(home)
    a, c = by_subject(rows, "Twin message A"), by_subject(rows, "Twin message C")
    assert a["pack"] != c["pack"] and a["length"] == c["length"]
    record = a["pack"].read_bytes()[a["offset"]:a["offset"] + a["length"]]
    with open(c["pack"], "r+b") as f:
        f.seek(c["offset"])
        f.write(record)
    r = run_verify(home)
    items = _items(r, "F02")
    assert [i["msg_id"] for i in items] == [c["msg_id"]]
    assert items[0]["pack"] == c["pack_id"]
    assert "copied from another pack" in items[0]["detail"] and a["pack_id"] in items[0]["detail"]
    assert items[0]["name"] == f"copied_from:{a['pack_id']}"


def test_f3_record_copied_from_a_pack_on_another_medium(tmp_path):
    """RELIABILITY F3 across media: twin A's record (medium 1) copied over twin C's in a pack on medium 2,
    that pack's checksum re-sealed in the catalog so only the record check can tell: rejected as a copy,
    naming the pack and the medium it came from."""
    import blake3

    from importers.eml import EmlImporter
    from toolkit.archive import Archive
    from toolkit.ingest import Ingest
    from tests.integration.verify_support import twin

    home = tmp_path / "home"
    archive = Archive.create(home, str(tmp_path / "medium-1"), name="f3-two-media")
    try:
        for letter, medium in (("A", None), ("C", tmp_path / "medium-2")):
            if medium is not None:
                archive.add_medium(str(medium), activate=True)
            src = tmp_path / f"src-{letter}"
            src.mkdir()
            (src / f"{letter}.eml").write_bytes(twin(letter))
            Ingest(archive, pack_target=6000).run(EmlImporter(str(src)))
        with archive.catalog.reading() as con:
            rows = {subject[-1]: (pack_id, name, medium_id, off, length) for subject, pack_id, name, medium_id, off, length in con.execute(
                """SELECT m.subject, p.pack_id, p.name, p.medium_id, m."offset", m.length
                   FROM messages m JOIN packs p USING (pack_id)""").fetchall()}
    finally:
        archive.close()
    (a_pack, a_name, a_medium, a_off, a_len), (c_pack, c_name, c_medium, c_off, c_len) = rows["A"], rows["C"]
    assert (a_medium, c_medium) == (1, 2) and a_len == c_len
    record = (tmp_path / "medium-1" / a_name).read_bytes()[a_off:a_off + a_len]
    c_path = tmp_path / "medium-2" / c_name
    data = bytearray(c_path.read_bytes())
    data[c_off:c_off + c_len] = record
    c_path.write_bytes(bytes(data))
    sql(home, "UPDATE packs SET blake3 = ? WHERE pack_id = ?", [blake3.blake3(bytes(data)).hexdigest(), c_pack])
    r = run_verify(home)
    assert _findings(r) == {"F02"}  # the file checksum agrees: only the record itself gives it away
    items = _items(r, "F02")
    assert len(items) == 1 and items[0]["pack"] == c_pack and items[0]["medium"] == 2
    assert "copied from another pack" in items[0]["detail"], items[0]["detail"]
    assert f"from pack {a_pack} on medium 1" in items[0]["detail"], items[0]["detail"]
    assert items[0]["name"] == f"copied_from:{a_pack}"


def test_b1_truncated_pack(home):
    rows = messages(home)
    victim = max((r for r in rows.values() if r["batch"] == 2), key=lambda r: r["offset"])  # last record of its pack
    same_pack = sorted((r for r in rows.values() if r["pack"] == victim["pack"]), key=lambda r: r["offset"])
    cut = victim["offset"] + victim["length"] // 2
    with open(victim["pack"], "r+b") as f:
        f.truncate(cut)
    r = run_verify(home)
    f02 = _items(r, "F02")
    assert [i["msg_id"] for i in f02] == [victim["msg_id"]]
    assert "truncated" in f02[0]["detail"]
    f01 = _items(r, "F01")
    assert all(i["pack"] == victim["pack_id"] for i in f01) and any("truncated" in i["detail"] for i in f01)
    assert r.stats["records_ok"] == 40 - 1 and len(same_pack) > 1  # the rest of the pack still reads
    q = run_verify(home, full=False)
    assert [i["pack"] for i in _items(q, "Q02")] == [victim["pack_id"]]


def test_deleted_pack_quick_and_full(home):
    rows = messages(home)
    victim = rows[1]
    victim["pack"].unlink()
    p = mailarchive(home, "verify", json_out=True, check=1).result
    q02 = next(c for c in p["checks"] if c["id"] == "Q02")
    assert q02["status"] == "finding" and q02["count"] == 1 and q02["examples"][0]["pack"] == victim["pack_id"]
    r = run_verify(home)
    f01 = _items(r, "F01")
    assert [i["pack"] for i in f01] == [victim["pack_id"]] and "missing" in f01[0]["detail"]


def test_f8_consecutive_auth_failures_stop_with_wrong_key_hint(home, monkeypatch):
    from verify import deep

    monkeypatch.setattr(deep, "AUTH_FAIL_LIMIT", 3)
    rows = messages(home)
    pack = rows[3]["pack"]
    mine = [r for r in rows.values() if r["pack"] == pack]
    assert len(mine) >= 5
    for r in mine:
        _flip(pack, r["offset"] + r["length"] - 1)
    r = run_verify(home)
    items = _items(r, "F02")
    assert any("wrong key or foreign archive?" in i["detail"] for i in items)
    assert len([i for i in items if i.get("msg_id")]) == 3  # not every record listed as corrupt


def test_unknown_pack_is_a_warning_not_a_finding(home):
    rows = messages(home)
    src = rows[1]["pack"]
    name = secrets.token_hex(16)
    dest = home.parent / "medium" / "packs" / name[:2] / f"{name}.pack"
    dest.parent.mkdir(exist_ok=True)
    shutil.copyfile(src, dest)
    r = run_verify(home, full=False)
    q03 = r.get("Q03")
    assert q03.status == "warning" and q03.count == 1 and q03.items[0]["pack"] == name
    assert r.exit_code == 0
    assert dest.exists()  # listed, never deleted


# ----------------------------------------------------------------------------- H5, catalog edits
def test_h5_edited_rows_of_a_stamped_batch(home):
    rows = messages(home)
    dated, addressed = rows[4], rows[9]
    sql(home, "UPDATE messages SET sent_date = sent_date + INTERVAL 1 DAY WHERE msg_id = ?", [4])
    sql(home, "UPDATE recipients SET address = 'someone-else@example.net' WHERE msg_id = ? AND kind IN ('to', 'cc')", [9])
    r = run_verify(home)
    items = {i["msg_id"]: i for i in _items(r, "F04")}
    assert set(items) == {4, 9}
    assert "sent_date" in items[4]["detail"] and items[4]["batch"] == dated["batch"]
    assert "recipients" in items[9]["detail"] and items[9]["batch"] == addressed["batch"]
    assert _findings(r) == {"F04"}


def test_f04_every_compared_field_edit_is_named(home):
    """F04 compares a key of the fields (verify/deep.py: _F04_KEY in SQL, f04_key from the mail): every kind
    of edit still gives a finding that names the field — one second of a date, NULL instead of an empty or
    any text, text moved from one field into the next (the key's lengths keep fields apart), an address
    added to Cc, a recipient repeated (not a change: lists compare as sets) — and unedited rows give none."""
    rows = messages(home)
    ids = sorted(rows)[:8]
    edits = {
        ids[0]: ("UPDATE messages SET sent_date = sent_date + INTERVAL 1 SECOND WHERE msg_id = ?", "sent_date"),
        ids[1]: ("UPDATE messages SET subject = NULL WHERE msg_id = ?", "subject"),
        ids[2]: ("UPDATE messages SET subject = '' WHERE msg_id = ?", "subject"),
        ids[3]: ("UPDATE messages SET message_id = message_id || 'x' WHERE msg_id = ?", "message_id"),
        ids[4]: ("UPDATE messages SET from_addr = from_addr || left(subject, 1), subject = substr(subject, 2) "
                 "WHERE msg_id = ?", "from_addr"),
        ids[5]: ("INSERT INTO recipients (msg_id, kind, address) VALUES (?, 'cc', 'added@example.net')", "cc recipients"),
    }
    for msg_id, (statement, _field) in edits.items():
        sql(home, statement, [msg_id])
    sql(home, "INSERT INTO recipients (msg_id, kind, address) SELECT msg_id, kind, address FROM recipients "
              "WHERE msg_id = ? AND kind = 'to'", [ids[6]])
    for kw in ({}, {"workers": 2, "pool_min_bytes": 0}):
        r = run_verify(home, **kw)
        items = {i["msg_id"]: i["detail"] for i in _items(r, "F04")}
        assert set(items) == set(edits), items
        for msg_id, (_statement, field) in edits.items():
            assert f"{field}: catalog" in items[msg_id], items[msg_id]
        assert "subject: catalog" in items[ids[4]]  # both fields of the moved text are named


def test_h5_changed_blob_id_breaks_the_merkle_root(home):
    rows = messages(home)
    a, c = by_subject(rows, "Twin message A"), by_subject(rows, "Twin message C")
    sql(home, "UPDATE messages SET blob_id = ? WHERE msg_id = ?", [c["blob_id"][::-1], a["msg_id"]])
    r = run_verify(home)
    f05 = _items(r, "F05")
    assert [i["batch"] for i in f05] == [a["batch"]] and "tampering" in f05[0]["detail"]
    assert [i["msg_id"] for i in _items(r, "F02")] == [a["msg_id"]]
    assert _items(r, "F07")[0]["batch"] == a["batch"]  # the sealed manifest still lists the old blob id


def test_quick_finds_catalog_edits_of_pack_references(home):
    rows = messages(home)
    sql(home, "UPDATE messages SET pack_id = ? WHERE msg_id = ?", ["0" * 32, 2])
    sql(home, "UPDATE packs SET medium_id = 7 WHERE pack_id = ?", [rows[30]["pack_id"]])
    r = run_verify(home, full=False)
    assert [i["msg_id"] for i in _items(r, "Q04")] == [2]
    q06 = _items(r, "Q06")
    assert any(i.get("medium") == 7 for i in q06)
    assert r.exit_code == 1


# ----------------------------------------------------------------------------- I: tokens
def test_i3_token_of_batch_a_on_batch_b(home):
    _set_token(home, 2, _batch_token(home, 1))
    r = run_verify(home)
    _token_problem(r, 2, "imprint")
    assert [i["batch"] for i in _items(r, "F07")] == [2]  # and the manifest on the medium disagrees


def test_i5_signature_byte_flipped(home):
    tsr = _batch_token(home, 1)
    _set_token(home, 1, tsr[:-5] + bytes([tsr[-5] ^ 0x01]) + tsr[-4:])
    _token_problem(run_verify(home), 1, "signature")


def test_i6_foreign_ca_with_its_root_embedded(home, tmp_path):
    from services.tsa import Tsa, make_pki, query_for

    pki = make_pki(tmp_path / "foreign", "foreign")
    _set_token(home, 1, Tsa(pki, embed_ca=True).reply(query_for(_batch_root(home, 1))))
    _token_problem(run_verify(home), 1, "openssl")


def test_i7_eku_not_critical(home, tsa, tmp_path):  # noqa: F811
    from services.tsa import forge_response, tst_info_of

    cert, key = tsa.pki.issue_tsa_cert(f"verify-noncrit-{secrets.token_hex(3)}", eku="timeStamping")
    _set_token(home, 1, forge_response(tst_info_of(_batch_token(home, 1), tmp_path), cert, key, tmp_path))
    _token_problem(run_verify(home), 1, "EKU")


def test_i9_no_signing_certificate_attribute(home, tsa, tmp_path):  # noqa: F811
    from services.tsa import forge_response, tst_info_of

    tsr = forge_response(tst_info_of(_batch_token(home, 1), tmp_path), tsa.pki.tsa_cert, tsa.pki.tsa_key, tmp_path)
    _set_token(home, 1, tsr)
    detail = _token_problem(run_verify(home), 1, "openssl")
    assert "signature/chain" not in detail  # only the ESS check of the second opinion catches it


def test_i11_implausible_gen_time(home):
    """The batch claims to have been sealed 60 days before its token's genTime (beyond 1 day + 7 days)."""
    sql(home, "UPDATE stamp_batches SET created_at = created_at - INTERVAL 60 DAY WHERE batch_id = 1")
    sql(home, "UPDATE messages SET archived_at = archived_at - INTERVAL 60 DAY WHERE batch_id = 1")
    _token_problem(run_verify(home), 1, "genTime")


@pytest.mark.parametrize("garbage", [b"\x30\x82\xff\xffgarbage", b"\x00", os.urandom(300)], ids=["bad-length", "one-byte", "random"])
def test_i14_garbage_der_no_crash(home, garbage):
    _set_token(home, 2, garbage)
    r = run_verify(home)
    _token_problem(r, 2, "invalid token")
    assert r.get("F06").count == 1  # batch 1 was still verified, and passed


def test_full_tamper_through_the_cli_writes_reports(home, tmp_path):
    """Exit 1 from the real command, with the JSON report and the findings file naming the object."""
    victim = messages(home)[12]
    _flip(victim["pack"], victim["offset"] + 40)
    js, fc = tmp_path / "r.json", tmp_path / "f.csv"
    mailarchive(home, "verify", "--full", "--json-report", str(js), "--findings", str(fc), check=1)
    import json

    import polars as pl

    report = json.loads(js.read_text())
    f02 = next(c for c in report["checks"] if c["id"] == "F02")
    assert f02["status"] == "finding" and f02["examples"][0]["msg_id"] == 12
    assert report["totals"]["exit_code"] == 1
    df = pl.read_csv(fc, infer_schema_length=0)
    assert df.filter((pl.col("check") == "F02") & (pl.col("msg_id") == "12")).height == 1


def test_stamp_coverage_policy(home):
    """Q07: a message left unbatched beyond the policy is a finding; within it, nothing."""
    sql(home, "UPDATE messages SET batch_id = NULL WHERE msg_id = 40")
    now = dt.datetime.now(dt.timezone.utc)
    assert run_verify(home, full=False, now=now).get("Q07").status == "ok"
    later = run_verify(home, full=False, now=now + dt.timedelta(hours=25))
    assert [i["msg_id"] for i in _items(later, "Q07")] == [40]


def test_db_backups_q08(home):
    """Q08: no backup is a warning; a recorded backup present on its medium is fine; one gone from it is a finding."""
    from media_tools.backup import create_backup
    from toolkit.archive import Archive

    assert run_verify(home, full=False).get("Q08").status == "warning"
    with Archive.open(home, writer=True) as archive:
        res = create_backup(archive, kind="full")
    assert run_verify(home, full=False).get("Q08").status == "ok"
    (found,) = (home.parent / "medium").rglob(res.name.rsplit("/", 1)[-1])
    found.unlink()
    items = _items(run_verify(home, full=False), "Q08")
    assert items[0]["medium"] == 1 and res.name.rsplit("/", 1)[-1] in items[0]["name"]
