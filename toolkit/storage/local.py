"""A medium on a local (or locally mounted) directory."""
from __future__ import annotations

import errno
import mmap
import os
import secrets as _secrets
from pathlib import Path
from typing import BinaryIO, Iterator

from .. import faults
from ..direct_read import ALIGN, give_buffer, take_buffer
from ..errors import ObjectExistsError, ObjectMissingError, StorageError, StorageFullError
from ..hashes import stream_checksum
from .base import TMP_SUFFIX, AtomicWriter, Entry, Storage
from .direct_write import WriteBehind, set_direct, slow_device, write_all
from .writeback import WRITEBACK_STEP, start_writeback

_FULL = {errno.ENOSPC, errno.EDQUOT}
#: a new file's bytes are gathered in a page-aligned buffer of this size and reach the kernel a whole buffer at a
#: time (a pack's records, ~25 KB each for 40 KB mails, would otherwise be one write call each); the first full
#: buffer sends the file past the page cache (_LocalWriter). Nothing changes for durability: the commit writes the
#: rest and fsyncs before the file is published.
WRITE_BUFFER = 4 << 20
#: copy_file_range refused (another file system on old kernels, or not supported): copy by reading
_NO_COPY_RANGE = {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP}


def _io_error(exc: OSError, what: str) -> StorageError:
    if exc.errno in _FULL:
        return StorageFullError(f"{what}: no space left ({exc.strerror}); free space on the medium, then rerun")
    return StorageError(f"{what}: {exc.strerror or exc}")


class _LocalWriter(AtomicWriter):
    """A new file written create-only: to a temporary name, fsynced, then linked to its name.

    Its bytes are gathered in a page-aligned buffer of :data:`WRITE_BUFFER` bytes. A file that fills one goes past the
    page cache (docs/architecture.md "Writing packs past the page cache", toolkit/storage/direct_write.py): it is
    switched to ``O_DIRECT``, a thread writes each full buffer while the next is filled, and the commit pads the last
    part to :data:`ALIGN` bytes, writes it and truncates the file to its size. A smaller file, and a file system that
    refuses ``O_DIRECT``, get the same bytes through the page cache, with early writeback
    (toolkit/storage/writeback.py); so does everything when no thread or buffer can be had, and a device whose first
    direct writes were slow (direct_write.py)."""

    def __init__(self, storage: "LocalStorage", name: str):
        self.name = name
        self._final = storage._path(name)
        _make_dirs(self._final.parent)
        self._tmp = self._final.with_name(f"{self._final.name}.{_secrets.token_hex(6)}{TMP_SUFFIX}")
        self._f = open(self._tmp, "xb", buffering=0)
        self._done = False
        self._written_back = 0  # the writeback was started for the file up to here (None: not to be asked again)
        self._buf: mmap.mmap | None = None  # taken at the first write
        self._fill = 0      # bytes waiting in the buffer
        self._flushed = 0   # bytes handed on before them
        self._behind: WriteBehind | None = None  # the writing thread of a direct file
        self._cached_only = False  # O_DIRECT refused, or no thread: the page cache for the rest of the file

    def write(self, data: bytes) -> int:
        n = len(data)
        try:
            if self._buf is None:
                self._buf = take_buffer(WRITE_BUFFER)
            view = memoryview(data)
            pos = 0
            while pos < n:
                k = min(n - pos, WRITE_BUFFER - self._fill)
                self._buf[self._fill:self._fill + k] = view[pos:pos + k]
                self._fill += k
                pos += k
                if self._fill == WRITE_BUFFER:
                    self._hand_on()
        except OSError as exc:
            self.abort()
            raise _io_error(exc, f"writing {self._final}") from None
        return n

    def tell(self) -> int:
        return self._flushed + self._fill

    def _hand_on(self) -> None:
        """The buffer is full: to the writing thread (started at the first), or written here through the page cache."""
        if self._behind is None and not self._cached_only:
            self._start_behind()
        if self._behind is not None:
            self._behind.put(self._buf, WRITE_BUFFER)
            self._buf = self._behind.take()
        else:
            write_all(self._f, self._buf, WRITE_BUFFER, False)
        self._flushed += WRITE_BUFFER
        self._fill = 0
        if self._behind is None:
            self._write_back_at(self._flushed)

    def _start_behind(self) -> None:
        if slow_device(self._f.fileno()) or not set_direct(self._f.fileno(), True):
            self._cached_only = True  # a device found slow, or refused by the file system
            return
        try:
            self._behind = WriteBehind(self._f, self._buf, direct=True)
        except (OSError, RuntimeError):  # no memory for the buffers, or no thread: as before, synchronously
            set_direct(self._f.fileno(), False)
            self._cached_only = True

    def _write_tail(self) -> None:
        """At the commit: wait for the thread, then write what the buffer holds (a direct file's last part padded,
        the file then truncated to its size)."""
        direct = False
        if self._behind is not None:
            self._behind.drain()
            direct = self._behind.direct
        if self._fill:
            length = self._fill + (-self._fill % ALIGN if direct else 0)
            self._buf[self._fill:length] = bytes(length - self._fill)
            write_all(self._f, self._buf, length, direct)
            if length != self._fill:
                os.ftruncate(self._f.fileno(), self._flushed + self._fill)

    def _write_back_at(self, end: int) -> None:
        """The file is written up to ``end``: once WRITEBACK_STEP bytes more than at the last start, start the disk's
        writing of them (toolkit/storage/writeback.py); the commit's fsync then waits for little."""
        if self._written_back is None or end - self._written_back < WRITEBACK_STEP:
            return
        if start_writeback(self._f.fileno(), self._written_back, end - self._written_back):
            self._written_back = end
        else:  # not on this system or file system: the fsync writes it all, as without the hint
            self._written_back = None

    def _release(self) -> None:
        """Stop the thread (if any) and give the buffers back to the process's pool."""
        if self._behind is not None:
            self._behind.close()  # gives back every buffer it handed out, the one being filled too
            self._behind = None
        elif self._buf is not None:
            give_buffer(self._buf)
        self._buf = None

    def commit(self) -> None:
        try:
            self._write_tail()
            self._release()
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
        self._release()
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
