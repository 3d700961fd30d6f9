"""What importers hand to the pipeline, and what they promise (docs/architecture.md, docs/dedup.md).

An importer never sees keys, packs or the catalog: it yields SourceMail items
in a stable order and says, per item, what the source cursor becomes once
that item (and all before it) is committed.
"""
from __future__ import annotations

import datetime as dt
import os
import stat
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Callable, Iterator, Protocol

from .problem_list import ProblemList
from .read_ahead import cached
from .reporter import Reporter


#: the sources of an internal date (``SourceMail.date_source``); None means "internal-date" (the importer's own)
DATE_SOURCES = ("imap-internaldate", "maildir-name-time", "file-time", "from-line", "outlook-item-time",
                "emlx-date-received")


@dataclass
class SourceMail:
    """One mail, in one of four forms: ``raw`` bytes; a local file (``raw=None`` with ``path`` and
    ``size``) that the pipeline reads itself, in a worker process, so its bytes never travel between
    processes; a ``job`` that reads itself there (``raw=None`` with ``size``); or a large mail
    (``raw=None`` with ``size`` and ``opener``) that is streamed."""

    raw: bytes | None
    ref: str                              # where it came from: a path, "path@offset", "INBOX;uid=7"
    folder: str | None = None
    flags: tuple[str, ...] = ()
    internal_date: dt.datetime | None = None
    #: where ``internal_date`` comes from (docs/reliability.md J9), named in the ``date-from-…`` flag of a
    #: mail whose Date header is missing or unparsable: one of :data:`DATE_SOURCES`
    date_source: str | None = None
    cursor: Any = None                    # JSON-able cursor state after this item
    size: int | None = None               # with opener or path: the byte count (from the scan)
    opener: Callable[[], BinaryIO] | None = None
    path: bytes | None = None             # a local regular file, read with read_regular_file
    #: what the importer makes of a failed read of ``path`` (a SourceProblem or SourceSkip)
    on_read_error: Callable[[OSError], "SourceItem"] | None = None
    #: with ``path``: a module-level function of the bytes read that says why they are not mail (or None);
    #: the pipeline runs it where it reads the file (in a worker) and lists such a file as skipped
    content_check: Callable[[bytes], Any] | None = None  # a reason, a NotMail (toolkit.prepare) or None
    #: with ``path``: a module-level function that removes a leading From_ line from the bytes read
    #: (``toolkit.prepare.LocalFile.cut``); the pipeline runs it in the worker and puts its note here
    envelope_cut: Callable | None = None
    #: how this mail arrived when it differs from the importer's ``via`` (a mail converted from an
    #: Outlook file inside ``import share`` names its converter: ``msg:mapi2mime/1``)
    via: str | None = None
    #: how many embedded messages (archived as mails of their own) follow this mail in the scan
    embedded: int = 0
    #: the ``ref`` of the mail this one was embedded in (a link recorded in the catalog)
    parent_ref: str | None = None
    #: a job the pipeline hands to its pack task as it is (``raw=None``, ``size`` set), read where the task
    #: runs, so its bytes never pass the driver: a picklable object whose ``read()`` returns the mail's bytes
    #: or a ReadFailure (a region of a local mbox: :class:`toolkit.file_region.FileRegion`; a file on a
    #: share: :class:`toolkit.share_file.ShareFile`), or a batch job the task fetches with others of its
    #: kind (:mod:`toolkit.remote_jobs`; an IMAP UID); a failed read becomes ``on_read_error``'s item
    job: Any = None
    #: folders the mail is in besides ``folder`` (a Takeout mbox's Gmail labels, importers/gmail_labels.py):
    #: one more sighting in each, with the same flags and the decision ``also-in`` (not counted again)
    also_in: tuple[str, ...] = ()
    #: something the user should know about this mail although it was archived (reported as a warning
    #: when its sighting is recorded): a file of several messages archived as one (importers/eml.py)
    warning: str | None = None

    @property
    def length(self) -> int:
        return len(self.raw) if self.raw is not None else (self.size or 0)

    def content(self) -> bytes:
        """The mail's bytes, whichever form it came in (reads a ``path`` or ``opener`` now)."""
        if self.raw is not None:
            return self.raw
        if self.path is not None:
            raw = read_regular_file(self.path)
            trimmed = self.envelope_cut(raw) if self.envelope_cut is not None else None
            if trimmed is not None and not hasattr(trimmed, "raw"):  # a NotMail: nothing of it is archived
                raise ValueError(trimmed.reason)
            return raw if trimmed is None else trimmed.raw  # what the pack task archives (toolkit.prepare.read_job)
        if self.job is not None:
            from .remote_jobs import read_jobs  # the pipeline reads it in a worker; here, on demand

            got = next(read_jobs([self.job]))
            if isinstance(got, bytes):
                return got
            raise OSError(getattr(got, "errno", 0), getattr(got, "message", str(got)))
        with self.opener() as f:
            return f.read()


