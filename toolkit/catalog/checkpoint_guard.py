"""The checkpoint guard: a catalog that a killed writer leaves behind opens again (docs/reliability.md A6).

DuckDB writes a checkpoint's new data to free blocks and switches to it with a one-page header write,
but it rewrites its *metadata* blocks (256 KiB each) in place. A writer killed while one of those
``pwrite`` calls runs (Linux stops copying a write into the page cache when a fatal signal is pending)
leaves a block half old, half new, whose AES-GCM tag fails: the last committed state, which the old
header still points to, cannot be read any more, and the file refuses to open ("Computed AES tag
differs from read AES tag"). Torn writes of the WAL are harmless (DuckDB drops an incomplete tail).

So before a writer session can checkpoint, the guard saves the file's two database headers and its
metadata blocks, as they are on disk, to ``catalog.duckdb.guard`` (written to a temporary name, fsynced,
renamed). After the session's last checkpoint it is removed. If it is still there when a writer
attaches next, the checkpoint it guarded may have been cut short:

- the headers on disk are the saved ones: the checkpoint never reached its header write, so every block
  it wrote is free space of the last committed state except the metadata blocks, which are written
  back from the guard; DuckDB then replays the WAL (which a checkpoint removes only after its header
  write) and the catalog holds every commit;
- the headers differ: the checkpoint wrote its header, so its metadata was complete before it; the
  guard is stale and is removed.

A guard that fails its BLAKE3 check was cut short itself, before any checkpoint began, and is removed.

File format (little-endian): ``MACKPTG1``, the file size (u64), the header bytes (u32 length, bytes),
the number of blocks (u32), each block as offset (u64), length (u32), bytes; then the BLAKE3 digest
(32 bytes) of everything before it.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import pathlib
import struct
import time

import blake3

from ..storage.local import _fsync_dir

MAGIC = b"MACKPTG1"
#: DuckDB's main header (plain, 4 KiB) and its two database headers (4 KiB each); blocks follow.
HEADERS = (4096, 12288)
BLOCKS_START = 12288


def guard_path(catalog: pathlib.Path) -> pathlib.Path:
    return catalog.with_name(catalog.name + ".guard")


def metadata_blocks(con, alias: str = "cat") -> tuple[int, list[int]]:
    """The block size on disk and the ids of the metadata blocks of the attached catalog ``alias``."""
    size = con.execute("SELECT block_size FROM pragma_database_size() WHERE database_name = ?", [alias]).fetchone()
    ids = [r[0] for r in con.execute(f"SELECT block_id FROM pragma_metadata_info('{alias}')").fetchall()]
    return int(size[0]) if size and size[0] else 0, sorted(set(ids))


@contextlib.contextmanager
def _file(catalog: pathlib.Path, fd: int | None, flags: int = os.O_RDONLY):
    """``fd`` when the caller holds the catalog file open, else a descriptor of its own, closed after.

    A process that has the catalog attached must pass the descriptor it keeps open for the whole session: DuckDB
    locks the file with ``fcntl`` (POSIX record locks), and closing *any* descriptor of a file releases every
    such lock the process holds on it; a reader of another process could then attach beside the writer."""
    if fd is not None:
        yield fd
        return
    own = os.open(catalog, flags)
    try:
        yield own
    finally:
        os.close(own)


def save(catalog: pathlib.Path, con, alias: str = "cat", fd: int | None = None) -> bytes:
    """Write the guard for the catalog attached as ``alias`` on ``con``; returns the headers it saved. ``fd``:
    the writer's open descriptor of the catalog file (see :func:`_file`)."""
    block_size, ids = metadata_blocks(con, alias)
    with _file(catalog, fd) as fd:
        file_size = os.fstat(fd).st_size
        headers = os.pread(fd, HEADERS[1] - HEADERS[0], HEADERS[0])
        blocks = []
        for block_id in ids if block_size else ():
            offset = BLOCKS_START + block_id * block_size
            if offset + block_size <= file_size:  # a block beyond the end is new: nothing on disk to keep
                blocks.append((offset, os.pread(fd, block_size, offset)))
    parts = [MAGIC, struct.pack("<QI", file_size, len(headers)), headers, struct.pack("<I", len(blocks))]
    for offset, data in blocks:
        parts += [struct.pack("<QI", offset, len(data)), data]
    body = b"".join(parts)
    target = guard_path(catalog)
    tmp = target.with_name(target.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(body)
            f.write(blake3.blake3(body).digest())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(target.parent)
    return headers


def headers_on_disk(catalog: pathlib.Path, fd: int | None = None) -> bytes:
    with _file(catalog, fd) as fd:
        return os.pread(fd, HEADERS[1] - HEADERS[0], HEADERS[0])


def clear(catalog: pathlib.Path) -> None:
    """Remove the guard after the session's last checkpoint."""
    target = guard_path(catalog)
    with contextlib.suppress(FileNotFoundError):
        target.unlink()
        _fsync_dir(target.parent)


def _parse(data: bytes) -> tuple[bytes, list[tuple[int, bytes]]] | None:
    """(headers, blocks) of a guard file, or None when it is cut short or not a guard."""
    if len(data) < len(MAGIC) + 32 or not data.startswith(MAGIC):
        return None
    body, digest = data[:-32], data[-32:]
    if blake3.blake3(body).digest() != digest:
        return None
    pos = len(MAGIC)
    _size, n = struct.unpack_from("<QI", body, pos)
    pos += 12
    headers = body[pos:pos + n]
    pos += n
    (count,) = struct.unpack_from("<I", body, pos)
    pos += 4
    blocks = []
    for _ in range(count):
        offset, length = struct.unpack_from("<QI", body, pos)
        pos += 12
        blocks.append((offset, body[pos:pos + length]))
        pos += length
    return headers, blocks


def explains_damage(catalog: pathlib.Path, fd: int | None = None) -> bool:
    """Whether a guard on disk accounts for a catalog that fails to open: the checkpoint it guarded never
    wrote its header and left a saved block changed (read only; :func:`recover` puts the blocks back). ``fd``: a
    descriptor of the catalog that the caller keeps open (a process that has the file attached must not open and
    close one of its own: closing it releases DuckDB's fcntl lock, see :func:`_file`)."""
    try:
        parsed = _parse(guard_path(catalog).read_bytes())
        if parsed is None:
            return False
        headers, blocks = parsed
        own = os.open(catalog, os.O_RDONLY) if fd is None else None
    except OSError:
        return False
    read_fd = fd if own is None else own
    try:
        return os.pread(read_fd, len(headers), HEADERS[0]) == headers and any(
            os.pread(read_fd, len(block), offset) != block for offset, block in blocks)
    except OSError:
        return False
    finally:
        if own is not None:
            os.close(own)


def _lock(fd: int, wait: float) -> None:
    """An exclusive lock on the catalog file: no other process has it attached (DuckDB locks it too)."""
    deadline = time.monotonic() + wait
    delay = 0.02
    while True:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except OSError as exc:
            if exc.errno not in (errno.EACCES, errno.EAGAIN) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.5)


