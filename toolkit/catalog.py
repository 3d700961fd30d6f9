"""The encrypted DuckDB catalog (DESIGN §5, §7).

The catalog file is attached only for the length of a session: a writer
attaches read-write for one batch lookup or one commit, a reader attaches
read-only for one query. DuckDB lets one process write or many read a file,
so short sessions are what let ``stats``/``sql``/``export`` run beside an
import; both sides retry while the other holds the file.
"""
from __future__ import annotations

import contextlib
import pathlib
import time
from typing import Callable, ContextManager, Iterator

import duckdb

from . import faults
from .errors import CatalogError, WrongKeyError
from .migrations import migrations

ATTACH_RETRY_SECONDS = 120.0

CATALOG_NEXT_STEP = (
    "restore the home from a mirror (`mailarchive restore`) or rebuild the catalog from the media "
    "(`mailarchive db rebuild --force`, which moves this file aside and never deletes it)"
)


def catalog_damage(path: pathlib.Path, exc: BaseException) -> CatalogError | None:
    """The operator's error for a DuckDB error that means the catalog file itself is unusable
    (RELIABILITY H1, H4), or None for any other error.

    Damage shows as a failed AES-GCM tag or block checksum, or as a file DuckDB does not
    recognise; a file that is not encrypted, or encrypted with the CTR cipher (DuckDB before
    1.4.2's fix, or not written by this toolkit), is refused. The message names the cause and
    the next step.
    """
    text = " ".join(str(exc).split()) or type(exc).__name__  # a fatal error quotes the original below its first line
    low = text.lower()
    if "aes tag" in low or "checksum" in low or "not a valid duckdb database" in low or "corrupt" in low:
        cause = "is damaged: it fails its integrity check"
    elif "not encrypted" in low:
        cause = "is not encrypted, so this toolkit did not write it: refused, never opened unencrypted"
    elif "different cipher" in low:
        cause = "is not encrypted with AES-GCM (CTR, or an older DuckDB): refused, only GCM catalogs are opened"
    else:
        return None
    return CatalogError(f"{path} {cause} (DuckDB: {text}); {CATALOG_NEXT_STEP}")


def _commit_failure(path: pathlib.Path, exc: BaseException) -> BaseException:
    """A COMMIT that failed (RELIABILITY E2: the home's volume is full): the transaction is rolled
    back and the operator told why, with the next step; anything else is raised as it was."""
    text = str(exc)
    if "no space left" in text.lower() or "disk quota" in text.lower():
        return CatalogError(
            f"{path}: the catalog's volume is full, the last commit was rolled back (DuckDB: {text}); "
            "free space there and rerun: a rerun resumes, and a pack written before the failed commit "
            "is listed by `mailarchive verify` as an orphan, never deleted"
        )
    return catalog_damage(path, exc) or exc


def httpfs_extension_path() -> pathlib.Path:
    import duckdb_extension_httpfs

    base = pathlib.Path(duckdb_extension_httpfs.__file__).parent
    found = sorted(base.rglob("httpfs.duckdb_extension"))
    if not found:
        raise CatalogError(
            "the duckdb-extension-httpfs wheel holds no httpfs.duckdb_extension; reinstall the toolkit's dependencies"
        )
    return found[0]


def _connection() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(":memory:")
    # The offline httpfs wheel provides the secure crypto module needed to write
    # encrypted files; never fall back to force_mbedtls_unsafe.
    con.execute(f"LOAD '{httpfs_extension_path()}'")
    con.execute("SET temp_file_encryption = true")
    return con


