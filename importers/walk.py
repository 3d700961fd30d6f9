"""Walking a source tree (local or SMB) safely and in a stable order.

Symbolic links are never followed, FIFOs, sockets and devices are never
opened (docs/reliability.md N1): they come back as skips with a reason. Paths are
handled as bytes so that names that are not UTF-8 survive (N2); ``ref_text``
turns them into the lossless text stored in the catalog.
"""
from __future__ import annotations

import base64
import binascii
import os
import stat
import sys
from array import array
from itertools import chain
from typing import Any, Iterator, Sequence

from toolkit.errors import SourceError, SourceMissingError, StorageError
from toolkit.source import read_regular_file
from toolkit.storage import Storage, open_storage, parse_location

from .walk_table import FileEntry, Walk  # noqa: F401 - FileEntry: the importers take it from here


#: Mails larger than this are streamed from the source, never held in memory whole by ``import eml``, ``maildir`` and
#: ``share`` (docs/reliability.md K1; the command line lowers it for tests from ``MAILARCHIVE_LARGE_MAIL`` with
#: :func:`set_large_mail`). Read as ``walk.LARGE_MAIL`` where it is used, so that the setting reaches every importer.
LARGE_MAIL = 32 * 1024 * 1024


def set_large_mail(nbytes: int) -> None:
    """Stream mails above ``nbytes`` (instead of the default 32 MiB)."""
    global LARGE_MAIL
    LARGE_MAIL = nbytes


def ref_text(path: bytes) -> str:
    """Lossless text for a path: itself when it is UTF-8, else ``base64:<urlsafe b64 of the bytes>``."""
    try:
        return path.decode("utf-8")
    except UnicodeDecodeError:
        return "base64:" + base64.urlsafe_b64encode(path).decode("ascii")


def ref_bytes(text: str) -> bytes:
    if text.startswith("base64:"):
        return base64.urlsafe_b64decode(text[7:])
    return text.encode("utf-8")


#: root -> its walk, kept by the start-up for the run's own scan (:func:`keep_walk`)
_KEPT: dict[bytes, Walk] = {}


def keep_walk(root: bytes, entries: Walk, *, again: bool = False) -> None:
    """The next :func:`walk_local` of ``root`` in this process gives ``entries`` (once): the start-up walked the tree
    for the tasks it sent ahead (toolkit/early_tasks.py) moments before the run's scan would walk it again.
    ``again``: the walk is kept once more after that scan, which must therefore not let its entries go."""
    entries.releasable = not again
    _KEPT[root] = entries


def walk_local(root: bytes) -> Walk:
    """Every entry below ``root`` (a directory or a single file), sorted by relative path (a walk kept for it,
    :func:`keep_walk`, once), held in columns (importers/walk_table.py: a tree of a million files in ~64 MB).

    Each directory is opened once and its entries are looked at relative to it (``fstatat``), not by
    their whole path: the kernel walks one name per entry instead of the root's path again (every
    file of a tree passes here). A directory below the root is opened without following a symlink
    swapped in for it after its parent was listed."""
    kept = _KEPT.pop(root, None)
    if kept is not None:
        return kept
    try:
        st = os.lstat(root)
    except (FileNotFoundError, NotADirectoryError):
        raise SourceMissingError(f"{os.fsdecode(root)} does not exist: check the path") from None
    except PermissionError:
        raise SourceError(f"{os.fsdecode(root)} is not readable (permission denied)") from None
    if stat.S_ISREG(st.st_mode):
        return Walk.of([FileEntry(os.path.basename(root), st.st_size, st.st_mtime)])
    if not stat.S_ISDIR(st.st_mode):
        raise SourceMissingError(f"{os.fsdecode(root)} is neither a file nor a directory")
    rels: list[bytes] = []
    sizes, mtimes = array("q"), array("d")
    reasons: dict[int, str] = {}
    add_rel, add_size, add_mtime = rels.append, sizes.append, mtimes.append

    def add(rel: bytes, size: int, mtime: float, reason: str | None = None) -> None:
        if reason is not None:
            reasons[len(rels)] = reason
        add_rel(rel)
        add_size(size)
        add_mtime(mtime)

    encoding, errors = sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()  # os.fsencode's
    stack = [b""]
    while stack:
        rel_dir = stack.pop()
        try:
            fd = os.open(os.path.join(root, rel_dir), _SUBDIR) if rel_dir else os.open(root, _ROOT)
        except OSError as exc:
            add(rel_dir or b".", 0, 0.0, f"directory not readable: {exc.strerror}")
            continue
        # the directory's entries as they are listed (no list of them: a folder of a million files would hold a
        # million objects); a listing that fails on the way takes back what it added, as if it had failed at once
        mark, stack_mark = len(rels), len(stack)
        prefix = rel_dir + b"/" if rel_dir else b""
        try:
            with os.scandir(fd) as it:  # its entries' stat() is fstatat(fd, name)
                for e in it:
                    rel = prefix + e.name.encode(encoding, errors)
                    try:
                        est = e.stat(follow_symlinks=False)
                    except OSError as exc:
                        add(rel, 0, 0.0, f"vanished or unreadable during the scan: {exc.strerror}")
                        continue
                    mode = est.st_mode
                    kind = mode & _IFMT
                    if kind == _IFREG:
                        add_rel(rel)
                        add_size(est.st_size)
                        add_mtime(est.st_mtime)
                    elif kind == _IFDIR:
                        stack.append(rel)
                    elif kind == _IFLNK:
                        add(rel, 0, est.st_mtime, "symbolic link (never followed)")
                    else:
                        what = "FIFO" if stat.S_ISFIFO(mode) else "socket" if stat.S_ISSOCK(mode) else "device"
                        add(rel, 0, est.st_mtime, f"{what} (never opened)")
        except OSError as exc:
            del rels[mark:], sizes[mark:], mtimes[mark:], stack[stack_mark:]
            for i in [i for i in reasons if i >= mark]:
                del reasons[i]
            add(rel_dir or b".", 0, 0.0, f"directory not readable: {exc.strerror}")
        finally:
            os.close(fd)
    return Walk.sorted_from(rels, sizes, mtimes, reasons)


