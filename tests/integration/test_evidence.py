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


def _edit_json(b: Path, edit) -> None:
    ev = json.loads((b / "evidence.json").read_text())
    edit(ev)
    (b / "evidence.json").write_text(json.dumps(ev))


def _edit_sums(b: Path, edit) -> None:
    (b / "SHA256SUMS").write_text(edit((b / "SHA256SUMS").read_text()))


#: What evidence.json says about the mail, batch and token, changed one field at a time; and SHA256SUMS, the
#: auditor's other list of hashes. Each change leaves the proof itself (mail, path, root, token) intact, and
#: each verified before verify-evidence compared the description with what it describes.
DESCRIPTION_EDITS = {
    "subject": (lambda b: _edit_json(b, lambda ev: ev["message"].update(subject="Invoice 2019-0042 (paid)")),
                "message.subject"),
    "from": (lambda b: _edit_json(b, lambda ev: ev["message"].update({"from": "ceo@example.org"})), "message.from"),
    "sent_date": (lambda b: _edit_json(b, lambda ev: ev["message"].update(sent_date="2018-01-01T00:00:00+00:00")),
                  "message.sent_date"),
    "size": (lambda b: _edit_json(b, lambda ev: ev["message"].update(size=ev["message"]["size"] + 1)), "message.size"),
    "imprint": (lambda b: _edit_json(b, lambda ev: ev["token"].update(imprint="0" * 64)), "token.imprint"),
    "serial": (lambda b: _edit_json(b, lambda ev: ev["token"].update(serial="ff")), "token.serial"),
    "path_rule": (lambda b: _edit_json(b, lambda ev: ev.update(path_rule="inner node = SHA-256(left || right)")),
                  "path_rule"),
    "sums line dropped": (lambda b: _edit_sums(b, lambda t: "".join(t.splitlines(True)[1:])), "is not listed"),
    "sums hash changed": (lambda b: _edit_sums(b, lambda t: ("0" if t[0] != "0" else "1") + t[1:]), "SHA256SUMS:"),
    "sums names another file": (lambda b: _edit_sums(b, lambda t: t + "0" * 64 + "  extra.bin\n"), "extra.bin"),
}


@pytest.mark.parametrize("what", sorted(DESCRIPTION_EDITS))
def test_a_changed_description_or_sums_file_fails(exported, tmp_path, what):
    original = _bundle(exported[1], 2)
    assert verify_evidence(original, trust_bundle_ca=True).ok
    b = _copy(original, tmp_path)
    edit, named = DESCRIPTION_EDITS[what]
    edit(b)
    res = verify_evidence(b, trust_bundle_ca=True)
    assert not res.ok and any(named in p for p in res.problems), res.problems


def test_bundles_of_every_mime_edge_mail_verify(tmp_path, tsa):  # noqa: F811
    """The description check reads each mail's header fields as the import did: the evidence of every
    single-message file of the MIME edge-case corpus (odd charsets, encoded words, broken dates and
    addresses) verifies, so no mail's own description is taken for a changed one."""
    from tests.corpora import corpora_dir, single_message_files
    from toolkit.archive import Archive
    from toolkit.ingest import Ingest
    from importers.eml import EmlImporter
    from verify.evidence import export_evidence, find_bundles
    from verify.stamping import stamp_pending

    src = tmp_path / "src"
    src.mkdir()
    for i, f in enumerate(single_message_files(corpora_dir())):
        (src / f"{i:04d}.eml").write_bytes(f.read_bytes())
    archive = Archive.create(tmp_path / "home", str(tmp_path / "medium"), name="edge")
    try:
        archive.config.settings["timestamp"] = {"tsa_url": tsa.url, "ca_pem": Path(tsa.ca_cert_path).read_text()}
        archive.save_config()
        summary = Ingest(archive).run(EmlImporter(str(src)))
        assert summary.archived > 400
        stamp_pending(archive, tsa_url=tsa.url, ca_pem=Path(tsa.ca_cert_path).read_bytes(), all_=True)
        s = export_evidence(archive, tmp_path / "ev")
    finally:
        archive.close()
    assert s["errors"] == [] and s["written"] == summary.archived
    ca = Path(tsa.ca_cert_path).read_bytes()
    bad = {}
    for b in find_bundles(tmp_path / "ev"):
        res = verify_evidence(b, ca_pem=ca)
        if not res.ok:
            bad[b.name] = res.problems
    assert not bad, dict(list(bad.items())[:5])
