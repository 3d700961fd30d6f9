"""The writer lock on a shared medium (O3, O4, O5, O9), against the real test Samba.

"Another host" is a lock file written onto the share with another host name (and,
for the clock-skew cases, a start time hours off); the server-side age of a lock
is set with ``os.utime`` on the share's directory, which is what the SMB server
reports as the file's modification time.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli import mailarchive
from tests.corpora import REPO
from tests.services.samba import USER

pytestmark = pytest.mark.samba

EML = REPO / "sample_data" / "eml"


def _setup(tmp_path, samba, smb_location):
    home = tmp_path / "home"
    mailarchive(home, "init", "--medium", smb_location, "--key-backup", str(tmp_path / "kb.txt"))
    medium_dir = samba.share_dir / smb_location.rsplit("/", 1)[1]
    return home, medium_dir


def _plant(medium_dir: Path, host: str, pid: int, started: dt.datetime, age: float = 0.0) -> Path:
    """A lock as another writer would leave it; ``age``: seconds its heartbeat lies in the past (server clock)."""
    lock = medium_dir / "locks" / "writer.lock"
    lock.parent.mkdir(exist_ok=True)
    lock.write_text(json.dumps({"host": host, "pid": pid, "token": "f" * 32,
                                "started": started.isoformat(timespec="seconds"), "beat": 7}))
    for p in (lock.parent, lock):  # as the share's account made them
        shutil.chown(p, user=USER)
    if age:
        t = time.time() - age
        os.utime(lock, (t, t))
    return lock


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def test_o3_remote_lock_is_never_broken_automatically_and_break_needs_yes(tmp_path, samba, smb_location):
    home, medium_dir = _setup(tmp_path, samba, smb_location)
    lock = _plant(medium_dir, "far-away-host", 4242, _now())
    p = mailarchive(home, "import", "eml", str(EML), check=11)
    assert "far-away-host" in p.stderr and "pid 4242" in p.stderr and "lock break --yes" in p.stderr
    st = mailarchive(home, "lock", "status", json_out=True).result
    assert st["state"] == "held" and st["holder"]["host"] == "far-away-host"
    assert st["heartbeat_age_seconds"] < 600

    # past its expiry: reported stale, but still not broken by a writer
    t = time.time() - 7200
    os.utime(lock, (t, t))
    st = mailarchive(home, "lock", "status", json_out=True).result
    assert st["state"] == "stale" and st["heartbeat_age_seconds"] > 7000
    p = mailarchive(home, "import", "eml", str(EML), check=11)
    assert "stale" in p.stderr
    assert lock.exists()
    assert mailarchive(home, "stats", json_out=True).result["messages"] == 0

    # breaking needs the explicit confirmation
    p = mailarchive(home, "lock", "break", check=2)
    assert "--yes" in p.stderr and lock.exists()
    mailarchive(home, "lock", "break", "--yes")
    assert not lock.exists()
    imp = mailarchive(home, "import", "eml", str(EML), json_out=True).result
    assert imp["archived"] > 0
    # the writer released its own lock at the end
    assert not lock.exists()
    assert mailarchive(home, "lock", "status", json_out=True).result["state"] == "free"


def test_o3_dead_pid_of_this_host_is_broken_automatically(tmp_path, samba, smb_location):
    home, medium_dir = _setup(tmp_path, samba, smb_location)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    lock = _plant(medium_dir, socket.gethostname(), gone.pid, _now())
    assert mailarchive(home, "lock", "status", json_out=True).result["state"] == "dead"
    imp = mailarchive(home, "import", "eml", str(EML), json_out=True).result
    assert imp["archived"] > 0 and not lock.exists()
    # a live process of this host is another writer: refused
    _plant(medium_dir, socket.gethostname(), os.getpid(), _now())
    _many_eml(tmp_path / "more", 3)
    mailarchive(home, "import", "eml", str(tmp_path / "more"), check=11)


@pytest.mark.parametrize("skew_hours", [-2, 2])
def test_o9_clock_skew_between_hosts_causes_no_false_verdict(tmp_path, samba, smb_location, skew_hours):
    """Staleness is the server's mtime of the lock against the server's mtime of a fresh probe:
    a holder whose own clock is 2 h off is neither stale while it beats, nor live once it stopped."""
    home, medium_dir = _setup(tmp_path, samba, smb_location)
    env = {"MAILARCHIVE_LOCK_TIMINGS": "60,900,3600,0.5"}  # stale after 1 h
    skewed = _now() + dt.timedelta(hours=skew_hours)
    lock = _plant(medium_dir, "skewed-host", 99, skewed)
    st = mailarchive(home, "lock", "status", json_out=True, env=env).result
    assert st["state"] == "held", st
    assert st["heartbeat_age_seconds"] < 600
    # the same lock, its heartbeat 2 h old by the server's clock: stale whatever its start time says
    lock = _plant(medium_dir, "skewed-host", 99, skewed, age=7200)
    st = mailarchive(home, "lock", "status", json_out=True, env=env).result
    assert st["state"] == "stale", st
    # and a writer still does not break it by itself
    mailarchive(home, "import", "eml", str(EML), check=11, env=env)
    assert lock.exists()


RACER = """
import sys, time
from toolkit.errors import LockedError
from toolkit.shared_lock import SharedLock, configure
from toolkit.storage import open_storage
loc, password, start = sys.argv[1], sys.argv[2], float(sys.argv[3])
configure(recheck=0.5, interval=0.2)
s = open_storage(loc, password)
while time.time() < start:
    time.sleep(0.001)