def without_own(entries: Walk, root: bytes, places) -> Walk:
    """``entries`` (a :func:`walk_local` of ``root``) without what lies in the archive's own places below ``root``
    (``places``: (what, real path), toolkit/own_files.py ``places_below``; docs/reliability.md N9), and without any
    archive home or medium the walk finds by its files (:func:`_marked`: a medium on a mounted share, another
    archive's home with its raw key): each such place is one entry listed as skipped, naming it, instead of its
    files. ``entries`` itself when there are none."""
    base = os.path.realpath(os.fsdecode(root))
    own: list[tuple[bytes, str]] = []
    for what, where in places or ():
        rel = os.path.relpath(where, base)
        if rel != "." and not rel.startswith(".." + os.sep) and rel != "..":
            own.append((os.fsencode(rel).replace(os.sep.encode(), b"/"), f"{what} ({where}): the archive's own "
                        "files are never imported"))
    own += [m for m in _marked(entries, root) if not any(m[0] == rel or m[0].startswith(rel + b"/") for rel, _ in own)]
    if not own:
        return entries
    listed: set[bytes] = set()

    def kept() -> Iterator[FileEntry]:
        for e in entries:
            place = next(((rel, why) for rel, why in own if not rel or e.rel == rel or e.rel.startswith(rel + b"/")),
                         None)
            if place is None:
                yield e
            elif place[0] not in listed:
                listed.add(place[0])
                yield FileEntry(place[0] or b".", 0, 0.0, place[1])

    return Walk.of(kept())


#: the files that make a directory an archive's home (its config) or a medium (its label): toolkit/home.py CONFIG_NAME,
#: toolkit/medium.py LABEL_NAME
_HOME_FILE, _LABEL_FILE = b"archive.toml", b"MEDIUM.json"
_MARKER_MAX = 1 << 20
_MARKER_ENDS = (_HOME_FILE, _LABEL_FILE)


def _marked(entries: list[FileEntry], root: bytes) -> list[tuple[bytes, str]]:
    """(directory, why) of each archive home and medium among ``entries``, told by its files, whatever archive it
    belongs to and however it is reached (docs/reliability.md N9): a home's ``archive.toml`` names its archive and key
    check, a medium's ``MEDIUM.json`` label its archive. Their files are no mail: a home holds the raw archive key,
    which ``--force-raw`` would archive, and a medium's packs are sealed."""
    found = []
    for e in entries:
        if not e.rel.endswith(_MARKER_ENDS):  # the usual file, told without a copy of its name
            continue
        head, _, name = e.rel.rpartition(b"/")
        if name not in (_HOME_FILE, _LABEL_FILE) or e.skip_reason or not 0 < e.size <= _MARKER_MAX:
            continue
        try:
            data = read_regular_file(os.path.join(root, e.rel))
        except OSError:
            continue
        archive = _archive_of(name, data)
        if archive is not None:
            what = "an archive home" if name == _HOME_FILE else "a medium"
            where = ref_text(head) or "the source itself"
            found.append((head, f"{what} of the mail archive {archive} ({where}): its files are never imported"))
    return found


def _archive_of(name: bytes, data: bytes) -> str | None:
    """The archive uuid a home's config or a medium's label names, or None when the file is no such thing."""
    try:
        if name == _HOME_FILE:
            import tomllib

            doc = tomllib.loads(data.decode("utf-8"))
            ok = isinstance(doc.get("uuid"), str) and "key_check" in doc
            return doc["uuid"] if ok else None
        import json

        doc = json.loads(data)
        body = doc.get("body", doc) if isinstance(doc, dict) else None
        return body["archive"] if isinstance(body, dict) and isinstance(body.get("archive"), str) else None
    except (ValueError, UnicodeDecodeError, AttributeError):
        return None


_IFMT, _IFREG, _IFDIR, _IFLNK = 0o170000, stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK
_ROOT = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_SUBDIR = _ROOT | os.O_NOFOLLOW


