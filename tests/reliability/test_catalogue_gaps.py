"""Cases of docs/reliability.md that need no server: signed mail survives the archive byte for
byte (J10), duplicates keep every folder they were seen in (L8), secrets stay out of logs, temp
files, argv and the media (G7), and a whole medium deleted by hand is reported and its id never
reused (P3).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.cli import PASSWORD, mailarchive


def _sql(home: Path, query: str) -> list[dict]:
    p = mailarchive(home, "sql", "--format", "json", query)
    return json.loads(p.stdout)


def _signed_mail(tmp: Path, body: str) -> bytes:
    """A real S/MIME multipart/signed mail, made by openssl with a throwaway certificate."""
    key, cert = tmp / "signer.key", tmp / "signer.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "2", "-subj", "/CN=signer@example.org"], check=True, capture_output=True)
    content = tmp / "content.txt"
    content.write_bytes(body.encode())
    out = subprocess.run(["openssl", "smime", "-sign", "-in", str(content), "-signer", str(cert), "-inkey", str(key),
                          "-from", "signer@example.org", "-to", "auditor@example.org", "-subject", "signed",
                          "-text"], check=True, capture_output=True).stdout
    headers = b"Message-ID: <signed-1@example.org>\r\nDate: Thu, 03 Dec 2026 10:00:00 +0000\r\n"
    return headers + out


def _smime_verifies(path: Path) -> bool:
    p = subprocess.run(["openssl", "smime", "-verify", "-noverify", "-in", str(path), "-out", os.devnull],
                       capture_output=True)
    return p.returncode == 0


def test_j10_smime_signed_mail_still_verifies_after_export(tmp_path):
    home, src, out = tmp_path / "home", tmp_path / "src", tmp_path / "out"
    src.mkdir()
    signed = src / "signed.eml"
    signed.write_bytes(_signed_mail(tmp_path, "Payment order 4711\r\nAmount: 100.00 EUR\r\n"))
    assert _smime_verifies(signed), "the fixture itself must verify"
    mailarchive(home, "init", "--medium", str(tmp_path / "m1"))
    mailarchive(home, "import", "eml", str(src))
    mailarchive(home, "export", "eml", str(out))
    exported = [p for p in out.rglob("*.eml")]
    assert len(exported) == 1, exported
    assert exported[0].read_bytes() == signed.read_bytes()
    assert _smime_verifies(exported[0])
    # the check could fail: one changed byte in the signed body breaks the signature
    tampered = tmp_path / "tampered.eml"
    tampered.write_bytes(exported[0].read_bytes().replace(b"4711", b"4712"))
    assert not _smime_verifies(tampered)


def test_l8_a_duplicate_keeps_every_folder_it_was_seen_in(tmp_path):
    home = tmp_path / "home"
    mail = "From: a@example.org\nTo: b@example.org\nSubject: twice\nMessage-ID: <twice@example.org>\n\nsame body\n"
    other = "From: a@example.org\nSubject: once\nMessage-ID: <once@example.org>\n\nother\n"
    inbox, archive = tmp_path / "Inbox.mbox", tmp_path / "Archive.mbox"
    frm = "From a@example.org Thu Dec  3 10:00:00 2026\n"
    inbox.write_text(frm + mail + "\n" + frm + mail + "\n")            # twice in one mbox
    archive.write_text(frm + other + "\n" + frm + mail + "\n")         # and once more in another
    mailarchive(home, "init", "--medium", str(tmp_path / "m1"))
    mailarchive(home, "import", "mbox", str(inbox))
    mailarchive(home, "import", "mbox", str(archive))
    rows = _sql(home, "SELECT count(*) AS n FROM messages WHERE message_id LIKE '%twice@example.org%'")
    assert rows[0]["n"] == 1
    seen = _sql(home, "SELECT s.source_uri, s.source_ref, s.decision FROM sightings s JOIN messages m USING (msg_id) "
                      "WHERE m.message_id LIKE '%twice@example.org%' ORDER BY s.source_uri, s.source_ref")
    assert len(seen) == 3, seen
    sources = {Path(r["source_uri"].split("://", 1)[-1]).name for r in seen}
    assert sources == {"Inbox.mbox", "Archive.mbox"}, seen
    assert sorted(r["decision"] for r in seen) == ["exact-duplicate", "exact-duplicate", "new"], seen


def _cmdlines_of_tree(root_pid: int) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if int(entry.name) == root_pid or ppid == root_pid:
                found.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except (OSError, ValueError, IndexError):
            continue
    return found


def test_g7_no_key_or_passphrase_in_logs_temp_files_argv_or_media(tmp_path):
    home, src, tmp = tmp_path / "home", tmp_path / "src", tmp_path / "tmp"
    src.mkdir()
    tmp.mkdir()
    for i in range(300):
        (src / f"{i}.eml").write_text(f"From: a@b.c\nSubject: g7 {i}\nMessage-ID: <g7-{i}@x>\n\n" + "line\n" * 200)
    mailarchive(home, "init", "--medium", str(tmp_path / "m1"))
    log = tmp_path / "run.log"
    env = {**os.environ, "MAILARCHIVE_PASSWORD": PASSWORD, "TMPDIR": str(tmp)}
    cmd = [sys.executable, "-m", "toolkit", "--archive", str(home), "--log-file", str(log), "import", "eml", str(src)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    argvs: list[str] = []
    while proc.poll() is None:
        argvs += _cmdlines_of_tree(proc.pid)
        time.sleep(0.05)
    out, err = proc.communicate()
    assert proc.returncode == 0, err
    assert argvs, "the process tree was never seen"
    assert not [a for a in argvs if PASSWORD in a]
    key = (home / "key").read_bytes()
    secrets = {"the passphrase": PASSWORD.encode(), "the archive key": key, "the archive key in hex": key.hex().encode()}
    texts = {"stdout": out, "stderr": err}
    for place in [log, *tmp.rglob("*"), *(tmp_path / "m1").rglob("*")]:
        if place.is_file():
            texts[str(place)] = place.read_bytes()
    assert log.is_file() and log.stat().st_size > 0
    assert list((tmp_path / "m1").rglob("*.pack")) or list((tmp_path / "m1").rglob("*")), "nothing on the medium"
    for name, data in texts.items():
        for what, s in secrets.items():
            assert s not in data, f"{what} appears in {name}"


def test_p3_a_whole_medium_deleted_by_hand_is_reported_and_its_id_never_reused(tmp_path):
    home = tmp_path / "home"

    def mails(name: str, n: int) -> Path:
        d = tmp_path / name
        d.mkdir()
        for i in range(n):
            (d / f"{i}.eml").write_text(f"From: a@b.c\nSubject: {name} {i}\nMessage-ID: <{name}-{i}@x>\n\nbody {i}\n")
        return d

    mailarchive(home, "init", "--medium", str(tmp_path / "m1"))
    mailarchive(home, "import", "eml", str(mails("first", 3)))
    mailarchive(home, "media", "add", str(tmp_path / "m2"), "--activate")
    mailarchive(home, "import", "eml", str(mails("second", 4)))
    shutil.rmtree(tmp_path / "m2")                                   # the whole medium is gone
    p = mailarchive(home, "--json", "verify", check=None)
    assert p.returncode == 1, (p.stdout, p.stderr)
    text = " ".join((p.stdout + p.stderr).split())
    assert "medium 2" in text or '"medium": 2' in text or "medium-2" in text, text
    p = mailarchive(home, "--json", "media", "add", str(tmp_path / "m3"))
    added = json.loads(p.stdout)
    assert added.get("id", added.get("medium")) == 3, added


def test_f4_a_pack_replaced_by_another_valid_pack_under_its_name_is_found(tmp_path):
    """Packs are write-once under fresh names, so an "older version" of one pack can only be crafted:
    another valid pack of the same archive and key copied over its name. Quick verify sees the size,
    full verify refuses every record of it as foreign, naming the pack."""
    home = tmp_path / "home"
    mailarchive(home, "init", "--medium", str(tmp_path / "m1"))
    for batch in ("old", "new"):
        d = tmp_path / batch
        d.mkdir()
        for i in range(3):
            (d / f"{i}.eml").write_text(f"From: a@b.c\nSubject: {batch} {i}\nMessage-ID: <{batch}-{i}@x>\n\n{batch} body {i}\n")
        mailarchive(home, "import", "eml", str(d))
    packs = _sql(home, "SELECT pack_id, name, bytes FROM packs ORDER BY created_at")
    assert len(packs) == 2, packs
    old, new = (tmp_path / "m1" / row["name"] for row in packs)
    shutil.copyfile(old, new)                                       # the "new" name now holds the old pack
    p = mailarchive(home, "--json", "verify", "--full", check=None)
    assert p.returncode == 1, (p.stdout, p.stderr)
    report = json.loads(p.stdout)
    found = [c for c in report["checks"] if c["status"] == "finding"]
    assert found, report
    assert packs[1]["pack_id"] in json.dumps(found), found
    assert packs[0]["pack_id"] not in json.dumps([e for c in found for e in c.get("examples", [])
                                                  if e.get("pack") != packs[1]["pack_id"]])
