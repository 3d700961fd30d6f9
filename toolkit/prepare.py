"""The pure, per-mail part of ingest: journal unwrap, hash, header scan, compress + seal.

``prepare`` has no shared state and touches no storage or catalog, so it runs
inline or in worker processes (docs/architecture.md); the pack task
(:mod:`toolkit.pack_tasks`) prepares each mail it reads, then seals and writes it.

The per-mail watchdog: journal unwrapping and the header scan of one mail
run under a hard time limit (``limit`` seconds, ``DEFAULT_PARSE_LIMIT``
unless the caller says otherwise). It is a SIGALRM timer whose handler
raises in the running code: Python code is interrupted between bytecodes,
and the ``re`` engine checks for signals while it matches, so even a
backtracking regex is stopped. A mail that runs out of time is archived
as it came (its bytes unchanged, a journal report not unwrapped) with the
defect ``parse-timeout`` and what :func:`fallback_scan` reads. The timer
only exists in a process's main thread (worker processes, or the CLI
running a chunk inline); elsewhere the scan's own soft deadline applies.
With ``cancel`` (inline preparation in the driver) the timer ticks and
raises :class:`Cancelled` once ``cancel()`` is true, so a stop request is
not held up by a slow mail.
"""
from __future__ import annotations

import dataclasses
import hashlib
import marshal
import operator
import signal
import threading
import time
import uuid as uuidlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable, Iterator, NamedTuple

from . import faults
from .headers import BodyHasher, MailMeta, Split, fallback_scan, scan, split_mail
from .journal import is_journal_report, parse_journal_report
from .pack import seal_record
from .source import SourceMail, Unsupported, read_regular_file


@dataclass
class Envelope:
    text: str
    sha256: str
    recipients: list[tuple[str, str]]        # (kind envelope|bcc, address), deduplicated, in order


@dataclass
class Prepared:
    blob_id: str
    meta: MailMeta
    data: bytes | None = None                 # the bytes to archive when they differ from the source item's raw
    envelope: Envelope | None = None
    defects: list[str] = field(default_factory=list)
    record: bytes | None = None
    csize: int = 0
    sealed_for: bytes | None = None           # pack id the record was sealed for
    streamed: bool = False                    # a large mail: never in memory whole, stored with add_stream
    size: int = 0                             # bytes archived (of ``data``, or of the source item's bytes)
    #: what a LocalFile's ``cut`` removed and noted (:class:`Trimmed`): the driver puts it on the source item
    source_note: "Trimmed | None" = None

    def __reduce__(self):
        """Pickled as two tuples of field values (the mail's and its MailMeta's), not as two objects with
        their field names: a pack task hands back ~1,600 of these; this halves the worker's pickling and
        the driver's unpickling builds the same objects (tests/unit/test_prepared_pickle.py)."""
        values = [self.__dict__[k] for k in _PREPARED_FIELDS]
        if type(self.meta) is MailMeta:
            values[1] = _meta_values(self.meta)
        return _prepared, (tuple(values),)


def _prepared(values: tuple) -> Prepared:
    """:meth:`Prepared.__reduce__`'s way back."""
    p = Prepared.__new__(Prepared)
    if type(values[1]) is tuple:
        values = (values[0], MailMeta(*values[1]), *values[2:])
    p.__dict__.update(zip(_PREPARED_FIELDS, values))
    return p


_PREPARED_FIELDS = tuple(f.name for f in dataclasses.fields(Prepared))
_meta_values = operator.attrgetter(*(f.name for f in dataclasses.fields(MailMeta)))
assert _PREPARED_FIELDS[1] == "meta" and all(f.init for f in dataclasses.fields(MailMeta))


