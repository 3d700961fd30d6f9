"""`verify-evidence` must not trust the CA that a bundle brings along.

A forger changes a real bundle's mail, recomputes the leaf and the root along the unchanged inclusion path, has
the changed root stamped by a TSA under a CA of their own (a second local TSA with its own PKI), and ships that
CA as tsa-ca.pem. Every check inside the bundle then agrees; only the trust anchor tells it apart. Without
--ca-cert or an explicit --trust-bundle-ca the command prints no OK and exits 1, naming what to pass.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from tests.cli import mailarchive
from tests.corpora import REPO
from verify.merkle import leaf_hash_message, root_from_path
from verify.tokens import ca_fingerprint, parse_fields

pytestmark = pytest.mark.security


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def genuine(tmp_path_factory, tsa):
    """A real evidence bundle of one mail, stamped by the archive's TSA (A)."""
    base = tmp_path_factory.mktemp("trust")
    home = base / "home"
    mailarchive(home, "init", "--key-backup", str(base / "kb.txt"))
    mailarchive(home, "import", "eml", str(REPO / "sample_data" / "eml" / "2019"))
    mailarchive(home, "timestamp", "configure", "--tsa-url", tsa.url, "--ca-cert", str(tsa.ca_cert_path))
    mailarchive(home, "timestamp", "run", "--all")
    dest = base / "evidence"
    r = mailarchive(home, "export", "evidence", str(dest), "--where", "m.msg_id = 2", json_out=True).result
    assert r["written"] == 1
    (bundle,) = [p for p in dest.iterdir() if p.is_dir()]
    return bundle


def forge(genuine: Path, dest: Path, forger_tsa) -> Path:
    """The genuine bundle with a changed mail, a consistent Merkle path and a valid token under the forger's CA."""
    from services.tsa import query_for

    b = dest / genuine.name
    shutil.copytree(genuine, b)
    ev = json.loads((b / "evidence.json").read_text())
    mail = (b / "message.eml").read_bytes().replace(b"Subject: ", b"Subject: PAID ", 1)
    assert mail != (b / "message.eml").read_bytes()
    blob = hashlib.sha256(mail).digest()
    leaf = leaf_hash_message(blob)
    root = root_from_path(leaf, ev["leaf"]["index"], ev["leaf"]["tree_size"], [bytes.fromhex(h) for h in ev["path"]])
    token = forger_tsa.tsa.reply(query_for(root))
    ca = forger_tsa.ca_cert_path.read_bytes()
    files = {"message.eml": mail, "root.bin": root, "token.tsr": token, "tsa-ca.pem": ca}
    for name, data in files.items():
        (b / name).write_bytes(data)
    ev["message"]["sha256"] = blob.hex()
    ev["leaf"]["hash"] = leaf.hex()
    ev["batch"]["root"] = root.hex()
    fields = parse_fields(token)
    ev["token"].update(gen_time=fields.gen_time.isoformat(), imprint=_sha(root), ca_fingerprint=ca_fingerprint(ca),
                       serial=fields.serial, policy=fields.policy, tsa=fields.tsa_subject)
    # a careful forger describes the changed mail too (verify-evidence compares the description with the mail)
    ev["message"].update(size=len(mail), subject="PAID " + ev["message"]["subject"])
    ev["files"] = {n: _sha(d) for n, d in files.items()}
    (b / "evidence.json").write_text(json.dumps(ev, indent=2))
    (b / "SHA256SUMS").write_text("".join(f"{_sha(d)}  {n}\n" for n, d in files.items()))
    return b


def test_forged_bundle_is_not_ok_without_a_trust_anchor(genuine, tmp_path, tsa, tsa_b):
    forged = forge(genuine, tmp_path, tsa_b)
    nowhere = tmp_path / "no-archive"

    p = mailarchive(nowhere, "verify-evidence", str(forged), check=1)
    out = " ".join((p.stdout + p.stderr).split())
    assert "OK" not in out.replace("NOT TRUSTED", "")
    assert "trust anchor not given" in out and "--ca-cert" in out and "--trust-bundle-ca" in out
    j = mailarchive(nowhere, "verify-evidence", str(forged), json_out=True, check=1).result
    assert j["failed"] == 1 and not j["bundles"][0]["ok"]
    assert any(x.startswith("trust anchor not given") for x in j["bundles"][0]["problems"])

    # The forgery is internally consistent: trusting the bundle's own CA passes it (which is why that needs a flag) ...
    mailarchive(nowhere, "verify-evidence", "--trust-bundle-ca", str(forged), check=0)
    # ... and the archive TSA's real CA exposes it.
    p = mailarchive(nowhere, "verify-evidence", "--ca-cert", str(tsa.ca_cert_path), str(forged), json_out=True, check=1)
    assert any(x.startswith("token:") for x in p.result["bundles"][0]["problems"])


def test_genuine_bundle_needs_the_anchor_too(genuine, tmp_path, tsa):
    """Even a genuine bundle is not OK on its own CA alone; with the TSA's CA it is."""
    nowhere = tmp_path / "no-archive"
    p = mailarchive(nowhere, "verify-evidence", str(genuine), check=1)
    assert "trust anchor not given" in " ".join((p.stdout + p.stderr).split())
    mailarchive(nowhere, "verify-evidence", "--ca-cert", str(tsa.ca_cert_path), str(genuine), check=0)
