"""Private spill directories for DuckDB sessions of a process that does not hold the archive's writer lock.

DuckDB names its temp files alike in every process (``duckdb_temp_storage_DEFAULT-0.tmp``,
``duckdb_temp_storage_S128K-0.tmp``, ...) and removes those of its directory when it ends. Two processes spilling
into one directory read each other's blocks and remove each other's files (shown: a sort of one process returned
an overflow error for data another process wrote there; its twin failed "Could not read enough bytes";
tests/reliability/test_spill_dirs.py). So only the writer (one at a time, under the archive's lock) spills into
``catalog.duckdb.tmp`` beside the catalog; any other process with a memory limit (``retention report``) spills into a directory of its own here: made mode 0700 in the system's temp
directory, never in the archive home (a reader writes nothing there, docs/reliability.md), removed when its
catalog closes. DuckDB encrypts what it writes there (``temp_file_encryption``). A process killed before it
removed its directory leaves it behind; the next one to make a directory here removes those of dead processes.
"""
from __future__ import annotations

import os
import pathlib
import shutil
import tempfile

PREFIX = "mailarchive-spill-"


def make() -> pathlib.Path:
    """A new private directory for this process (mode 0700), after removing those of dead processes."""
    remove_dead()
    return pathlib.Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-"))


def remove(path: pathlib.Path | None) -> None:
    """Remove a directory :func:`make` returned, with whatever DuckDB left in it."""
    if path is not None:
        shutil.rmtree(path, ignore_errors=True)


def remove_dead(root: pathlib.Path | None = None) -> list[pathlib.Path]:
    """Remove the spill directories of this user's processes that no longer run; returns them."""
    root = pathlib.Path(tempfile.gettempdir()) if root is None else root
    removed = []
    try:
        entries = list(os.scandir(root))
    except OSError:
        return removed
    for entry in entries:
        pid = _owner_pid(entry.name)
        if pid is None or _alive(pid):
            continue
        try:
            if not entry.is_dir(follow_symlinks=False) or entry.stat(follow_symlinks=False).st_uid != os.getuid():
                continue
        except OSError:
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        removed.append(pathlib.Path(entry.path))
    return removed


def _owner_pid(name: str) -> int | None:
    if not name.startswith(PREFIX):
        return None
    pid, _, rest = name[len(PREFIX):].partition("-")
    return int(pid) if pid.isdigit() and rest else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process of that pid
    return True
