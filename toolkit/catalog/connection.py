"""The encrypted DuckDB catalog (docs/formats.md).

The catalog file is attached only for the length of a session: a writer
attaches read-write for one batch lookup or one commit, a reader attaches
read-only for one query. DuckDB lets one process write or many read a file,
so short sessions are what let ``stats``/``sql``/``export`` run beside an
import; both sides retry while the other holds the file.

The catalog key never appears in SQL text: it is handed to ATTACH through a
connection variable set with a prepared-statement parameter and reset right
after, the file path is quoted as an SQL string literal, and DuckDB's error
text is scrubbed of the key before it becomes a message.

SQL the operator typed (``sql``, ``--where``) runs only in :meth:`Catalog.querying`:
a connection of its own with the catalog attached read-only, after which file
and network access, extension loading and every setting are locked, and which
runs exactly one SELECT per call (see :mod:`toolkit.catalog.user_sql`).
"""
from __future__ import annotations

import contextlib
import functools
import os
import pathlib
import re
import time
from typing import Callable, ContextManager, Iterator

import duckdb

from .. import faults, notices
from ..errors import CatalogError, CatalogMemoryLimitError, NextStep, WrongKeyError
from . import checkpoint_guard, spill_dirs
from .migrations import migration_names, migration_sql
from .user_sql import check_query

ATTACH_RETRY_SECONDS = 120.0
#: The end of the message for a catalog that could not be written (a full disk, an I/O error).
_WRITE_FAILED_NEXT = "free space on its disk or fix the I/O error, then rerun the command: it resumes from the last commit"

#: What to do about a damaged or foreign catalog (the command line phrases it).
CATALOG_NEXT_STEP = NextStep.RESTORE_HOME_OR_REBUILD_CATALOG


def catalog_damage(path: pathlib.Path, exc: BaseException, fd: int | None = None) -> CatalogError | None:
    """The operator's error for a DuckDB error that means the catalog file itself is unusable
    (docs/reliability.md H1, H4), or None for any other error.

    Damage shows as a failed AES-GCM tag or block checksum, or as a file DuckDB does not
    recognise; a file that is not encrypted, or encrypted with the CTR cipher (DuckDB before
    1.4.2's fix, or not written by this toolkit), is refused. The message names the cause and
    the next step. ``fd``: a descriptor of the catalog file to read it through, kept open by the caller (a process
    that has the file attached must not close a descriptor of it: that releases DuckDB's fcntl lock,
    :meth:`Catalog._peek_fd`).
    """
    text = " ".join(str(exc).split()) or type(exc).__name__  # a fatal error quotes the original below its first line
    low = text.lower()
    if "aes tag" in low or "checksum" in low or "not a valid duckdb database" in low or "corrupt" in low:
        if checkpoint_guard.explains_damage(path, fd):
            return CatalogError(
                f"{path} was left in the middle of a checkpoint by a writer that was killed, and this command only "
                f"reads: {checkpoint_guard.guard_path(path).name} holds what that checkpoint overwrote (DuckDB: {text})",
                next_step=NextStep.RERUN_WRITER)
        cause = "is damaged: it fails its integrity check"
    elif "not encrypted" in low:
        cause = "is not encrypted, so this toolkit did not write it: refused, never opened unencrypted"
    elif "different cipher" in low:
        cause = "is not encrypted with AES-GCM (CTR, or an older DuckDB): refused, only GCM catalogs are opened"
    else:
        return None
    return CatalogError(f"{path} {cause} (DuckDB: {text})", next_step=CATALOG_NEXT_STEP)


@functools.cache
def httpfs_extension_path() -> pathlib.Path:
    """The httpfs extension file of the duckdb-extension-httpfs wheel (``extensions/v<version>/``)."""
    import duckdb_extension_httpfs

    base = pathlib.Path(duckdb_extension_httpfs.__file__).parent / "extensions"
    found = sorted(base.glob("*/httpfs.duckdb_extension"))
    if not found:
        raise CatalogError(
            "the duckdb-extension-httpfs wheel holds no httpfs.duckdb_extension; reinstall the toolkit's dependencies"
        )
    return found[0]


def sql_string(text: str) -> str:
    """``text`` as an SQL string literal (DuckDB's standard strings: only ``'`` needs doubling)."""
    return "'" + str(text).replace("'", "''") + "'"


