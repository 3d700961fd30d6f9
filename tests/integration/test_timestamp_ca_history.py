"""The CA each batch was stamped under. Two real local TSAs (A: ECDSA root; B: RSA root, ECDSA
intermediate in the token, ECDSA TSA certificate); a change of TSA midway keeps every batch verifying, evidence of
both batches checks against the right CA (toolkit and plain openssl), and each tamper case is a finding naming the
batch. Restore from a mirror and `db rebuild` bring the CA history back."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.cli import mailarchive
from tests.corpora import REPO
from tests.integration.verify_support import sql
from toolkit.archive import Archive
from verify.tokens import ca_fingerprint

SAMPLE = REPO / "sample_data" / "eml"


def _f06(report: dict) -> dict:
    (c,) = [c for c in report["checks"] if c["id"] == "F06"]
    return c


def _verify_full(home: Path, check: int) -> dict:
    return mailarchive(home, "verify", "--full", json_out=True, check=check).result


@pytest.fixture(scope="module")
def switched(tmp_path_factory, tsa, tsa_b):
    """2019 mail stamped by TSA A, then `timestamp configure` with TSA B, 2020 mail stamped by B; saved aside."""
    base = tmp_path_factory.mktemp("ca-history")
    home = base / "home"
    mailarchive(home, "init", "--key-backup", str(base / "kb.txt"))
    mailarchive(home, "import", "eml", str(SAMPLE / "2019"))
    mailarchive(home, "timestamp", "configure", "--tsa-url", tsa.url, "--ca-cert", str(tsa.ca_cert_path))
    mailarchive(home, "timestamp", "run", "--all")
    mailarchive(home, "import", "eml", str(SAMPLE / "2020"))
    mailarchive(home, "timestamp", "configure", "--tsa-url", tsa_b.url, "--ca-cert", str(tsa_b.ca_cert_path))
    mailarchive(home, "timestamp", "run", "--all")
    shutil.copytree(home, base / "saved")
    return base


@pytest.fixture
def home(switched, tsa_ok, tsa_b) -> Path:
    h = switched / "home"
    shutil.rmtree(h)
    shutil.copytree(switched / "saved", h)
    return h


def _batches(home: Path) -> dict[int, tuple]:
    with Archive.open(home) as a, a.catalog.reading() as con:
        return {r[0]: r[1:] for r in con.execute(
            "SELECT batch_id, ca_fingerprint, gen_time, merkle_root, token, tsa_url FROM stamp_batches ORDER BY batch_id"
        ).fetchall()}


def test_run_with_ca_cert_on_unconfigured_archive_verifies(tmp_path, tsa):
    """`timestamp run --tsa-url U --ca-cert F --all` with nothing configured: the CA is kept, `verify --full` exits 0."""
    home = tmp_path / "home"
    mailarchive(home, "init", "--key-backup", str(tmp_path / "kb.txt"))
    mailarchive(home, "import", "eml", str(SAMPLE / "2019"))
    mailarchive(home, "timestamp", "run", "--tsa-url", tsa.url, "--ca-cert", str(tsa.ca_cert_path), "--all")
    r = _verify_full(home, 0)
    assert _f06(r)["status"] == "ok"
    cas = mailarchive(home, "timestamp", "ca", "list", json_out=True).result["cas"]
    assert [c["fingerprint"] for c in cas] == [ca_fingerprint(tsa.ca_cert_path.read_bytes())]
    assert cas[0]["tsa_urls"] == [tsa.url] and cas[0]["batches"] == 1


def test_switching_tsa_midway_verifies_clean(home, tsa, tsa_b):
    b = _batches(home)
    fa, fb = ca_fingerprint(tsa.ca_cert_path.read_bytes()), ca_fingerprint(tsa_b.ca_cert_path.read_bytes())
    assert [b[1][0], b[2][0]] == [fa, fb] and b[1][4] == tsa.url and b[2][4] == tsa_b.url
    r = _verify_full(home, 0)
    assert _f06(r)["status"] == "ok" and r["totals"]["findings"] == 0
    cas = {c["fingerprint"]: c for c in mailarchive(home, "timestamp", "ca", "list", json_out=True).result["cas"]}
    assert set(cas) == {fa, fb} and cas[fa]["batches"] == 1 and cas[fb]["batches"] == 1
    assert all(c["retired_at"] is None for c in cas.values())


def test_evidence_of_both_batches_verifies_with_the_right_ca(home, tmp_path, tsa, tsa_b):
    dest = tmp_path / "evidence"
    r = mailarchive(home, "export", "evidence", str(dest), json_out=True).result
    assert r["errors"] == [] and r["written"] == r["selected"]
    by_batch: dict[int, Path] = {}
    for p in sorted(dest.iterdir()):
        if p.is_dir():
            by_batch.setdefault(json.loads((p / "evidence.json").read_text())["batch"]["batch_id"], p)
    assert set(by_batch) == {1, 2}
    right = {1: tsa.ca_cert_path, 2: tsa_b.ca_cert_path}
    for batch, bundle in by_batch.items():
        assert (bundle / "tsa-ca.pem").read_bytes().strip() == right[batch].read_bytes().strip()
        ok = mailarchive(tmp_path / "none", "verify-evidence", "--ca-cert", str(right[batch]), str(bundle),
                         json_out=True, check=0).result
        assert ok["bundles"][0]["second_opinion"] == "openssl: OK"
        wrong = right[3 - batch]
        bad = mailarchive(tmp_path / "none", "verify-evidence", "--ca-cert", str(wrong), str(bundle),
                          json_out=True, check=1).result
        assert any(p.startswith("token:") for p in bad["bundles"][0]["problems"])
        # by hand, as an auditor does: only openssl, the CA from the TSA
        v = subprocess.run(["openssl", "ts", "-verify", "-in", "token.tsr", "-data", "root.bin",
                            "-CAfile", str(right[batch])], cwd=bundle, capture_output=True, text=True)
        assert v.returncode == 0 and "Verification: OK" in v.stdout, v.stderr
        v = subprocess.run(["openssl", "ts", "-verify", "-in", "token.tsr", "-data", "root.bin",
                            "-CAfile", str(wrong)], cwd=bundle, capture_output=True, text=True)
        assert v.returncode != 0


def test_token_of_tsa_b_in_a_batch_stamped_by_a(home, tsa_b):
    """A genuine token of TSA B over batch 1's own root, put in place of A's token: a finding naming batch 1."""
    from services.tsa import query_for

    root = bytes.fromhex(_batches(home)[1][2])
    foreign = tsa_b.tsa.reply(query_for(root))
    sql(home, "UPDATE stamp_batches SET token = ? WHERE batch_id = 1", [foreign])
    r = _verify_full(home, 1)
    f06 = _f06(r)
    assert f06["status"] == "finding" and f06["count"] == 1
    detail = f06["examples"][0]["detail"]
    assert detail.startswith("stamp batch 1:")
    assert "signature/chain" in detail  # checked against A, the CA batch 1 records: B's token does not chain to it


def test_ca_removed_from_the_catalog(home, tsa):
    fa = ca_fingerprint(tsa.ca_cert_path.read_bytes())
    sql(home, "DELETE FROM tsa_cas WHERE fingerprint = ?", [fa])
    f06 = _f06(_verify_full(home, 1))
    assert f06["count"] == 1
    detail = f06["examples"][0]["detail"]
    assert detail.startswith("stamp batch 1:") and "not in the archive's CA history" in detail


def test_batch_stamped_after_its_ca_was_retired(home, tsa_b):
    """The CA's retirement dated before batch 2's genTime: batch 2 is a finding, batch 1 (other CA) is not."""
    fb = ca_fingerprint(tsa_b.ca_cert_path.read_bytes())
    gen2 = _batches(home)[2][1]
    sql(home, "UPDATE tsa_cas SET retired_at = ?::TIMESTAMPTZ - INTERVAL 1 MINUTE WHERE fingerprint = ?", [gen2, fb])
    f06 = _f06(_verify_full(home, 1))
    assert f06["count"] == 1
    detail = f06["examples"][0]["detail"]
    assert detail.startswith("stamp batch 2:") and "after its CA" in detail and "retired" in detail


def test_retire_keeps_older_batches_and_refuses_new_stamps(home, tsa, tsa_b):
    """`ca retire`: batches stamped before keep verifying; a run with the retired CA is refused (exit 2), nothing stamped."""
    fa = ca_fingerprint(tsa.ca_cert_path.read_bytes())
    mailarchive(home, "timestamp", "ca", "retire", fa[:12])
    _verify_full(home, 0)
    mailarchive(home, "import", "eml", str(SAMPLE / "2021"))
    p = mailarchive(home, "timestamp", "run", "--tsa-url", tsa.url, "--ca-cert", str(tsa.ca_cert_path), "--all", check=2)
    assert "retired" in p.stderr
    assert len(_batches(home)) == 2
    mailarchive(home, "timestamp", "run", "--all")  # the configured TSA B still works
    assert len(_batches(home)) == 3
    _verify_full(home, 0)


def test_db_rebuild_and_restore_keep_the_ca_history(home, tmp_path, tsa, tsa_b):
    fa, fb = ca_fingerprint(tsa.ca_cert_path.read_bytes()), ca_fingerprint(tsa_b.ca_cert_path.read_bytes())
    # restore from a mirror: backup, mirror to a directory, restore into a new home
    mailarchive(home, "db", "backup")
    mirror = tmp_path / "mirror"
    mailarchive(home, "mirror", str(mirror))
    restored = tmp_path / "restored"
    mailarchive(restored, "restore", "--from", str(mirror), "--key-backup", str(home.parent / "kb.txt"))
    cas = {c["fingerprint"] for c in mailarchive(restored, "timestamp", "ca", "list", json_out=True).result["cas"]}
    assert cas == {fa, fb}
    assert _f06(_verify_full(restored, 0))["status"] == "ok"
    # db rebuild from the media alone: the manifests bring both CAs back
    (home / "catalog.duckdb").unlink()
    r = mailarchive(home, "db", "rebuild", json_out=True).result
    assert r["stamp_batches"] == 2 and not r["stamp_problems"]
    cas = {c["fingerprint"]: c for c in mailarchive(home, "timestamp", "ca", "list", json_out=True).result["cas"]}
    assert set(cas) == {fa, fb} and cas[fb]["tsa_urls"] == [tsa_b.url]
    assert _f06(_verify_full(home, 0))["status"] == "ok"
