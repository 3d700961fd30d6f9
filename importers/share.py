"""``import share``: a whole tree of mixed mail (local or ``smb://``), detected by content.

The tree is walked once (``importers.walk``: no symlink followed, no FIFO or
device opened, names as bytes). Then

* every directory that is a Maildir — it has files in ``cur/`` or ``new/``
  and looks like one (a ``tmp/`` with files, a ``maildirfolder`` marker, or
  Maildir-style file names ``<digits>.…`` / ``…:2,<flags>``) — is one unit,
  imported by ``MaildirImporter`` together with its Maildir++ and nested
  subfolders (the topmost such directory wins; a ``.Sub`` folder with a
  ``maildirfolder`` marker makes its parent the Maildir). Files in it that
  are not part of the Maildir (not in ``cur/``/``new/``/``tmp/`` and not
  server metadata) are treated like any other file;
* every other regular file is looked at (its first 64 KiB, after
  decompression when it starts with gzip/bzip2/xz magic bytes):

  - Outlook files, by their signature: ``!BDN`` (PST/OST store: every
    mail item, as ``import pst`` reads it; the folder is the file's path
    plus the store's folder), an OLE2 compound file with MSG streams (one
    mail, as ``import msg``), ``78 9F 3E 22`` (a TNEF ``winmail.dat``: one
    mail). These mails are converted; their sightings name the converter;
  - a zip file (``PK`` magic bytes): its members are read where the zip lies,
    never extracted, each detected by content like a file here (EML, mbox,
    .msg, TNEF, nested zip), by ``importers.zipped``; refs are
    ``path!member`` (a member name is only a label), folders the zip's path
    plus the member's plain directory parts. A bomb, an over-large member or
    a zip nested too deep is an error naming the member. Its cursor counts
    the items read from the zip (``{"zip_items": n}``);
  - first line a From_ line (``From `` + sender + date, optionally after
    empty lines or a UTF-8 BOM), or any other line starting with ``From ``
    (not a ``From:`` field) followed by a mail header block → an mbox,
    imported by ``MboxImporter`` (which reads compressed files
    transparently); the From_ line is never archived;
  - first line ``Name: value`` with a header-name charset, a header block
    within the 64 KiB that names at least one usual mail header → one EML
    message;
  - otherwise skipped with the reason: "empty file", "not mail: binary",
    "not mail: no header block", "not mail: Windows/macOS folder metadata
    (Thumbs.db)", symbolic links and FIFOs as the walk reports them.

Nothing is dropped silently: every file is a mail (or an mbox of mails),
a skip with its reason, or an error — the run summary lists skips and
errors, so source files = files imported + skipped + errors.

Refs are the lossless relative path (``walk.ref_text``; non-UTF-8 names
become ``base64:…``) — for an mbox message the path plus ``@offset``, for a
Maildir message the path of the message file. Folders: the relative
directory for EML files, plus the mbox name (``dir/archive-2018``) or the
Maildir folder (``dir/Mail/INBOX``, ``dir/Mail/Sub``).

Cursor: ``{"path_b64": <unit path>, "inner": <cursor of the mbox or Maildir
importer inside that unit, or None once the unit is done>}``; units come in
the byte order of their paths, so a resume skips the units before the
cursor and continues the one at it from its inner cursor.
"""
from __future__ import annotations

import base64
import contextlib
import dataclasses
import heapq
import io
import os
import re
import shutil
import stat
import tempfile
from typing import Any, Iterable, Iterator, NamedTuple, Sequence
from urllib.parse import quote

from toolkit.errors import ObjectMissingError, SourceError, StorageError
from toolkit.reporter import NullReporter, Reporter
from toolkit.share_file import ShareAccess, ShareFile, open_shared
from toolkit.source import SourceItem, SourceMail, SourceProblem, SourceSkip, Unsupported
from toolkit.storage import Location, parse_location

from . import maildir as md
from .mbox import MboxImporter, MboxSplitter, compression_of, folder_name as mbox_folder_name
from .content import (  # noqa: F401 - the content checks, importers.share names them too
    HEAD, EML, MBOX, SKIP, PROBLEM, FILE_VIAS, PST, MSG, TNEF, ZIP, _HEADER_LINE, MAIL_HEADERS, JUNK_NAMES, _decompress_head, _first_line_is_from, looks_like_headers, _junk, DBX_MAGIC, unsupported_mail, detect, starts_with_headers, mail_content, mail_elsewhere,
)
from .msg import item_from_msg
from .pst_guard import guarded_scan_store
from .tnef import item_from_tnef
from .zipped import ZipLimits, is_zip, scan_zip
from . import walk as _walk
from .walk import (
    FileEntry, Walk, open_local, open_source_storage, read_local, ref_bytes, ref_text, walk_local, walk_storage, without_own,
)

