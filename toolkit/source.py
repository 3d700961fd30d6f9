"""What importers hand to the pipeline, and what they promise (DESIGN §3, §6).

An importer never sees keys, packs or the catalog: it yields SourceMail items
in a stable order and says, per item, what the source cursor becomes once
that item (and all before it) is committed.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Callable, Iterator, Protocol

from .reporter import Reporter


@dataclass
class SourceMail:
    """One mail. Large mails come as ``raw=None`` with ``size`` and ``opener`` and are streamed."""

    raw: bytes | None
    ref: str                              # where it came from: a path, "path@offset", "INBOX;uid=7"
    folder: str | None = None
    flags: tuple[str, ...] = ()
    internal_date: dt.datetime | None = None
    cursor: Any = None                    # JSON-able cursor state after this item
    size: int | None = None               # with opener: the byte count
    opener: Callable[[], BinaryIO] | None = None

    @property
    def length(self) -> int:
        return len(self.raw) if self.raw is not None else (self.size or 0)


@dataclass
class SourceProblem:
    """An item that could not be read: listed in the run summary, never silently dropped."""

    ref: str
    message: str
    cursor: Any = None


@dataclass
class SourceSkip:
    """An entry that is deliberately not a mail (a symlink out of the root, a FIFO): listed."""

    ref: str
    reason: str
    cursor: Any = None


SourceItem = SourceMail | SourceProblem | SourceSkip


class Importer(Protocol):
    #: Identifies the source for cursors and sightings (no secrets).
    source_uri: str
    #: How the mail arrived ("eml", "mbox", "imap", ...), stored in sightings.via.
    via: str

    def scan(self, cursor: Any, reporter: Reporter) -> Iterator[SourceItem]:
        """Yield items after ``cursor`` (None: from the start)."""
        ...


@dataclass
class RunSummary:
    run_id: int
    source_uri: str
    seen: int = 0
    archived: int = 0
    duplicates: int = 0
    merged: int = 0
    errors: int = 0
    skipped: int = 0
    bytes: int = 0
    seconds: float = 0.0
    decisions: dict[str, int] = field(default_factory=dict)
    problems: list[dict] = field(default_factory=list)
    packs: int = 0
    status: str = "running"

    def as_dict(self) -> dict:
        return {
            "run_id": self.run_id,
            "source": self.source_uri,
            "status": self.status,
            "seen": self.seen,
            "archived": self.archived,
            "duplicates": self.duplicates,
            "merged": self.merged,
            "errors": self.errors,
            "skipped": self.skipped,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
            "packs": self.packs,
            "decisions": dict(self.decisions),
            "problems": self.problems,
        }