try:
    lock = SharedLock(s, lambda: open_storage(loc, password), loc).acquire()
except LockedError as e:
    print("locked", e, flush=True)
    sys.exit(11)
print("won", flush=True)
time.sleep(2.0)
lock.check()
lock.release()
s.close()
"""


def test_o4_two_hosts_create_the_lock_at_once_exactly_one_wins(samba, smb_location):
    for round_ in range(4):
        loc = f"{smb_location}-{round_}"
        d = samba.share_dir / loc.rsplit("/", 1)[1]
        d.mkdir()
        shutil.chown(d, user=USER)
        start = time.time() + 3.0
        procs = [
            subprocess.Popen([sys.executable, "-c", RACER, loc, samba.password, str(start)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
            for _ in range(2)
        ]
        outs = [p.communicate(timeout=120) for p in procs]
        codes = sorted(p.returncode for p in procs)
        assert codes == [0, 11], (codes, outs)
        loser = outs[[p.returncode for p in procs].index(11)][0]
        assert loser.startswith("locked") and "Traceback" not in "".join(o[1] for o in outs)
        # the winner removed its lock at the end
        assert not (samba.share_dir / loc.rsplit("/", 1)[1] / "locks" / "writer.lock").exists()


def _many_eml(src: Path, n: int) -> None:
    src.mkdir()
    body = next(iter(sorted(EML.rglob("*.eml")))).read_bytes()
    for i in range(n):
        (src / f"{i:05d}.eml").write_bytes(b"Message-ID: <hb%d@example.com>\nX-N: %d\n" % (i, i) + body)


def test_o5_deleted_lock_stops_the_writer_with_exit_3_and_a_rerun_completes(tmp_path, samba, smb_location):
    home, medium_dir = _setup(tmp_path, samba, smb_location)
    src = tmp_path / "src"
    _many_eml(src, 400)
    env = {
        **os.environ,
        "MAILARCHIVE_PASSWORD": "correct horse battery staple",
        "MAILARCHIVE_LOCK_TIMINGS": "0.2,5,1800,0.2",
        "MAILARCHIVE_PACK_TARGET": "20000",
        "MAILARCHIVE_FAULT_SLOW": "after_db_commit:0.3",
    }
    imp = subprocess.Popen(
        [sys.executable, "-m", "toolkit", "--archive", str(home), "--json", "import", "eml", str(src)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO,
    )
    lock = medium_dir / "locks" / "writer.lock"
    deadline = time.monotonic() + 120
    while imp.poll() is None and time.monotonic() < deadline:
        if lock.exists() and mailarchive(home, "stats", json_out=True).result["messages"] > 0:
            break
        time.sleep(0.2)
    assert imp.poll() is None, "the import ended before the lock could be taken away"
    holder = json.loads(lock.read_text())
    assert holder["pid"] == imp.pid and holder["host"] == socket.gethostname()
    lock.unlink()
    out, err = imp.communicate(timeout=120)
    assert imp.returncode == 3, (out, err)
    assert "lock" in err and "lost" in err and "Traceback" not in err
    committed = mailarchive(home, "stats", json_out=True).result["messages"]
    assert 0 < committed < 400
    # it did not go on writing without the lock: nothing came after it stopped
    assert not lock.exists()
    v = mailarchive(home, "verify", json_out=True, check=None)
    assert v.returncode == 0, v.stdout + v.stderr
    again = mailarchive(home, "import", "eml", str(src), json_out=True).result
    assert again["archived"] == 400 - committed
    assert mailarchive(home, "stats", json_out=True).result["messages"] == 400


def test_o5_share_unreachable_longer_than_the_refresh_window_loses_the_lock(samba, smb_location):
    """The heartbeat's connection goes through the fault proxy, which drops every connection:
    no refresh succeeds, so after ``lost_after`` the lock counts as lost and every write refuses."""
    from toolkit.shared_lock import SETTINGS, LockedStorage, LockLostError, SharedLock, configure
    from toolkit.storage import open_storage
    from tests.services.faultproxy import FaultProxy

    d = samba.share_dir / smb_location.rsplit("/", 1)[1]
    d.mkdir()
    shutil.chown(d, user=USER)
    saved = dict(SETTINGS)
    configure(interval=0.2, lost_after=2.0, recheck=0.1)
    try:
        with FaultProxy(samba.host, samba.port) as proxy:
            via_proxy = smb_location.replace(f"{samba.host}:{samba.port}", f"{proxy.host}:{proxy.port}")
            storage = open_storage(smb_location, samba.password)
            lock = SharedLock(storage, lambda: open_storage(via_proxy, samba.password), "test")
            lock.check()  # takes it
            time.sleep(1.0)
            beats = json.loads((d / "locks" / "writer.lock").read_text())["beat"]
            assert beats >= 2 and lock.lost is None  # the heartbeat runs while the share answers
            proxy.mode("reset", after=0)
            for conn in list(proxy._socks):  # the share goes away: the open connection too
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass  # closed already
            deadline = time.monotonic() + 30
            while lock.lost is None and time.monotonic() < deadline:
                time.sleep(0.1)
            assert lock.lost and "no heartbeat" in lock.lost
            with pytest.raises(LockLostError):
                lock.check()
            guarded = LockedStorage(storage, lock)
            with pytest.raises(LockLostError):
                guarded.put("packs/x.pack", b"data")
            assert not (d / "packs").exists()
            lock.release()
            storage.close()
    finally:
        configure(**saved)
