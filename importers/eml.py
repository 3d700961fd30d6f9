"""``import eml``: one message per file, from files and directory trees, local or on an SMB share.

A file whose first line is a From_ line (the mbox envelope: ``From sender date`` in any shape older
MTAs wrote, followed by a mail header block; the same rule as ``import share``) loses that line, as
mail tools do when they open such a file: the rest of the file is archived as the message, with the
note ``from-line-removed`` and the From_ line's date as internal date. Unlike ``import share``, which
reads such a file as an mbox, the rest is never split: a .eml is one message, and a patch or mbox
attached to it stays inside it. When the rest holds more messages by the mbox import's split rule
(From_ lines after an empty line with a header field after them, not inside the first message's MIME
body, not ``git format-patch``'s dated lines: :func:`mbox_messages`), it is most likely an mbox (a
Thunderbird folder file, Apple Mail's ``mbox``): from ``MBOX_REFUSED_FROM`` messages on it is an error
naming the count and nothing of it is archived (docs/reliability.md M6); with fewer, the mail is archived
noted ``holds-more-from-lines`` and the run warns. ``--force-raw`` archives such a file whole.

Before a file is archived its first bytes are looked at with the same content
check ``import share`` uses (``importers.share.mail_content``): a file that
does not start with a mail header block (a JPEG, a program renamed ``.eml``, a
text without headers) is listed as skipped "not mail: …" and never archived —
an archive keeps what it stores forever. ``force_raw`` (``--force-raw``)
archives every non-empty file anyway, flagged with its defects. For a local
file the check (``not_mail``) travels with the SourceMail as its
``content_check`` and runs where the pipeline reads the file (in a worker),
so the scan reads nothing twice; the From_ line is looked for there too (``cut_envelope``, the
item's ``envelope_cut``). SMB files are checked on the bytes read, and
files above ``walk.LARGE_MAIL`` on their first 64 KiB before they are streamed.

An Apple Mail ``.emlx`` (a first line holding only the message's byte count, then the message, then an
XML plist; also ``.partial.emlx``, whose attachments Mail keeps beside it in ``Attachments/``) is
recognised by its content: the count line and the plist are removed, the message's bytes are archived
as they are, noted ``emlx-wrapper-removed`` (``emlx-partial`` for a partial one, ``emlx-length-mismatch``
when no plist starts where the count ends: then everything after the count line is kept), with the
plist's ``flags`` bits as IMAP flags and its ``date-received`` as internal date; its folder is the
Apple Mail mailbox its path names (the ``Name.mbox`` parts), not the storage directories (docs/sources.md).

A file whose name ends in ``.zip`` (any case) and that is a zip is read like ``import share`` reads
one (``importers.zipped``): each member holding mail is one item ``path!member``, nothing is
extracted; a zip on ``smb://`` is first copied to a private temporary file. A zip under another
name is skipped with a reason that says so.
"""
from __future__ import annotations

import dataclasses
import functools
import os
import shutil
import stat
import tempfile
from typing import Iterator

from toolkit.errors import StorageError
from toolkit.reporter import Reporter
from toolkit.source import SourceItem, SourceMail, SourceProblem, SourceSkip, Unsupported

from .content import HEAD
from .eml_check import (  # noqa: F401 - importers.eml names them too (the module docstring's rules)
    EMLX_LENGTH_MISMATCH, EMLX_PARTIAL, EMLX_WRAPPER_REMOVED, FROM_LINE_REMOVED, MBOX_REFUSED_FROM, MORE_FROM_LINES,
    _MBOX_GIVEN, _PLIST_START, _cut_emlx, _emlx_note, _envelope_note, _more_note, _not_mail_head, cut_envelope,
    cut_partial_emlx, cut_wrapper, emlx_frame, envelope_length, mbox_messages, not_mail,
)
from .maildir import is_metadata_name as maildir_metadata
from .zipped import ZipLimits, is_zip, scan_zip

from . import walk as _walk
from .walk import (
    FileEntry, TreeSource, entry_cursor, iter_after, local_path, open_local, open_source_storage, read_local, ref_text,
    walk_local, walk_storage, without_own,
)


def _folder(rel: bytes) -> str | None:
    head = rel.rpartition(b"/")[0]
    return _folder_of(head, rel[-5:].lower() == b".emlx")


