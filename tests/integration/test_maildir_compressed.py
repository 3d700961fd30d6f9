"""``import maildir`` of a Maildir whose files a real Dovecot wrote compressed (its zlib plugin; docs/reliability.md M8).

Dovecot's ``doveadm save`` with ``mail_plugins=zlib`` and ``zlib_save=<kind>`` writes each message file gzip, bzip2,
zstd or LZ4 compressed (xz is not compiled into Debian's Dovecot). The import must archive the messages Dovecot
hands out, byte for byte, with their flags and a note, and a damaged file must be an error that archives nothing
of it, while the others are archived.
"""
from __future__ import annotations

import bz2
import gzip
import shutil

import pytest
import zstandard

from tests.cli import mailarchive

#: Dovecot's name for each compression, and the note the import records
KINDS = {"gz": "gzip", "bz2": "bzip2", "zstd": "zstd", "lz4": "dovecot-lz4"}
MAGIC = {"gz": b"\x1f\x8b", "bz2": b"BZh", "zstd": b"\x28\xb5\x2f\xfd", "lz4": b"Dovecot-LZ4"}


def _mail(kind: str) -> bytes:
    body = b"".join(b"line %d of a long body, so that LZ4 writes several chunks\n" % i for i in range(3000 if kind == "lz4" else 40))
    return (b"From: Sender <s@example.org>\nTo: alice@example.org\nSubject: stored as " + kind.encode()
            + b"\nMessage-ID: <" + kind.encode() + b"@example.org>\nDate: Tue, 1 Oct 2024 10:00:00 +0000\n\n" + body)


def _exported(home, out) -> set[bytes]:
    mailarchive(home, "export", "eml", str(out))
    return {p.read_bytes() for p in out.rglob("*.eml")}