class PreparedBatch(list):
    """What one pack task prepared, in order (a :class:`Prepared`, :class:`ReadFailure` or :class:`NotMail`
    per job), as it travels to the driver (the two-phase question, or :class:`toolkit.pack_tasks.PackResult`).

    It pickles as one ``marshal`` string of plain values (a row per usual Prepared: its blob id, its
    MailMeta's fields, the sent date as days/seconds/microseconds after 1970 UTC, defects and sizes) and a
    list of everything else, pickled as before (:meth:`Prepared.__reduce__`): a Prepared holding data, a
    record, an envelope or a source note, one dated in another zone, a ReadFailure, a NotMail. Pickle
    keeps a memo entry and a few opcodes per value; marshal writes the values flat: the worker's pickling
    of a task's ~1,600 mails costs ~0.4x of before, the driver's unpickling ~0.8x (bench/RESULTS.md "Worker
    CPU of import eml|maildir|mbox, round 2"). It comes back as a plain ``list`` equal to the one sent,
    field by field and type by type (tests/unit/test_prepared_pickle.py)."""

    __slots__ = ()

    def __reduce__(self):
        rows: list = []
        others: list = []
        for item in self:
            row = _plain_row(item) if type(item) is Prepared else None
            if row is None:
                rows.append(None)
                others.append(item)
            else:
                rows.append(row)
        try:
            flat = marshal.dumps(rows)
        except ValueError:  # a value marshal does not write (never for scan's types): every item as before
            return list, (list(self),)
        return _unbatch, (flat, others)


_UTC = timezone.utc
_EPOCH = datetime(1970, 1, 1, tzinfo=_UTC)


def _plain_row(p: Prepared) -> tuple | None:
    """The values of a usual Prepared (see :class:`PreparedBatch`), or None when it is not one."""
    d = p.__dict__
    meta = d["meta"]
    if (type(meta) is not MailMeta or d["data"] is not None or d["envelope"] is not None or d["record"] is not None
            or d["sealed_for"] is not None or d["streamed"] is not False or d["source_note"] is not None):
        return None
    sent = meta.sent_date
    if sent is not None:
        if type(sent) is not datetime or sent.tzinfo is not _UTC:
            return None
        delta = sent - _EPOCH
        sent = (delta.days, delta.seconds, delta.microseconds)
    return (d["blob_id"], meta.message_id, meta.subject, meta.from_addr, meta.from_name, meta.to, meta.cc,
            meta.bcc, sent, meta.spam, meta.defects, meta.body_hash, meta.dedup_key, meta.header_size,
            meta.journal, d["defects"], d["csize"], d["size"])


def _unbatch(flat: bytes, others: list) -> list:
    """:meth:`PreparedBatch.__reduce__`'s way back: the plain list of the items sent."""
    out = []
    rest = iter(others)
    new, epoch, delta = Prepared.__new__, _EPOCH, timedelta
    for row in marshal.loads(flat):
        if row is None:
            out.append(next(rest))
            continue
        blob, mid, subject, from_addr, from_name, to, cc, bcc, sent, spam, mdefects, body, dkey, hsize, journal, \
            defects, csize, size = row
        p = new(Prepared)
        p.__dict__.update(  # in field order, as Prepared's __init__ sets them
            blob_id=blob,
            meta=MailMeta(mid, subject, from_addr, from_name, to, cc, bcc, None if sent is None else epoch + delta(*sent),
                          spam, mdefects, body, dkey, hsize, journal),
            data=None, envelope=None, defects=defects, record=None, csize=csize, sealed_for=None, streamed=False,
            size=size, source_note=None)
        out.append(p)
    return out


# the row layout above names every field: a field added to either class must be added there too
assert _PREPARED_FIELDS == ("blob_id", "meta", "data", "envelope", "defects", "record", "csize", "sealed_for",
                            "streamed", "size", "source_note")
assert tuple(f.name for f in dataclasses.fields(MailMeta)) == (
    "message_id", "subject", "from_addr", "from_name", "to", "cc", "bcc", "sent_date", "spam", "defects",
    "body_hash", "dedup_key", "header_size", "journal")


