"""SMB faults against the real test Samba (C11).

C11: the share's filesystem fills up. The medium's directory on the server is a
small tmpfs mounted inside the share (the test runs as root), so the server
answers the writes with STATUS_DISK_FULL exactly as a full NAS would.
"""
from __future__ import annotations

import base64
import os
import shutil
import subprocess

import pytest

from tests.cli import mailarchive
from tests.services.samba import USER

pytestmark = pytest.mark.samba


def _random_mails(src, n: int, size: int) -> None:
    """Mails with incompressible bodies, so the packs really take ``n * size`` bytes."""
    src.mkdir()
    for i in range(n):
        body = base64.encodebytes(os.urandom(size)).decode()
        (src / f"{i:04d}.eml").write_text(
            f"From: a@example.com\nTo: b@example.com\nSubject: full {i}\nMessage-ID: <full{i}@example.com>\n"
            f"Date: Mon, 1 Jan 2024 00:00:00 +0000\nContent-Type: text/plain\n\n{body}"
        )


def test_c11_disk_full_on_the_share_stops_cleanly_and_resumes(tmp_path, samba, smb_location):
    sub = samba.share_dir / smb_location.rsplit("/", 1)[1]
    sub.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(sub)], check=True)
    try:
        shutil.chown(sub, user=USER)
        home = tmp_path / "home"
        mailarchive(home, "init", "--medium", smb_location, "--key-backup", str(tmp_path / "kb.txt"))
        mailarchive(home, "config", "set", "import.min_free", "0")  # no E6 refusal: the share fills mid-pack
        src = tmp_path / "src"
        _random_mails(src, 60, 40_000)  # about 2.4 MB of packs onto 1 MiB
        env = {"MAILARCHIVE_PACK_TARGET": "200000"}
        p = mailarchive(home, "import", "eml", str(src), env=env, check=3)
        assert "full" in p.stderr and "Traceback" not in p.stderr
        committed = mailarchive(home, "stats", json_out=True).result["messages"]
        assert 0 < committed < 60
        # what was committed is intact and nothing half-written counts
        v = mailarchive(home, "verify", json_out=True, check=None)
        assert v.returncode == 0, v.stdout + v.stderr
        # room again: the rerun completes what is missing
        subprocess.run(["mount", "-o", "remount,size=16m", str(sub)], check=True)
        again = mailarchive(home, "import", "eml", str(src), env=env, json_out=True).result
        assert again["archived"] == 60 - committed and again["errors"] == 0
        assert mailarchive(home, "stats", json_out=True).result["messages"] == 60
        mailarchive(home, "verify")
    finally:
        subprocess.run(["umount", "-l", str(sub)], check=False)


def _revoke_write(tree) -> None:
    for d, dirs, files in os.walk(tree):
        os.chmod(d, 0o555)
        for f in files:
            os.chmod(os.path.join(d, f), 0o444)


def _restore_write(tree) -> None:
    for d, dirs, files in os.walk(tree):
        os.chmod(d, 0o755)
        for f in files:
            os.chmod(os.path.join(d, f), 0o644)


