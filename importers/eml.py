"""``import eml``: one message per file, from files and directory trees, local or on an SMB share.

A file whose first line is a From_ line (the mbox envelope: ``From sender date`` in any shape older
MTAs wrote, followed by a mail header block; the same rule as ``import share``) loses that line, as
mail tools do when they open such a file: the rest of the file is archived as the message, with the
note ``from-line-removed`` and the From_ line's date as internal date. Unlike ``import share``, which
reads such a file as an mbox, the rest is never split: a .eml is one message, and a patch or mbox
attached to it stays inside it.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Iterator

from toolkit.errors import SourceError, StorageError
from toolkit.reporter import Reporter
from toolkit.source import SourceItem, SourceMail, SourceProblem, SourceSkip
from toolkit.storage import open_storage

from .mbox import from_line_date
from .share import HEAD, _first_line_is_from

from .walk import (
    FileEntry, TreeSource, entry_cursor, iter_after, local_path, open_local, read_local, ref_text, walk_local, walk_storage,
)

#: Mails larger than this are streamed from the source, never held in memory whole.
LARGE_MAIL = int(os.environ.get("MAILARCHIVE_LARGE_MAIL") or 32 * 1024 * 1024)


def _folder(rel: bytes) -> str | None:
    head = rel.rpartition(b"/")[0]
    return ref_text(head) if head else None


def _unreadable(ref: str, exc: Exception, cur) -> SourceProblem:
    msg = getattr(exc, "strerror", None) or str(exc)
    return SourceProblem(ref, f"cannot read: {msg} (changed during the scan, or no permission)", cur)


FROM_LINE_REMOVED = "from-line-removed"


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


def envelope_length(head: bytes, whole: bool) -> int:
    """The bytes before the message when ``head`` (a file's first bytes) opens with a From_ line, else 0:
    a UTF-8 BOM, empty lines and the From_ line with its line ending."""
    if not _first_line_is_from(head, whole):
        return 0
    return head.index(b"From ") + len(head[head.index(b"From "):].split(b"\n", 1)[0]) + 1


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


def without_envelope(item: SourceItem, read) -> SourceItem:
    """``item`` with a leading From_ line removed (see the module docstring); ``read()`` gives the whole file."""
    if not isinstance(item, SourceMail):
        return item
    head = _head(item)
    cut = envelope_length(head, len(head) >= item.length)
    if not cut:
        return item
    note = {"flags": (FROM_LINE_REMOVED,), "internal_date": from_line_date(head[head.index(b"From "):cut])}
    if item.raw is None and item.path is None:
        return dataclasses.replace(item, size=item.size - cut, opener=_skip_opener(item.opener, cut), **note)
    try:
        raw = item.raw if item.raw is not None else read()
    except (OSError, StorageError) as exc:
        return _unreadable(item.ref, exc, item.cursor)
    return dataclasses.replace(item, raw=raw[cut:], path=None, size=None, **note)


class EmlImporter(TreeSource):
    """Every regular file below PATH is one message (hidden files and dirs are skipped, and listed)."""

    via = "eml"

    def _item(self, entry: FileEntry, read, opener=None, path: bytes | None = None) -> SourceItem:
        """``path``: a local file, read by the pipeline (in a worker) instead of ``read`` here."""
        ref = ref_text(entry.rel)
        cur = entry_cursor(entry)
        if entry.skip_reason:
            return SourceSkip(ref, entry.skip_reason, cur)
        if any(part.startswith(b".") for part in entry.rel.split(b"/")):
            return SourceSkip(ref, "hidden file (name starts with '.')", cur)
        if entry.size == 0:
            return SourceProblem(ref, "empty file (0 bytes): not a mail", cur)
        if opener is not None and entry.size > LARGE_MAIL:
            return SourceMail(raw=None, ref=ref, folder=_folder(entry.rel), cursor=cur, size=entry.size,
                              opener=lambda: opener(entry))
        if path is not None:
            return SourceMail(raw=None, ref=ref, folder=_folder(entry.rel), cursor=cur, size=entry.size, path=path,
                              on_read_error=lambda exc: _unreadable(ref, exc, cur))
        try:
            raw = read(entry)
        except (OSError, StorageError) as exc:
            return _unreadable(ref, exc, cur)
        return SourceMail(raw=raw, ref=ref, folder=_folder(entry.rel), cursor=cur)

    def _scan_local(self, after: bytes | None, reporter: Reporter) -> Iterator[SourceItem]:
        root = os.fsencode(self.location.path)
        entries = walk_local(root)
        single = os.path.isfile(root) and not os.path.islink(root)
        reporter.start("scan", len(entries), "files")
        for entry in iter_after(entries, after, reporter):
            item = self._item(entry, lambda e: read_local(root, e, single), lambda e: open_local(root, e, single),
                              local_path(root, entry, single))
            yield without_envelope(item, lambda: read_local(root, entry, single))

    def _scan_smb(self, after: bytes | None, reporter: Reporter) -> Iterator[SourceItem]:
        try:
            storage = open_storage(self.location, self._smb_password)
        except StorageError as exc:
            raise SourceError(f"{self.location}: {exc}") from None
        try:
            entries = walk_storage(storage)
            reporter.start("scan", len(entries), "files")
            for entry in iter_after(entries, after, reporter):
                item = self._item(entry, lambda e: storage.read(e.rel.decode("utf-8")),
                                  lambda e: storage.open_read(e.rel.decode("utf-8")))
                yield without_envelope(item, lambda: storage.read(entry.rel.decode("utf-8")))
        finally:
            storage.close()
