"""One writer per shared medium: a lock file with a heartbeat on the share itself.

The home's flock (``toolkit.lock``) keeps two writers of one home apart on one
machine. It cannot see a writer on another host that uses the same SMB share,
so a writer that opens an ``smb://`` medium also takes ``locks/writer.lock``
on that medium:

* **Format.** JSON ``{"host", "pid", "token", "started", "beat"}``. ``started``
  is the holder's wall clock and only informs people; ``token`` (random) tells
  the holder its own lock from another's; ``beat`` counts heartbeats.
* **Create-new.** The lock is made with the storage's create-only ``put``
  (write a temporary name, rename without replacing), so of two hosts creating
  it at the same moment exactly one rename succeeds. The winner waits a moment
  and reads the file back (create, wait, re-check): only if it still holds its
  own token does it go on. The loser gets "locked" (exit 11). A writer takes
  the lock at its first write to the medium, so a writer that only reads a
  share (the source of a consolidation without purge) does not block others.
* **Heartbeat.** A thread on its own connection rewrites the file every
  ``interval`` seconds (``beat`` + 1). If the file is gone or holds another
  token, or no refresh succeeded for ``lost_after`` seconds (the share was
  unreachable), the lock counts as lost. From then on every write through the
  medium (new file, commit, replace, delete) raises :class:`LockLostError`
  (exit 3): the writer stops; what it had committed stays committed and a rerun
  resumes. Each commit of a file (a pack, a manifest) also reads the lock file
  first, so a deleted or taken-over lock stops the writer before it publishes
  anything more, without waiting for the next heartbeat. ``lost_after`` is shorter than ``stale_after`` so a writer gives up
  before anyone may call its lock stale.
* **Staleness without comparing clocks.** The age of a lock is the server's
  modification time of the lock file against the server's modification time of
  a probe file written just now (``locks/clock-<random>``, removed again): both
  times come from the same clock, so a skew between the hosts' clocks (O9)
  never makes a live lock look stale. Older than ``stale_after`` (30 min): stale.
* **Breaking.** A lock of this host whose PID is gone is broken automatically
  (the holder crashed; a PID reused meanwhile by another process makes the lock
  look alive, and then it is broken by hand). A lock of another host is never broken automatically,
  stale or not: ``mailarchive lock status`` shows it, and
  ``mailarchive lock break --yes`` removes it after the operator has made sure
  that host no longer writes.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from typing import Callable

from .errors import LockedError, MailArchiveError, NextStep, ObjectExistsError, ObjectMissingError, StorageError
from .storage.base import AtomicWriter, Storage

LOCK_PATH = "locks/writer.lock"
PROBE_PREFIX = "locks/clock-"
PAYLOAD_SIZE = 512

#: Defaults; the CLI may change them with :func:`configure` (tests shorten them).
SETTINGS = {"interval": 60.0, "lost_after": 900.0, "stale_after": 1800.0, "recheck": 0.5}


def configure(**kw: float) -> None:
    for k, v in kw.items():
        if k not in SETTINGS:
            raise KeyError(k)
        SETTINGS[k] = float(v)


class LockLostError(MailArchiveError):
    """The writer's shared lock is gone: stop writing (operational, a rerun resumes)."""


@dataclass
class LockInfo:
    holder: dict
    age: float | None       # seconds since the last heartbeat, by the server's clock
    stale: bool
    dead_local: bool        # held by a process of this host that no longer runs

    def describe(self) -> str:
        h = self.holder
        age = "unknown" if self.age is None else f"{self.age:.0f} s ago"
        return (f"pid {h.get('pid', '?')} on {h.get('host', '?')}, since {h.get('started', '?')} "
                f"(its clock), last heartbeat {age} (the server's clock), heartbeats {h.get('beat', '?')}")


def _pid_alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError, TypeError, OverflowError):
        return True
    return True


def read_lock(storage: Storage, attempts: int = 10) -> dict | None:
    """The lock's content, None when there is none. A holder's heartbeat keeps the file open for a
    moment (an SMB reader then gets a sharing violation): such errors are retried a few times."""
    for attempt in range(attempts):
        try:
            return json.loads(storage.read(LOCK_PATH) or b"{}")
        except ObjectMissingError:
            return None
        except ValueError:
            return {}  # half-written or foreign: still a lock, of nobody we know
        except StorageError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.1 * (attempt + 1))
    return None


