"""A medium on a local (or locally mounted) directory."""
from __future__ import annotations

import errno
import os
import secrets as _secrets
from pathlib import Path
from typing import BinaryIO, Iterator

from .. import faults
from ..errors import ObjectExistsError, ObjectMissingError, StorageError, StorageFullError
from ..hashes import stream_checksum
from .base import TMP_SUFFIX, AtomicWriter, Entry, Storage
from .writeback import WRITEBACK_STEP, start_writeback

_FULL = {errno.ENOSPC, errno.EDQUOT}
#: the write buffer of a new file: a pack's records (~25 KB each for 40 KB mails) reach the kernel in
#: writes of 1 MiB instead of one write call per record (Python's default buffer is 8 KiB); nothing changes
#: for durability: commit flushes and fsyncs before the file is published
WRITE_BUFFER = 1 << 20
#: copy_file_range refused (another file system on old kernels, or not supported): copy by reading
_NO_COPY_RANGE = {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP}


def _io_error(exc: OSError, what: str) -> StorageError:
    if exc.errno in _FULL:
        return StorageFullError(f"{what}: no space left ({exc.strerror}); free space on the medium, then rerun")
    return StorageError(f"{what}: {exc.strerror or exc}")


class _LocalWriter(AtomicWriter):
    def __init__(self, storage: "LocalStorage", name: str):
        self.name = name
        self._final = storage._path(name)
        _make_dirs(self._final.parent)
        self._tmp = self._final.with_name(f"{self._final.name}.{_secrets.token_hex(6)}{TMP_SUFFIX}")
        self._f = open(self._tmp, "xb", buffering=WRITE_BUFFER)
        self._done = False
        self._written_back = 0  # the writeback was started for the file up to here (None: not to be asked again)

    def write(self, data: bytes) -> int:
        try:
            self._f.write(data)
            self._write_back_at(self._f.tell())
        except OSError as exc:
            self.abort()
            raise _io_error(exc, f"writing {self._final}") from None
        return len(data)

    def tell(self) -> int:
        return self._f.tell()

    def _write_back_at(self, end: int) -> None:
        """The file is written up to ``end``: once WRITEBACK_STEP bytes more than at the last start, start the disk's
        writing of them (toolkit/storage/writeback.py); the commit's fsync then waits for little."""
        if self._written_back is None or end - self._written_back < WRITEBACK_STEP:
            return
        self._f.flush()  # (what the buffer holds is written at the next start, or by the fsync)
        if start_writeback(self._f.fileno(), self._written_back, end - self._written_back):
            self._written_back = end
        else:  # not on this system or file system: the fsync writes it all, as without the hint
            self._written_back = None

    def commit(self) -> None:
        try:
            self._f.flush()
            # the high-water marks written after each commit (toolkit/marks.py) are no kill sites:
            # the nth passage of these points stays the nth pack, manifest or backup written
            kill_site = not self.name.startswith("marks/")
            if kill_site:
                faults.hit("storage.after_write")
            os.fsync(self._f.fileno())
            self._f.close()
            if kill_site:
                faults.hit("storage.after_fsync")
            # link() fails with EEXIST instead of replacing: a create-only rename.
            os.link(self._tmp, self._final)
        except FileExistsError:
            self.abort()
            raise ObjectExistsError(
                f"{self._final} already exists: refusing to replace it (possible ID reuse)"
            ) from None
        except OSError as exc:
            self.abort()
            raise _io_error(exc, f"writing {self._final}") from None
        os.unlink(self._tmp)
        _fsync_dir(self._final.parent)
        self._done = True

    def abort(self) -> None:
        if self._done:
            return
        self._done = True
        try:
            self._f.close()
        except OSError:
            pass
        try:
            os.unlink(self._tmp)
        except FileNotFoundError:
            pass


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _make_dirs(path: Path) -> None:
    """Create ``path`` and its missing parents, each durably: after every mkdir its parent is fsynced.

    A new directory's entry lives in its parent, so a crash after a pack is
    committed into a fresh ``packs/ab/`` could otherwise lose the directory
    (and the pack with it) although the pack file itself was fsynced. The
    caller fsyncs ``path`` itself after adding its entry.
    """
    missing = []
    p = path
    while not p.is_dir():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        try:
            os.mkdir(d)
        except FileExistsError:
            if not d.is_dir():
                raise
        # Also when another writer made it first: its fsync may not have happened yet.
        _fsync_dir(d.parent)


