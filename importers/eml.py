"""``import eml``: one message per file, from files and directory trees, local or on an SMB share."""
from __future__ import annotations

import os
from typing import Iterator

from toolkit.errors import SourceError, StorageError
from toolkit.reporter import Reporter
from toolkit.source import SourceItem, SourceMail, SourceProblem, SourceSkip
from toolkit.storage import open_storage

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
            yield self._item(entry, lambda e: read_local(root, e, single), lambda e: open_local(root, e, single),
                             local_path(root, entry, single))

    def _scan_smb(self, after: bytes | None, reporter: Reporter) -> Iterator[SourceItem]:
        try:
            storage = open_storage(self.location, self._smb_password)
        except StorageError as exc:
            raise SourceError(f"{self.location}: {exc}") from None
        try:
            entries = walk_storage(storage)
            reporter.start("scan", len(entries), "files")
            for entry in iter_after(entries, after, reporter):
                yield self._item(entry, lambda e: storage.read(e.rel.decode("utf-8")),
                                 lambda e: storage.open_read(e.rel.decode("utf-8")))
        finally:
            storage.close()
