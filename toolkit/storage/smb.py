"""A medium on an SMB share, through smbprotocol's ``smbclient`` API.

Facts this module is built on (tests/README.md, docs/reliability.md C1/C4/C9/C11):

* A UNC path carries no port: every ``smbclient`` call gets ``port=``. Each
  storage keeps its own connection cache, so a session (and its password) is
  never shared with another storage, and ``close()`` drops exactly ours.
* ``scandir`` entries are read through ``entry.smb_info``; ``entry.stat()``
  would dial port 445.
* An smbprotocol ``write()`` may write less than asked. Pack writes and
  read-backs go through :mod:`.smb_pipeline` instead: several WRITE/READ
  requests in flight on the open file, each answer checked for its full
  byte count (a short write fails the transfer, the temporary file goes).
* smbprotocol waits without a deadline for most replies (a dead link blocks
  for 10+ minutes). Every call here runs under a watchdog: when it takes
  longer than ``timeout`` the socket is shut down, the call fails, and the
  error names host:port.
* ``rename`` without replace fails with STATUS_OBJECT_NAME_COLLISION when
  the final name is taken: that is the create-only commit.

Encryption and signing: every session asks for SMB3 encryption
(``encrypt=True``: smbprotocol then seals every message of the session with
AES, so mail read from a share never crosses the wire in clear), and
signing is always required. A server that does not offer encryption (SMB
2.x, or ``server smb encrypt = off``) is connected signed only, and the
storage says so through its ``warn`` callback. ``encrypt=False``
(``--smb-no-encrypt``, for old servers only) does not ask for encryption;
a server that wants it still gets it. :func:`location.configure_smb` sets the defaults
for every storage the process opens (the CLI calls it once); a worker process has its
own defaults, so what it opens gets the setting from its task (docs/architecture.md).
"""
from __future__ import annotations

import errno
import io
import ntpath
import secrets as _secrets
import socket
import threading
import time
import uuid
from contextlib import contextmanager
from typing import BinaryIO, Callable, Iterator

import smbclient
from smbprotocol.exceptions import SMBConnectionClosed, SMBException, SMBOSError, SMBResponseException

from ..errors import (
    NextStep, ObjectExistsError, ObjectMissingError, ShareMissingError, StorageError, StorageFullError,
    StorageLoginError,
)
from ..hashes import checksum_hasher
from .base import TMP_SUFFIX, AtomicWriter, Entry, Storage
from .location import SMB_DEFAULTS, Location
from .smb_pipeline import PipelinedWriter, pipelined_read

WRITE_BUFFER = 1 << 20

_STATUS_ACCESS_DENIED = 0xC0000022
_STATUS_DISK_FULL = 0xC000007F
_STATUS_QUOTA_EXCEEDED = 0xC0000044
_STATUS_OBJECT_NAME_COLLISION = 0xC0000035
_STATUS_OBJECT_NAME_NOT_FOUND = 0xC0000034
_STATUS_OBJECT_PATH_NOT_FOUND = 0xC000003A
_STATUS_LOGON_FAILURE = 0xC000006D
_STATUS_BAD_NETWORK_NAME = 0xC00000CC
_STATUS_NOT_FOUND = 0xC0000225
_STATUS_OBJECT_NAME_INVALID = 0xC0000033
_STATUS_INSUFFICIENT_RESOURCES = 0xC000009A
_STATUS_REQUEST_NOT_ACCEPTED = 0xC00000D0
_CONNECTION_LIMIT = {_STATUS_INSUFFICIENT_RESOURCES, _STATUS_REQUEST_NOT_ACCEPTED}
_STATUS_SHARING_VIOLATION = 0xC0000043
_STATUS_FILE_LOCK_CONFLICT = 0xC0000054
_STATUS_LOCK_NOT_GRANTED = 0xC0000055
_IN_USE = {_STATUS_SHARING_VIOLATION, _STATUS_FILE_LOCK_CONFLICT, _STATUS_LOCK_NOT_GRANTED}
_FULL = {_STATUS_DISK_FULL, _STATUS_QUOTA_EXCEEDED}
_MISSING = {_STATUS_OBJECT_NAME_NOT_FOUND, _STATUS_OBJECT_PATH_NOT_FOUND}
_STATUS_NETWORK_SESSION_EXPIRED = 0xC000035C