class Catalog:
    """Sessions over the encrypted catalog file of one archive home."""

    def __init__(self, path: pathlib.Path, key: bytes):
        self.path = pathlib.Path(path)
        self._key_hex = key.hex()
        self._con: duckdb.DuckDBPyConnection | None = None

    # -- sessions ---------------------------------------------------------------------------
    def _attach(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            self._con = _connection()
        opts = f"ENCRYPTION_KEY '{self._key_hex}', ENCRYPTION_CIPHER 'GCM'"
        if read_only:
            opts += ", READ_ONLY"
        deadline = time.monotonic() + ATTACH_RETRY_SECONDS
        delay = 0.02
        while True:
            try:
                self._con.execute(f"ATTACH '{self.path}' AS cat ({opts})")
                return self._con
            except duckdb.InvalidInputException as exc:
                if "encryption key" in str(exc).lower():
                    raise WrongKeyError(
                        f"{self.path}: the archive key does not open this catalog: it is the catalog of another "
                        f"archive (H3), or the key is wrong; {CATALOG_NEXT_STEP}"
                    ) from None
                raise catalog_damage(self.path, exc) or CatalogError(f"{self.path}: {exc}") from None
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                    raise catalog_damage(self.path, exc) or CatalogError(
                        f"{self.path}: cannot open the catalog: {exc}") from None
                time.sleep(delay)
                delay = min(delay * 2, 0.5)
            except duckdb.Error as exc:
                raise catalog_damage(self.path, exc) or CatalogError(
                    f"{self.path}: cannot open the catalog: {exc}") from None

    @contextlib.contextmanager
    def _damage_reported(self) -> Iterator[None]:
        """A damaged block met by a query (not at attach) becomes the same clear error (H1)."""
        try:
            yield
        except duckdb.Error as exc:
            damage = catalog_damage(self.path, exc)
            if damage is None:
                raise
            raise damage from None

    def _detach(self) -> None:
        if self._con is not None:
            with contextlib.suppress(duckdb.Error):
                self._con.execute("DETACH cat")

    @contextlib.contextmanager
    def reading(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-only session; tables are ``cat.<name>`` and also the default schema."""
        if not self.path.exists():
            raise CatalogError(f"{self.path} is missing; restore it from a DB backup or run `mailarchive db rebuild`")
        con = self._attach(read_only=True)
        try:
            con.execute("USE cat")
            with self._damage_reported():
                yield con
        finally:
            con.execute("USE memory")
            self._detach()

    @contextlib.contextmanager
    def writing(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-write session holding one transaction: committed on success, rolled back on error."""
        with self.transactions() as transaction, transaction() as con:
            yield con

    @contextlib.contextmanager
    def transactions(self) -> Iterator[Callable[[], ContextManager[duckdb.DuckDBPyConnection]]]:
        """One read-write attach for several transactions, each committed on its own::

            with catalog.transactions() as transaction:
                for item in items:
                    with transaction() as con:
                        ...

        Saves an attach and a detach (checkpoint) per transaction; other processes wait
        for the file while the session lasts, so keep it to work that is ready to commit.
        """
        con = self._attach(read_only=False)

        @contextlib.contextmanager
        def transaction() -> Iterator[duckdb.DuckDBPyConnection]:
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
            try:
                con.execute("COMMIT")
            except duckdb.Error as exc:
                with contextlib.suppress(duckdb.Error):
                    con.execute("ROLLBACK")
                raise _commit_failure(self.path, exc) from None
            faults.hit("catalog.after_commit")  # committed to the WAL, not yet checkpointed (A6, H6)

        try:
            con.execute("USE cat")
            yield transaction
        finally:
            with contextlib.suppress(duckdb.Error):
                con.execute("USE memory")
            self._detach()

    def close(self) -> None:
        if self._con is not None:
            self._detach()
            self._con.close()
            self._con = None

    # -- schema -------------------------------------------------------------------------------
    def refuse_newer_schema(self) -> None:
        """Refuse a catalog that a newer toolkit migrated further (RELIABILITY O8): a schema
        migration this toolkit does not know means tables it would misread or write wrongly."""
        known = {name for name, _ in migrations()}
        with self.reading() as con:
            done = {r[0] for r in con.execute("SELECT name FROM schema_migrations").fetchall()}
        newer = sorted(done - known)
        if newer:
            raise CatalogError(
                f"{self.path}: the catalog has schema migrations this toolkit does not know ({', '.join(newer)}): "
                "it was written by a newer mailarchive-toolkit; use that version (nothing was changed)"
            )

    def create(self, info: dict[str, str]) -> None:
        if self.path.exists():
            raise CatalogError(f"{self.path} already exists")
        self.migrate()
        with self.writing() as con:
            for k, v in info.items():
                con.execute("INSERT INTO archive_info VALUES (?, ?)", [k, v])

    def migrate(self) -> list[str]:
        """Apply the migrations not yet applied; returns their names."""
        applied: list[str] = []
        con = self._attach(read_only=False)
        try:
            with self._damage_reported():
                con.execute(
                    "CREATE TABLE IF NOT EXISTS cat.schema_migrations (name VARCHAR PRIMARY KEY, applied_at TIMESTAMPTZ)"
                )
                done = {r[0] for r in con.execute("SELECT name FROM cat.schema_migrations").fetchall()}
                for name, sql in migrations():
                    if name in done:
                        continue
                    con.execute("BEGIN TRANSACTION")
                    try:
                        con.execute(sql)
                        con.execute("INSERT INTO cat.schema_migrations VALUES (?, now())", [name])
                        con.execute("COMMIT")
                    except BaseException:
                        con.execute("ROLLBACK")
                        raise
                    applied.append(name)
        finally:
            self._detach()
        return applied
