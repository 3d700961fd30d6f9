"""Renewal chains: batches stamped by a TSA whose certificate runs out in 30 days get a warning naming
them (not a silent OK); `timestamp renew` with a long-lived TSA extends their protection and `verify --full`
follows the chains; a renewal link that does not cover its batch is a finding naming the batch."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from tests.cli import mailarchive
from tests.corpora import REPO
from tests.integration.verify_support import sql

SAMPLE = REPO / "sample_data" / "eml"


def _check(report: dict, cid: str) -> dict:
    (c,) = [c for c in report["checks"] if c["id"] == cid]
    return c


def _until(p: dict) -> dt.datetime:
    return dt.datetime.fromisoformat(p["protected_until"])


@pytest.fixture
def home(tmp_path, tsa_short) -> Path:
    """Two batches (2019, 2020 mail) stamped by the short-lived TSA."""
    h = tmp_path / "home"
    mailarchive(h, "init", "--key-backup", str(tmp_path / "kb.txt"))
    for year in ("2019", "2020"):
        mailarchive(h, "import", "eml", str(SAMPLE / year))
        mailarchive(h, "timestamp", "run", "--tsa-url", tsa_short.url, "--ca-cert", str(tsa_short.ca_cert_path), "--all")
    return h


def test_expiring_protection_warns_then_renewal_extends_it(home, tsa):
    now = dt.datetime.now(dt.timezone.utc)
    st = mailarchive(home, "timestamp", "status", json_out=True).result
    assert [p["batch_id"] for p in st["protection"]] == [1, 2]
    assert all(p["warning"] and now < _until(p) < now + dt.timedelta(days=31) for p in st["protection"])
    human = mailarchive(home, "timestamp", "status")
    assert "batches 1, 2" in " ".join((human.stdout + human.stderr).split())

    r = mailarchive(home, "verify", "--full", json_out=True, check=0).result  # warnings, not findings
    f08 = _check(r, "F08")
    assert f08["status"] == "warning" and f08["count"] == 2
    assert sorted(e["detail"].split(":")[0] for e in f08["examples"]) == ["stamp batch 1", "stamp batch 2"]

    ren = mailarchive(home, "timestamp", "renew", "--tsa-url", tsa.url, "--ca-cert", str(tsa.ca_cert_path),
                      json_out=True).result["renewal"]
    assert ren["renewal_id"] == 1 and ren["batches"] == [1, 2]
    st = mailarchive(home, "timestamp", "status", json_out=True).result
    assert all(not p["warning"] and p["renewals"] == [1] for p in st["protection"])
    assert all(_until(p) > now + dt.timedelta(days=3000) for p in st["protection"])
    r = mailarchive(home, "verify", "--full", json_out=True, check=0).result
    assert _check(r, "F08")["status"] == "ok" and _check(r, "F08")["count"] == 0, _check(r, "F08")
    mailarchive(home, "timestamp", "configure", "--tsa-url", tsa.url, "--ca-cert", str(tsa.ca_cert_path))
    assert mailarchive(home, "timestamp", "renew", json_out=True).result["renewal"] is None  # nothing due

    # a second renewal over the first: chains of three links, still clean
    again = mailarchive(home, "timestamp", "renew", "--all", json_out=True).result["renewal"]
    assert again["renewal_id"] == 2
    st = mailarchive(home, "timestamp", "status", json_out=True).result
    assert all(p["renewals"] == [1, 2] for p in st["protection"])
    r = mailarchive(home, "verify", "--full", json_out=True, check=0).result
    assert _check(r, "F08")["status"] == "ok"


def test_renewal_link_that_does_not_cover_its_batch(home, tsa):
    mailarchive(home, "timestamp", "renew", "--all", "--tsa-url", tsa.url, "--ca-cert", str(tsa.ca_cert_path))
    # the link rows swapped: the leaf recorded for batch 1 is batch 2's, and the other way round
    sql(home, "UPDATE renewal_links SET batch_id = 3 - batch_id WHERE renewal_id = 1")
    r = mailarchive(home, "verify", "--full", json_out=True, check=1).result
    f08 = _check(r, "F08")
    assert f08["status"] == "finding"
    details = [e["detail"] for e in f08["examples"] if "does not cover" in e["detail"]]
    assert sorted(d.split(":")[0] for d in details) == ["stamp batch 1", "stamp batch 2"]


def test_renew_arguments(home):
    p = mailarchive(home, "timestamp", "renew", "--before", "soon", check=2)
    assert "not a date" in p.stderr
    # a --before earlier than every batch's protection end: nothing due
    assert mailarchive(home, "timestamp", "renew", "--before", "2000-01-01", json_out=True).result["renewal"] is None


def test_evidence_bundles_carry_the_chain(home, tmp_path, tsa, tsa_short):
    """Bundles of renewed batches hold each renewal link; verify-evidence checks them (with both CAs), and the
    bundle's check.sh scripts (openssl, cat, printf, cmp — no Python) verify each link by hand. A renewal leaf
    that does not cover the batch fails both ways."""
    import json
    import shutil
    import subprocess

    mailarchive(home, "timestamp", "renew", "--all", "--tsa-url", tsa.url, "--ca-cert", str(tsa.ca_cert_path))
    mailarchive(home, "timestamp", "renew", "--all", "--tsa-url", tsa.url, "--ca-cert", str(tsa.ca_cert_path))
    dest = tmp_path / "ev"
    r = mailarchive(home, "export", "evidence", str(dest), "--where", "m.msg_id IN (1, 20)", json_out=True).result
    assert r["written"] == 2 and not r["errors"]
    bundles = sorted(p for p in dest.iterdir() if p.is_dir())
    cas = ["--ca-cert", str(tsa_short.ca_cert_path), "--ca-cert", str(tsa.ca_cert_path)]
    v = mailarchive(tmp_path / "none", "verify-evidence", *cas, str(dest), json_out=True).result
    assert v["failed"] == 0 and all(b["renewals"] == 2 for b in v["bundles"])
    assert all(dt.datetime.fromisoformat(b["protected_until"]) > dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=3000)
               for b in v["bundles"])
    # the short-lived CA alone cannot verify the renewal links
    only_short = mailarchive(tmp_path / "none", "verify-evidence", "--ca-cert", str(tsa_short.ca_cert_path), str(dest),
                             json_out=True, check=1).result
    assert any(p.startswith("renewals/01: token:") for p in only_short["bundles"][0]["problems"])
    for b in bundles:
        ev = json.loads((b / "evidence.json").read_text())
        assert [x["dir"] for x in ev["renewals"]] == ["renewals/01", "renewals/02"]
        subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=b, check=True, capture_output=True)
        for nn in ("01", "02"):
            out = subprocess.run(["sh", f"renewals/{nn}/check.sh"], cwd=b, capture_output=True, text=True)
            assert out.returncode == 0 and "Verification: OK" in out.stdout, out.stdout + out.stderr
    # a renewal link that does not cover its batch: another batch's renewal leaf path put in its place
    bad = tmp_path / "bad" / bundles[0].name
    shutil.copytree(bundles[0], bad)
    other = json.loads((bundles[1] / "evidence.json").read_text())
    assert other["batch"]["batch_id"] != json.loads((bad / "evidence.json").read_text())["batch"]["batch_id"]
    shutil.copy(bundles[1] / "token.tsr", bad / "token.tsr")  # the batch token the first renewal covered is not ours
    out = subprocess.run(["sh", "renewals/01/check.sh"], cwd=bad, capture_output=True, text=True)
    assert out.returncode != 0
    res = mailarchive(tmp_path / "none", "verify-evidence", *cas, str(bad), json_out=True, check=1).result
    assert any("renewals/01" in p and "does not cover" in p for p in res["bundles"][0]["problems"])


def test_db_rebuild_keeps_renewals(home, tsa):
    """Renewals and their CAs come back from their sealed manifests: after `db rebuild` the chains verify and
    protection is as long as before."""
    mailarchive(home, "timestamp", "renew", "--all", "--tsa-url", tsa.url, "--ca-cert", str(tsa.ca_cert_path))
    before = mailarchive(home, "timestamp", "status", json_out=True).result["protection"]
    (home / "catalog.duckdb").unlink()
    r = mailarchive(home, "db", "rebuild", json_out=True).result
    assert r["stamp_batches"] == 2 and not r["stamp_problems"], r["stamp_problems"]
    after = mailarchive(home, "timestamp", "status", json_out=True).result["protection"]
    assert after == before and all(p["renewals"] == [1] and not p["warning"] for p in after)
    rep = mailarchive(home, "verify", "--full", json_out=True, check=0).result
    assert _check(rep, "F08")["status"] == "ok" and _check(rep, "F08")["count"] == 0