_CONNECTING = threading.Lock()


def _use_client_guid(guid: uuid.UUID | None) -> None:
    """Make ``guid`` (a fresh one for None) the client GUID of the next connection smbprotocol makes (called under
    ``_CONNECTING``).

    smbclient takes every connection's client GUID from one per-process setting (``ClientConfig``), and a forked
    worker inherits it. Samba (4.15 and later) hands every connection whose GUID it already knows to the server
    process of the first one, as a channel of the same client: with one GUID all of a process's connections, and its
    workers', would be served by one server process, and a new connection would wait on whatever that process is
    stuck on (docs/reliability.md C21). So each storage is a client of its own, with its own GUID, as the Linux
    kernel client makes one per server connection; only the extra connections of one medium for parallel copies
    (``Archive.extra_connection``) are channels of their storage's client and share its GUID and server process.
    After a connection is made the setting is renewed, so a reconnect that smbclient makes by itself later does not
    take a live client's GUID."""
    smbclient.ClientConfig().client_guid = guid or uuid.uuid4()


def _closed_by_server(exc: BaseException) -> bool:
    """Did the server close a connection it had accepted (smbprotocol's receive thread saw the end of the stream:
    SMBConnectionClosed, or the closed socket's EBADF/ECONNRESET/EPIPE on the next send)? A refused TCP connection
    is a ValueError "Failed to connect" instead, a silent server the watchdog's deadline."""
    if isinstance(exc, SMBConnectionClosed):
        return True
    return isinstance(exc, OSError) and exc.errno in (errno.EBADF, errno.ECONNRESET, errno.EPIPE)


class _Watchdog:
    """One background thread that shuts the SMB socket down when a call overruns its deadline."""

    def __init__(self, on_expire):
        self._on_expire = on_expire
        self._cond = threading.Condition()
        self._deadline: float | None = None
        self._generation = 0
        self.fired = False
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="smb-watchdog", daemon=True)
        self._thread.start()

    def arm(self, seconds: float) -> None:
        with self._cond:
            self.fired = False
            self._generation += 1
            self._deadline = time.monotonic() + seconds
            self._cond.notify()

    def disarm(self) -> None:
        with self._cond:
            self._generation += 1
            self._deadline = None

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()

    def _run(self) -> None:
        with self._cond:
            while not self._stopped:
                if self._deadline is None:
                    self._cond.wait()
                    continue
                left = self._deadline - time.monotonic()
                if left > 0:
                    self._cond.wait(left)
                    continue
                generation = self._generation
                self._deadline = None
                self.fired = True
                self._cond.release()
                try:
                    self._on_expire(generation)
                finally:
                    self._cond.acquire()


def _status(exc: BaseException) -> int | None:
    if isinstance(exc, SMBOSError):
        return exc.ntstatus
    if isinstance(exc, SMBResponseException):
        return exc.status
    return None


class _AccessDenied(StorageError):
    """STATUS_ACCESS_DENIED on a file or folder (not at log-on)."""