def read_regular_file(path: bytes) -> bytes:
    """The bytes of a local regular file; a symlink or FIFO swapped in after the scan is never
    followed or read (docs/reliability.md N1): OSError "no longer a regular file"."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(0, "no longer a regular file")
        # One read of the size fstat gave, +1: getting exactly that size is a short read, i.e. the end of
        # the file (a second read only to be told so would cost a system call per mail). Fewer bytes (it
        # shrank, or a file system answered in parts) or one more (it grew since the fstat): read on to
        # the end, so a growing file is never archived cut at the size it had a moment ago.
        data = os.read(fd, min(st.st_size, 1 << 30) + 1)
        if len(data) != st.st_size:
            parts = [data]
            while chunk := os.read(fd, 1 << 20):
                parts.append(chunk)
            data = b"".join(parts) if len(parts) > 1 else data
        return data
    finally:
        os.close(fd)


def will_read(*paths: bytes) -> bool:
    """Ask the kernel to start reading local files that are read soon (``posix_fadvise`` WILLNEED:
    the disk fetches them while the CPUs work on the mails before them), unless they are in the page
    cache already: then a hint only costs system calls (an open, fstat, fadvise and close per file, in
    the driver, beside the worker's own open and read). A few of them (:data:`PROBES`, spread over
    the chunk) are looked at first with a read that never waits for the disk (``RWF_NOWAIT``); the
    hints are given when one of those is not cached, or when that cannot be told (no such read on this
    system or file system). Returns whether hints were given.

    Only a hint: nothing is followed (symlink) or read (FIFO, device), and any error is ignored; the
    read itself checks again. Given a chunk's files in one call, the loop's names are looked up once
    (every local mail passes here)."""
    if not paths or _cached(paths):
        return False
    open_, fstat, fadvise, close = os.open, os.fstat, os.posix_fadvise, os.close
    flags, willneed, regular = _HINT_FLAGS, os.POSIX_FADV_WILLNEED, stat.S_IFREG
    for path in paths:
        try:
            fd = open_(path, flags)
        except OSError:
            continue
        try:
            if fstat(fd).st_mode & 0o170000 == regular:  # S_ISREG
                fadvise(fd, 0, 0, willneed)
        except OSError:
            pass
        finally:
            close(fd)
    return True


#: how many of a chunk's files :func:`will_read` looks at before it hints them all
PROBES = 4
_PROBE_BYTES = 4096  # a file whose first page is cached was read whole before (or is being read)
_HINT_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def _cached(paths: tuple[bytes, ...]) -> bool:
    """Are the first pages of :data:`PROBES` files spread over ``paths`` in the page cache (each read with
    ``RWF_NOWAIT``, which fails with EAGAIN instead of waiting for the disk: :func:`toolkit.read_ahead.cached`)? False
    when one is not, or when it cannot be told; a file that is gone or no regular file tells nothing and is passed
    over."""
    if getattr(os, "RWF_NOWAIT", None) is None:
        return False
    n = len(paths)
    step = max(1, n // PROBES)
    for path in paths[::step][:PROBES]:
        try:
            fd = os.open(path, _HINT_FLAGS)
        except OSError:
            continue
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                continue
            if not cached(fd, 0, _PROBE_BYTES, probes=1):  # not in memory, or cannot be told
                return False
        except OSError:
            return False
        finally:
            os.close(fd)
    return True


class Unsupported(str):
    """A content check's answer (``SourceMail.content_check``) for a file that holds mail in a form no
    importer archives (an Outlook Express mailbox, a mail saved as UTF-16 text): listed as an error naming
    the next step, never as a skip "not mail" (importers/share.py ``unsupported_mail``)."""


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
    problems: ProblemList = field(default_factory=ProblemList)  # {"ref", "kind", "message"} each, in columns (K8)
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