def test_c5_write_permission_revoked_mid_run_stops_cleanly_and_resumes(tmp_path, samba, smb_location):
    """The share's account loses write permission on the medium's directories between two packs
    (chmod on the server: smbd acts as the share's forced user, not as root)."""
    import sys
    import time

    from tests.cli import PASSWORD
    from tests.corpora import REPO

    sub = samba.share_dir / smb_location.rsplit("/", 1)[1]
    home = tmp_path / "home"
    mailarchive(home, "init", "--medium", smb_location, "--key-backup", str(tmp_path / "kb.txt"))
    src = tmp_path / "src"
    _random_mails(src, 200, 2_000)
    env = {**os.environ, "MAILARCHIVE_PASSWORD": PASSWORD, "MAILARCHIVE_PACK_TARGET": "20000",
           "MAILARCHIVE_FAULT_SLOW": "after_db_commit:0.4"}
    imp = subprocess.Popen([sys.executable, "-m", "toolkit", "--archive", str(home), "import", "eml", str(src)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    deadline = time.monotonic() + 120
    while imp.poll() is None and time.monotonic() < deadline:
        if mailarchive(home, "stats", json_out=True).result["messages"] > 0:
            break
        time.sleep(0.2)
    assert imp.poll() is None, "the import ended before the permission could be revoked"
    _revoke_write(sub)
    try:
        out, err = imp.communicate(timeout=120)
        assert imp.returncode == 3, (out, err)
        assert "denied" in err and "Traceback" not in err
        committed = mailarchive(home, "stats", json_out=True).result["messages"]
        assert 0 < committed < 200
        v = mailarchive(home, "verify", json_out=True, check=None)
        assert v.returncode == 0, v.stdout + v.stderr
    finally:
        _restore_write(sub)
    again = mailarchive(home, "import", "eml", str(src), json_out=True).result
    assert again["archived"] == 200 - committed and again["errors"] == 0
    assert mailarchive(home, "stats", json_out=True).result["messages"] == 200


def test_c6_delete_denied_refuses_a_consolidation_before_anything_is_copied(tmp_path):
    """The source share lets the account write but not delete (new files read-only, ``delete readonly = no``,
    switched on by a config reload of a running smbd); a consolidation that would purge it is refused
    by its preflight, and neither medium changes."""
    import signal
    import time

    from tests.corpora import REPO
    from tests.services.process import served
    from tests.services.samba import start_samba

    with served("samba", start_samba) as srv:
        (srv.share_dir / "m1").mkdir()
        shutil.chown(srv.share_dir / "m1", user=USER)
        env = {"MAILARCHIVE_SMB_PASSWORD": srv.password}
        home = tmp_path / "home"
        mailarchive(home, "init", "--medium", srv.url("m1"), "--key-backup", str(tmp_path / "kb.txt"), env=env)
        mailarchive(home, "import", "eml", str(REPO / "sample_data" / "eml"), env=env)
        mailarchive(home, "media", "add", str(tmp_path / "m2"), env=env)
        mailarchive(home, "media", "activate", "2", env=env)
        before = sorted(p.relative_to(srv.share_dir) for p in srv.share_dir.rglob("*"))
        target_before = sorted(p.relative_to(tmp_path / "m2") for p in (tmp_path / "m2").rglob("*"))
        conf = srv.share_dir.parent / "smb.conf"
        conf.write_text(conf.read_text().replace("acl allow execute always = yes",
                                                 "acl allow execute always = yes\ncreate mask = 0444\ndelete readonly = no"))
        srv.proc.send_signal(signal.SIGHUP)
        time.sleep(2)
        p = mailarchive(home, "media", "consolidate", "--from", "1", "--into", "2", "--purge-sources", env=env, check=None)
        assert p.returncode not in (0, 1), p.stdout + p.stderr
        assert "preflight" in p.stderr and "delete" in p.stderr and "Traceback" not in p.stderr
        def mail_files(paths):  # the probe's and the writer lock's leftovers aside (they cannot be deleted here)
            return [p for p in paths if p.parts[1:2] not in ((".probe",), ("locks",))]

        after = sorted(p.relative_to(srv.share_dir) for p in srv.share_dir.rglob("*"))
        assert mail_files(after) == mail_files(before) and any(p.suffix == ".pack" for p in after)
        assert sorted(p.relative_to(tmp_path / "m2") for p in (tmp_path / "m2").rglob("*")) == target_before
        assert mailarchive(home, "stats", json_out=True, env=env).result["media"][0]["messages"] > 0


def test_c10_mirror_share_unreachable_reports_stale_since_and_catches_up(tmp_path, samba, smb_location):
    """The mirror's share drops every connection (the fault proxy resets it) in the middle of a run."""
    import hashlib

    from tests.corpora import REPO
    from tests.services.faultproxy import FaultProxy

    home = tmp_path / "home"
    mailarchive(home, "init", "--key-backup", str(tmp_path / "kb.txt"))
    mailarchive(home, "import", "eml", str(REPO / "sample_data" / "eml"))
    with FaultProxy(samba.host, samba.port) as proxy:
        dest = smb_location.replace(f"{samba.host}:{samba.port}", f"{proxy.host}:{proxy.port}")
        assert mailarchive(home, "mirror-status", dest, check=1, json_out=True).result["state"] == "never"
        mailarchive(home, "mirror", dest)
        first = mailarchive(home, "mirror-status", dest, json_out=True).result
        assert first["state"] == "current"

        src = tmp_path / "more"
        _random_mails(src, 30, 20_000)
        mailarchive(home, "import", "eml", str(src), env={"MAILARCHIVE_PACK_TARGET": "100000"})

        def local_state():
            """The mail side of the archive: key, config, packs, and what the catalog says it holds.
            (A mirror run may first write a fresh catalog backup and config snapshot to the medium.)"""
            files = sorted((p.relative_to(home), hashlib.sha256(p.read_bytes()).hexdigest())
                           for p in home.rglob("*") if p.is_file() and (p.suffix == ".pack" or p.name in ("key", "archive.toml")))
            blobs = mailarchive(home, "sql", "--format", "json", "SELECT msg_id, blob_id FROM messages ORDER BY 1").stdout
            return files, blobs

        before = local_state()
        proxy.mode("reset", after=40_000)  # every connection: dropped once 40 kB came back
        p = mailarchive(home, "mirror", dest, check=3)
        assert f"stale since {first['last_ok']}" in p.stderr and "Traceback" not in p.stderr
        assert proxy.faults_fired > 0
        st = mailarchive(home, "mirror-status", dest, check=1, json_out=True).result
        assert st["state"] == "stale" and st["stale_since"] == first["last_ok"] and st["last_error"]
        assert local_state() == before
        mailarchive(home, "verify")

        proxy.mode("pass")
        r = mailarchive(home, "mirror", dest, json_out=True).result
        assert r["copied"] > 0 and r["complete"]
        assert mailarchive(home, "mirror-status", dest, json_out=True).result["state"] == "current"
        assert mailarchive(home, "mirror", dest, "--verify", json_out=True).result["copied"] == 0


STATUS_NETWORK_SESSION_EXPIRED = 0xC000035C
SMB2_WRITE = 0x09


def test_c3_session_expired_mid_import_stops_cleanly_and_resumes(tmp_path, samba, smb_location):
    """The fault proxy answers one WRITE of the import's medium connection with an unsigned
    STATUS_NETWORK_SESSION_EXPIRED (what a server sends once a session's ticket ran out). The
    toolkit does not re-authenticate by itself: it stops cleanly (exit 3), and a rerun resumes."""
    from tests.services.faultproxy import FaultProxy

    with FaultProxy(samba.host, samba.port) as proxy:
        medium = smb_location.replace(f"{samba.host}:{samba.port}", f"{proxy.host}:{proxy.port}")
        home = tmp_path / "home"
        mailarchive(home, "--smb-no-encrypt", "init", "--medium", medium, "--key-backup", str(tmp_path / "kb.txt"))
        src = tmp_path / "src"
        _random_mails(src, 40, 4_000)
        env = {"MAILARCHIVE_PACK_TARGET": "15000"}
        proxy.mode("ntstatus", status=STATUS_NETWORK_SESSION_EXPIRED, command=SMB2_WRITE, after=4, times=1)
        p = mailarchive(home, "--smb-no-encrypt", "import", "eml", str(src), env=env, check=3)
        assert proxy.faults_fired == 1
        err = " ".join(p.stderr.split())
        assert "Traceback" not in err and "session" in err and "expired" in err and "UNKNOWN" not in err, err
        committed = mailarchive(home, "stats", json_out=True).result["messages"]
        assert 0 < committed < 40
        v = mailarchive(home, "--smb-no-encrypt", "verify", json_out=True, check=None)
        assert v.returncode == 0, v.stdout + v.stderr
        proxy.mode("pass")
        again = mailarchive(home, "--smb-no-encrypt", "import", "eml", str(src), env=env, json_out=True).result
        assert again["archived"] == 40 - committed and again["errors"] == 0
        assert mailarchive(home, "stats", json_out=True).result["messages"] == 40


def _blob_ids(home) -> list[str]:
    rows = mailarchive(home, "sql", "SELECT blob_id FROM messages ORDER BY blob_id", "--format", "json").stdout
    import json

    return [r["blob_id"] for r in json.loads(rows)]


def test_c2_connection_reset_mid_import_then_rerun_equals_a_clean_run(tmp_path, samba, smb_location):
    """C2 at the import level: every SMB connection of the import is reset (RST both ways) once the
    server has sent it 6 KB, i.e. a few packs into the run, as a Samba restart or a dropped link looks
    to the client. The run stops with exit 3 and a message naming the server (or reconnects and
    finishes); the rerun without the fault ends with exactly the blob set of a clean local run of the
    same mails, each once, and verify --full is clean."""
    from tests.services.faultproxy import FaultProxy

    src = tmp_path / "src"
    _random_mails(src, 40, 4_000)
    env = {"MAILARCHIVE_PACK_TARGET": "15000"}
    clean = tmp_path / "clean"
    mailarchive(clean, "init", "--medium", str(tmp_path / "clean-m1"), "--key-backup", str(tmp_path / "ckb.txt"))
    mailarchive(clean, "import", "eml", str(src), env=env)
    expected = _blob_ids(clean)
    assert len(expected) == 40
    with FaultProxy(samba.host, samba.port) as proxy:
        medium = smb_location.replace(f"{samba.host}:{samba.port}", f"{proxy.host}:{proxy.port}")
        home = tmp_path / "home"
        mailarchive(home, "init", "--medium", medium, "--key-backup", str(tmp_path / "kb.txt"))
        proxy.mode("reset", after=6_000)
        p = mailarchive(home, "import", "eml", str(src), env=env, check=None)
        assert proxy.faults_fired >= 1
        assert p.returncode in (0, 3), (p.returncode, p.stdout, p.stderr)
        assert "Traceback" not in p.stderr
        if p.returncode == 3:
            assert f"{proxy.host}:{proxy.port}" in " ".join(p.stderr.split()), p.stderr
        proxy.mode("pass")
        done = mailarchive(home, "import", "eml", str(src), env=env, json_out=True).result
        assert done["status"] == "complete" and done["errors"] == 0
        blobs = _blob_ids(home)
        assert blobs == expected  # the same mails, each exactly once
        v = mailarchive(home, "verify", "--full", json_out=True, check=None)
        assert v.returncode == 0, v.stdout + v.stderr
