"""Safe file names for exports (docs/reliability.md N3-N8).

Every name an exporter writes comes from mail content (attachment names,
subjects, IMAP folder names), so it is hostile input. This module turns such
a name into one path component that is harmless on Linux, macOS and Windows
(SMB shares), hands out names that stay unique under case-folding and
Unicode normalisation, joins them under an export root without escaping it,
and creates files without overwriting anything or following symlinks.
"""
from __future__ import annotations

import datetime as dt
import os
import re
import stat
import unicodedata
from pathlib import Path
from typing import BinaryIO, Iterable

from toolkit.errors import UsageError

_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {f"{p}{n}" for p in ("COM", "LPT") for n in "123456789\u00b9\u00b2\u00b3"}
)
_NTFS_ILLEGAL = frozenset('<>:"|?*/\\')
# Bidi embeddings/overrides/isolates (U+202A-202E, U+2066-2069) and the
# invisible direction marks: they make "gpj.exe" look like "exe.jpg".
_BIDI = frozenset(
    [chr(c) for c in range(0x202A, 0x202F)] + [chr(c) for c in range(0x2066, 0x206A)]
    + ["\u200e", "\u200f", "\u061c"]
)
_EXT_MAX_BYTES = 16
_SLUG_MAX_CHARS = 60
_SLUG_MAX_BYTES = 120


def _clean_char(ch: str) -> str:
    if ch in _BIDI:
        return ""
    if ch in _NTFS_ILLEGAL or unicodedata.category(ch) in ("Cc", "Cs"):
        return "_"
    return ch


def _cut(text: str, max_bytes: int) -> str:
    """The longest prefix of ``text`` whose UTF-8 form fits ``max_bytes``."""
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text
    return data[:max_bytes].decode("utf-8", errors="ignore")


def _truncate(name: str, max_bytes: int) -> str:
    """Shorten to ``max_bytes``, keeping a short extension when there is one."""
    if len(name.encode("utf-8")) <= max_bytes:
        return name
    stem, dot, ext = name.rpartition(".")
    ext_bytes = len(ext.encode("utf-8")) + 1
    if dot and stem and ext and ext_bytes <= min(_EXT_MAX_BYTES, max_bytes // 2):
        return _cut(stem, max_bytes - ext_bytes).rstrip(" .") + "." + ext
    return _cut(name, max_bytes)


def _is_reserved(name: str) -> bool:
    return name.split(".", 1)[0].rstrip(" ").upper() in _RESERVED


def safe_component(name: str, *, max_bytes: int = 200, fallback: str = "unnamed") -> str:
    """One safe path component derived from ``name`` (never empty, never '.'/'..').

    NFC-normalised; bidi controls removed; '/', '\\', NUL, control characters,
    lone surrogates and the NTFS-illegal ``<>:"|?*`` replaced by '_'; trailing
    dots and spaces stripped; Windows device names (``CON``, ``aux.txt``, ...)
    prefixed with '_'; at most ``max_bytes`` bytes of UTF-8, cut between
    characters. ``fallback`` replaces a name that ends up empty.
    """
    if max_bytes < len(fallback.encode("utf-8")) or max_bytes < 2:
        raise ValueError(f"max_bytes={max_bytes} is too small for fallback {fallback!r}")
    text = unicodedata.normalize("NFC", name)
    text = "".join(_clean_char(ch) for ch in text)
    text = _truncate(text, max_bytes).rstrip(" .")
    if _is_reserved(text):
        text = _truncate("_" + text, max_bytes).rstrip(" .")
    if text in ("", ".", ".."):
        return fallback
    return text


def _fold(name: str) -> str:
    """Canonical caseless key: equal for names a case-insensitive or
    normalising file system (NTFS, APFS, SMB) would treat as the same."""
    return unicodedata.normalize("NFD", unicodedata.normalize("NFD", name).casefold())


class UniqueNamer:
    """Hands out names unique within one directory, case- and normalisation-blind.

    ``claim("a.eml")`` then ``claim("A.eml")`` gives ``"a.eml"``, ``"A~2.eml"``.
    Names are passed through :func:`safe_component` first.
    """

    def __init__(self, existing: Iterable[str] = (), *, max_bytes: int = 200):
        self._max_bytes = max_bytes
        self._taken = {_fold(n) for n in existing}

    def claim(self, name: str) -> str:
        base = safe_component(name, max_bytes=self._max_bytes)
        candidate = base
        n = 1
        while _fold(candidate) in self._taken:
            n += 1
            candidate = self._numbered(base, n)
        self._taken.add(_fold(candidate))
        return candidate

    def _numbered(self, base: str, n: int) -> str:
        stem, dot, ext = base.rpartition(".")
        if not (dot and stem and len(ext.encode("utf-8")) < _EXT_MAX_BYTES):
            stem, ext = base, ""
        suffix = f"~{n}" + (f".{ext}" if ext else "")
        stem = _cut(stem, self._max_bytes - len(suffix.encode("utf-8"))).rstrip(" .")
        return safe_component(stem + suffix, max_bytes=self._max_bytes)


def _inside(root_real: str, path_real: str) -> bool:
    return os.path.commonpath([root_real, path_real]) == root_real


def safe_join(root: Path, *components: str) -> Path:
    """``root / c1 / c2 ...`` with each component sanitised.

    Raises UsageError if the real path (symlinks resolved) leaves the real root.
    """
    root = path = Path(root)
    for comp in components:
        path = path / safe_component(comp)
    if _symlink_below(root, path):  # the whole real-path check only where a link could lead out
        root_real = os.path.realpath(root)
        if not _inside(root_real, os.path.realpath(path)):
            raise UsageError(f"export path {str(path)!r} leads outside the export root "
                             f"{root_real!r} (a symlink?); remove it or choose another target")
    return path


def _symlink_below(root: Path, path: Path) -> bool:
    """Whether a name of ``path`` below ``root`` is a symlink or could not be looked at. Without one, the real path
    is the root's real path joined with safe components (never ``..``), so it lies inside the real root whatever
    the root is: a few ``lstat`` calls instead of resolving every name from ``/`` twice (a third of a maildir
    export's time). A name that does not exist ends the walk, since nothing below it exists."""
    current = root
    for comp in path.parts[len(root.parts):]:
        current = current / comp
        try:
            mode = os.lstat(current).st_mode
        except (FileNotFoundError, NotADirectoryError):
            return False
        except OSError:
            return True
        if stat.S_ISLNK(mode):
            return True
    return False


_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0) \
    | getattr(os, "O_CLOEXEC", 0)
