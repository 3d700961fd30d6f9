"""Verification years later with revocation data (RELIABILITY I16).

`verify --full` and `verify-evidence` take `--at TIME` (the verification time) and `--crl FILE`
(repeatable). The CRLs are made by `openssl ca -gencrl` from the test TSA's own CA, with the
revocation date and reason of the TSA certificate written into the CA's index by the test:

* revoked (superseded) after genTime: the token still verifies;
* revoked before genTime: the token fails, naming the revocation;
* revoked for key compromise after genTime: verifies `--at` a time before the revocation,
  fails at a time after it;
* a CRL under the CA's name but signed by another key: fails (never silently ignored);
* `--at` before genTime fails; `verify --crl` without `--full` is a usage error.
"""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from cryptography import x509

from tests.cli import mailarchive
from tests.services.tsa import _openssl, make_pki

from fixtures_tsa import tsa  # noqa: F401  (also loaded by conftest's pytest_plugins)


def _utc(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).strftime("%y%m%d%H%M%SZ")


def make_crl(d: Path, ca_cert: Path, ca_key: Path, revoked: Path, when: dt.datetime, reason: str) -> Path:
    """A CRL of ``ca_cert`` listing certificate ``revoked`` as revoked at ``when`` for ``reason``."""
    d.mkdir(parents=True)
    cert = x509.load_pem_x509_certificate(revoked.read_bytes())
    serial = format(cert.serial_number, "X")
    serial = serial if len(serial) % 2 == 0 else "0" + serial
    subject = "".join(f"/{a.rfc4514_attribute_name}={a.value}" for a in cert.subject)
    (d / "index.txt").write_text(
        f"R\t{_utc(cert.not_valid_after_utc)}\t{_utc(when)},{reason}\t{serial}\tunknown\t{subject}\n")
    (d / "crlnumber").write_text("01\n")
    (d / "ca.cnf").write_text(
        "[ca]\ndefault_ca = ca_default\n[ca_default]\n"
        f"database = {d / 'index.txt'}\ncrlnumber = {d / 'crlnumber'}\ndefault_md = sha256\ndefault_crl_days = 30\n")
    out = d / "crl.pem"
    _openssl("ca", "-gencrl", "-config", str(d / "ca.cnf"), "-keyfile", str(ca_key), "-cert", str(ca_cert),
             "-out", str(out))
    return out


@pytest.fixture(scope="module")
def stamped(tmp_path_factory, tsa):  # noqa: F811
    """An archive stamped by the test TSA, its evidence bundles, and the token's genTime."""
    root = tmp_path_factory.mktemp("i16")
    home, src = root / "home", root / "src"
    src.mkdir()
    for i in range(3):
        (src / f"{i}.eml").write_text(f"From: a@example.org\nSubject: i16 {i}\nMessage-ID: <i16-{i}@x>\n\nbody {i}\n")
    mailarchive(home, "init", "--medium", str(root / "m1"), "--key-backup", str(root / "kb.txt"))
    mailarchive(home, "timestamp", "configure", "--tsa-url", tsa.url, "--ca-cert", str(tsa.ca_cert_path))
    mailarchive(home, "import", "eml", str(src))
    mailarchive(home, "timestamp", "run", "--all")
    mailarchive(home, "export", "evidence", str(root / "evidence"))
    ev = json.loads(next((root / "evidence").rglob("evidence.json")).read_text())
    gen = dt.datetime.fromisoformat(ev["token"]["gen_time"])
    return {"root": root, "home": home, "evidence": root / "evidence", "gen": gen, "tsa": tsa}


def _crl(stamped, name: str, when: dt.datetime, reason: str) -> Path:
    pki = stamped["tsa"].pki
    return make_crl(stamped["root"] / f"crl-{name}", pki.ca_cert, pki.ca_key, pki.tsa_cert, when, reason)