class SmbStorage(Storage):
    def __init__(self, loc: Location, password: str, timeout: float = 60.0, *, encrypt: bool | None = None,
                 warn: Callable[[str], None] | None = None, client_guid: uuid.UUID | None = None):
        if not loc.is_smb:
            raise StorageError(f"{loc} is not an smb:// location")
        self.loc = loc
        self.location = str(loc)
        self.timeout = float(timeout)
        #: the SMB client GUID this storage connects with: its own, or that of the storage it is an extra
        #: connection of (see ``_use_client_guid``)
        self.client_guid = client_guid or uuid.uuid4()
        self._host = loc.host
        self._port = loc.port
        self._where = f"{loc.host}:{loc.port}"
        self._root = "\\".join([rf"\\{loc.host}\{loc.share}", *[p for p in loc.path.split("/") if p]])
        self._cache: dict = {}
        self._kw = dict(
            username=loc.user,
            password=password,
            port=loc.port,
            connection_timeout=max(1, int(self.timeout)),
            connection_cache=self._cache,
        )
        self._share_root = rf"\\{loc.host}\{loc.share}"
        self._dirs: set[str] = {self._share_root}
        self._dog = _Watchdog(self._expire)
        self._closed = False
        self._warn = warn if warn is not None else SMB_DEFAULTS["warn"]
        want = SMB_DEFAULTS["encrypt"] if encrypt is None else bool(encrypt)
        #: does this storage's session encrypt every message? (False: signed only)
        self.encrypted = False
        try:
            with _CONNECTING:  # one session set-up at a time: copy threads connect together (smbprotocol's
                self.encrypted = self._connect(want)  # negotiation/auth is not known to be thread-safe)
            self._check_share()
        except BaseException:
            self.close()
            raise

    def _connect(self, want: bool) -> bool:
        """Open the session (signing required; encryption asked for when ``want``); True if it encrypts."""
        if want:
            self._kw["encrypt"] = True  # also on every reconnect smbclient makes with these arguments
        with self._guard(self._root, "connecting to"):
            try:
                _use_client_guid(self.client_guid)
                session = smbclient.register_session(self._host, require_signing=True, **self._kw)
            except SMBException as exc:
                if "as a guest" in str(exc):
                    raise self._guest_only() from None
                if not want or "does not support" not in str(exc):
                    raise
                session = None
        if session is None:
            # The server offers no encryption: connect again, signed only, and say so.
            smbclient.reset_connection_cache(fail_on_error=False, connection_cache=self._cache)
            self._kw.pop("encrypt", None)
            with self._guard(self._root, "connecting to"):
                _use_client_guid(self.client_guid)
                session = smbclient.register_session(self._host, require_signing=True, **self._kw)
            if self._warn is not None:
                self._warn(f"SMB server {self._where} does not offer encryption (SMB3 with encryption): "
                           "connected with signing only, so mail on this link can be read on the network")
        _use_client_guid(None)
        return bool(session.encrypt_data)

    def _guest_only(self) -> StorageLoginError:
        """The server logged the account on as a guest (an unknown user or a wrong password, with Samba's
        ``map to guest = bad user``): a guest session can be neither signed nor encrypted, so it is refused."""
        for conn in list(self._cache.values()):  # the server already deleted the session: just hang up
            try:
                conn.disconnect(close=False)
            except Exception:
                pass
        self._cache.clear()
        return StorageLoginError(
            f"SMB server {self._where} let {self.loc.user} on only as a guest (an unknown user or a wrong password "
            "that the server maps to guest): a guest session cannot be signed or encrypted, so it is not used; "
            "give the name and password of an account the server knows"
        )

    def _check_share(self) -> None:
        """Open the share's root once: a share the server does not have is named at once (smbprotocol
        answers STATUS_BAD_NETWORK_NAME, or STATUS_NOT_FOUND after its DFS referral attempt), instead of
        failing later as a missing file or a makedirs loop that only ends at the timeout."""
        with self._guard(self._share_root, "opening the share"):
            try:
                smbclient.stat(self._share_root, **self._kw)
            except SMBOSError as exc:
                if exc.errno == errno.ENOENT or _status(exc) in (_STATUS_BAD_NETWORK_NAME, _STATUS_NOT_FOUND):
                    raise self._share_missing() from None
                raise

    def _share_missing(self) -> ShareMissingError:
        return ShareMissingError(
            f"share '{self.loc.share}' does not exist on {self._where} (STATUS_BAD_NETWORK_NAME): "
            f"check the share name in {self.location}"
        )

    # --- deadlines and error mapping -------------------------------------------------------------

    def _expire(self, _generation: int) -> None:
        """Watchdog: break the connection so the blocked call returns (socket lock not taken)."""
        for conn in list(self._cache.values()):
            conn._t_exc = SMBConnectionClosed(f"no answer from {self._where} within {self.timeout:g} s")
            sock = getattr(conn.transport, "_sock", None)
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        self._cache.clear()

    @contextmanager
    def _guard(self, unc: str, what: str, right: str = "read"):
        """Run one SMB call under the deadline; translate its failures to StorageError subclasses."""
        if self._closed:
            raise StorageError(f"{self.location}: storage already closed")
        self._dog.arm(self.timeout)
        try:
            yield
        except BaseException as exc:
            self._dog.disarm()
            mapped = self._map(exc, unc, what, right)
            if mapped is None:
                raise
            raise mapped from None
        finally:
            self._dog.disarm()

    def _map(self, exc: BaseException, unc: str, what: str, right: str) -> BaseException | None:
        if self._dog.fired:
            self._dog.fired = False
            return StorageError(
                f"SMB server {self._where} did not answer within {self.timeout:g} s while {what} {unc}; "
                "check the network and the share, then rerun"
            )
        if isinstance(exc, StorageError) or not isinstance(exc, Exception):
            return None
        status = _status(exc)
        if status in _MISSING or (isinstance(exc, OSError) and exc.errno == errno.ENOENT):
            if what in ("opening", "inspecting", "reading") and self._listed(unc):
                return StorageError(
                    f"{unc}: the server lists this name but cannot open it: it is the 8.3 name Samba makes up for a "
                    "file whose real name SMB cannot carry (':' or '\\' in it, a trailing dot or space), and Samba "
                    "cannot map it back on a share with `case sensitive = yes`; set `case sensitive = auto` (or "
                    "`vfs objects = catia`) on the share, or import the folder from the server's own disk, then rerun"
                )
            return ObjectMissingError(f"{unc} is missing")
        if status in _CONNECTION_LIMIT and what in ("opening the share", "connecting to"):
            return StorageError(
                f"SMB server {self._where} refused another connection to share '{self.loc.share}' (it limits its "
                "connections: Samba's `max connections`, a Windows or NAS connection limit); a command opens several "
                "at once (one per worker process or copy thread, one per mbox or Maildir of a share import): "
                "raise the limit on the server, then rerun"
            )
        if status in _IN_USE:
            return StorageError(
                f"{unc} is in use by another program on the share (the server refused access: sharing violation or "
                f"a locked range) while {what}: close it there, then rerun"
            )
        if status == _STATUS_OBJECT_NAME_INVALID:
            return StorageError(
                f"the SMB server refuses the name {unc} (STATUS_OBJECT_NAME_INVALID) while {what}: a part of the path "
                "is too long for the server's file system (over 255 bytes as UTF-8 on Samba) or holds a character it "
                "does not allow; use a shorter path"
            )
        if status == _STATUS_OBJECT_NAME_COLLISION:
            return ObjectExistsError(f"{unc} already exists: refusing to replace it (possible ID reuse)")
        if status == _STATUS_NETWORK_SESSION_EXPIRED:
            self._cache.clear()  # a rerun logs on afresh
            return StorageError(
                f"the SMB session with {self._where} expired (STATUS_NETWORK_SESSION_EXPIRED) while {what} {unc}; "
                "what was committed stays committed: rerun to log on again and resume"
            )
        if status in _FULL:
            return StorageFullError(
                f"{unc}: the share is full (STATUS_DISK_FULL/quota) while {what}; free space on it, then rerun"
            )
        if status == _STATUS_ACCESS_DENIED and what == "connecting to":
            return self._session_denied()
        if status == _STATUS_ACCESS_DENIED:
            return _AccessDenied(
                f"access denied on {unc} while {what}: the account {self.loc.user} lacks the {right} right"
                + (" there, or the share is read-only (Samba's `read only = yes`)" if right.startswith(("write", "rename", "delete")) else "")
            )
        if status == _STATUS_LOGON_FAILURE:
            return StorageLoginError(f"SMB logon to {self._where} as {self.loc.user} failed: wrong user name or password")
        if status == _STATUS_BAD_NETWORK_NAME:
            return self._share_missing()
        if status is not None:
            return StorageError(f"SMB error while {what} {unc}: {exc}")
        if what == "connecting to" and _closed_by_server(exc):
            self._cache.clear()
            return StorageError(
                f"SMB server {self._where} took the connection and closed it before answering while {what} {unc}: "
                "it refuses this client or has reached a limit on its processes or connections (Samba's `max smbd "
                "processes` or `hosts allow`/`hosts deny`, a NAS connection limit; its log says which). A command "
                "opens several connections at once (one per worker process, one per mbox or Maildir of a share "
                "import): raise the limit on the server or open fewer connections at once, then rerun",
                next_step=NextStep.FEWER_SMB_CONNECTIONS,
            )
        if isinstance(exc, (SMBException, OSError, ValueError, EOFError)):
            if isinstance(exc, ValueError) and "Failed to connect" not in str(exc):
                return StorageError(f"SMB error while {what} {unc}: {exc}")
            self._cache.clear()
            return StorageError(
                f"cannot reach SMB server {self._where} while {what} {unc} ({exc}); "
                "check that the server is up and the share is reachable, then rerun"
            )
        if isinstance(exc, (TypeError, AttributeError, KeyError)) and not self._connected():
            # smbprotocol trips over its own state after a dropped connection.
            return StorageError(f"connection to {self._where} lost while {what} {unc}; check the share and rerun")
        return None

    def _session_denied(self) -> StorageError:
        """STATUS_ACCESS_DENIED to the log-on itself (a wrong password is STATUS_LOGON_FAILURE): with a dialect
        below SMB 3 that is a server requiring encryption (Samba's ``server smb encrypt = required``)."""
        dialects = [c.dialect for c in self._cache.values() if getattr(c, "dialect", None)]
        if dialects and max(dialects) < 0x300:
            d = max(dialects)
            return StorageError(
                f"SMB server {self._where} refused the session of {self.loc.user} (access denied at log-on) after "
                f"agreeing on SMB {d >> 8}.{(d & 0xFF) >> 4}{d & 0xF or ''}, which cannot encrypt: the server requires "
                "encryption (`smb encrypt = required`) but does not offer SMB3; allow SMB3 on it (`server max "
                "protocol`), then rerun"
            )
        return StorageError(
            f"SMB server {self._where} refused the session of {self.loc.user} (access denied at log-on, although "
            "the password was accepted): the server does not let this account log on; ask its administrator"
        )

    def _listed(self, unc: str) -> bool:
        """Does the folder of ``unc`` list its name although opening it said "not found"? Asked only for a name
        that looks like a Samba 8.3 mangled name (``12QLXW~U``): the one case known to do that (docs/media.md)."""
        parent, _, leaf = unc.rpartition("\\")
        if "~" not in leaf or len(leaf) > 12 or self._closed:
            return False
        self._dog.arm(self.timeout)
        try:
            return any(e.name == leaf for e in smbclient.scandir(parent, **self._kw))
        except Exception:
            return False
        finally:
            self._dog.disarm()
            self._dog.fired = False

    def _connected(self) -> bool:
        return any(c.transport is not None and c.transport.connected for c in self._cache.values())

    # --- names -----------------------------------------------------------------------------------

    def _unc(self, name: str) -> str:
        parts = [p for p in name.replace("\\", "/").split("/") if p]
        if any(p in (".", "..") for p in parts):
            raise StorageError(f"invalid object name {name!r}")
        return "\\".join([self._root, *parts])

    def _rel(self, unc: str) -> str:
        return unc[len(self._root) + 1 :].replace("\\", "/")

    # --- the interface ---------------------------------------------------------------------------

    def open_write(self, name: str) -> AtomicWriter:
        return _SmbWriter(self, name)

    def open_read(self, name: str) -> BinaryIO:
        unc = self._unc(name)
        with self._guard(unc, "opening", "read"):
            f = smbclient.open_file(unc, mode="rb", share_access="r", **self._kw)
        return _SmbReader(self, unc, f)

    def blake3(self, name: str) -> tuple[str, int]:
        """(BLAKE3 hex, size) as the share reads it back: READ requests pipelined (smb_pipeline), the pieces
        hashed in file order while the next ones travel."""
        unc = self._unc(name)
        h = checksum_hasher()
        with self._guard(unc, "reading", "read"):
            raw = smbclient.open_file(unc, mode="rb", buffering=0, share_access="r", **self._kw)
            try:
                n = pipelined_read(raw.fd, raw.fd.end_of_file, h.update)
            finally:
                raw.close()
        return h.hexdigest(), n

    def stat(self, name: str) -> Entry | None:
        unc = self._unc(name)
        try:
            with self._guard(unc, "inspecting", "read"):
                st = smbclient.stat(unc, **self._kw)
        except ObjectMissingError:
            return None
        return Entry(name, st.st_size, st.st_mtime)

    def list(self, prefix: str = "", include_temp: bool = False,
             unreadable: list[tuple[str, str]] | None = None) -> Iterator[Entry]:
        """As :meth:`Storage.list`. Samba follows symbolic links on the server and shows a link to a folder as
        a folder, so a link back up the tree would make the walk endless: a folder whose file id was walked
        already is not walked again. With ``unreadable`` (a source tree) such a folder, and a folder below
        ``prefix`` the account may not list, are appended there as (name, reason) and the walk goes on;
        without, a folder that cannot be listed fails the walk."""
        base = self._unc(prefix) if prefix else self._root
        seen: set[int] = set()
        try:
            with self._guard(base, "inspecting", "list"):
                seen.add(smbclient.stat(base, **self._kw).st_ino)
            seen.discard(0)  # a server without file ids answers 0: no loop can be told then
        except ObjectMissingError:
            return
        yield from self._walk(base, include_temp, unreadable, seen, top=True)

    def _walk(self, unc: str, include_temp: bool, unreadable: list | None, seen: set[int],
              top: bool = False) -> Iterator[Entry]:
        try:
            with self._guard(unc, "listing", "list"):
                entries = [(e.name, e.is_dir(), e.smb_info) for e in smbclient.scandir(unc, **self._kw)]
        except ObjectMissingError:
            return
        except _AccessDenied as exc:
            if top or unreadable is None:
                raise
            unreadable.append((self._rel(unc), f"directory not readable: {exc}"))
            return
        entries.sort(key=lambda e: e[0])
        for fname, is_dir, info in entries:
            full = f"{unc}\\{fname}"
            if is_dir:
                if info.file_id and info.file_id in seen:
                    if unreadable is not None:
                        unreadable.append((self._rel(full), "a folder already walked under another name (the "
                                                            "server follows a symbolic link): not walked again"))
                    continue
                seen.add(info.file_id)
                yield from self._walk(full, include_temp, unreadable, seen)
            elif include_temp or not fname.endswith(TMP_SUFFIX):
                yield Entry(self._rel(full), info.end_of_file, info.last_write_time.timestamp())

    def delete(self, name: str) -> None:
        unc = self._unc(name)
        with self._guard(unc, "deleting", "delete"):
            smbclient.remove(unc, **self._kw)

    def replace(self, name: str, data: bytes) -> None:
        unc = self._unc(name)
        tmp = f"{unc}.{_secrets.token_hex(6)}{TMP_SUFFIX}"
        self._makedirs(ntpath.dirname(unc))
        try:
            try:
                with self._guard(tmp, "creating", "write"):
                    f = smbclient.open_file(tmp, mode="xb", buffering=WRITE_BUFFER, **self._kw)
            except ObjectMissingError:
                # the folder went away since we created it: create it again, once; still "missing": a vetoed name
                self._dirs.discard(ntpath.dirname(unc))
                self._makedirs(ntpath.dirname(unc))
                try:
                    with self._guard(tmp, "creating", "write"):
                        f = smbclient.open_file(tmp, mode="xb", buffering=WRITE_BUFFER, **self._kw)
                except ObjectMissingError:
                    raise self._refused_name(tmp) from None
            with self._guard(tmp, "writing", "write"):
                with f:
                    f.write(data)
                    f.flush()
                    f.raw.flush()
            with self._guard(unc, "replacing", "rename (delete and execute on the target)"):
                smbclient.replace(tmp, unc, **self._kw)
        except BaseException:
            self._remove_quietly(tmp)
            raise

    def free_space(self) -> int | None:
        """Free bytes where this storage's files go: asked of its own folder (or the nearest one that exists),
        not of the share's root, since a folder of a share may lie on another volume (a mount point) or have
        a quota of its own."""
        unc = self._root
        while True:
            try:
                with self._guard(unc, "querying free space on", "read"):
                    return smbclient.stat_volume(unc, **self._kw).caller_available_size
            except ObjectMissingError:
                if unc == self._share_root:
                    raise
                parent = unc.rpartition("\\")[0]
                unc = parent if len(parent) > len(self._share_root) else self._share_root

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._dog.arm(min(self.timeout, 10.0))
        try:
            smbclient.delete_session(self._host, port=self._port, connection_cache=self._cache, timeout=5)
        except Exception:
            pass  # the connection is gone either way
        finally:
            self._dog.disarm()
            self._dog.stop()
            self._cache.clear()

    # --- helpers ---------------------------------------------------------------------------------

    def _makedirs(self, unc_dir: str) -> None:
        if unc_dir in self._dirs:
            return
        try:
            with self._guard(unc_dir, "creating directory", "write (create folders)"):
                smbclient.makedirs(unc_dir, exist_ok=True, **self._kw)
        except ObjectMissingError:
            raise self._refused_name(unc_dir) from None
        self._dirs.add(unc_dir)

    def _refused_name(self, unc: str) -> StorageError:
        """A create that the server answers with "not found" although the folder is there: the name is vetoed."""
        return StorageError(
            f"the SMB server refuses to create {unc} (it answers \"not found\"): the share hides or forbids this name, "
            "as Samba's `veto files` does (the toolkit writes temporary files ending in .tmp and folders starting "
            "with a dot, such as .probe); remove that pattern from the share's configuration, then rerun"
        )

    def _remove_quietly(self, unc: str) -> None:
        if self._closed:
            return
        try:
            with self._guard(unc, "removing", "delete"):
                smbclient.remove(unc, **self._kw)
        except StorageError:
            pass