class LocalStorage(Storage):
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).absolute()
        self.location = str(self.root)

    def _path(self, name: str) -> Path:
        parts = [p for p in name.split("/") if p]
        if any(p in (".", "..") for p in parts):
            raise StorageError(f"invalid object name {name!r}")
        return self.root.joinpath(*parts)

    def open_write(self, name: str) -> AtomicWriter:
        try:
            return _LocalWriter(self, name)
        except OSError as exc:
            raise _io_error(exc, f"creating {self._path(name)}") from None

    def open_read(self, name: str) -> BinaryIO:
        try:
            return open(self._path(name), "rb")
        except FileNotFoundError:
            raise ObjectMissingError(f"{self._path(name)} is missing") from None
        except OSError as exc:
            raise _io_error(exc, f"reading {self._path(name)}") from None

    def copy_in(self, name: str, src: Storage, src_name: str, chunk: int = 8 << 20) -> int:
        """Local to local: the kernel copies (``copy_file_range``), the bytes never pass through Python."""
        if not isinstance(src, LocalStorage):
            return super().copy_in(name, src, src_name, chunk)
        try:
            f = open(src._path(src_name), "rb")
        except FileNotFoundError:
            raise ObjectMissingError(f"{src._path(src_name)} is missing") from None
        except OSError as exc:
            raise _io_error(exc, f"reading {src._path(src_name)}") from None
        w = self.open_write(name)
        n = 0
        try:
            with f:
                while True:
                    try:
                        k = os.copy_file_range(f.fileno(), w._f.fileno(), chunk)
                    except OSError as exc:
                        if n == 0 and exc.errno in _NO_COPY_RANGE:
                            w.abort()
                            return super().copy_in(name, src, src_name, chunk)
                        raise _io_error(exc, f"copying {src._path(src_name)} to {self._path(name)}") from None
                    if k == 0:
                        break
                    n += k
                    w._write_back_at(n)
            w.commit()
        except BaseException:
            w.abort()
            raise
        return n

    def blake3(self, name: str) -> tuple[str, int]:
        with self.open_read(name) as f:
            try:
                return stream_checksum(f, 1 << 20)
            except OSError as exc:
                raise _io_error(exc, f"reading {self._path(name)}") from None

    def prefetch(self, name: str) -> None:
        """Ask the kernel to start reading the whole file into the page cache (asynchronous readahead)."""
        try:
            fd = os.open(self._path(name), os.O_RDONLY)
        except OSError:
            return  # the reader reports it
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
        except (OSError, AttributeError):
            pass
        finally:
            os.close(fd)

    def stat(self, name: str) -> Entry | None:
        try:
            st = os.stat(self._path(name))
        except FileNotFoundError:
            return None
        return Entry(name, st.st_size, st.st_mtime)

    def list(self, prefix: str = "", include_temp: bool = False) -> Iterator[Entry]:
        base = self._path(prefix) if prefix else self.root
        if not base.is_dir():
            return
        for dirpath, _dirs, files in os.walk(base):
            for fn in sorted(files):
                if fn.endswith(TMP_SUFFIX) and not include_temp:
                    continue
                full = Path(dirpath) / fn
                st = full.lstat()
                yield Entry(full.relative_to(self.root).as_posix(), st.st_size, st.st_mtime)

    def delete(self, name: str) -> None:
        try:
            os.unlink(self._path(name))
        except FileNotFoundError:
            raise ObjectMissingError(f"{self._path(name)} is missing") from None

    def replace(self, name: str, data: bytes) -> None:
        final = self._path(name)
        _make_dirs(final.parent)
        tmp = final.with_name(f"{final.name}.{_secrets.token_hex(6)}{TMP_SUFFIX}")
        try:
            with open(tmp, "xb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, final)
            _fsync_dir(final.parent)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise _io_error(exc, f"writing {final}") from None

    def free_space(self) -> int | None:
        p = self.root
        while not p.exists():
            p = p.parent
        st = os.statvfs(p)
        return st.f_bavail * st.f_frsize