class LocalFile(NamedTuple):
    """A job for :func:`toolkit.pack_tasks.build_pack`: read this local file first (in the worker). ``check``: a
    module-level function of the bytes that returns why they are not mail (a reason, a NotMail, or None), run
    there too."""

    path: bytes
    check: "Callable[[bytes], str | NotMail | None] | None" = None
    #: a module-level function of the bytes read that removes what is not the message (a leading From_
    #: line: importers/eml.py) and says so (a :class:`Trimmed`), or returns None when nothing is removed
    cut: "Callable[[bytes], Trimmed | NotMail | None] | None" = None


class Trimmed(NamedTuple):
    """What a LocalFile's ``cut`` removed: the message's bytes, how many bytes came before them, and the
    source item's fields that record it (flags, internal_date, date_source)."""

    raw: bytes
    removed: int
    note: dict


class NotMail(NamedTuple):
    """What :func:`toolkit.pack_tasks.build_pack` returns for a LocalFile whose ``check`` found no mail in it
    (listed as skipped), or whose ``cut`` found mail it must not archive as one message, or mail in a form no
    importer archives (``error``: listed as an error; a whole mbox given to ``import eml``, a
    :class:`toolkit.source.Unsupported` answer)."""

    reason: str
    error: bool = False


class ReadFailure(NamedTuple):
    """What :func:`toolkit.pack_tasks.build_pack` returns for a LocalFile it could not read."""

    errno: int
    message: str


DEFAULT_PARSE_LIMIT = 20.0   # seconds one mail's unwrap + header scan may take
_TICK = 0.2                  # how often the timer looks at ``cancel``


class ParseTimeout(BaseException):
    """One mail's preparation ran past its limit (raised by the watchdog's timer; a BaseException so that
    the scan's own ``except Exception`` cannot swallow it)."""


class Cancelled(BaseException):
    """A stop was requested while a chunk was prepared inline."""