def inspect(storage: Storage) -> LockInfo | None:
    """The lock on ``storage``, its age by the server's clock, or None when there is none."""
    holder = read_lock(storage)
    if holder is None:
        return None
    entry = storage.stat(LOCK_PATH)
    age = None
    if entry is not None:
        probe = f"{PROBE_PREFIX}{secrets.token_hex(6)}"
        try:
            storage.put(probe, b"")
            now = storage.stat(probe)
            if now is not None:
                age = max(0.0, now.mtime - entry.mtime)
        except StorageError:
            age = None
        finally:
            try:
                storage.delete(probe)
            except StorageError:
                pass
    stale = age is not None and age > SETTINGS["stale_after"]
    dead_local = holder.get("host") == socket.gethostname() and not _pid_alive(holder.get("pid"))
    return LockInfo(holder, age, stale, dead_local)


def break_lock(storage: Storage) -> dict | None:
    """Remove the lock whoever holds it (the operator confirmed); returns what it held."""
    holder = read_lock(storage)
    if holder is not None:
        try:
            storage.delete(LOCK_PATH)
        except ObjectMissingError:
            pass
    return holder


class SharedLock:
    """The writer lock on one medium: ``check`` before each write (the first takes it), ``release`` at the end."""

    def __init__(self, storage: Storage, connect: Callable[[], Storage], where: str):
        self.storage = storage
        self._connect = connect  # a second connection for the heartbeat thread
        self.where = where
        self.token = secrets.token_hex(16)
        self.info = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "token": self.token,
            "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "beat": 0,
        }
        self.lost: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._held = False
        self._taking = threading.Lock()

    def _payload(self) -> bytes:
        # fixed size: a heartbeat rewrites the file in place, never shorter than before
        return json.dumps(self.info).encode().ljust(PAYLOAD_SIZE)

    def acquire(self) -> "SharedLock":
        for _ in range(3):
            try:
                self.storage.put(LOCK_PATH, self._payload())
            except ObjectExistsError:
                try:
                    info = inspect(self.storage)
                except StorageError as exc:
                    raise LockedError(
                        f"medium {self.where} is locked by another writer whose lock cannot be read now ({exc})",
                        next_step=NextStep.SEE_LOCK,
                    ) from None
                if info is None:
                    continue  # released meanwhile: try again
                if info.dead_local:
                    break_lock(self.storage)
                    continue
                hint = ("it looks stale (no heartbeat for longer than "
                        f"{SETTINGS['stale_after']:.0f} s); if that host no longer writes, "
                        if info.stale else "if that host no longer writes, ")
                raise LockedError(
                    f"medium {self.where} is locked by another writer ({info.describe()}); wait for it to "
                    f"finish, or, {hint}remove the lock", next_step=NextStep.BREAK_LOCK,
                ) from None
            time.sleep(SETTINGS["recheck"])
            held = read_lock(self.storage)
            if not held or held.get("token") != self.token:
                raise LockedError(
                    f"medium {self.where}: another writer took the lock at the same moment; wait and rerun"
                )
            self._held = True
            self._thread = threading.Thread(target=self._beat, daemon=True, name="shared-lock-heartbeat")
            self._thread.start()
            return self
        raise LockedError(f"medium {self.where}: the writer lock keeps changing hands; wait and rerun")

    def check(self) -> None:
        """Before each write: take the lock at the first one, then refuse once it is lost."""
        if not self._held:
            with self._taking:
                if not self._held:
                    self.acquire()
        if self.lost:
            raise LockLostError(
                f"the writer lock on medium {self.where} ({LOCK_PATH}) was lost: {self.lost}; stopped writing "
                f"(everything reported committed stays committed). Make sure no other host writes to it, then rerun"
            )

    def verify(self, storage: Storage) -> None:
        """Right before a file is published: the lock file still names this holder (read through
        ``storage``, the caller's own connection); otherwise the lock is lost here and now."""
        self.check()
        held = read_lock(storage)
        if held is None:
            self.lost = "the lock file was deleted"
        elif held.get("token") != self.token:
            self.lost = f"the lock file now names another holder ({held.get('host')}, pid {held.get('pid')})"
        self.check()

    def _beat(self) -> None:
        conn: Storage | None = None
        last_ok = time.monotonic()
        try:
            while not self._stop.wait(SETTINGS["interval"]):
                try:
                    if conn is None:
                        conn = self._connect()
                    self.info["beat"] += 1
                    problem = _refresh(conn, self.token, self._payload())
                    if problem:
                        self.lost = problem
                        return
                    last_ok = time.monotonic()
                except StorageError as exc:
                    if conn is not None:
                        conn.close()
                        conn = None
                    if time.monotonic() - last_ok > SETTINGS["lost_after"]:
                        self.lost = f"no heartbeat could be written for {SETTINGS['lost_after']:.0f} s ({exc})"
                        return
                except Exception as exc:  # noqa: BLE001 - a heartbeat must fail closed, never silently
                    self.lost = f"the heartbeat failed ({exc})"
                    return
        finally:
            if conn is not None:
                conn.close()

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        if self.lost or not self._held:
            return
        self._held = False
        try:
            held = read_lock(self.storage)
            if held and held.get("token") == self.token:
                self.storage.delete(LOCK_PATH)
        except StorageError:
            pass  # the lock stays; `lock status` shows it, and its heartbeat stops, so it goes stale