#: The catalog connection's settings: extensions are neither installed nor autoloaded (the one it needs is
#: loaded by its path below), and DuckDB's signature check of that file is off. The check hashes the whole
#: 21 MB file with DuckDB's own SHA-256 in every process (about 0.1 CPU-s, a quarter of a short command's
#: cost, bench/RESULTS.md "Consolidation, fixed cost of a run") and guards against nothing the
#: installation's file permissions do not: the file lies in the toolkit's own environment beside DuckDB's
#: binary (which holds the key the check trusts) and the toolkit's code, neither checked at run time
#: (docs/formats.md §6).
CONNECTION_CONFIG = {
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_unsigned_extensions": True,
}


#: DuckDB's memory limit for an import's catalog sessions (:meth:`Catalog.use_memory_limit`). Without one, the
#: checkpoint that merges the small row groups of the import's commits holds them uncompressed, 100-250 MB at a
#: time in a catalog of a million mails, and the allocator keeps what it freed: the main process's peak grew
#: with the catalog (docs/reliability.md K8). Under the limit DuckDB writes what does not fit to its temp
#: directory (encrypted, :meth:`Catalog.temp_directory`). A commit needs about 20-30 MB pinned at once
#: whatever its rows (a smaller limit fails the checkpoint): this one leaves twice that
#: (tests/reliability/test_catalog_memory.py).
IMPORT_MEMORY_LIMIT = 64 << 20
_DEFAULT_MEMORY_LIMIT: str | None = None  # DuckDB's default, read once (Catalog._default_memory_limit)
#: The memory limits (times the one set; None: DuckDB's default) under which work a session's limit refused is made
#: again, one after the other (:meth:`Catalog.lift_memory_limit`): a writer's checkpoint (docs/reliability.md A12:
#: a purge of 250,000 of a million mails needed 72-80 MiB for the last checkpoint of its 64 MiB session; done at
#: twice the limit, its peak stayed at 360 MB), an import's commit or read, a rebuild's step (without a limit at
#: once, the renumbering of a stamped million that a 64 MB limit refused took 1,050 MB more; bench/RESULTS.md).
LIFTED_MEMORY_LIMITS = (2, 4, None)


def _connection() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(":memory:", config=CONNECTION_CONFIG)
    # The offline httpfs wheel provides the secure crypto module needed to write
    # encrypted files; never fall back to force_mbedtls_unsafe.
    con.execute(f"LOAD {sql_string(httpfs_extension_path())}")
    con.execute("SET temp_file_encryption = true")
    quiet(con)
    return con


def _out_of_memory(exc: BaseException) -> bool:
    """Whether a DuckDB error is one of running out of its memory limit (also as the "Original error" of a
    failed checkpoint)."""
    text = str(exc).lower()
    return isinstance(exc, duckdb.OutOfMemoryException) or any(
        words in text for words in ("out of memory", "could not allocate", "failed to allocate", "failed to pin"))