class Watchdog:
    """The SIGALRM handler of a run of mails, installed once; :meth:`armed` times one mail.

    Only usable in a process's main thread; :meth:`install` gives None elsewhere.

    Arming a mail costs no system call in the common case: the alarm is a one-shot timer that stays set
    from one mail to the next. :meth:`arm` records the mail's end and sets the timer only when none is due
    by then; :meth:`disarm` forgets the end and leaves the timer be. When the alarm comes, the handler
    looks at the end of the mail armed at that moment: none, and the timer stays off until the next
    :meth:`arm`; a later one (another mail than the one it was set for), and it sets the timer for that
    end; passed, and it raises :class:`ParseTimeout` and repeats every ``_REPEAT`` seconds until
    :meth:`disarm`. So an alarm comes at most once per ``limit`` seconds outside a late mail, and a mail
    is still stopped at its own end. (Before: two ``setitimer`` calls per mail, ~1.5 µs, and the Python
    around them; bench/RESULTS.md "Worker CPU of import eml".) With ``cancel`` the timer ticks every
    ``_TICK`` seconds while a mail is armed, and only then.
    """

    def __init__(self, cancel: Callable[[], bool] | None):
        self.cancel = cancel
        self.end: float | None = None
        #: the limit passed while armed (set before raising: the ParseTimeout may land in a frame that
        #: swallows it, a gc or weakref callback, and the work then goes on; :meth:`disarm` tells)
        self.fired = False
        #: when the alarm set last is due (monotonic clock); None: no alarm is set
        self._due: float | None = None

    def _on_alarm(self, signum, frame) -> None:
        if self.cancel is not None:
            if self.cancel():
                raise Cancelled()
            if self.end is not None and time.monotonic() >= self.end:
                self.fired = True
                if not _ends_timing(frame):
                    raise ParseTimeout()
            return
        self._due = None
        end = self.end
        if end is None:  # no mail armed: the timer stays off until the next arm
            return
        now = time.monotonic()
        if now < end:  # set for an earlier mail: now for the one armed
            self._set(end - now, now)
            return
        self.fired = True
        if _ends_timing(frame):  # landed where the timing ends, which reports it: raised there, it would leave the
            return               # timer repeating and the mail armed (the next alarm raising after the caller's catch)
        # again every _REPEAT seconds, in case this one lands where it is not raised (it is a BaseException)
        signal.setitimer(signal.ITIMER_REAL, _REPEAT, _REPEAT)
        self._due = now
        raise ParseTimeout()

    def _set(self, seconds: float, now: float) -> None:
        self._due = now + seconds
        signal.setitimer(signal.ITIMER_REAL, seconds, 0)

    @classmethod
    @contextmanager
    def install(cls, cancel: Callable[[], bool] | None = None) -> Iterator[Watchdog | None]:
        if threading.current_thread() is not threading.main_thread():
            yield None
            return
        dog = cls(cancel)
        outer = _INSTALLED[-1] if _INSTALLED else None
        previous = signal.signal(signal.SIGALRM, dog._on_alarm)
        _INSTALLED.append(dog)
        try:
            yield dog
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
            _INSTALLED.pop()
            if outer is not None:  # its alarm went with ours: set again for the mail it has armed, if any
                outer._resume()

    def _resume(self) -> None:
        self._due = None
        if self.end is None:
            return
        now = time.monotonic()
        remaining = max(self.end - now, 1e-3)
        if self.cancel is not None:
            signal.setitimer(signal.ITIMER_REAL, min(remaining, _TICK), _TICK)
        else:
            self._set(remaining, now)

    def arm(self, limit: float | None) -> None:
        """From now on, raise :class:`ParseTimeout` once ``limit`` seconds have passed (and, with
        ``cancel``, :class:`Cancelled` within ``_TICK`` seconds of ``cancel()`` becoming true)."""
        if not limit or limit <= 0:
            if self.cancel is None:
                return
            limit = 1e9
        now = time.monotonic()
        self.end = end = now + limit
        self.fired = False
        if self.cancel is not None:
            signal.setitimer(signal.ITIMER_REAL, min(limit, _TICK), _TICK)
        elif self._due is None or self._due > end or self._due < now - 1.0:
            self._set(limit, now)  # no alarm comes by this mail's end (or the one due long ago never came)

    def disarm(self) -> bool:
        """Stop timing; True when the limit passed meanwhile: the alarm fired (even if its ParseTimeout was
        swallowed), or the block ended after its limit before the alarm's handler could run (a signal is
        handled between bytecodes: a block that ends in C code right after the limit would otherwise pass)."""
        end, self.end = self.end, None  # first: an alarm already on its way then raises nothing
        fired = self.fired
        if fired or self.cancel is not None:  # a repeating timer: stopped (a one-shot one may stay)
            signal.setitimer(signal.ITIMER_REAL, 0)
            self._due = None
        fired = fired or self.fired or (end is not None and time.monotonic() >= end)
        self.fired = False
        return fired

    def armed(self, limit: float | None) -> _Armed:
        """Run the block under ``limit``; a block that ran past it ends in ParseTimeout, also when the
        alarm's exception was swallowed on the way (its result came too late and is not used)."""
        return _Armed(self, limit)


class _Armed:
    """:meth:`Watchdog.armed`'s context manager. A class, not a generator: its ``__exit__`` is the first code the
    block's end runs, and the alarm's handler knows it (:func:`_ends_timing`), as it knows :meth:`Watchdog.disarm`
    (a generator's end passes through contextlib first, where the alarm would raise before the timer is stopped)."""

    __slots__ = ("dog", "limit")

    def __init__(self, dog: Watchdog, limit: float | None):
        self.dog, self.limit = dog, limit

    def __enter__(self) -> None:
        self.dog.arm(self.limit)

    def __exit__(self, kind, value, traceback) -> None:
        late = self.dog.disarm()
        if late and kind is None:  # (an exception of the block's own goes on as it is)
            raise ParseTimeout()


#: the code where a mail's timing ends; the alarm raises nothing while it runs. The interpreter handles a signal
#: also on a function's first instruction: an alarm there would raise before the timer is stopped, leave it
#: repeating and the mail armed, and raise again after the caller had caught the first (a loop's own catch then
#: fails; tests/unit/test_watchdog_lazy.py). disarm() reports it instead: the limit passed.
_TIMING_ENDS = frozenset({Watchdog.disarm.__code__, _Armed.__exit__.__code__})


