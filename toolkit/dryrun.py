"""``import --dry-run``: what an import would read, skip and archive, from a scan that writes nothing.

The source is scanned from where a real run would start (the committed cursor;
from the start after a completed run of a non-incremental source). Each mail
is hashed and its headers scanned exactly as the import does (``prepare``
without sealing), and its blob id and dedup key are looked up in the catalog
and among the mails scanned before it: a hit on either is a duplicate, the
rest would be archived. The catalog's keys are held as sorted 60-bit prefixes
(as an import run holds them, docs/dedup.md); a mail whose prefix is there is
looked up exactly, in batches, and the mails after it wait for that batch, so
that every decision is made in the source's order. Nothing is written: no run row, no cursor, no pack, no
catalog change; the catalog is opened for reading only (no writer lock).

Approximations, stated in the result: a journal report whose wrapped mail is
already archived counts as a duplicate (the real run merges its envelope), and
a mail whose Message-ID only collides is counted as archived (as the real run
stores it, flagged).
"""
from __future__ import annotations

from array import array
from dataclasses import dataclass, field

from .known_keys import KnownKeys

from .archive import Archive
from .catalog import ingest_rows as store
from .prepare import NotMail, ReadFailure, Trimmed, prepare, prepare_streamed, read_job, task_job
from .problem_list import ProblemList
from .reporter import NullReporter, Reporter
from .source import Importer, SourceMail, SourceProblem, SourceSkip


@dataclass
class DryRunSummary:
    source_uri: str
    read: int = 0
    bytes: int = 0
    would_archive: int = 0
    would_archive_bytes: int = 0
    duplicates: int = 0
    skipped: int = 0
    errors: int = 0
    problems: ProblemList = field(default_factory=ProblemList)  # as an import's (toolkit/problem_list.py)

    def as_dict(self) -> dict:
        return {"source": self.source_uri, "read": self.read, "bytes": self.bytes,
                "would_archive": self.would_archive, "would_archive_bytes": self.would_archive_bytes,
                "duplicates": self.duplicates, "skipped": self.skipped, "errors": self.errors,
                "problems": self.problems}


#: mails that wait for one exact lookup in the catalog (their keys' prefixes were there): one lookup in a catalog
#: of a million mails takes ~0.15 s for 2,048 keys or 16,384 alike (a join over its key columns)
LOOKUP_BATCH = 16384


class _Tally:
    """The duplicate decisions of a dry run, in source order: the catalog's keys as prefixes (8 bytes a key,
    not a Python string: a catalog of a million mails held ~600 MB as sets of strings, docs/reliability.md
    K8), this run's would-be-archived keys exactly."""

    def __init__(self, archive: Archive, summary: DryRunSummary):
        blobs, keys, _, _ = store.known_at_start(archive.catalog, None)
        self._catalog, self._s = archive.catalog, summary
        self._known = KnownKeys.from_sorted(blobs, keys, array("Q"))
        self._blobs: set[str] = set()
        self._keys: set[str] = set()
        self._waiting: list[tuple[str, str, int]] = []  # (blob id, dedup key, length), in order

    def add(self, blob_id: str, key: str, length: int) -> None:
        if self._waiting or self._known.may_hold(blob_id, key, None):
            self._waiting.append((blob_id, key, length))
            if len(self._waiting) >= LOOKUP_BATCH:
                self.settle()
        else:
            self._decide(blob_id, key, length, False)

    def settle(self) -> None:
        """Decide the waiting mails, in order, with one lookup of their keys."""
        if not self._waiting:
            return
        blobs, keys, _ = store.lookup_keys(self._catalog, [w[0] for w in self._waiting],
                                           [w[1] for w in self._waiting], [None] * len(self._waiting))
        for blob_id, key, length in self._waiting:
            self._decide(blob_id, key, length, blob_id in blobs or key in keys)
        self._waiting = []

    def _decide(self, blob_id: str, key: str, length: int, archived: bool) -> None:
        if archived or blob_id in self._blobs or key in self._keys:
            self._s.duplicates += 1
        else:
            self._s.would_archive += 1
            self._s.would_archive_bytes += length
            self._blobs.add(blob_id)
            self._keys.add(key)


def dry_run(archive: Archive, importer: Importer, reporter: Reporter | None = None) -> DryRunSummary:
    reporter = reporter or NullReporter()
    s = DryRunSummary(importer.source_uri)
    with archive.catalog.reading() as con:
        stored = store.stored_cursor(con, importer.source_uri)
        cursor = store.resume_point(stored, getattr(importer, "incremental", False))
    tally = _Tally(archive, s)
    if getattr(importer, "fetch_in_tasks", False):  # no pack tasks here: the reader fetches the mails itself
        importer.fetch_in_tasks = False
    reporter.start("dry-run", None, "mails")
    try:
        for item in importer.scan(cursor, reporter):
            if isinstance(item, SourceSkip):
                s.skipped += 1
                s.problems.append({"ref": item.ref, "kind": "skipped", "message": item.reason})
                continue
            if isinstance(item, SourceProblem):
                s.errors += 1
                s.problems.append({"ref": item.ref, "kind": "error", "message": item.message})
                continue
            if not isinstance(item, SourceMail):
                continue
            try:
                if item.raw is not None:
                    p = prepare(item.raw, None, archive.uuid, None)
                elif item.job is not None:  # a region of a local mbox, a share file, a remote mail: read here
                    p = prepare(item.content(), None, archive.uuid, None)
                elif item.path is not None:  # a local file, checked and its From_ line cut as the pack task does
                    got = read_job(task_job(item))
                    if isinstance(got, ReadFailure):
                        raise OSError(got.errno, got.message)
                    if isinstance(got, NotMail):
                        if got.error:
                            s.errors += 1
                        else:
                            s.skipped += 1
                        s.problems.append({"ref": item.ref, "kind": "error" if got.error else "skipped",
                                           "message": got.reason})
                        continue
                    p = prepare(got.raw if isinstance(got, Trimmed) else got, None, archive.uuid, None)
                else:
                    p = prepare_streamed(item.opener)
            except OSError as exc:
                s.errors += 1
                s.problems.append({"ref": item.ref, "kind": "error", "message": f"cannot read: {exc.strerror or exc}"})
                continue
            s.read += 1
            s.bytes += item.length
            tally.add(p.blob_id, p.meta.dedup_key.hex(), item.length)
            reporter.advance("dry-run", 1, bytes=item.length)
        tally.settle()
    finally:
        reporter.finish("dry-run")
    return s
