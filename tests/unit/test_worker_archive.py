"""verify --full's pack workers see the archive through ``verify.worker_archive.WorkerArchive`` (no DuckDB, so the
command line forks them before it loads it): its media open as ``Archive.storage`` opens them, with the same
storage or the same error, in every case a worker can meet."""
from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from toolkit.archive import Archive
from toolkit.home import Home
from toolkit.medium import LABEL_NAME
from verify.worker_archive import WorkerArchive

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def home(tmp_path) -> Path:
    Archive.create(tmp_path / "home", str(tmp_path / "medium"), name="worker-view").close()
    Archive.create(tmp_path / "other", str(tmp_path / "other-medium"), name="another").close()
    return tmp_path / "home"


def _outcome(open_medium, medium_id: int):
    try:
        s = open_medium(medium_id)
    except Exception as exc:  # the error, as a worker's task reports it
        return type(exc).__name__, str(exc)
    return "ok", type(s).__name__, s.read(LABEL_NAME)


def _both(home: Path, medium_id: int = 1, edit=None):
    """(WorkerArchive's outcome, Archive's) of opening ``medium_id``; ``edit(config)`` changes the config first."""
    h = Home(home)
    config = h.load_config()
    if edit is not None:
        edit(config)
    key = h.read_key(config.uuid, config.key_check)
    worker = WorkerArchive(h, config, key, None, True)
    archive = Archive(h, config, key, None, smb_password=None, smb_encrypt=True)
    return _outcome(worker.storage, medium_id), _outcome(archive.storage, medium_id)


def test_a_live_local_medium_opens_with_its_label_checked(home):
    worker, archive = _both(home)
    assert worker == archive and worker[0] == "ok"


def test_an_unknown_or_removed_medium_fails_as_in_the_archive(home):
    worker, archive = _both(home, 7)
    assert worker == archive and worker[0] == "MediumError"

    def removed(config):
        config.media[0] = dataclasses.replace(config.media[0], state="removed")

    worker, archive = _both(home, 1, removed)
    assert worker == archive and "removed" in worker[1]


def test_a_medium_without_or_with_a_foreign_label_fails_as_in_the_archive(home, tmp_path):
    label = tmp_path / "medium" / LABEL_NAME
    shutil.copy(tmp_path / "other-medium" / LABEL_NAME, label)
    worker, archive = _both(home)
    assert worker == archive and worker[0] == "ForeignArchiveError"
    label.unlink()
    worker, archive = _both(home)
    assert worker == archive and worker[0] == "MediumLabelError"


def test_a_missing_medium_directory_fails_as_in_the_archive(home, tmp_path):
    shutil.rmtree(tmp_path / "medium")
    worker, archive = _both(home)
    assert worker == archive and worker[0] != "ok"


def test_the_workers_modules_load_no_duckdb():
    """What the command line has loaded when it forks the workers (the verify command, verify.deep, the workers'
    modules) holds no DuckDB: the workers never load it, the parent loads it after the fork."""
    code = ("import sys, toolkit.cli.main, toolkit.cli.commands.verify, verify.deep, verify.worker_archive, "
            "toolkit.process_guard; print(sorted(m for m in sys.modules if m.split('.')[0] in ('duckdb', 'pyarrow')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