_FILE_FLAGS = os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0) \
    | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)


def _relative_parts(root: Path, path: Path) -> tuple[str, ...]:
    root_abs = os.path.abspath(root)
    path_abs = os.path.abspath(path)
    if path_abs == root_abs or not _inside(root_abs, path_abs):
        raise UsageError(f"{str(path)!r} is not a file name inside the export root {root_abs!r}")
    parts = Path(os.path.relpath(path_abs, root_abs)).parts
    if any(p in ("", ".", "..") for p in parts):
        raise UsageError(f"{str(path)!r} is not a file name inside the export root {root_abs!r}")
    return parts


#: Exported plaintext is readable by its owner only, unless ``--mode`` asks for more.
DEFAULT_FILE_MODE = 0o600


def parse_mode(text: str | None) -> int:
    """The file mode ``--mode`` asks for (octal, e.g. ``0640``); the owner always keeps read and write."""
    if text is None:
        return DEFAULT_FILE_MODE
    try:
        mode = int(text, 8)
    except ValueError:
        raise UsageError(f"--mode {text!r} is not an octal file mode such as 0600 or 0640") from None
    if mode & ~0o777:
        raise UsageError(f"--mode {text}: only permission bits (at most 0777) can be given")
    if mode & 0o600 != 0o600:
        raise UsageError(f"--mode {text}: the owner must keep read and write (0600 or more)")
    return mode


def dir_mode(file_mode: int) -> int:
    """The directory mode matching a file mode: rwx for the owner, x where the file gives r or w."""
    mode = 0o700 | (file_mode & 0o077)
    if file_mode & 0o060:
        mode |= 0o010
    if file_mode & 0o006:
        mode |= 0o001
    return mode


def open_exclusive(root: Path, path: Path, *, mode: int = DEFAULT_FILE_MODE, dmode: int | None = None) -> BinaryIO:
    """Create ``path`` (under ``root``) for writing; never overwrite, never follow a symlink.

    Missing parent directories between ``root`` and ``path`` are created. An
    existing file at ``path``, or a symlink (or non-directory) among the
    parents below ``root``, raises UsageError. On POSIX the walk holds
    directory file descriptors opened with O_NOFOLLOW, so a symlink swapped
    in during the export is not followed either (docs/reliability.md N6).

    The file gets exactly ``mode`` and new directories ``dmode`` (default:
    :func:`dir_mode` of ``mode``), whatever the umask.
    """
    parts = _relative_parts(root, path)
    dmode = dir_mode(mode) if dmode is None else dmode
    if os.open in os.supports_dir_fd and hasattr(os, "O_DIRECTORY"):
        return _open_exclusive_fd(root, path, parts, mode, dmode)
    return _open_exclusive_lstat(root, path, parts, mode, dmode)


def make_dirs(root: Path, path: Path, *, dmode: int = 0o700) -> None:
    """Create the directory ``path`` below ``root`` and its missing parents, without following a symlink.

    New directories get ``dmode``; an existing one is kept as it is. A symlink
    or a file among the components raises UsageError naming ``path``.
    """
    parts = _relative_parts(root, path)
    if not (os.open in os.supports_dir_fd and hasattr(os, "O_DIRECTORY")):
        _open_exclusive_lstat(root, path / "x", parts + ("x",), 0, dmode, create=False)
        return
    os.close(_walk_dirs(root, path, parts, dmode))