@functools.lru_cache(maxsize=1024)
def _folder_of(head: bytes, emlx: bool) -> str | None:
    """The folder of a file in directory ``head`` (``emlx``: the file's name ends in .emlx); remembered,
    since the files of a tree come directory by directory and each would work it out again."""
    if emlx and b".mbox/" in head + b"/":
        # Apple Mail: V3/<account>/INBOX.mbox/<store>/Data/…/Messages/1.emlx is folder INBOX,
        # Work.mbox/Projects.mbox/… is Work/Projects (the mailboxes, not Mail's storage directories)
        names = [part[:-5] for part in head.split(b"/") if part.lower().endswith(b".mbox") and len(part) > 5]
        return ref_text(b"/".join(names))
    return ref_text(head) if head else None


def _hidden(rel: bytes) -> bool:
    """Does a part of the relative path ``rel`` start with '.'? (a part starts a path or follows a '/')"""
    return rel[:1] == b"." or b"/." in rel


#: Files mail programs keep beside their mail (indexes, settings, UID lists), by lowercase name: never mail.
#: Only names no mail file plausibly has (MH's ``context`` is left to the content check).
_SIDECARS = {
    b"table_of_contents": "Apple Mail export bundle index", b"info.plist": "Apple Mail folder settings",
    b".mboxcache.plist": "Apple Mail folder cache", b"envelope index": "Apple Mail index",
    b".mh_sequences": "MH sequences (unseen, flagged…)", b".mh_profile": "MH profile",
    b"msgfilterrules.dat": "Thunderbird filter rules", b"popstate.dat": "Thunderbird POP3 state",
}


def sidecar(name: bytes) -> str | None:
    """Why a file named ``name`` is a mail program's own file beside the mail (skipped, never read), or None."""
    low = name.lower()
    what = _SIDECARS.get(low)
    if what is None and low.endswith(b".msf"):
        what = "Thunderbird folder index (.msf)"
    if what is None and maildir_metadata(name):
        what = "Maildir/Dovecot/Courier metadata"
    return None if what is None else f"{what}: a mail program's file beside the mail, not mail"


def _head_opened(f, size: int) -> bytes:
    with f:
        return f.read(min(size, HEAD))


def _unreadable(ref: str, exc: Exception, cur) -> SourceProblem:
    msg = getattr(exc, "strerror", None) or str(exc)
    return SourceProblem(ref, f"cannot read: {msg} (changed during the scan, or no permission)", cur)


def _head(item: SourceMail) -> bytes:
    """The first bytes of a mail: up to HEAD when it may start with ``From ``, else 4 KiB (b"" if unreadable)."""
    if item.raw is not None:
        return item.raw[:HEAD]
    try:
        if item.path is not None:
            f = os.fdopen(os.open(item.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC), "rb")
        else:
            f = item.opener()
        with f:
            head = f.read(4096)
            if b"From " in head[:512]:
                head += f.read(HEAD - len(head))
            return head
    except (OSError, StorageError):
        return b""  # the read proper reports it


def _skip_opener(opener, n: int):
    def open_after():
        f = opener()
        left = n
        while left:
            chunk = f.read(left)
            if not chunk:
                break
            left -= len(chunk)
        return f
    return open_after


class _Limited:
    """The first ``n`` bytes of a binary file (a streamed .emlx without its plist trailer)."""

    def __init__(self, f, n: int):
        self._f, self._left = f, n

    def read(self, size: int = -1) -> bytes:
        size = self._left if size < 0 else min(size, self._left)
        data = self._f.read(size) if size else b""
        self._left -= len(data)
        return data

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self._f.close()


def _without_emlx(item: SourceMail, read, frame: tuple[int, int]) -> SourceItem:
    partial = item.ref.endswith(".partial.emlx")
    if item.raw is None and item.path is None:  # streamed: the count says where the message ends
        start, length = frame
        flags = [EMLX_WRAPPER_REMOVED] + ([EMLX_PARTIAL] if partial else [])
        try:
            with item.opener() as f:
                f.seek(start + length)
                trailer = f.read(HEAD)
        except (OSError, StorageError, ValueError) as exc:
            return _unreadable(item.ref, exc, item.cursor)
        if start + length > item.size or (trailer and not _PLIST_START.match(trailer)):
            length, trailer = item.size - start, b""
            flags.append(EMLX_LENGTH_MISMATCH)
        skip = _skip_opener(item.opener, start)
        return dataclasses.replace(item, size=length, opener=lambda: _Limited(skip(), length),
                                   **_emlx_note(trailer, flags))
    try:
        raw = item.raw if item.raw is not None else read()
    except (OSError, StorageError) as exc:
        return _unreadable(item.ref, exc, item.cursor)
    trimmed = _cut_emlx(raw, partial)
    if trimmed is None:
        return item
    return dataclasses.replace(item, raw=trimmed.raw, path=None, size=None, **trimmed.note)