def _refresh(storage: Storage, token: str, payload: bytes) -> str | None:
    """One heartbeat: rewrite the existing lock file in place if it still holds ``token``.

    The file is opened without create: a lock deleted (or replaced by another
    holder's) meanwhile is never brought back by a late heartbeat. Returns why
    the lock is lost, or None.
    """
    from .storage.local import LocalStorage
    from .storage.smb import SmbStorage

    def beat(f) -> str | None:
        try:
            held = json.loads(f.read(4 * PAYLOAD_SIZE) or b"{}")
        except ValueError:
            held = {}
        if held.get("token") != token:
            return f"the lock file now names another holder ({held.get('host')}, pid {held.get('pid')})"
        f.seek(0)
        f.write(payload)
        f.flush()
        return None

    try:
        if isinstance(storage, SmbStorage):
            import smbclient

            unc = storage._unc(LOCK_PATH)
            with storage._guard(unc, "refreshing the writer lock", "write"):
                with smbclient.open_file(unc, mode="r+b", share_access="rwd", **storage._kw) as f:
                    return beat(f)
        if isinstance(storage, LocalStorage):
            try:
                with open(storage._path(LOCK_PATH), "r+b") as f:
                    problem = beat(f)
                    os.fsync(f.fileno())
                    return problem
            except FileNotFoundError:
                raise ObjectMissingError(f"{LOCK_PATH} is missing") from None
            except OSError as exc:
                raise StorageError(f"refreshing {LOCK_PATH}: {exc}") from None
        raise StorageError(f"{type(storage).__name__} cannot hold a shared writer lock")
    except ObjectMissingError:
        return "the lock file was deleted"


class LockedStorage(Storage):
    """A medium whose writes first check the shared lock; reads pass straight through."""

    def __init__(self, inner: Storage, lock: SharedLock, owns_lock: bool = True):
        self._inner = inner
        self.lock = lock
        self._owns_lock = owns_lock
        self.location = inner.location

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def open_write(self, name: str) -> AtomicWriter:
        self.lock.check()
        return _LockedWriter(self._inner.open_write(name), self.lock, self._inner)

    def open_read(self, name: str):
        return self._inner.open_read(name)

    def read(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        return self._inner.read(name, offset, length)

    def stat(self, name: str):
        return self._inner.stat(name)

    def list(self, prefix: str = "", include_temp: bool = False):
        return self._inner.list(prefix, include_temp)

    def delete(self, name: str) -> None:
        self.lock.check()
        self._inner.delete(name)

    def replace(self, name: str, data: bytes) -> None:
        self.lock.check()
        self._inner.replace(name, data)

    def free_space(self):
        return self._inner.free_space()

    def blake3(self, name: str):
        return self._inner.blake3(name)

    def prefetch(self, name: str) -> None:
        self._inner.prefetch(name)

    def close(self) -> None:
        try:
            if self._owns_lock:
                self.lock.release()
        finally:
            self._inner.close()


class _LockedWriter(AtomicWriter):
    def __init__(self, inner: AtomicWriter, lock: SharedLock, storage: Storage):
        self._inner = inner
        self._lock = lock
        self._storage = storage
        self.name = inner.name

    def write(self, data: bytes) -> int:
        return self._inner.write(data)

    def tell(self) -> int:
        return self._inner.tell()

    def commit(self) -> None:
        try:
            self._lock.verify(self._storage)
        except LockLostError:
            self._inner.abort()
            raise
        self._inner.commit()

    def abort(self) -> None:
        self._inner.abort()