def refuse_link(path: Path) -> None:
    """UsageError if something other than a regular file (a symlink, a directory) holds ``path``."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISREG(st.st_mode):
        raise _refuse(path, "a symlink or not a regular file is in its place")


def replace_file(root: Path, path: Path, data, *, mode: int = DEFAULT_FILE_MODE, tmp: Path | None = None) -> None:
    """Write ``data`` (bytes, or an iterable of bytes written as they come) to ``path`` (under ``root``)
    atomically: a new temp file, fsynced, renamed over ``path``.

    Neither name is followed if it is a symlink: a symlink (or anything but a
    regular file) at ``path`` or at the temp name raises UsageError naming it.
    A regular file left at the temp name by an interrupted run is removed first.
    """
    path = Path(path)
    tmp = Path(tmp) if tmp is not None else path.with_name(path.name + ".tmp")
    refuse_link(path)
    refuse_link(tmp)
    try:
        os.unlink(tmp)  # a leftover regular file (unlink never follows a symlink)
    except FileNotFoundError:
        pass
    try:
        with open_exclusive(root, tmp, mode=mode) as f:
            for chunk in ((data,) if isinstance(data, (bytes, bytearray, memoryview)) else data):
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # rename replaces the name itself; it never follows a symlink there
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _refuse(path: Path, why: str, err: OSError | None = None) -> UsageError:
    exc = UsageError(f"refusing to write {str(path)!r}: {why}; export into an empty directory")
    exc.__cause__ = err
    return exc


def _walk_dirs(root: Path, path: Path, parts: tuple[str, ...], dmode: int) -> int:
    """An fd of the directory ``root/parts...``, each level created (mode ``dmode``) or opened with O_NOFOLLOW."""
    dir_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
    try:
        for comp in parts:
            created = False
            try:
                os.mkdir(comp, 0o700, dir_fd=dir_fd)
                created = True
            except FileExistsError:
                pass
            try:
                next_fd = os.open(comp, _DIR_FLAGS, dir_fd=dir_fd)
            except OSError as err:  # ELOOP: a symlink; ENOTDIR: a file
                raise _refuse(path, f"{comp!r} is a symlink or not a directory", err) from err
            if created:
                os.fchmod(next_fd, dmode)
            os.close(dir_fd)
            dir_fd = next_fd
    except BaseException:
        os.close(dir_fd)
        raise
    return dir_fd


def _open_exclusive_fd(root: Path, path: Path, parts: tuple[str, ...], mode: int, dmode: int) -> BinaryIO:
    dir_fd = _walk_dirs(root, path, parts[:-1], dmode)
    try:
        try:
            fd = os.open(parts[-1], _FILE_FLAGS, mode, dir_fd=dir_fd)
        except FileExistsError as err:
            raise _refuse(path, "it already exists (a file or a symlink)", err) from err
        except OSError as err:
            raise _refuse(path, "it cannot be created", err) from err
        os.fchmod(fd, mode)
    finally:
        os.close(dir_fd)
    return os.fdopen(fd, "wb")


def _open_exclusive_lstat(root: Path, path: Path, parts: tuple[str, ...], mode: int, dmode: int,
                          create: bool = True) -> BinaryIO | None:
    current = Path(root)
    for comp in parts[:-1]:
        current = current / comp
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            os.mkdir(current, 0o700)
            os.chmod(current, dmode)
            st = os.lstat(current)
        if not stat.S_ISDIR(st.st_mode):
            raise _refuse(path, f"{comp!r} is a symlink or not a directory")
    if not create:
        return None
    try:
        fd = os.open(current / parts[-1], _FILE_FLAGS, mode)
    except FileExistsError as err:
        raise _refuse(path, "it already exists (a file or a symlink)", err) from err
    os.chmod(current / parts[-1], mode)
    return os.fdopen(fd, "wb")


def _slug(subject: str) -> str:
    text = unicodedata.normalize("NFC", subject)
    text = "".join(ch for ch in text if ch not in _BIDI)
    text = re.sub(r"[\W_]+", "-", text).strip("-")
    text = text[:_SLUG_MAX_CHARS]
    return _cut(text, _SLUG_MAX_BYTES).strip("-")


def message_filename(msg_id: int, subject: str | None, sent: dt.datetime | None) -> str:
    """``"2019-01-07_000123_Quarterly-report.eml"``: the date the mail shows
    (or ``nodate``), the zero-padded catalog id (which makes it unique), and
    a slug of the decoded subject (at most 60 characters, omitted if empty)."""
    if msg_id < 0:
        raise ValueError(f"message id must not be negative: {msg_id}")
    day = sent.strftime("%Y-%m-%d") if sent is not None else "nodate"
    slug = _slug(subject) if subject else ""
    name = f"{day}_{msg_id:06d}" + (f"_{slug}" if slug else "") + ".eml"
    return safe_component(name)