def _ends_timing(frame) -> bool:
    return frame is not None and frame.f_code in _TIMING_ENDS


#: the watchdogs installed in the main thread, innermost last (one nested in another takes the signal
#: while it is installed, then the outer one's alarm is set again)
_INSTALLED: list[Watchdog] = []
_REPEAT = 0.05


@contextmanager
def watchdog(limit: float | None, cancel: Callable[[], bool] | None = None) -> Iterator[None]:
    """One mail's :meth:`Watchdog.armed` with its own handler (see the module docstring)."""
    with Watchdog.install(cancel) as dog:
        if dog is None:
            yield
        else:
            with dog.armed(limit):
                yield


def unwrap(raw: bytes) -> tuple[bytes, Envelope | None, list[str]]:
    """The bytes to archive, the journal envelope if any, and journal defects."""
    return unwrap_split(raw)[:3]


_JOURNAL_NAME = b"x-ms-journal-report"


def unwrap_split(raw: bytes) -> tuple[bytes, Envelope | None, list[str], Split]:
    """:func:`unwrap`, and the header split of the bytes to archive (each mail is split into header block
    and body once, here; the journal check, the journal parse and the header scan share it)."""
    split = split_mail(raw)
    # no field name of a journal report in any case: not one (its test is a case-blind regex of the block)
    if _JOURNAL_NAME not in split.block.lower() or not is_journal_report(raw, split):
        return raw, None, [], split
    report = parse_journal_report(raw, split)
    if report is None:  # a look-alike: an ordinary mail
        return raw, None, [], split
    if report.original is None:  # nothing to unwrap: keep the report itself, flagged (D13)
        return raw, None, list(report.defects) or ["journal-no-original"], split
    seen: set[tuple[str, str]] = set()
    recipients = []
    for r in report.recipients:
        key = (r.kind, r.address)
        if key not in seen:
            seen.add(key)
            recipients.append(key)
    text = report.envelope_text
    if report.outer_envelope_text:
        text = report.outer_envelope_text + "\n--- inner journal envelope ---\n" + text
    env = Envelope(text=text, sha256=hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest(), recipients=recipients)
    return report.original, env, ["journal-unwrapped", *report.defects], report.original_split


def prepare(raw: bytes, pack_key: bytes | None, archive_uuid: uuidlib.UUID | None, pack_id: bytes | None,
            limit: float | None = DEFAULT_PARSE_LIMIT, dog: Watchdog | None = None,
            raw_sha256: bytes | None = None) -> Prepared:
    """Prepare one mail; with ``dog`` (installed by the caller) its parse runs under ``limit``.
    ``raw_sha256``: the SHA-256 digest of ``raw`` when the caller has it (a pack task hashes its mails in
    batches: toolkit/blob_ids.py); it is the blob id when the bytes archived are ``raw`` itself, and not
    used when they are a journal report's unwrapped original."""
    try:
        if dog is not None:
            dog.arm(limit)
        try:
            faults.hit("prepare_parse")
            data, envelope, defects, split = unwrap_split(raw)
            meta = scan(data, split=split)
        finally:
            late = dog.disarm() if dog is not None else False
        if late:  # past the limit, its ParseTimeout swallowed on the way: the same as a timeout
            raise ParseTimeout()
    except ParseTimeout:  # archived as it came, with what a bounded line scan reads
        if dog is not None:
            dog.disarm()  # again: the alarm may have come before the disarm above
        data, envelope, defects = raw, None, []
        meta = fallback_scan(raw)
    blob = raw_sha256 if raw_sha256 is not None and data is raw else hashlib.sha256(data).digest()
    p = Prepared(blob_id=blob.hex(), meta=meta, data=data if data is not raw else None, envelope=envelope, defects=defects,
                 size=len(data))
    if pack_key is not None:
        p.record, p.csize = seal_record(pack_key, archive_uuid, blob, data, check=False)
        p.sealed_for = pack_id
    return p