def recover(catalog: pathlib.Path, wait: float, fd: int | None = None) -> str | None:
    """Undo a checkpoint that a killed writer cut short (see the module's text). Call before a writer attaches.
    Returns None when there was no guard, else what was done: ``"restored"`` (the metadata blocks written
    back), ``"stale"`` (the checkpoint had finished) or ``"torn"`` (the guard itself was cut short). The guard
    is read, judged and removed under an exclusive lock of the catalog file, so never beside a live session.
    ``fd``: the writer's descriptor of the catalog file, opened read-write (see :func:`_file`); the lock is
    given back before the return, for DuckDB to take."""
    target = guard_path(catalog)
    tmp = target.with_name(target.name + ".tmp")
    if not (target.exists() or tmp.exists()) or not catalog.exists():
        return None
    with _file(catalog, fd, os.O_RDWR) as fd:
        _lock(fd, wait)
        try:
            return _recover_locked(catalog, fd, target, tmp)
        finally:
            fcntl.lockf(fd, fcntl.LOCK_UN)


def _recover_locked(catalog: pathlib.Path, fd: int, target: pathlib.Path, tmp: pathlib.Path) -> str | None:
    """The guard judged and removed; the caller holds the exclusive lock."""
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    try:
        parsed = _parse(target.read_bytes())
    except FileNotFoundError:
        return None
    outcome = "torn"
    if parsed is not None:
        headers, blocks = parsed
        outcome = "stale"
        if os.pread(fd, len(headers), HEADERS[0]) == headers:
            for offset, block in blocks:
                os.pwrite(fd, block, offset)
            os.fsync(fd)
            outcome = "restored"
    clear(catalog)
    return outcome