def _verify(stamped, *args) -> tuple[int, str]:
    r = mailarchive(stamped["home"], "verify", "--full", *args, json_out=True, check=None)
    f06 = next(c for c in r.result["checks"] if c["id"] == "F06") if getattr(r, "result", None) else {}
    return r.returncode, " ".join(e["detail"] for e in f06.get("examples", []))


def _evidence(stamped, *args) -> tuple[int, str]:
    r = mailarchive(stamped["home"], "verify-evidence", str(stamped["evidence"]), "--ca-cert",
                    str(stamped["tsa"].ca_cert_path), *args, json_out=True, check=None)
    probs = [p for x in r.result["bundles"] for p in x["problems"]]
    return r.returncode, " ".join(probs)


def test_i16_revoked_after_gen_time_still_verifies(stamped):
    crl = _crl(stamped, "after", stamped["gen"] + dt.timedelta(hours=1), "superseded")
    later = (stamped["gen"] + dt.timedelta(days=3650)).isoformat()
    assert _verify(stamped, "--crl", str(crl), "--at", later) == (0, "")
    assert _evidence(stamped, "--crl", str(crl), "--at", later) == (0, "")


def test_i16_revoked_before_gen_time_fails(stamped):
    crl = _crl(stamped, "before", stamped["gen"] - dt.timedelta(days=1), "superseded")
    code, detail = _verify(stamped, "--crl", str(crl))
    assert code == 1 and "revocation:" in detail and "at or before the token's genTime" in detail, detail
    code, probs = _evidence(stamped, "--crl", str(crl))
    assert code == 1 and "revocation:" in probs, probs


def test_i16_key_compromise_counts_from_its_date_on(stamped):
    revoked = stamped["gen"] + dt.timedelta(days=1)
    crl = _crl(stamped, "compromise", revoked, "keyCompromise")
    before = (revoked - dt.timedelta(hours=2)).isoformat()
    after = (revoked + dt.timedelta(days=400)).isoformat()
    assert _verify(stamped, "--crl", str(crl), "--at", before) == (0, "")
    assert _evidence(stamped, "--crl", str(crl), "--at", before) == (0, "")
    code, detail = _verify(stamped, "--crl", str(crl), "--at", after)
    assert code == 1 and "key compromise" in detail, detail
    code, probs = _evidence(stamped, "--crl", str(crl), "--at", after)
    assert code == 1 and "key compromise" in probs, probs


def test_i16_crl_under_the_ca_name_but_another_key_fails(stamped):
    other = make_pki(stamped["root"] / "other-pki", "test")  # same CA subject as the session TSA's, another key
    assert other.ca_cert.read_bytes() != Path(stamped["tsa"].ca_cert_path).read_bytes()
    crl = make_crl(stamped["root"] / "crl-forged", other.ca_cert, other.ca_key, stamped["tsa"].pki.tsa_cert,
                   stamped["gen"] + dt.timedelta(hours=1), "superseded")
    code, detail = _verify(stamped, "--crl", str(crl))
    assert code == 1 and "does not verify under that CA" in detail, detail


def test_i16_at_before_gen_time_and_usage_errors(stamped):
    code, detail = _verify(stamped, "--at", (stamped["gen"] - dt.timedelta(days=2)).isoformat())
    assert code == 1 and "after the verification time" in detail, detail
    crl = _crl(stamped, "usage", stamped["gen"] + dt.timedelta(hours=1), "superseded")
    r = mailarchive(stamped["home"], "verify", "--crl", str(crl), check=None)
    assert r.returncode == 2 and "--full" in r.stderr
    r = mailarchive(stamped["home"], "verify", "--full", "--at", "yesterday", check=None)
    assert r.returncode == 2 and "ISO 8601" in r.stderr
    r = mailarchive(stamped["home"], "verify-evidence", str(stamped["evidence"]), "--crl", str(stamped["home"] / "archive.toml"),
                    check=None)
    assert r.returncode == 2 and "revocation list" in r.stderr


