"""A9: power loss, where what was never fsynced is gone.

Method (a recorder, no FUSE or LD_PRELOAD): the import runs in a subprocess
whose ``os.fsync`` is wrapped. Every fsync of a file under the medium saves
that inode's content at that moment; every fsync of a directory saves its
entries (name -> inode). What existed before the import counts as durable. The
process is then killed at a fault point (after a pack is sealed, or after the
catalog commit that references it), and the medium is rebuilt from the saved
state alone: a file appears only if its directory entry was fsynced, with the
content of its last fsync (empty if never fsynced). This is what an ext4 volume
could show after a power cut at that instant, so it catches a rename or a new
directory whose parent was never fsynced, as well as data written but not
synced. The catalog (DuckDB, which fsyncs from C++) is kept as it was: the
check is that everything it references is durable on the medium.

Then: ``verify`` must be clean, a rerun of the import completes, and the
archive holds exactly the messages (blob IDs) of a clean run.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.cli import PASSWORD, mailarchive
from tests.corpora import REPO

RECORDER = r'''
import json, os, stat, sys
root, snap = os.path.realpath(sys.argv[1]), sys.argv[2]
os.makedirs(snap, exist_ok=True)
state = {"root": None, "dirs": {}, "files": {}}

def key(st):
    return f"{st.st_dev}:{st.st_ino}"

def save_file(path, k):
    with open(path, "rb") as f:
        data = f.read()
    with open(os.path.join(snap, k), "wb") as f:
        f.write(data)
    state["files"][k] = True

def save_dir(path, k):
    entries = {}
    for e in os.scandir(path):
        st = e.stat(follow_symlinks=False)
        entries[e.name] = [key(st), stat.S_ISDIR(st.st_mode)]
    state["dirs"][k] = entries

def persist():
    tmp = os.path.join(snap, "state.json.tmp")
    with open(tmp, "w") as f:
        json.dump(state, f)
    os.replace(tmp, os.path.join(snap, "state.json"))

# before the run: everything on the medium is durable
for d, dirs, files in os.walk(root):
    save_dir(d, key(os.stat(d)))
    for n in files:
        p = os.path.join(d, n)
        save_file(p, key(os.stat(p)))
state["root"] = key(os.stat(root))
persist()

real_fsync = os.fsync
def fsync(fd):
    real_fsync(fd)
    try:
        path = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return
    if not path.startswith(root + "/") and path != root:
        return
    st = os.fstat(fd)
    if stat.S_ISDIR(st.st_mode):
        save_dir(path, key(st))
    elif os.path.exists(path):
        save_file(path, key(st))
    persist()
os.fsync = fsync

sys.argv = ["mailarchive", *sys.argv[3:]]
from toolkit.cli.main import main
main()
'''


def _rebuild(medium, snap) -> None:
    """Replace ``medium`` by what the saved fsync state says survived."""
    state = json.loads((snap / "state.json").read_text())
    shutil.rmtree(medium)

    def make(path, k):
        path.mkdir()
        for name, (child, is_dir) in state["dirs"].get(k, {}).items():
            if is_dir:
                make(path / name, child)
            else:
                data = (snap / child).read_bytes() if state["files"].get(child) else b""
                (path / name).write_bytes(data)

    make(medium, state["root"])


def _blobs(home):
    rows = json.loads(mailarchive(home, "sql", "--format", "json", "SELECT blob_id FROM messages").stdout)
    return sorted(r["blob_id"] for r in rows)


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("clean")
    home = tmp / "home"
    mailarchive(home, "init", "--key-backup", str(tmp / "kb.txt"))
    mailarchive(home, "import", "eml", str(REPO / "sample_data" / "eml"), env={"MAILARCHIVE_PACK_TARGET": "4000"})
    return _blobs(home)


@pytest.mark.parametrize("point", ["after_pack_seal:1", "after_db_commit:1", "after_db_commit:3", "pack.before_commit:2"])
def test_a9_power_loss_keeps_what_the_catalog_references(tmp_path, clean, point):
    home = tmp_path / "home"
    mailarchive(home, "init", "--key-backup", str(tmp_path / "kb.txt"))
    medium = home / "medium-1"
    snap = tmp_path / "snap"
    # the recorder watches one process: the pack tasks run inline in it (MAILARCHIVE_WORKERS=0), with the
    # same writes and fsyncs as in worker processes (docs/architecture.md)
    env = {**os.environ, "MAILARCHIVE_PASSWORD": PASSWORD, "MAILARCHIVE_PACK_TARGET": "4000",
           "MAILARCHIVE_FAULT": point, "MAILARCHIVE_WORKERS": "0"}
    p = subprocess.run(
        [sys.executable, "-c", RECORDER, str(medium), str(snap), "--archive", str(home),
         "import", "eml", str(REPO / "sample_data" / "eml")],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=300,
    )
    assert p.returncode == -9, (p.returncode, p.stdout, p.stderr)  # killed at the fault point
    _rebuild(medium, snap)
    v = mailarchive(home, "verify", check=None)
    assert v.returncode == 0, v.stdout + v.stderr
    mailarchive(home, "import", "eml", str(REPO / "sample_data" / "eml"), env={"MAILARCHIVE_PACK_TARGET": "4000"})
    assert _blobs(home) == clean
    mailarchive(home, "verify")