def read_by_task(item: SourceMail) -> bool:
    """Is a source's mail read by its pack task (its bytes, a local file, a job
    that reads itself), not streamed by the driver?"""
    return item.raw is not None or item.path is not None or item.job is not None


def task_job(item: SourceMail):
    """What the pack task gets for a mail it reads (:func:`read_by_task`): its bytes, a :class:`LocalFile`, or the
    importer's own job. The driver's tasks (toolkit/ingest.py) and the tasks the start-up sends ahead
    (toolkit/early_tasks.py) make their jobs here, so that the run can tell the latter's jobs its own."""
    if item.raw is not None:
        return item.raw
    return item.job if item.job is not None else LocalFile(item.path, item.content_check, item.envelope_cut)


def chunk_jobs(chunk: list) -> list:
    """The jobs of a chunk's mails that its pack task reads, in order (what is not mail, and mail the driver
    streams, have none)."""
    return [task_job(it) for it in chunk if isinstance(it, SourceMail) and read_by_task(it)]


def read_job(job) -> bytes | Trimmed | ReadFailure | NotMail:
    """A job's mail bytes: the bytes themselves, a :class:`LocalFile` read (cut and checked) here, or what a
    job that reads itself returns from its ``read()`` (a :class:`toolkit.file_region.FileRegion`).

    A file its ``cut`` trims comes back as :class:`Trimmed`; the content check is then not run (the
    From_ line and the header block after it are what made it a mail: importers/eml.py)."""
    if not isinstance(job, LocalFile):
        read = getattr(job, "read", None)  # bytes have none
        return job if read is None else read()
    try:
        raw = read_regular_file(job.path)
    except OSError as exc:
        return ReadFailure(exc.errno or 0, exc.strerror or str(exc))
    if job.cut is not None and (trimmed := job.cut(raw)) is not None:
        return trimmed
    if job.check is not None and (reason := job.check(raw)) is not None:
        return reason if isinstance(reason, NotMail) else NotMail(str(reason), isinstance(reason, Unsupported))
    return raw


STREAM_CHUNK = 1 << 20
MAX_HEADER_BLOCK = 1 << 20


def prepare_streamed(opener, limit: float | None = DEFAULT_PARSE_LIMIT,
                     cancel: Callable[[], bool] | None = None) -> Prepared:
    """Hash and scan a large mail in one streaming pass (bounded memory).

    Journal reports this large are archived as they are, flagged: unwrapping
    needs the whole report in memory.
    """
    blob = hashlib.sha256()
    body = BodyHasher()
    head = bytearray()
    in_body = False
    size = 0
    with opener() as f:
        while True:
            chunk = f.read(STREAM_CHUNK)
            if not chunk:
                break
            size += len(chunk)
            blob.update(chunk)
            if in_body:
                body.update(chunk)
                continue
            head += chunk
            sep = _separator(head)
            if sep is not None:
                header_end, body_start = sep
                body.update(bytes(head[body_start:]))
                del head[header_end:]
                in_body = True
            elif len(head) > MAX_HEADER_BLOCK:
                in_body = True  # no separator in the first MiB: the scan below records the defect
                body.update(bytes(head))
                del head[MAX_HEADER_BLOCK:]
    header = bytes(head) + (b"\n" if in_body else b"")
    body_hash = body.digest()
    try:
        with watchdog(limit, cancel):
            faults.hit("prepare_parse")
            meta = scan(header, body_hash=body_hash)
    except ParseTimeout:
        meta = fallback_scan(header, body_hash=body_hash)
    defects = ["large-mail-streamed"]
    if meta.journal:
        defects.append("journal-not-unwrapped-large")
    return Prepared(blob_id=blob.hexdigest(), meta=meta, defects=defects, streamed=True, size=size)


def _separator(head: bytearray) -> tuple[int, int] | None:
    """(end of the header block incl. its last line break, start of the body) once the blank line is seen."""
    i = head.find(b"\n\n")
    j = head.find(b"\n\r\n", 0, i if i >= 0 else len(head))
    if j >= 0:
        return j + 1, j + 3
    if i >= 0:
        return i + 1, i + 2
    return None
