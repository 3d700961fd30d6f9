"""The bounded hand-over of one source's items from its reader thread to the one committer."""
from __future__ import annotations

import threading
from collections import deque
from typing import Any, Iterator

from ..source import SourceMail

MAX_ITEMS = 50_000  # items held per source besides the byte bound (local files hold only their path)
#: What an item costs in memory besides its mail bytes (its ref, cursor, flags, a job; ~0.9 KB measured for
#: an IMAP item): counted against the byte bound, so that sources whose items hold no bytes (local files,
#: IMAP mails the pack tasks fetch) are bounded in memory too, not only in count
ITEM_BYTES = 1024


class Cancelled(Exception):
    """The run stops: the reader ends without reading further (nothing it read was committed)."""


def held_bytes(item: Any) -> int:
    """Bytes of mail an item holds in memory (a local file, a streamed or a remote mail hold none until read)."""
    return len(item.raw) if isinstance(item, SourceMail) and item.raw is not None else 0


def _cost(item: Any) -> int:
    return held_bytes(item) + ITEM_BYTES


class Feed:
    """Items in source order. ``put`` blocks while ``limit`` bytes (mail bytes plus ITEM_BYTES per item, or
    MAX_ITEMS items) wait; the
    committer iterates; ``close(error)`` ends the items, and the error is raised after the last one."""

    def __init__(self, limit: int):
        self.limit = limit
        self._items: deque = deque()
        self._bytes = 0
        self._cond = threading.Condition()
        self._closed = False
        self._error: BaseException | None = None
        self._cancelled = False
        self.delivered = 0  # items put so far

    def put(self, item: Any) -> None:
        size = _cost(item)
        with self._cond:
            while self._items and (self._bytes + size > self.limit or len(self._items) >= MAX_ITEMS):
                if self._cancelled:
                    break
                self._cond.wait(0.5)
            if self._cancelled:
                raise Cancelled()
            self._items.append(item)
            self._bytes += size
            self.delivered += 1
            self._cond.notify_all()

    def close(self, error: BaseException | None = None) -> None:
        with self._cond:
            self._closed, self._error = True, error
            self._cond.notify_all()

    def cancel(self) -> None:
        with self._cond:
            self._cancelled = True
            self._cond.notify_all()

    def __iter__(self) -> Iterator[Any]:
        while True:
            with self._cond:
                while not self._items and not self._closed and not self._cancelled:
                    self._cond.wait(0.5)
                if self._items:
                    item = self._items.popleft()
                    self._bytes -= _cost(item)
                    self._cond.notify_all()
                elif self._cancelled and not self._closed:
                    raise Cancelled()  # never an end of items: the source must not count as exhausted
                else:
                    if self._error is not None:
                        raise self._error
                    return
            yield item


class FedImporter:
    """What the ingest driver sees of a source whose items a reader thread already reads."""

    def __init__(self, importer: Any, feed: Feed, cursor: Any):
        self.source_uri = importer.source_uri
        self.via = importer.via
        self.incremental = getattr(importer, "incremental", False)
        self.owner = getattr(importer, "owner", None)
        self._feed, self._cursor = feed, cursor

    def scan(self, cursor: Any, reporter: Any) -> Iterator[Any]:
        if cursor != self._cursor:  # only this run writes the catalog: the cursor cannot have moved
            raise RuntimeError(f"{self.source_uri}: the committed cursor changed while its reader ran")
        return iter(self._feed)
