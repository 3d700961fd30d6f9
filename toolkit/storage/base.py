"""The storage interface every medium implements.

Names are relative, '/'-separated paths (``packs/ab/<id>.pack``). Writes are
create-only and atomic: data goes to a temporary name in the same directory,
is flushed (fsync locally, flush on SMB), then renamed onto the final name
without replacing anything. Temporary names end in ``.tmp`` and readers
ignore them.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import BinaryIO, Iterator

from ..hashes import stream_checksum

TMP_SUFFIX = ".tmp"


@dataclass(frozen=True)
class Entry:
    name: str      # relative path
    size: int
    mtime: float


class AtomicWriter(abc.ABC):
    """A file being written under a temporary name. ``commit`` publishes it."""

    name: str

    @abc.abstractmethod
    def write(self, data: bytes) -> int: ...

    @abc.abstractmethod
    def tell(self) -> int: ...

    @abc.abstractmethod
    def commit(self) -> None:
        """Flush, fsync, rename to ``name`` without replace (ObjectExistsError if taken)."""

    @abc.abstractmethod
    def abort(self) -> None:
        """Remove the temporary file; safe to call twice or after commit."""

    def __enter__(self) -> "AtomicWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()


class Storage(abc.ABC):
    """A medium's files. Implementations: LocalStorage, SmbStorage."""

    #: The location string without secrets (a path, or smb://user@host:port/share/path).
    location: str

    @abc.abstractmethod
    def open_write(self, name: str) -> AtomicWriter: ...

    def put(self, name: str, data: bytes) -> None:
        """Create ``name`` with ``data``, atomically, never replacing."""
        w = self.open_write(name)
        try:
            w.write(data)
            w.commit()
        except BaseException:
            w.abort()
            raise

    def copy_in(self, name: str, src: "Storage", src_name: str, chunk: int = 8 << 20) -> int:
        """Copy ``src_name`` of ``src`` to ``name`` here, atomically and create-only like :meth:`put`;
        returns the bytes copied. Nothing is checked: callers read the copy back."""
        w = self.open_write(name)
        n = 0
        try:
            with src.open_read(src_name) as f:
                while data := f.read(chunk):
                    w.write(data)
                    n += len(data)
            w.commit()
        except BaseException:
            w.abort()
            raise
        return n

    @abc.abstractmethod
    def open_read(self, name: str) -> BinaryIO:
        """A seekable binary reader. ObjectMissingError when absent."""

    def read(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        with self.open_read(name) as f:
            if offset:
                f.seek(offset)
            return f.read() if length is None else _read_exact(f, length, name)

    @abc.abstractmethod
    def stat(self, name: str) -> Entry | None:
        """The entry, or None when absent."""

    def exists(self, name: str) -> bool:
        return self.stat(name) is not None

    @abc.abstractmethod
    def list(self, prefix: str = "", include_temp: bool = False) -> Iterator[Entry]:
        """Every file below directory ``prefix`` (recursive); temp files only with ``include_temp``
        (a source tree on a share may hold mail files named ``*.tmp``)."""

    @abc.abstractmethod
    def delete(self, name: str) -> None: ...

    @abc.abstractmethod
    def replace(self, name: str, data: bytes) -> None:
        """Atomically replace a small mutable file (MEDIUM.json only). Never used for packs."""

    def free_space(self) -> int | None:
        return None

    def blake3(self, name: str) -> tuple[str, int]:
        """(BLAKE3 hex, size) of the object as this storage reads it back, in one front-to-back pass
        (the file checksum of archive format v2, :mod:`toolkit.hashes`)."""
        with self.open_read(name) as f:
            return stream_checksum(f)

    def prefetch(self, name: str) -> None:
        """Hint that ``name`` will be read soon, front to back (a no-op where the storage cannot use it)."""

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _read_exact(f: BinaryIO, length: int, name: str) -> bytes:
    chunks = []
    remaining = length
    while remaining > 0:
        chunk = f.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)