def read_local(root: bytes, entry: FileEntry, single_file: bool) -> bytes:
    """Read a regular file without following a symlink swapped in after the scan."""
    return read_regular_file(local_path(root, entry, single_file))


def local_path(root: bytes, entry: FileEntry, single_file: bool) -> bytes:
    """The path of ``entry`` below ``root`` (``os.path.join``'s result: ``entry.rel`` is relative, never
    empty; joined by hand, a few times cheaper, since every mail of a tree passes here)."""
    if single_file:
        return root
    return root + entry.rel if not root or root.endswith(b"/") else root + b"/" + entry.rel


def open_local(root: bytes, entry: FileEntry, single_file: bool):
    """A binary file object for streaming a large file (no symlink followed)."""
    path = root if single_file else os.path.join(root, entry.rel)
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(0, "no longer a regular file")
    return os.fdopen(fd, "rb")


def open_source_storage(location, password: str | None) -> Storage:
    """The storage of an ``smb://`` source whose path must exist. A share or folder that does not
    exist is a usage error naming it (exit status 2), a rejected login keeps its status 4; any other
    failure is a SourceError (3)."""
    try:
        storage = open_storage(location, password)
    except StorageError as exc:
        raise SourceError.wrapping(f"{location}: {exc}", exc) from None
    try:
        missing = location.path.strip("/") and storage.stat("") is None
    except StorageError as exc:
        storage.close()
        raise SourceError.wrapping(f"{location}: {exc}", exc) from None
    if missing:
        storage.close()
        raise SourceMissingError(
            f"{location}: the folder {location.path.strip('/')!r} does not exist on share '{location.share}'"
        )
    return storage


def walk_storage(storage: Storage, prefix: str = "") -> Walk:
    """Every file below ``prefix`` of a share; a folder the account may not list is an entry "directory not
    readable" (as in :func:`walk_local`) instead of ending the whole walk, and a folder reached again through
    a link the server follows is an entry skipped with that reason (SmbStorage.list)."""
    from toolkit.storage.smb import SmbStorage  # loaded already: only a share's storage comes here

    rel = lambda name: name[len(prefix):].lstrip("/").encode("utf-8") if prefix else name.encode("utf-8")  # noqa: E731
    unreadable: list[tuple[str, str]] = []
    kw = {"unreadable": unreadable} if isinstance(storage, SmbStorage) else {}
    listed = storage.list(prefix, include_temp=True, **kw)
    return Walk.of(chain((FileEntry(rel(e.name), e.size, e.mtime) for e in listed),
                         (FileEntry(rel(name), 0, 0.0, why) for name, why in unreadable)))


def entry_cursor(entry: FileEntry) -> dict:
    """The resume cursor after ``entry`` of a sorted walk (path as bytes, losslessly)."""
    # base64.b64encode's result, without its Python wrapper (every entry of a tree passes here)
    return {"path_b64": binascii.b2a_base64(entry.rel, newline=False).decode("ascii"), "size": entry.size,
            "mtime": entry.mtime}


def cursor_path(cursor: Any) -> bytes | None:
    """The relative path a cursor of :func:`entry_cursor` points after, or None to start from the top."""
    if isinstance(cursor, dict) and cursor.get("path_b64"):
        return base64.b64decode(cursor["path_b64"])
    return None


def iter_after(entries: Sequence[FileEntry], after: bytes | None, reporter=None) -> Iterator[FileEntry]:
    """The entries after the cursor ``after``; with a reporter, its "scan" task counts every entry: one by one
    at first, then in steps of a 64th of those counted (a call per entry was ~2 % of an import's driver CPU,
    for a figure shown once a second), the rest when the entries end. A :class:`Walk` is read once
    (:meth:`Walk.consume`): the blocks passed are let go while the run goes on."""
    counted = 0
    for i, e in enumerate(entries.consume() if isinstance(entries, Walk) else entries, 1):
        if after is None or e.rel > after:
            yield e
        if reporter is not None and i - counted > counted >> 6:
            reporter.advance("scan", i - counted)
            counted = i
    if reporter is not None:
        if len(entries) > counted:
            reporter.advance("scan", len(entries) - counted)
        reporter.finish("scan")


class TreeSource:
    """What the file-tree importers share (``import eml``, ``import maildir``): a local path or an
    ``smb://`` location, a source URI named by ``via``, and a scan that resumes after a path cursor."""

    via = ""
    #: the archive's own places below the source, (what, real path): set by the pipeline before the scan
    #: (toolkit/own_files.py), each listed as one skipped entry instead of its files (:func:`without_own`)
    own_places: tuple = ()

    def __init__(self, location: str, smb_password: str | None = None):
        self.location = parse_location(location)
        self.source_uri = f"{self.via}:{self.location}"
        self._smb_password = smb_password

    def scan(self, cursor: Any, reporter) -> Iterator:
        after = cursor_path(cursor)
        if self.location.is_smb:
            yield from self._scan_smb(after, reporter)
        else:
            yield from self._scan_local(after, reporter)