def test_i16_library_api_takes_at_and_crls(stamped):
    from toolkit import api

    revoked = stamped["gen"] + dt.timedelta(days=1)
    crl = _crl(stamped, "api", revoked, "keyCompromise").read_bytes()
    with api.open_archive(stamped["home"]) as archive:
        ok = api.verify_archive(archive, full=True, at=revoked - dt.timedelta(hours=1), crls=[crl])
        bad = api.verify_archive(archive, full=True, at=revoked + dt.timedelta(days=1), crls=[crl])
    assert ok.exit_code == 0
    assert bad.exit_code == 1 and "key compromise" in bad.get("F06").items[0]["detail"]


@pytest.fixture(scope="module")
def renewed(tmp_path_factory, tsa):  # noqa: F811
    """An archive stamped, then renewed a few seconds later by the same TSA (so a revocation can fall between)."""
    import time

    root = tmp_path_factory.mktemp("i16-renewal")
    home, src = root / "home", root / "src"
    src.mkdir()
    (src / "0.eml").write_text("From: a@example.org\nSubject: i16 renewal\nMessage-ID: <i16-r@x>\n\nbody\n")
    mailarchive(home, "init", "--medium", str(root / "m1"), "--key-backup", str(root / "kb.txt"))
    mailarchive(home, "timestamp", "configure", "--tsa-url", tsa.url, "--ca-cert", str(tsa.ca_cert_path))
    mailarchive(home, "import", "eml", str(src))
    mailarchive(home, "timestamp", "run", "--all")
    time.sleep(3)
    mailarchive(home, "timestamp", "renew", "--all", "--tsa-url", tsa.url, "--ca-cert", str(tsa.ca_cert_path))
    mailarchive(home, "export", "evidence", str(root / "evidence"))
    rows = json.loads(mailarchive(home, "sql", "SELECT (SELECT epoch(gen_time) FROM stamp_batches WHERE batch_id = 1) AS b, "
                                  "(SELECT epoch(gen_time) FROM stamp_renewals WHERE renewal_id = 1) AS r",
                                  "--format", "json").stdout)[0]
    gen = {k: dt.datetime.fromtimestamp(v, dt.timezone.utc) for k, v in rows.items()}
    assert gen["r"] - gen["b"] >= dt.timedelta(seconds=2)
    return {"root": root, "home": home, "evidence": root / "evidence", "gen": gen["b"], "renewal_gen": gen["r"],
            "tsa": tsa}


def test_i16_a_renewal_made_after_the_tsa_was_revoked_fails_and_the_batch_token_still_holds(renewed):
    """The TSA certificate revoked (superseded) between the batch's token and its renewal: the batch's own
    token still verifies (F06), the renewal link does not (F08), in `verify --full` and in the evidence bundle."""
    between = renewed["gen"] + (renewed["renewal_gen"] - renewed["gen"]) / 2
    crl = _crl(renewed, "between", between, "superseded")
    r = mailarchive(renewed["home"], "verify", "--full", "--crl", str(crl), json_out=True, check=None)
    checks = {c["id"]: c for c in r.result["checks"]}
    assert r.returncode == 1
    assert checks["F06"]["status"] == "ok", checks["F06"]
    f08 = " ".join(e["detail"] for e in checks["F08"].get("examples", []))
    assert checks["F08"]["status"] == "finding" and "renewal 1" in f08 and "revocation" in f08, checks["F08"]
    code, probs = _evidence(renewed, "--crl", str(crl))
    assert code == 1 and "renewals/01" in probs and "revocation" in probs, probs
    # revoked after the renewal too: both hold
    late = _crl(renewed, "late", renewed["renewal_gen"] + dt.timedelta(hours=1), "superseded")
    assert mailarchive(renewed["home"], "verify", "--full", "--crl", str(late), check=None).returncode == 0
    assert _evidence(renewed, "--crl", str(late)) == (0, "")