class _SmbWriter(AtomicWriter):
    def __init__(self, storage: SmbStorage, name: str):
        self.name = name
        self._s = storage
        self._final = storage._unc(name)
        self._tmp = f"{self._final}.{_secrets.token_hex(6)}{TMP_SUFFIX}"
        self._done = False
        self._f = None
        parent = ntpath.dirname(self._final)
        storage._makedirs(parent)
        try:
            self._open()
        except ObjectMissingError:
            # the folder went away since we created it: forget it and create it again
            storage._dirs.discard(parent)
            storage._makedirs(parent)
            try:
                self._open()
            except ObjectMissingError:
                raise storage._refused_name(self._tmp) from None

    def _open(self) -> None:
        with self._s._guard(self._tmp, "creating", "write"):
            self._f = smbclient.open_file(self._tmp, mode="xb", buffering=0, **self._s._kw)
        # WRITE requests pipelined, several in flight (smb_pipeline): a short write fails the transfer
        self._w = PipelinedWriter(self._f.fd, label=self._tmp)

    def write(self, data: bytes) -> int:
        try:
            with self._s._guard(self._tmp, "writing", "write"):
                self._w.write(data)
        except BaseException:
            self.abort()
            raise
        return len(data)

    def tell(self) -> int:
        return self._w.tell()

    def commit(self) -> None:
        if self._done:
            raise StorageError(f"{self._final}: writer already committed or aborted")
        try:
            with self._s._guard(self._tmp, "writing", "write"):
                self._w.drain()   # every WRITE answered, each for all of its bytes
                self._f.fd.flush()  # SMB2 FLUSH: the server writes its cache to disk
                self._f.close()
            self._rename()
        except BaseException:
            self.abort()
            raise
        self._done = True

    def _rename(self) -> None:
        s = self._s
        try:
            with s._guard(self._final, "publishing", "rename (delete on the temp file, execute on the target)"):
                smbclient.rename(self._tmp, self._final, **s._kw)
        except ObjectExistsError:
            raise
        except StorageError as exc:
            # Real servers may refuse the open of an existing target (execute right) instead of a collision.
            if "access denied" in str(exc) and s.stat(self.name) is not None:
                raise ObjectExistsError(
                    f"{self._final} already exists: refusing to replace it (possible ID reuse)"
                ) from None
            raise

    def abort(self) -> None:
        if self._done:
            return
        self._done = True
        if self._f is not None:
            self._w.discard()
            try:
                self._f.close()
            except Exception:
                pass
        self._s._remove_quietly(self._tmp)


class _SmbReader(io.BufferedIOBase):
    """A seekable reader whose every call runs under the storage's deadline."""

    def __init__(self, storage: SmbStorage, unc: str, f):
        super().__init__()
        self._s = storage
        self._unc = unc
        self._f = f

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        with self._s._guard(self._unc, "reading", "read"):
            return self._f.read(-1 if size is None else size)

    def read1(self, size: int = -1) -> bytes:
        with self._s._guard(self._unc, "reading", "read"):
            return self._f.read1(size)

    def readinto(self, b) -> int:
        with self._s._guard(self._unc, "reading", "read"):
            return self._f.readinto(b)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._f.seek(offset, whence)

    def tell(self) -> int:
        return self._f.tell()

    def close(self) -> None:
        if self.closed:
            return
        try:
            if not self._s._closed:
                with self._s._guard(self._unc, "closing", "read"):
                    self._f.close()
        except StorageError:
            pass
        finally:
            super().close()
