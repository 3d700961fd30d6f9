"""Dry runs: `import --dry-run`, `mirror --dry-run` write nothing and count what a real run then does;
`timestamp configure` checks the TSA with one test request (or not, with --no-check)."""
from __future__ import annotations

import datetime as dt
import hashlib
import os
from pathlib import Path

from tests.cli import mailarchive


def _snapshot(*roots: Path) -> dict[str, tuple[str, int]]:
    out = {}
    for root in roots:
        if not root.exists():
            continue
        for p in sorted(root.rglob("*")):
            if p.is_file():
                st = p.stat()
                out[str(p)] = (hashlib.sha256(p.read_bytes()).hexdigest(), st.st_mtime_ns)
            else:
                out[str(p)] = ("dir", 0)
    return out


def _mail(path: Path, i: int) -> None:
    path.write_text(f"From: a@example.com\nSubject: d{i}\nMessage-ID: <d{i}@x>\n\nbody {i}\n" + "x" * i)


def test_import_dry_run_counts_and_writes_nothing(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(4):
        _mail(src / f"{i}.eml", i)
    home, medium = tmp_path / "home", tmp_path / "m1"
    mailarchive(home, "init", "--medium", str(medium), "--key-backup", str(tmp_path / "kb.txt"))
    mailarchive(home, "import", "share", str(src))
    for i in range(4, 10):
        _mail(src / f"{i}.eml", i)
    (src / "photo.jpg").write_bytes(b"\xff\xd8\xff\xe0" + os.urandom(300))
    (src / "notes.txt").write_text("no headers here\n")
    before = _snapshot(home, medium)

    r = mailarchive(home, "import", "share", str(src), "--dry-run", json_out=True).result
    assert _snapshot(home, medium) == before                       # not a byte, not an mtime changed
    assert r["dry_run"] is True
    assert (r["read"], r["would_archive"], r["duplicates"], r["skipped"], r["errors"]) == (10, 6, 4, 2, 0)
    human = mailarchive(home, "import", "share", str(src), "--dry-run")
    assert "Dry run, nothing written: would read 10 mails" in human.stderr and "archive 6" in human.stderr
    assert _snapshot(home, medium) == before

    real = mailarchive(home, "import", "share", str(src), json_out=True).result
    assert (real["seen"], real["archived"], real["skipped"]) == (10, 6, 2)


def test_mirror_dry_run_lists_what_would_be_copied(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(5):
        _mail(src / f"{i}.eml", i)
    home, medium, dest = tmp_path / "home", tmp_path / "m1", tmp_path / "mirror"
    mailarchive(home, "init", "--medium", str(medium), "--key-backup", str(tmp_path / "kb.txt"))
    mailarchive(home, "import", "eml", str(src))
    mailarchive(home, "db", "backup", "--full")
    before = _snapshot(home, medium)
    dry = mailarchive(home, "mirror", str(dest), "--dry-run", json_out=True).result
    assert not dest.exists() or not any(dest.rglob("*"))           # nothing written at DEST
    assert _snapshot(home, medium) == before
    assert dry["dry_run"] is True and dry["copied"] > 0
    assert any(f.endswith(".pack") for f in dry["copied_files"])
    real = mailarchive(home, "mirror", str(dest), json_out=True).result
    assert sorted(real["copied_files"]) == sorted(dry["copied_files"])
    assert real["bytes_copied"] == dry["bytes_copied"]
    again = mailarchive(home, "mirror", str(dest), "--dry-run", json_out=True).result
    assert again["copied"] == 0 and again["already_present"] == real["copied"]


def _other_ca(path: Path) -> Path:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Some Other CA")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def test_timestamp_configure_checks_the_tsa(tmp_path, tsa_ok):
    home = tmp_path / "home"
    mailarchive(home, "init", "--medium", str(tmp_path / "m1"), "--key-backup", str(tmp_path / "kb.txt"))
    ok = mailarchive(home, "timestamp", "configure", "--tsa-url", tsa_ok.url, "--ca-cert", str(tsa_ok.ca_cert_path),
                     json_out=True).result
    assert ok["check"]["tsa_name"] and ok["check"]["policy"] and ok["check"]["policy"][0].isdigit()
    human = mailarchive(home, "timestamp", "configure", "--tsa-url", tsa_ok.url, "--ca-cert", str(tsa_ok.ca_cert_path))
    assert f"policy {ok['check']['policy']}" in human.stderr and "test stamp OK" in human.stderr

    toml = (home / "archive.toml").read_text()
    wrong = mailarchive(home, "timestamp", "configure", "--tsa-url", tsa_ok.url,
                        "--ca-cert", str(_other_ca(tmp_path / "other.pem")), check=None)
    assert wrong.returncode not in (0, 2) and "does not verify" in wrong.stderr
    assert (home / "archive.toml").read_text() == toml               # nothing stored
    dead = "http://127.0.0.1:9/tsa"                                  # nobody listens on the discard port
    down = mailarchive(home, "timestamp", "configure", "--tsa-url", dead, "--ca-cert", str(tsa_ok.ca_cert_path), check=3)
    assert "cannot reach" in down.stderr
    mailarchive(home, "timestamp", "configure", "--tsa-url", dead, "--ca-cert", str(tsa_ok.ca_cert_path), "--no-check")
    assert dead in (home / "archive.toml").read_text()