_MAILDIR_NAME = re.compile(rb"\d{6,}\.")


# -- planning: which directories are Maildirs -----------------------------------------------------

def _parent(rel: bytes) -> bytes:
    return rel.rpartition(b"/")[0]


def _inner(rel: bytes, root: bytes) -> bytes:
    return rel if root == b"" else rel[len(root) + 1 :]


def maildir_roots(entries: Iterable[FileEntry]) -> list[bytes]:
    """Relative paths of the top Maildir directories of a walked tree (see the module docstring)."""
    has_msgs: dict[bytes, bool] = {}
    evidence: set[bytes] = set()
    markers: set[bytes] = set()  # the maildirfolder files (not a set of every path: a walk can be a million files)
    for e in entries:
        if e.skip_reason:
            continue
        rel = e.rel
        parts = rel.split(b"/")
        if parts[-1] == b"maildirfolder":
            markers.add(rel)
        if len(parts) < 2:
            continue
        d = b"/".join(parts[:-2])
        if parts[-2] in md.MESSAGE_DIRS:
            has_msgs[d] = True
            if _MAILDIR_NAME.match(parts[-1]) or md.has_info_suffix(parts[-1]):
                evidence.add(d)
        elif parts[-2] == b"tmp":
            evidence.add(d)
        if parts[-1] == b"maildirfolder":
            evidence.add(b"/".join(parts[:-1]))
    cands = {d for d in has_msgs if d in evidence}
    lifted = set()
    for d in cands:
        base = d.rpartition(b"/")[2]
        if base.startswith(b".") and len(base) > 1 and (d + b"/maildirfolder") in markers:
            lifted.add(_parent(d))
        else:
            lifted.add(d)
    roots: set[bytes] = set()
    for d in sorted(lifted, key=len):  # shorter paths first: an ancestor is decided before its descendants
        if _owner(d, roots) is None:
            roots.add(d)
    return sorted(roots)


def _owner(rel: bytes, roots: set[bytes]) -> bytes | None:
    """The root in ``roots`` that ``rel`` lies strictly below (the topmost one), or None."""
    if not roots:
        return None
    if b"" in roots and rel:
        return b""
    parts = rel.split(b"/")
    for i in range(1, len(parts)):
        prefix = b"/".join(parts[:i])
        if prefix in roots:
            return prefix
    return None


class _Unit(NamedTuple):
    key: bytes
    kind: str              # "maildir" or "file"
    entry: FileEntry | None = None