def without_envelope(item: SourceItem, read, force_raw: bool = False) -> SourceItem:
    """``item`` with a leading From_ line, or an .emlx wrapper, removed (see the module docstring); ``read()``
    gives the whole file. Unless ``force_raw``, a file whose rest is an mbox is an error (:func:`cut_envelope`);
    a streamed large file is judged by its first bytes."""
    if not isinstance(item, SourceMail):
        return item
    head = _head(item)
    cut = envelope_length(head, len(head) >= item.length)
    if not cut:
        frame = emlx_frame(head)
        return item if frame is None else _without_emlx(item, read, frame)
    note = _envelope_note(head, cut)
    if item.raw is None and item.path is None:
        if not force_raw and (n := mbox_messages(head[cut:])) >= MBOX_REFUSED_FROM:
            return SourceProblem(item.ref, _MBOX_GIVEN % (n if len(head) >= item.length else f"{n} or more"),
                                 item.cursor)
        return dataclasses.replace(item, size=item.size - cut, opener=_skip_opener(item.opener, cut), **note)
    try:
        raw = item.raw if item.raw is not None else read()
    except (OSError, StorageError) as exc:
        return _unreadable(item.ref, exc, item.cursor)
    n = mbox_messages(raw[cut:])
    if not force_raw and n >= MBOX_REFUSED_FROM:
        return SourceProblem(item.ref, _MBOX_GIVEN % n, item.cursor)
    return dataclasses.replace(item, raw=raw[cut:], path=None, size=None, **_more_note(n, note))