def test_a_maildir_dovecot_wrote_compressed_imports_the_messages_dovecot_serves(dovecot, mail_user, tmp_path):
    user, _password = mail_user
    for kind in KINDS:
        dovecot.doveadm("-o", "mail_plugins=zlib", "-o", f"plugin/zlib_save={kind}", "save", "-u", user, "-m", "INBOX",
                        input=_mail(kind))
    src = tmp_path / "Maildir"
    shutil.copytree(dovecot.maildir(user), src)
    files = sorted(p for p in (src / "new").iterdir())
    assert len(files) == 4
    # Dovecot did compress them, one file per kind (told by its magic: the names' order need not be the order
    # saved, as their microseconds part has no fixed width)
    kinds = sorted(k for f in files for k in KINDS if f.read_bytes().startswith(MAGIC[k]))
    assert kinds == sorted(KINDS)
    for f in files:  # read as a client would have them: the \Seen flag in the name
        f.rename(src / "cur" / (f.name + ":2,S"))

    home = tmp_path / "home"
    mailarchive(home, "init", "--kdf-profile", "test", "--key-backup", str(tmp_path / "kb.txt"))
    r = mailarchive(home, "import", "maildir", str(src), json_out=True).result
    assert r["archived"] == 4 and r["errors"] == 0
    assert _exported(home, tmp_path / "out") == {_mail(k) for k in KINDS}
    rows = mailarchive(home, "sql", "SELECT flags FROM sightings ORDER BY flags", json_out=True).result
    assert sorted(row["flags"] for row in rows) == sorted(f"\\Seen file-compressed-{n}" for n in KINDS.values())
    mailarchive(home, "export", "maildir", str(tmp_path / "md-out"))  # the notes are no flags: \Seen alone
    names = [p.name for p in (tmp_path / "md-out").rglob("*") if p.parent.name == "cur"]
    assert len(names) == 4 and all(n.endswith(":2,S") for n in names), names

    # one file damaged, one cut short after a whole LZ4 chunk (the name's S= tells it): errors, nothing of them
    # archived; a plain message beside them is
    bad = tmp_path / "Bad"
    shutil.copytree(src, bad)
    by_kind = {k: f for f in (bad / "cur").iterdir() for k in KINDS if f.read_bytes().startswith(MAGIC[k])}
    assert len(by_kind) == 4
    gz = by_kind["gz"].read_bytes()
    by_kind["gz"].write_bytes(gz[:len(gz) // 2])
    lz = by_kind["lz4"].read_bytes()
    first = int.from_bytes(lz[19:23], "big")
    by_kind["lz4"].write_bytes(lz[:23 + first])
    for f in (by_kind["bz2"], by_kind["zstd"]):
        f.unlink()
    (bad / "cur" / "1727776800.M1P1.host,S=95:2,S").write_bytes(
        b"From: p@example.org\nSubject: plain\nMessage-ID: <plain@example.org>\n\nstored as it is, not compressed\n")
    home2 = tmp_path / "home2"
    mailarchive(home2, "init", "--kdf-profile", "test", "--key-backup", str(tmp_path / "kb2.txt"))
    r = mailarchive(home2, "import", "maildir", str(bad), json_out=True, check=1).result
    assert r["archived"] == 1 and r["errors"] == 2
    errors = {e["ref"].rpartition("/")[2]: e["message"] for e in r["sources"][0]["problems"]}
    assert "gzip-compressed message file cut short" in errors[by_kind["gz"].name]
    assert f"its name says S={len(_mail('lz4'))}" in errors[by_kind["lz4"].name]
    rows = mailarchive(home2, "sql", "SELECT subject FROM messages", json_out=True).result
    assert [row["subject"] for row in rows] == ["plain"]


@pytest.mark.samba
def test_compressed_maildir_files_on_a_share_are_read_decompressed_by_the_workers(tmp_path, samba, smb_location):
    """The same over SMB: each file is read and decompressed where the pipeline reads it (a worker's own connection,
    toolkit/share_file.py), a damaged one is an error."""
    root = samba.share_dir / smb_location.rstrip("/").rpartition("/")[2]
    (root / "new").mkdir(parents=True)
    (root / "cur").mkdir()
    mails = [_mail(k) for k in ("gz", "bz2", "zstd")]
    packed = [gzip.compress(mails[0]), bz2.compress(mails[1]), zstandard.ZstdCompressor().compress(mails[2])]
    for i, (m, p) in enumerate(zip(mails, packed)):  # names without ':' (Samba would show them mangled)
        (root / "new" / f"17277768{i:02d}.M{i}P1.host,S={len(m)}").write_bytes(p)
    (root / "new" / "1727776899.M9P1.host,S=5000").write_bytes(gzip.compress(mails[0])[:40])
    plain = _mail("plain")
    (root / "cur" / f"1727776900.M10P1.host,S={len(plain)}").write_bytes(plain)
    (root / "cur" / "1727776901.M11P1.host,S=99999").write_bytes(plain + b"one more line\n")
    for n, env in enumerate((None, {"MAILARCHIVE_LARGE_MAIL": "100"})):  # read by the workers; streamed by the driver
        home = tmp_path / f"home{n}"
        mailarchive(home, "init", "--kdf-profile", "test", "--key-backup", str(tmp_path / f"kb{n}.txt"))
        r = mailarchive(home, "import", "maildir", smb_location, json_out=True, check=1, timeout=120, env=env).result
        assert r["archived"] == 5 and r["errors"] == 1
        assert [p["ref"] for p in r["sources"][0]["problems"]] == ["new/1727776899.M9P1.host,S=5000"]
        assert any("1727776901.M11P1.host,S=99999: the file holds" in w for w in r["warnings"])
        assert _exported(home, tmp_path / f"out{n}") == {*mails, plain, plain + b"one more line\n"}


@pytest.mark.samba
def test_large_eml_files_on_a_share_are_streamed_after_the_scan_ends(tmp_path, samba, smb_location):
    """``import eml`` and ``import share`` stream a file above LARGE_MAIL from the share; the last chunk's are read
    after the scan has closed its connection (K1 over SMB: this failed with "storage already closed")."""
    root = samba.share_dir / smb_location.rstrip("/").rpartition("/")[2]
    root.mkdir(parents=True)
    mails = [_mail(f"eml{i}") for i in range(3)]
    for i, m in enumerate(mails):
        (root / f"m{i}.eml").write_bytes(m)
    for kind in ("eml", "share"):
        home = tmp_path / f"home-{kind}"
        mailarchive(home, "init", "--kdf-profile", "test", "--key-backup", str(tmp_path / f"kb-{kind}.txt"))
        r = mailarchive(home, "import", kind, smb_location, json_out=True, timeout=120,
                        env={"MAILARCHIVE_LARGE_MAIL": "100"}).result
        assert r["archived"] == 3 and r["errors"] == 0, kind
        assert _exported(home, tmp_path / f"out-{kind}") == set(mails), kind
