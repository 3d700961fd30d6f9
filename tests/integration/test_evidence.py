"""Evidence bundles: `export evidence` writes bundles that verify with no archive and no key;
a changed byte in the mail, the inclusion path or the token fails. Also the auditor's manual route
(sha256sum, a few lines of Python, `openssl ts -verify`) that the README shows."""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.cli import mailarchive
from tests.integration.verify_support import build_archive, clone, sql
from verify.evidence import verify_evidence

from fixtures_tsa import tsa  # noqa: F401


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tsa):  # noqa: F811
    """An archive and the evidence for messages 1, 2 (batch 1) and 25 (batch 2), through the CLI."""
    root = tmp_path_factory.mktemp("evidence")
    build_archive(root, tsa)
    dest = root / "evidence"
    r = mailarchive(root / "home", "export", "evidence", str(dest), "--where", "m.msg_id IN (1, 2, 25)", json_out=True).result
    assert r["written"] == 3 and r["errors"] == [] and r["selected"] == 3
    return root, dest


def _bundle(dest: Path, msg_id: int) -> Path:
    (found,) = [p for p in dest.iterdir() if p.name.startswith(f"{msg_id:08d}-")]
    return found


def _copy(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / src.name
    shutil.copytree(src, dst)
    return dst


def test_bundles_verify_standalone(exported, tmp_path, tsa):  # noqa: F811
    """verify-evidence needs no archive: run it with an --archive that does not exist, on a copy elsewhere."""
    _root, dest = exported
    copy = tmp_path / "elsewhere"
    shutil.copytree(dest, copy)
    r = mailarchive(tmp_path / "no-archive-here", "verify-evidence", "--ca-cert", str(tsa.ca_cert_path), str(copy),
                    json_out=True, check=0).result
    assert r["failed"] == 0 and len(r["bundles"]) == 3
    assert {b["batch_id"] for b in r["bundles"]} == {1, 2}
    assert all(b["second_opinion"] == "openssl: OK" for b in r["bundles"])
    index = json.loads((dest / "evidence-index.json").read_text())
    assert len(index["bundles"]) == 3


def test_changed_mail_byte_fails(exported, tmp_path):
    b = _copy(_bundle(exported[1], 1), tmp_path)
    data = bytearray((b / "message.eml").read_bytes())
    data[len(data) // 2] ^= 0x20
    (b / "message.eml").write_bytes(bytes(data))
    res = verify_evidence(b, trust_bundle_ca=True)
    assert not res.ok
    assert any("mail changed" in p for p in res.problems), res.problems


def test_changed_path_byte_fails(exported, tmp_path):
    b = _copy(_bundle(exported[1], 25), tmp_path)
    ev = json.loads((b / "evidence.json").read_text())
    assert ev["path"], "message 25 needs a non-empty inclusion path"
    h = ev["path"][0]
    ev["path"][0] = ("0" if h[0] != "0" else "1") + h[1:]
    (b / "evidence.json").write_text(json.dumps(ev))
    res = verify_evidence(b, trust_bundle_ca=True)
    assert not res.ok
    assert any(p.startswith("inclusion path") for p in res.problems), res.problems
    assert verify_evidence(_bundle(exported[1], 25), trust_bundle_ca=True).ok  # the original still verifies


def test_changed_token_byte_fails_and_foreign_ca_is_refused(exported, tmp_path):
    b = _copy(_bundle(exported[1], 2), tmp_path)
    tsr = bytearray((b / "token.tsr").read_bytes())
    tsr[-5] ^= 0x01
    (b / "token.tsr").write_bytes(bytes(tsr))
    bad = verify_evidence(b, trust_bundle_ca=True)
    assert not bad.ok and any(p.startswith("token:") for p in bad.problems), bad.problems
    from services.tsa import make_pki

    other = make_pki(tmp_path / "other-ca", "other").ca_cert.read_bytes()
    res = verify_evidence(_bundle(exported[1], 2), ca_pem=other)  # the auditor trusts another CA
    assert not res.ok and any(p.startswith("token:") for p in res.problems)


def test_auditor_manual_route(exported):
    """sha256sum, a few lines of Python (as in the README), and openssl ts -verify — no toolkit involved."""
    b = _bundle(exported[1], 25)
    subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=b, check=True, capture_output=True)
    ev = json.loads((b / "evidence.json").read_text())
    out = subprocess.run(["sha256sum", "message.eml"], cwd=b, check=True, capture_output=True, text=True).stdout
    assert out.split()[0] == ev["message"]["sha256"]

    # --- the README's Python snippet: fold the inclusion path (RFC 9162 §2.1.3.2) ---
    sha = lambda b_: hashlib.sha256(b_).digest()  # noqa: E731
    node = sha(b"\x00" + bytes.fromhex(ev["message"]["sha256"]))
    fn, sn = ev["leaf"]["index"], ev["leaf"]["tree_size"] - 1
    for p in map(bytes.fromhex, ev["path"]):
        if fn & 1 or fn == sn:
            node = sha(b"\x01" + p + node)
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            node = sha(b"\x01" + node + p)
        fn, sn = fn >> 1, sn >> 1
    assert sn == 0 and node == (b / "root.bin").read_bytes()
    # --- end of snippet ---

    v = subprocess.run(["openssl", "ts", "-verify", "-in", "token.tsr", "-data", "root.bin", "-CAfile", "tsa-ca.pem"],
                       cwd=b, capture_output=True, text=True)
    assert v.returncode == 0 and "Verification: OK" in v.stdout, v.stderr


def test_unstamped_or_tampered_batches_get_no_bundle(exported, tmp_path):
    """A message not in a stamped batch, and messages of a batch whose root no longer recomputes, are listed as errors."""
    from toolkit.archive import Archive
    from verify.evidence import export_evidence

    home = clone(exported[0], tmp_path / "copy")
    sql(home, "UPDATE messages SET batch_id = NULL WHERE msg_id = 3")
    with Archive.open(home) as archive:
        s = export_evidence(archive, tmp_path / "ev", where="m.msg_id IN (3, 4)")
    assert s["written"] == 0
    errors = {e["msg_id"]: e["error"] for e in s["errors"]}
    assert "not in a stamp batch" in errors[3]
    assert "no longer gives its stamped root" in errors[4]
    assert not [p for p in (tmp_path / "ev").iterdir() if p.is_dir()]