def _still_attached(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the catalog is still attached on ``con`` (a DETACH that failed before detaching)."""
    try:
        return bool(con.execute("SELECT count(*) FROM duckdb_databases() WHERE database_name = 'cat'").fetchone()[0])
    except duckdb.Error:
        return True


def quiet(con: duckdb.DuckDBPyConnection) -> None:
    """No progress bar: DuckDB draws one on the process's stdout once a query runs over 2 s, inside a command's
    --json output or between its lines (a million mails' retention report, branch retain1m). The core never
    prints."""
    con.execute("SET enable_progress_bar = false")


class ReadSession:
    """The restricted session of :meth:`Catalog.querying`: each call runs exactly one SELECT."""

    def __init__(self, con: duckdb.DuckDBPyConnection):
        self._con = con

    def execute(self, sql: str, params: list | None = None) -> duckdb.DuckDBPyConnection:
        """Run one query (checked by DuckDB's parser first); fetch the result inside the session."""
        statement = check_query(sql, placeholders=bool(params))
        return self._con.execute(statement, params or [])


class Catalog:
    """Sessions over the encrypted catalog file of one archive home.

    ``writer``: this process holds the archive's writer lock, so its sessions may spill into
    ``catalog.duckdb.tmp`` beside the catalog; any other process spills into a directory of its own
    (:attr:`temp_directory`, :mod:`toolkit.catalog.spill_dirs`)."""

    #: Why the last checkpoint of a writer session did not happen in this process (the warning given,
    #: :meth:`_finish_checkpoint`), or None.
    checkpoint_left: str | None = None
    #: The memory limit (bytes; 0: DuckDB's default) under which a checkpoint that the session's limit refused was
    #: done last (:meth:`_checkpoint_lifted`), or None.
    checkpoint_lifted: int | None = None

    def __init__(self, path: pathlib.Path, key: bytes, writer: bool = False):
        self.path = pathlib.Path(path)
        self._writer = writer
        self._private_temp: tuple[int, pathlib.Path] | None = None  # (pid, directory) of a non-writer's spills
        self._key_hex = key.hex()
        self._con: duckdb.DuckDBPyConnection | None = None
        self._threads: int | None = None  # DuckDB's own default (one thread per core) unless :meth:`use_threads`
        self._memory_limit: int | None = None  # DuckDB's own default (80% of RAM) unless :meth:`use_memory_limit`
        self._limit_set: int | None = None  # the limit use_memory_limit set (lift_memory_limit steps up from it)
        self._guarded: bytes | None = None  # the headers the checkpoint guard saved, while a writer is attached
        self.guard_recovery: str | None = None  # what the last writer attach found of a killed writer's checkpoint
        # The writer's own descriptor of the catalog file, open from before its attach to after its DETACH: the
        # guard reads the file through it, because closing any descriptor of the file would release DuckDB's
        # fcntl lock and let a reader attach beside the writer (toolkit/catalog/checkpoint_guard.py ``_file``).
        self._file_fd: int | None = None
        self._peek: int | None = None  # a read-only descriptor for the damage check, closed with the writer's (_damage)

    @property
    def threads(self) -> int | None:
        """The DuckDB threads set with :meth:`use_threads` (None: DuckDB's default)."""
        return self._threads

    def use_threads(self, threads: int | None) -> None:
        """Run this catalog's sessions on ``threads`` DuckDB threads from now on (None: DuckDB's default, one
        per core). An import sets 1: its sessions are small (a lookup, one pack's commit and its checkpoint),
        where a second thread only adds scheduling (about a third of a commit's CPU, bench/RESULTS.md "Driver
        CPU"), and its worker processes want the cores."""
        self._threads = threads
        if self._con is not None:
            self._apply_threads(self._con)

    def _apply_threads(self, con: duckdb.DuckDBPyConnection) -> None:
        if self._threads is None:
            con.execute("RESET threads")
        else:
            con.execute(f"SET threads = {int(self._threads)}")

    @property
    def memory_limit(self) -> int | None:
        """The bytes set with :meth:`use_memory_limit` (None: DuckDB's default)."""
        return self._memory_limit

    @property
    def temp_directory(self) -> pathlib.Path | None:
        """Where DuckDB writes what the memory limit of :meth:`use_memory_limit` does not hold (encrypted). For the
        writer ``catalog.duckdb.tmp`` beside the catalog (DuckDB creates it when it first needs it and removes its
        files when done); for any other process a directory of its own outside the home, made when a limit is first
        set (None before) and removed by :meth:`close`: DuckDB names its temp files alike in every process, and two
        processes in one directory read and remove each other's (:mod:`toolkit.catalog.spill_dirs`)."""
        if self._writer:
            return self.path.with_name(self.path.name + ".tmp")
        if self._private_temp is not None and self._private_temp[0] == os.getpid():
            return self._private_temp[1]
        return None

    def use_memory_limit(self, limit: int | None) -> None:
        """Hold this catalog's sessions to ``limit`` bytes of DuckDB memory from now on (None: DuckDB's default).
        An import sets :data:`IMPORT_MEMORY_LIMIT` (docs/reliability.md K8)."""
        self._limit_set = limit
        self._set_limit(limit)

    def lift_memory_limit(self) -> bool:
        """After work the limit refused (rolled back, to be made again): hold the sessions to the next of
        :data:`LIFTED_MEMORY_LIMITS` times the limit last set with :meth:`use_memory_limit` (twice, four times,
        then DuckDB's default), and keep it for the rest of the work. False if there is no limit to lift."""
        if self._memory_limit is None:
            return False
        base = self._limit_set or self._memory_limit
        for step in LIFTED_MEMORY_LIMITS:
            bound = None if step is None else base * step
            if bound is None or bound > self._memory_limit:
                self._set_limit(bound)
                return True
        return False  # (no step above the limit now)

    def _set_limit(self, limit: int | None) -> None:
        self._memory_limit = limit
        if self._con is not None:
            self._apply_memory_limit(self._con)

    def _apply_memory_limit(self, con: duckdb.DuckDBPyConnection) -> None:
        if self._memory_limit is None:
            # DuckDB's own default again, set by value: `RESET memory_limit` shows the default in
            # current_setting() but leaves the buffer pool at the limit it had (DuckDB 1.4;
            # tests/reliability/test_catalog_memory.py)
            con.execute(f"SET memory_limit = {sql_string(self._default_memory_limit(con))}")
            return
        # What the limit does not hold goes to this process's own directory (:attr:`temp_directory`), not to
        # DuckDB's default for an in-memory database (".tmp" in the working directory). Set once per connection:
        # DuckDB refuses to move a temp directory it has used.
        if not self._writer and self.temp_directory is None:  # (a forked child makes its own)
            self._private_temp = (os.getpid(), spill_dirs.make())
        temp = str(self.temp_directory)
        if con.execute("SELECT current_setting('temp_directory')").fetchone()[0] != temp:
            con.execute(f"SET temp_directory = {sql_string(temp)}")
        con.execute(f"SET memory_limit = '{int(self._memory_limit)}B'")

    @staticmethod
    def _default_memory_limit(con: duckdb.DuckDBPyConnection) -> str:
        """DuckDB's default memory limit, as a fresh connection of this process has it (80 % of the RAM)."""
        global _DEFAULT_MEMORY_LIMIT
        if _DEFAULT_MEMORY_LIMIT is None:
            with duckdb.connect(":memory:") as fresh:
                _DEFAULT_MEMORY_LIMIT = fresh.execute("SELECT current_setting('memory_limit')").fetchone()[0]
        return _DEFAULT_MEMORY_LIMIT

    # -- sessions ---------------------------------------------------------------------------
    def _attach(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            self._con = _connection()
            if self._threads is not None:
                self._apply_threads(self._con)
            if self._memory_limit is not None:
                self._apply_memory_limit(self._con)
        if not read_only and self.path.exists():
            self._open_file()
            self.guard_recovery = (checkpoint_guard.recover(self.path, ATTACH_RETRY_SECONDS, self._file_fd)
                                   or self.guard_recovery)
        self._attach_on(self._con, read_only)
        if not read_only:
            try:
                self._open_file()  # (a catalog DuckDB has just created)
                self._guarded = self._save_guard(self._con)
            except BaseException:
                self._detach()
                raise
        return self._con

    def _save_guard(self, con: duckdb.DuckDBPyConnection) -> bytes:
        try:
            return checkpoint_guard.save(self.path, con, fd=self._file_fd)
        except OSError as exc:  # a full disk or an I/O error beside the catalog: nothing was written yet
            raise CatalogError(
                f"the catalog {self.path} could not be written (its checkpoint guard: {exc.strerror or exc}); "
                + _WRITE_FAILED_NEXT
            ) from None

    def _guard_current(self, con: duckdb.DuckDBPyConnection) -> None:
        """Before a COMMIT (which may checkpoint) or the DETACH that checkpoints: the guard saved for a writer
        session describes the file as it is now, saved again if a checkpoint since changed the headers."""
        if self._guarded is not None and checkpoint_guard.headers_on_disk(self.path, self._file_fd) != self._guarded:
            self._guarded = self._save_guard(con)

    def _commit(self, con: duckdb.DuckDBPyConnection) -> None:
        self._guard_current(con)
        # The COMMIT runs with the in-memory database as the default: a catalog that the commit's automatic
        # checkpoint invalidates cannot be detached while it is the default, nor can the default be changed then
        # (DuckDB 1.5), and :meth:`_checkpoint_after_commit` has to detach it.
        in_cat = con.execute("SELECT current_database()").fetchone()[0] == "cat"
        if in_cat:
            con.execute("USE memory")
        try:
            con.execute("COMMIT")
        except duckdb.Error as exc:
            if "commit succeeded and is durable" not in str(exc).lower():
                raise
            self._checkpoint_after_commit(con, exc)
        if in_cat:
            con.execute("USE cat")

    def _scrub(self, text: str) -> str:
        """DuckDB's message without any piece of the key (it is never in our SQL; this is a second fence)."""
        key = self._key_hex

        def hide(m: re.Match) -> str:
            run = m.group().lower()
            return "<key>" if any(run[i:i + 8] in key for i in range(len(run) - 7)) else m.group()

        return re.sub(r"[0-9a-fA-F]{8,}", hide, text)

    def _attach_on(self, con: duckdb.DuckDBPyConnection, read_only: bool) -> None:
        opts = "ENCRYPTION_KEY getvariable('mailarchive_catalog_key'), ENCRYPTION_CIPHER 'GCM'"
        if read_only:
            opts += ", READ_ONLY"
        sql = f"ATTACH {sql_string(self.path)} AS cat ({opts})"
        deadline = time.monotonic() + ATTACH_RETRY_SECONDS
        delay = 0.02
        while True:
            try:
                con.execute("SET VARIABLE mailarchive_catalog_key = ?", [self._key_hex])
                try:
                    con.execute(sql)
                finally:
                    con.execute("RESET VARIABLE mailarchive_catalog_key")
                return
            except duckdb.InvalidInputException as exc:
                if "encryption key" in str(exc).lower():
                    raise WrongKeyError(
                        f"{self.path}: the archive key does not open this catalog: it is the catalog of another "
                        f"archive (H3), or the key is wrong", next_step=CATALOG_NEXT_STEP
                    ) from None
                raise self._damage(exc) or CatalogError(f"{self.path}: {self._scrub(str(exc))}") from None
            except duckdb.IOException as exc:
                # the word "lock", not "block" of a damaged file's checksum message
                if not re.search(r"\block\b", str(exc), re.IGNORECASE) or time.monotonic() > deadline:
                    raise self._damage(exc) or CatalogError(
                        f"{self.path}: cannot open the catalog: {self._scrub(str(exc))}") from None
                time.sleep(delay)
                delay = min(delay * 2, 0.5)
            except duckdb.Error as exc:
                raise self._damage(exc) or CatalogError(
                    f"{self.path}: cannot open the catalog: {self._scrub(str(exc))}") from None

    @contextlib.contextmanager
    def _damage_reported(self) -> Iterator[None]:
        """A damaged block met by a query (not at attach) becomes the same clear error (H1)."""
        try:
            yield
        except duckdb.Error as exc:
            damage = self._damage(exc)
            if damage is None:
                raise
            raise damage from None

    def _detach(self) -> None:
        """End the session: DETACH, which checkpoints a writer's commits into the file. A writer whose
        checkpoint failed gets it again or a warning (:meth:`_finish_checkpoint`)."""
        if self._con is None:
            return
        writer = self._guarded is not None
        failure = self._detach_once()
        if writer and failure is not None:
            self._finish_checkpoint(failure)

    def _detach_once(self) -> duckdb.Error | None:
        """One DETACH; the guard is removed once DuckDB has let the file go. Returns DuckDB's error, if any."""
        guarded = self._guarded is not None
        if guarded:
            with contextlib.suppress(duckdb.Error, OSError, CatalogError):
                self._guard_current(self._con)
        self._guarded = None
        try:
            self._con.execute("DETACH cat")
        except duckdb.Error as exc:
            return exc  # the guard stays: the next writer checks what this checkpoint left
        self._close_file()  # DuckDB has let the file go: closing ours releases no lock of its
        if guarded:
            checkpoint_guard.clear(self.path)
        return None

    def _finish_checkpoint(self, failure: duckdb.Error) -> None:
        """A writer's DETACH failed. DuckDB detaches the catalog all the same when the checkpoint it runs fails
        ("CHECKPOINT during DETACH failed"; the session once swallowed it): every commit is only in the WAL and
        the guard holds what the checkpoint overwrote (docs/reliability.md A6, A12). A checkpoint refused by
        the session's memory limit is done now under a lifted one (:meth:`_checkpoint_lifted`) and the catalog
        detached again; one that cannot be done here becomes a warning (:mod:`toolkit.notices`), never silence:
        the WAL and the guard stay, and the next writer's attach completes it."""
        if self._con is not None and not _still_attached(self._con):
            failure = self._checkpoint_lifted(failure)
            if failure is None:
                failure = self._detach_once()  # nothing left to checkpoint: the guard goes
                if failure is None:
                    return
        self.checkpoint_left = (f"the catalog {self.path} was left without its last checkpoint "
                                f"(DuckDB: {self._duckdb_reason(failure)}); every commit is kept in {self.path.name}.wal and "
                                "the next command that writes the archive completes the checkpoint")
        notices.warn(self.checkpoint_left)

    def _checkpoint_after_commit(self, con: duckdb.DuckDBPyConnection, failure: duckdb.Error) -> None:
        """DuckDB wrote the commit to the WAL, then the automatic checkpoint that followed failed and invalidated
        the attached catalog ("Transaction COMMIT succeeded and is durable, but the autocheckpoint failed"): the
        transaction is committed, but nothing more can run on that attach. The catalog is detached (the guard
        stays on disk: what the failed checkpoint overwrote goes back at the next attach) and attached again
        with its checkpoint done under a lifted memory limit (:meth:`_checkpoint_lifted`); the session goes on.
        Without that, the commit used to be reported as failed ("nothing of it was committed"), and a purge's
        rerun met the same WAL and the same refused checkpoint at its first commit again (A12)."""
        self._drop_invalidated(con)
        left = self._checkpoint_lifted(failure)
        if left is not None:
            raise CatalogError(
                f"the catalog {self.path}: the last commit is kept (in {self.path.name}.wal) but the checkpoint after "
                f"it failed (DuckDB: {self._duckdb_reason(left)}); rerun the command: it resumes from the last commit")

    def _drop_invalidated(self, con: duckdb.DuckDBPyConnection) -> None:
        """DETACH a catalog that a failed checkpoint invalidated (nothing is checkpointed); the guard stays on disk."""
        self._guarded = None
        with contextlib.suppress(duckdb.Error):
            con.execute("DETACH cat")

    def _checkpoint_lifted(self, failure: BaseException) -> BaseException | None:
        """With the catalog detached after a checkpoint that this session's memory limit refused (it needs more
        than the commits did: one that rewrites the row groups of a million mails' updates and deletes, as a
        purge's, took 72-80 MiB): attach it again under each lifted limit in turn (:meth:`lift_memory_limit`;
        the guard puts back what the failed checkpoint overwrote, DuckDB replays the WAL) and CHECKPOINT.
        Returns None once done, the catalog attached under the session's own limit again; else the last failure,
        the catalog detached (another failure than memory, or no limit: no attempt)."""
        limit, limit_set = self._memory_limit, self._limit_set
        if limit is None or not _out_of_memory(failure):
            return failure
        try:
            while self.lift_memory_limit():
                try:
                    con = self._attach(read_only=False)
                except CatalogError as exc:
                    return exc
                try:
                    self._guard_current(con)
                    con.execute("CHECKPOINT cat")
                except duckdb.Error as exc:
                    self._drop_invalidated(con)
                    failure = exc
                    if not _out_of_memory(exc):
                        return failure
                    continue
                self.checkpoint_lifted = self._memory_limit or 0
                return None
            return failure
        finally:
            self._limit_set = limit_set
            self._set_limit(limit)

    def _duckdb_reason(self, failure: BaseException) -> str:
        """Why DuckDB's checkpoint failed, without any piece of the key: the "Original error" of a failed checkpoint
        (its first lines only say that the catalog was detached or invalidated), else the first line."""
        text = str(failure)
        if "Original error:" in text:
            text = text.rsplit("Original error:", 1)[1]
        line = next((x.strip() for x in text.splitlines() if x.strip()), type(failure).__name__)
        return self._scrub(line)

    def _open_file(self) -> None:
        if self._file_fd is None:
            self._file_fd = os.open(self.path, os.O_RDWR)

    def _close_file(self) -> None:
        if self._file_fd is not None:
            fd, self._file_fd = self._file_fd, None
            os.close(fd)
        if self._peek is not None:
            fd, self._peek = self._peek, None
            os.close(fd)

    def _damage(self, exc: BaseException) -> CatalogError | None:
        """:func:`catalog_damage` for this catalog, reading the file through a descriptor kept open until the
        connection lets the file go (closing one at once would release the lock DuckDB holds on it, as the guard's
        reads did: docs/reliability.md A6)."""
        return catalog_damage(self.path, exc, self._peek_fd())

    def _peek_fd(self) -> int | None:
        if self._file_fd is not None:
            return self._file_fd
        if self._peek is None:
            with contextlib.suppress(OSError):
                self._peek = os.open(self.path, os.O_RDONLY)
        return self._peek

    @contextlib.contextmanager
    def reading(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-only session; tables are ``cat.<name>`` and also the default schema."""
        if not self.path.exists():
            raise CatalogError(f"{self.path} is missing", next_step=NextStep.RESTORE_CATALOG_BACKUP_OR_REBUILD)
        con = self._attach(read_only=True)
        try:
            con.execute("USE cat")
            with self._damage_reported():
                yield con
        finally:
            con.execute("USE memory")
            self._detach()

    @contextlib.contextmanager
    def querying(self, scope=None, memory_limit: int | None = None) -> Iterator[ReadSession]:
        """The restricted read session for SQL the operator typed (``sql``, ``--where``).

        A connection of its own: the catalog is attached read-only and made the
        default schema, then extension autoloading, file and network access are
        switched off and the configuration is locked, so a query can read the
        catalog's tables and nothing else, and can change nothing. Reading the
        encrypted file needs no extension, so none is loaded; with file access
        off DuckDB does not spill to temp files either, so catalog rows never
        reach the disk in clear (a query larger than memory fails instead).

        With ``scope`` (a :class:`toolkit.catalog.directory.Scope`) the session holds only the
        rows in that scope: they are copied into the session's memory and the catalog is
        detached before the lock (:func:`toolkit.catalog.directory.restrict_session`).

        With ``memory_limit`` (bytes) DuckDB keeps at most that much: the blocks it read are dropped again
        instead of staying cached until the session ends (a read of every page of a large catalog held the
        catalog's decompressed blocks, docs/reliability.md K8); a query needing more fails.
        """
        if not self.path.exists():
            raise CatalogError(f"{self.path} is missing", next_step=NextStep.RESTORE_CATALOG_BACKUP_OR_REBUILD)
        con = duckdb.connect(":memory:", config={"autoinstall_known_extensions": False,
                                                 "autoload_known_extensions": False})
        try:
            self._attach_on(con, read_only=True)
            con.execute("USE cat")
            if scope is not None:
                from .directory import restrict_session

                restrict_session(con, scope)
            if memory_limit is not None:
                con.execute(f"SET memory_limit = '{int(memory_limit)}B'")
            for setting in (
                "SET autoinstall_known_extensions = false",
                "SET autoload_known_extensions = false",
                "SET enable_external_access = false",
                "SET lock_configuration = true",
            ):
                con.execute(setting)
            yield ReadSession(con)
        finally:
            con.close()

    @contextlib.contextmanager
    def writing(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-write session holding one transaction: committed on success, rolled back on error."""
        with self.transactions() as transaction, transaction() as con:
            yield con

    @contextlib.contextmanager
    def transactions(self, checkpoint_threshold: int | None = None
                     ) -> Iterator[Callable[[], ContextManager[duckdb.DuckDBPyConnection]]]:
        """One read-write attach for several transactions, each committed on its own::

            with catalog.transactions() as transaction:
                for item in items:
                    with transaction() as con:
                        ...

        Saves an attach and a detach (checkpoint) per transaction; other processes wait
        for the file while the session lasts, so keep it to work that is ready to commit.

        ``checkpoint_threshold`` (bytes): for this session, DuckDB checkpoints at the first COMMIT after its WAL
        has passed that much (DuckDB's own: 16 MiB). The memory a checkpoint needs grows with the updates and
        deletes the WAL holds: a long session of such commits under a memory limit sets a small threshold, so
        that each checkpoint fits the limit (a purge, docs/reliability.md A12).
        """
        con = self._attach(read_only=False)
        if checkpoint_threshold is not None:
            con.execute(f"SET checkpoint_threshold = '{int(checkpoint_threshold)}B'")

        @contextlib.contextmanager
        def transaction() -> Iterator[duckdb.DuckDBPyConnection]:
            try:
                con.execute("BEGIN TRANSACTION")
                try:
                    with self._damage_reported():
                        yield con
                except BaseException as exc:
                    try:
                        con.execute("ROLLBACK")
                    except duckdb.Error:
                        if not isinstance(exc, CatalogError):
                            raise
                        # a damaged block fails the rollback too; nothing was committed: report the damage
                    raise
                self._commit(con)
            except duckdb.Error as exc:
                # a damaged file (H1), a full volume or an I/O error (E2): one clear error, the
                # transaction rolled back, the connection dropped (the next session attaches anew)
                failure = self._damage(exc) or self._write_failure(exc)
                if failure is None:
                    raise
                with contextlib.suppress(duckdb.Error):
                    con.execute("ROLLBACK")
                self._discard_connection()
                raise failure from None
            faults.hit("catalog.after_commit")  # committed to the WAL, not yet checkpointed (A6, H6)

        try:
            con.execute("USE cat")
            yield transaction
        finally:
            with contextlib.suppress(duckdb.Error):
                con.execute("USE memory")
            if checkpoint_threshold is not None:
                with contextlib.suppress(duckdb.Error):
                    con.execute("RESET checkpoint_threshold")
            self._detach()

    def _write_failure(self, exc: duckdb.Error) -> CatalogError | None:
        """The operator's message for a full disk, an I/O error or a commit beyond the memory limit
        (:meth:`use_memory_limit`) while writing, else None."""
        text = str(exc)
        lowered = text.lower()
        reason = next((line for line in text.splitlines() if line.strip()), type(exc).__name__)
        for prefix in ("TransactionContext Error: ", "Failed to commit: "):
            reason = reason.replace(prefix, "")
        # (DuckDB's words vary with where the limit bit: an OutOfMemoryException, "failed to pin block", or a
        # TransactionException "Failed to commit: could not allocate block ...")
        if self._memory_limit is not None and _out_of_memory(exc):
            return CatalogMemoryLimitError(
                f"the catalog {self.path} could not be written: the commit needed more than the "
                f"{self._memory_limit / (1 << 20):.0f} MiB of memory this command gives DuckDB "
                f"({self._scrub(reason.strip())}); nothing of it was committed. Rerun the command: it resumes from "
                f"the last commit; if it stops here again, report it (docs/reliability.md K8)"
            )
        io = isinstance(exc, (duckdb.IOException, duckdb.FatalException)) or any(
            s in lowered for s in ("no space left", "could not write", "could not fsync", "i/o error", "disk quota",
                                   "read-only file system", "invalidated")
        )
        if not io:
            return None
        return CatalogError(
            f"the catalog {self.path} could not be written ({self._scrub(reason.strip())}); "
            + _WRITE_FAILED_NEXT
        )

    def _discard_connection(self) -> None:
        self._guarded = None  # a guard on disk stays: the next writer attach puts its blocks back (harmless if unchanged)
        if self._con is not None:
            with contextlib.suppress(duckdb.Error):
                self._con.execute("USE memory")
            with contextlib.suppress(duckdb.Error):
                self._con.execute("DETACH cat")
            with contextlib.suppress(duckdb.Error):
                self._con.close()
            self._con = None
        self._close_file()
        self._remove_temp()

    def close(self) -> None:
        if self._con is not None:
            self._detach()
            self._con.close()
            self._con = None
        self._close_file()
        self._remove_temp()

    def _remove_temp(self) -> None:
        """A non-writer's spill directory goes with the connection that used it (the next one makes its own); the
        writer's ``catalog.duckdb.tmp`` goes if DuckDB left it empty (files a killed writer left keep it)."""
        if not self._writer:
            spill_dirs.remove(self.temp_directory)
            self._private_temp = None
            return
        with contextlib.suppress(OSError):
            os.rmdir(self.temp_directory)

    # -- schema -------------------------------------------------------------------------------
    def refuse_newer_schema(self) -> None:
        """Refuse a catalog that a newer toolkit migrated further (docs/reliability.md O8): a schema
        migration this toolkit does not know means tables it would misread or write wrongly."""
        with self.reading() as con:
            self._refuse_newer(con)

    def _refuse_newer(self, con: duckdb.DuckDBPyConnection) -> None:
        known = set(migration_names())
        done = {r[0] for r in con.execute("SELECT name FROM cat.schema_migrations").fetchall()}
        newer = sorted(done - known)
        if newer:
            raise CatalogError(
                f"{self.path}: the catalog has schema migrations this toolkit does not know ({', '.join(newer)}): "
                "it was written by a newer mailarchive-toolkit; use that version (nothing was changed)"
            )

    def open_writer(self) -> list[str]:
        """What a writer that holds the archive's lock does first, in one read-write session: refuse a
        newer schema (O8, before anything is written), apply the migrations not yet applied (each in its
        transaction), mark runs still ``running`` as ``failed`` (:meth:`close_dead_runs`). Returns the
        migrations applied."""
        con = self._attach(read_only=False)
        try:
            with self._damage_reported():
                self._refuse_newer(con)
                applied = self._apply_migrations(con)
                con.execute("BEGIN TRANSACTION")
                try:
                    self._close_dead_runs_in(con, "cat.")
                    self._commit(con)
                except BaseException:
                    con.execute("ROLLBACK")
                    raise
        finally:
            self._detach()
        return applied

    def create(self, info: dict[str, str]) -> None:
        if self.path.exists():
            raise CatalogError(f"{self.path} already exists")
        self.migrate()
        with self.writing() as con:
            for k, v in info.items():
                con.execute("INSERT INTO archive_info VALUES (?, ?)", [k, v])

    def close_dead_runs(self) -> int:
        """Mark runs still ``running`` as ``failed``; returns how many.

        Only for a writer that holds the archive's lock: every run is made under
        that lock, so a run still marked running then belongs to a process that
        died, or whose catalog could not record its end (a full disk).
        """
        with self.writing() as con:
            return self._close_dead_runs_in(con)

    @staticmethod
    def _close_dead_runs_in(con: duckdb.DuckDBPyConnection, schema: str = "") -> int:
        dead = con.execute(f"SELECT count(*) FROM {schema}runs WHERE status = 'running'").fetchone()[0]
        if dead:
            con.execute(f"UPDATE {schema}runs SET status = 'failed', finished_at = now() WHERE status = 'running'")
        return dead

    def migrate(self) -> list[str]:
        """Apply the migrations not yet applied; returns their names."""
        con = self._attach(read_only=False)
        try:
            with self._damage_reported():
                con.execute(
                    "CREATE TABLE IF NOT EXISTS cat.schema_migrations (name VARCHAR PRIMARY KEY, applied_at TIMESTAMPTZ)"
                )
                return self._apply_migrations(con)
        finally:
            self._detach()

    def _apply_migrations(self, con: duckdb.DuckDBPyConnection) -> list[str]:
        applied: list[str] = []
        done = {r[0] for r in con.execute("SELECT name FROM cat.schema_migrations").fetchall()}
        for name in migration_names():
            if name in done:
                continue
            con.execute("BEGIN TRANSACTION")
            try:
                con.execute(migration_sql(name))
                con.execute("INSERT INTO cat.schema_migrations VALUES (?, now())", [name])
                self._commit(con)
            except BaseException:
                con.execute("ROLLBACK")
                raise
            applied.append(name)
        return applied