def _head_local(path: bytes, size: int) -> bytes:
    """The first bytes of a local regular file (a symlink or FIFO swapped in is never followed or read)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(0, "no longer a regular file")
        return os.pread(fd, min(size, HEAD), 0)
    finally:
        os.close(fd)


def _temporary_copy(storage, entry: FileEntry):
    """A zip on the share, copied to a private temporary file (deleted on close) for its reader."""
    tmp = tempfile.TemporaryFile(prefix="mailarchive-zip-")
    try:
        with storage.open_read(entry.rel.decode("utf-8")) as src:
            shutil.copyfileobj(src, tmp, 1 << 20)
        tmp.seek(0)
        return tmp
    except BaseException:
        tmp.close()
        raise


@functools.lru_cache(maxsize=None)
def _cuts(force_raw: bool) -> dict:
    """The envelope cuts of a LocalFile job (``LocalFile.cut``): for a partial .emlx (True) and any other file."""
    return {False: functools.partial(cut_wrapper, force_raw=force_raw),
            True: functools.partial(cut_partial_emlx, force_raw=force_raw)}


class EmlImporter(TreeSource):
    """Every regular file below PATH that holds a mail is one message (hidden files and dirs, and
    files that are not mail, are skipped and listed)."""

    via = "eml"

    def __init__(self, location: str, smb_password: str | None = None, *, force_raw: bool = False):
        super().__init__(location, smb_password)
        self.force_raw = force_raw

    def _not_mail(self, ref: str, head: bytes, entry: FileEntry, cur) -> SourceItem | None:
        """A skip when ``head`` (the file's first bytes) is not a mail, else None."""
        if self.force_raw:
            return None
        reason = _not_mail_head(head, entry.size)
        if isinstance(reason, Unsupported):
            return SourceProblem(ref, reason, cur)
        return None if reason is None else SourceSkip(ref, reason, cur)

    def _item(self, entry: FileEntry, read, opener=None, path: bytes | None = None,
              envelope_cut=None) -> SourceItem:
        """``path``: a local file, read by the pipeline (in a worker) instead of ``read`` here, with
        ``envelope_cut`` as the item's ``envelope_cut``."""
        ref = ref_text(entry.rel)
        cur = entry_cursor(entry)
        if entry.skip_reason:
            return SourceSkip(ref, entry.skip_reason, cur)
        why = sidecar(entry.rel.rpartition(b"/")[2])
        if why is not None:
            return SourceSkip(ref, why, cur)
        if _hidden(entry.rel):
            return SourceSkip(ref, "hidden file (name starts with '.')", cur)
        if entry.size == 0:
            return SourceProblem(ref, "empty file (0 bytes): not a mail", cur)
        if not self.force_raw and opener is not None and entry.size > _walk.LARGE_MAIL:
            try:
                head = _head_local(path, entry.size) if path is not None else _head_opened(opener(entry), entry.size)
            except (OSError, StorageError) as exc:
                return _unreadable(ref, exc, cur)
            skip = self._not_mail(ref, head, entry, cur)
            if skip is not None:
                return skip
        if opener is not None and entry.size > _walk.LARGE_MAIL:
            return SourceMail(raw=None, ref=ref, folder=_folder(entry.rel), cursor=cur, size=entry.size,
                              opener=lambda: opener(entry))
        if path is not None:
            return SourceMail(raw=None, ref=ref, folder=_folder(entry.rel), cursor=cur, size=entry.size, path=path,
                              on_read_error=lambda exc: _unreadable(ref, exc, cur),
                              content_check=None if self.force_raw else not_mail, envelope_cut=envelope_cut)
        try:
            raw = read(entry)
        except (OSError, StorageError) as exc:
            return _unreadable(ref, exc, cur)
        return self._not_mail(ref, raw[:HEAD], entry, cur) or SourceMail(raw=raw, ref=ref, folder=_folder(entry.rel), cursor=cur)

    def _zip_named(self, entry: FileEntry) -> bool:
        return (not entry.skip_reason and entry.size > 0 and entry.rel[-4:].lower() == b".zip"
                and not _hidden(entry.rel))

    def _zip(self, entry: FileEntry, opener) -> Iterator[SourceItem]:
        """The mails inside a file named .zip (``importers.zipped``), never extracted to disk; the
        items inside carry no cursor (a resume reads the zip again), the last one the file's."""
        from .share import member_items  # here: a tree without zips never loads ``import share``'s modules

        ref, cur = ref_text(entry.rel), entry_cursor(entry)
        try:
            with opener() as f:
                if not is_zip(f.read(4)):
                    f.seek(0)
                    yield self._item(entry, lambda e: f.read(), None)
                    return
                f.seek(0)
                name = ref.rpartition("/")[2]
                folder = f"{_folder(entry.rel)}/{name}" if _folder(entry.rel) else name
                yield from scan_zip(f, ref, folder, None, ZipLimits(), member_items)
        except (OSError, StorageError) as exc:
            yield _unreadable(ref, exc, cur)
            return
        yield SourceSkip(ref, "zip file: its members are listed above", cur)

    def _scan_local(self, after: bytes | None, reporter: Reporter) -> Iterator[SourceItem]:
        root = os.fsencode(self.location.path)
        entries = without_own(walk_local(root), root, self.own_places)
        single = os.path.isfile(root) and not os.path.islink(root)
        reporter.start("scan", len(entries), "files")
        read, opener = (lambda e: read_local(root, e, single)), (lambda e: open_local(root, e, single))
        # the From_ line and the .emlx wrapper are looked for where the file is read (one function each, shared;
        # the same objects in every scan of this process: a task started ahead has equal jobs, toolkit/early_tasks.py)
        cuts = _cuts(self.force_raw)
        for entry in iter_after(entries, after, reporter):
            if self._zip_named(entry):
                yield from self._zip(entry, lambda: open_local(root, entry, single))
                continue
            item = self._item(entry, read, opener, local_path(root, entry, single),
                              cuts[entry.rel.endswith(b".partial.emlx")])
            if isinstance(item, SourceMail) and item.path is not None:  # looked for where it is read
                yield item
            else:
                yield without_envelope(item, lambda: read_local(root, entry, single), self.force_raw)

    def _scan_smb(self, after: bytes | None, reporter: Reporter) -> Iterator[SourceItem]:
        storage = open_source_storage(self.location, self._smb_password)
        from toolkit.share_file import ShareAccess, open_shared

        # a large file is streamed over a connection of its own: the scan's is closed when the scan ends, which may
        # be before the last chunk's mails are read
        access = ShareAccess.of(self.location, self._smb_password)
        try:
            entries = walk_storage(storage)
            reporter.start("scan", len(entries), "files")
            for entry in iter_after(entries, after, reporter):
                if self._zip_named(entry):
                    yield from self._zip(entry, lambda: _temporary_copy(storage, entry))
                    continue
                item = self._item(entry, lambda e: storage.read(e.rel.decode("utf-8")),
                                  lambda e: open_shared(access, e.rel.decode("utf-8")))
                yield without_envelope(item, lambda: storage.read(entry.rel.decode("utf-8")), self.force_raw)
        finally:
            storage.close()