class _Plan:
    """The units of a walked tree in key order: its Maildirs, and every file outside them (or listed as not readable
    inside them when it is not a message there), made one at a time as they are read. Which files are units is one
    bit each, found in one pass: a tree of a million loose files holds no list of a million units (K8). Read once:
    the walk's blocks go as the units pass (importers/walk_table.py ``Walk.consume``)."""

    def __init__(self, entries: Sequence[FileEntry]):
        self._entries = entries
        self._roots = maildir_roots(entries)
        root_set = set(self._roots)
        self._files = bytearray((len(entries) + 7) // 8)
        count = 0
        for i, e in enumerate(entries):
            owner = _owner(e.rel, root_set)
            if owner is not None and not e.skip_reason and md.is_maildir_member(_inner(e.rel, owner)):
                continue
            if owner is not None and e.skip_reason and md.classify(_inner(e.rel, owner))[0] == md.MESSAGE:
                continue  # the Maildir importer lists it
            self._files[i >> 3] |= 1 << (i & 7)
            count += 1
        self._count = count + len(self._roots)

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[_Unit]:
        entries = self._entries.consume() if isinstance(self._entries, Walk) else iter(self._entries)
        files = self._files
        chosen = (_Unit(e.rel, "file", e) for i, e in enumerate(entries) if files[i >> 3] >> (i & 7) & 1)
        return heapq.merge((_Unit(r, "maildir") for r in self._roots), chosen, key=_unit_key)


def _unit_key(unit: _Unit) -> bytes:
    return unit.key


def plan(entries: Sequence[FileEntry]) -> _Plan:
    """The units of ``entries`` (a sorted walk) in key order (see :class:`_Plan`)."""
    return _Plan(entries)


# -- sources --------------------------------------------------------------------------------------

class _LocalTree:
    def __init__(self, loc: Location, own_places=()):
        self.root = os.fsencode(loc.path)
        self.entries = without_own(walk_local(self.root), self.root, own_places)
        self.single = os.path.isfile(self.root) and not os.path.islink(self.root)

    def full(self, rel: bytes) -> bytes:
        return self.root if self.single else os.path.join(self.root, rel)

    def head(self, e: FileEntry) -> bytes:
        fd = os.open(self.full(e.rel), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise OSError(0, "no longer a regular file")
            return _read_n(fd, HEAD)
        finally:
            os.close(fd)

    def read(self, e: FileEntry) -> bytes:
        return read_local(self.root, e, self.single)

    def mail(self, e: FileEntry, mail: SourceMail) -> SourceMail:
        """``mail`` read from the file by the pipeline (a local path); a file above LARGE_MAIL streamed from it
        (docs/reliability.md K1), never held whole."""
        if e.size > _walk.LARGE_MAIL:
            mail.opener = lambda: open_local(self.root, e, self.single)
        else:
            mail.path = self.full(e.rel)
        return mail

    def location(self, rel: bytes) -> str:
        return os.fsdecode(self.full(rel))

    @contextlib.contextmanager
    def local_copy(self, e: FileEntry):
        yield self.full(e.rel)

    def close(self) -> None:
        pass


def _read_n(fd: int, n: int) -> bytes:
    parts, got = [], 0
    while got < n:
        chunk = os.read(fd, n - got)
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


class _SmbTree:
    def __init__(self, loc: Location, password: str | None):
        self.loc = loc
        self.access = ShareAccess.of(loc, password)
        self.storage = open_source_storage(loc, password)
        try:
            self.entries = walk_storage(self.storage)
        except StorageError as exc:
            self.storage.close()
            raise SourceError.wrapping(f"{loc}: {exc}", exc) from None

    def head(self, e: FileEntry) -> bytes:
        return self.storage.read(e.rel.decode("utf-8"), 0, HEAD)

    def read(self, e: FileEntry) -> bytes:
        return self.storage.read(e.rel.decode("utf-8"))

    def mail(self, e: FileEntry, mail: SourceMail) -> SourceMail:
        """``mail`` read from the file by the pipeline over its own connection (toolkit/share_file.py); a file above
        LARGE_MAIL streamed over this process's own one (the scan's closes when the scan ends), never held whole."""
        if e.size > _walk.LARGE_MAIL:
            access, name = self.access, e.rel.decode("utf-8")
            mail.opener = lambda: open_shared(access, name)
        else:
            mail.job = ShareFile(self.access, e.rel.decode("utf-8"), e.size, e.mtime)
        return mail

    @contextlib.contextmanager
    def local_copy(self, e: FileEntry):
        """A PST/OST store on the share, copied to a private temporary file for its reader."""
        with tempfile.NamedTemporaryFile(prefix="mailarchive-store-") as tmp:
            with self.storage.open_read(e.rel.decode("utf-8")) as src:
                shutil.copyfileobj(src, tmp, 1 << 20)
            tmp.flush()
            yield os.fsencode(tmp.name)

    def location(self, rel: bytes) -> str:
        loc = self.loc
        path = "/".join(p for p in (loc.path, rel.decode("utf-8")) if p)
        return f"smb://{quote(loc.user or '', safe='')}@{loc.host}:{loc.port}/{quote(loc.share or '', safe='')}/{quote(path)}"

    def close(self) -> None:
        self.storage.close()


# -- the importer ---------------------------------------------------------------------------------

def _clean(text: str) -> str:
    """Text safe to store and print (lone surrogates from non-UTF-8 local names become \\x escapes)."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


class _SubReporter(NullReporter):
    """The reporter handed to the inner importers: their own progress tasks are dropped, text cleaned."""

    def __init__(self, reporter: Reporter):
        self._r = reporter

    def warn(self, message):
        self._r.warn(_clean(message))

    def error(self, message):
        self._r.error(_clean(message))

    def info(self, message):
        self._r.info(_clean(message))


def _b64(rel: bytes) -> str:
    return base64.b64encode(rel).decode("ascii")


def _dir_folder(rel: bytes) -> str | None:
    head = _parent(rel)
    return ref_text(head) if head else None


def _sbd_dropped(folder: str | None) -> str | None:
    """Thunderbird keeps the subfolders of folder ``Inbox`` (an mbox file) in a directory ``Inbox.sbd``: the
    folder of ``Inbox.sbd/Projects`` is ``Inbox/Projects``, as Thunderbird shows it (docs/sources.md)."""
    if not folder or ".sbd" not in folder:
        return folder
    return "/".join(p[:-4] if p.endswith(".sbd") and len(p) > 4 else p for p in folder.split("/"))


def _open_nofollow(path, flags: int) -> int:
    return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC)


def _vanished(exc: BaseException) -> bool:
    return isinstance(exc, (FileNotFoundError, ObjectMissingError))


class ShareImporter:
    """A mixed tree (EML files, mboxes, Maildirs, junk) below PATH or ``smb://…``; see the module docstring."""

    via = "share"
    #: the archive's own places below the source (importers/walk.py ``TreeSource.own_places``)
    own_places: tuple = ()

    def __init__(self, location: str, smb_password: str | None = None, mbox_limits: dict | None = None):
        self.location = parse_location(location)
        self.source_uri = f"share:{self.location}"
        self._smb_password = smb_password
        self._mbox_limits = mbox_limits or {}  # MboxImporter's max_message, max_ratio, max_ratio_after

    def scan(self, cursor: Any, reporter: Reporter) -> Iterator[SourceItem]:
        after, inner = None, None
        if isinstance(cursor, dict) and "path_b64" in cursor:
            after, inner = base64.b64decode(cursor["path_b64"]), cursor.get("inner")
        tree = _SmbTree(self.location, self._smb_password) if self.location.is_smb else _LocalTree(self.location, self.own_places)
        try:
            units = plan(tree.entries)
            reporter.start("scan", len(units), "files and Maildirs")
            sub_reporter = _SubReporter(reporter)
            for unit in units:
                if after is not None:
                    if unit.key < after:
                        reporter.advance("scan", 1)
                        continue
                    if unit.key == after:
                        if inner is None:
                            reporter.advance("scan", 1)
                            continue  # that unit was finished
                        yield from self._unit(tree, unit, inner, sub_reporter)
                        reporter.advance("scan", 1)
                        continue
                yield from self._unit(tree, unit, None, sub_reporter)
                reporter.advance("scan", 1)
            reporter.finish("scan")
        finally:
            tree.close()

    def _unit(self, tree, unit: _Unit, inner: Any, reporter) -> Iterator[SourceItem]:
        if unit.kind == "maildir":
            yield from self._maildir(tree, unit.key, inner, reporter)
        else:
            yield from self._file(tree, unit.entry, inner, reporter)

    # -- a Maildir ------------------------------------------------------------------------------
    def _maildir(self, tree, root: bytes, inner: Any, reporter) -> Iterator[SourceItem]:
        sub = md.MaildirImporter(tree.location(root), self._smb_password, strays=False)
        prefix = ref_text(root) if root else ""
        try:
            for item in sub.scan(inner, reporter):
                rel = ref_bytes(item.ref)
                ref = ref_text(root + b"/" + rel if root else rel)
                cur = {"path_b64": _b64(root), "inner": item.cursor} if item.cursor is not None else None
                if isinstance(item, SourceMail):
                    folder = f"{prefix}/{item.folder}" if prefix else item.folder
                    yield dataclasses.replace(item, ref=ref, folder=folder, cursor=cur,
                                              on_read_error=_renamed(item.on_read_error, ref, cur))
                else:
                    yield dataclasses.replace(item, ref=ref, cursor=cur)
        except SourceError as exc:
            yield SourceProblem(ref_text(root) or ".", _clean(f"Maildir not readable: {exc}"), {"path_b64": _b64(root), "inner": None})

    # -- one file -------------------------------------------------------------------------------
    def _file(self, tree, e: FileEntry, inner: Any, reporter) -> Iterator[SourceItem]:
        ref = ref_text(e.rel)
        done = {"path_b64": _b64(e.rel), "inner": None}
        if e.skip_reason:
            if e.skip_reason.startswith("directory not readable"):
                yield SourceProblem(ref, e.skip_reason, done)
            elif e.skip_reason.startswith("vanished"):
                yield SourceSkip(ref, "vanished during the scan (changed during scan)", done)
            else:
                yield SourceSkip(ref, e.skip_reason, done)
            return
        if inner is None:
            if e.size == 0:
                yield SourceSkip(ref, "empty file", done)
                return
            try:
                head = tree.head(e)
            except (OSError, StorageError) as exc:
                yield self._read_failure(ref, exc, done)
                return
            kind, reason = detect(head, e.rel.rpartition(b"/")[2], e.size)
        elif isinstance(inner, dict) and "zip_items" in inner:
            kind, head, reason = ZIP, b"", None
        else:  # only an mbox, a zip or a PST/OST store has an inner cursor
            kind, head, reason = (PST if isinstance(inner, dict) and "identity" in inner else MBOX), b"", None
        if kind == SKIP:
            yield SourceSkip(ref, reason, done)
        elif kind == PROBLEM:
            yield SourceProblem(ref, reason, done)
        elif kind == EML:
            if len(head) >= e.size and len(head) < HEAD:  # read whole for the detection already
                yield SourceMail(raw=head, ref=ref, folder=_dir_folder(e.rel), cursor=done, via=FILE_VIAS[EML])
            else:  # the pipeline reads the rest of it (in a worker)
                yield tree.mail(e, SourceMail(raw=None, ref=ref, folder=_dir_folder(e.rel), cursor=done, size=e.size,
                                              via=FILE_VIAS[EML],
                                              on_read_error=lambda exc: self._read_failure(ref, exc, done)))
        elif kind in (PST, MSG, TNEF):
            yield from self._outlook(tree, e, kind, inner, reporter)
        elif kind == ZIP:
            yield from self._zip(tree, e, inner, reporter)
        else:
            yield from self._mbox(tree, e, inner, reporter)

    def _outlook(self, tree, e: FileEntry, kind: str, inner: Any, reporter) -> Iterator[SourceItem]:
        """A PST/OST store, a .msg file or a TNEF file, converted like ``import pst``/``import msg`` do."""
        ref = ref_text(e.rel)
        done = {"path_b64": _b64(e.rel), "inner": None}
        if kind in (MSG, TNEF):
            try:
                raw = tree.read(e)
            except (OSError, StorageError) as exc:
                yield self._read_failure(ref, exc, done)
                return
            if kind == MSG:
                yield item_from_msg(raw, ref, done, _dir_folder(e.rel), warn=reporter.warn)
            else:
                yield item_from_tnef(raw, ref, done, _dir_folder(e.rel))
            return
        wrap = lambda c: {"path_b64": _b64(e.rel), "inner": None if c.get("done") else c}  # noqa: E731
        identity = f"{e.size}:{int(e.mtime * 1e9)}"
        with tree.local_copy(e) as path:
            for item in guarded_scan_store(path, ref, e.rel, inner, reporter, wrap, identity):
                if isinstance(item, SourceMail):
                    dir_folder = _dir_folder(e.rel)
                    store = mbox_folder_name(e.rel.rpartition(b"/")[2].decode("utf-8", "backslashreplace"))
                    base = f"{dir_folder}/{store}" if dir_folder else store
                    item = dataclasses.replace(item, folder=f"{base}/{item.folder}" if item.folder else base)
                yield item

    def _zip(self, tree, e: FileEntry, inner: Any, reporter) -> Iterator[SourceItem]:
        """The mails inside a zip file (``importers.zipped``), read where it lies (a copy for SMB)."""
        ref = ref_text(e.rel)
        dir_folder = _dir_folder(e.rel)
        name = e.rel.rpartition(b"/")[2].decode("utf-8", "backslashreplace")
        folder = f"{dir_folder}/{name}" if dir_folder else name
        limits = ZipLimits(max_ratio=self._mbox_limits.get("max_ratio") or ZipLimits.max_ratio)
        skip = inner["zip_items"] if isinstance(inner, dict) else 0
        try:
            with tree.local_copy(e) as path, open(path, "rb", opener=_open_nofollow) as f:
                items = scan_zip(f, ref, folder, None, limits, lambda *a: member_items(*a, warn=reporter.warn))
                yield from zip_cursors(items, skip, e.rel, ref)
        except (OSError, StorageError) as exc:
            yield self._read_failure(ref, exc, {"path_b64": _b64(e.rel), "inner": None})

    def _read_failure(self, ref: str, exc: BaseException, cur: dict) -> SourceItem:
        if _vanished(exc):
            return SourceSkip(ref, "vanished during the scan (changed during scan)", cur)
        msg = getattr(exc, "strerror", None) or str(exc)
        return SourceProblem(ref, _clean(f"cannot read: {msg}"), cur)

    def _mbox(self, tree, e: FileEntry, inner: Any, reporter) -> Iterator[SourceItem]:
        sub = MboxImporter(tree.location(e.rel), self._smb_password, **self._mbox_limits)
        base = e.rel.rpartition(b"/")[2]
        name = mbox_folder_name(base.decode("utf-8", "backslashreplace"))
        dir_folder = _sbd_dropped(_dir_folder(e.rel))
        folder = f"{dir_folder}/{name}" if dir_folder else name
        ref = ref_text(e.rel)
        try:
            for item in sub.scan(inner, reporter):
                suffix = item.ref[len(sub.name):] if item.ref.startswith(sub.name) else "#" + item.ref
                new_ref = ref_text(e.rel + suffix.encode("utf-8", "surrogateescape"))
                cur = {"path_b64": _b64(e.rel), "inner": item.cursor} if item.cursor is not None else None
                if isinstance(item, SourceMail):
                    yield dataclasses.replace(item, ref=new_ref, folder=folder, cursor=cur, via=FILE_VIAS[MBOX],
                                              on_read_error=_renamed(item.on_read_error, new_ref, cur))
                elif isinstance(item, SourceProblem):
                    yield dataclasses.replace(item, ref=new_ref, message=_clean(item.message), cursor=cur)
                else:
                    yield dataclasses.replace(item, ref=new_ref, reason=_clean(item.reason), cursor=cur)
        except SourceError as exc:
            yield SourceProblem(ref, _clean(f"mbox not readable: {exc}"), {"path_b64": _b64(e.rel), "inner": None})


def _renamed(on_read_error, ref: str, cur: Any):
    """An inner importer's ``on_read_error`` whose problem carries this tree's ref and cursor."""
    if on_read_error is None:
        return None

    def renamed(exc: OSError) -> SourceItem:
        item = on_read_error(exc)
        if isinstance(item, SourceProblem):
            return dataclasses.replace(item, ref=ref, message=_clean(item.message), cursor=cur)
        return dataclasses.replace(item, ref=ref, reason=_clean(item.reason), cursor=cur)
    return renamed


# -- members of a zip -----------------------------------------------------------------------------

def member_items(data: bytes, name: str, ref: str, folder: str, warn=None) -> Iterator[SourceItem]:
    """The items of one zip member's bytes, detected by content like a file of the tree."""
    base = name.replace("\\", "/").rpartition("/")[2]
    kind, reason = detect(data[:HEAD], base.encode("utf-8", "surrogateescape"), len(data))
    if kind == EML:
        yield SourceMail(raw=data, ref=ref, folder=folder, via=FILE_VIAS[EML])
    elif kind == MBOX:
        yield from _mbox_member(data, ref, f"{folder}/{mbox_folder_name(base)}")
    elif kind == MSG:
        yield item_from_msg(data, ref, None, folder, warn=warn)
    elif kind == TNEF:
        yield item_from_tnef(data, ref, None, folder)
    elif kind == PST:
        yield SourceProblem(ref, "PST/OST store inside a zip: not read (extract it, then import the file)")
    elif kind == PROBLEM:
        yield SourceProblem(ref, reason)
    else:
        yield SourceSkip(ref, reason)


def _mbox_member(data: bytes, ref: str, folder: str) -> Iterator[SourceItem]:
    if compression_of(data[:8]):
        yield SourceSkip(ref, "compressed mbox inside a zip: not read (extract it, then import the file)")
        return
    for msg in MboxSplitter(io.BytesIO(data)):
        mref = f"{ref}@{msg.offset}"
        if not msg.raw or msg.raw.isspace():
            yield SourceProblem(mref, "empty message (nothing between this From_ line and the next)")
            continue
        flags = sorted(msg.flags) + [f"variant={msg.variant}"]
        yield SourceMail(raw=msg.raw, ref=mref, folder=folder, flags=(",".join(flags), *msg.mail_flags),
                         internal_date=msg.date, date_source="from-line", via=FILE_VIAS[MBOX],
                         also_in=tuple(f for f in msg.label_folders if f != folder))


def zip_cursors(items: Iterator[SourceItem], skip: int, rel: bytes, ref: str) -> Iterator[SourceItem]:
    """``items`` after the first ``skip``, each with the cursor of the count read so far (the last one:
    the zip is done), so that an interrupted run resumes inside the zip."""
    prev, n = None, 0
    for item in items:
        n += 1
        if n <= skip:
            continue
        if prev is not None:
            yield prev
        prev = dataclasses.replace(item, cursor={"path_b64": _b64(rel), "inner": {"zip_items": n}})
    done = {"path_b64": _b64(rel), "inner": None}
    if prev is not None:
        yield dataclasses.replace(prev, cursor=done)
    elif n == 0:
        yield SourceSkip(ref, "zip file holding no files", done)
