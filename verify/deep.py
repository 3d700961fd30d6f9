"""Full verification: read every pack once and prove the catalog from it (docs/verification.md, docs/reliability.md F, H5, I).

Per pack, one task (fanned out over a ProcessPoolExecutor) opens the pack
with :class:`toolkit.pack.PackReader` and makes one sequential pass
(:meth:`~toolkit.pack.PackReader.check_all` with the catalog's entries, ``verify_all``'s results): the file's BLAKE3, every record
authenticated and decompressed within its authenticated size, its SHA-256
equal to its blob id, and the key of the header fields the catalog holds
re-derived from the mail (:func:`verify.mailkey.mail_key`), which the parent
compares with the row's. So an edited catalog row is found whether or not a
stamp covers it.

Each task carries its pack's entries (one short query, plain tuples). In the same
catalog session, while the workers start, the parent reads every row's F04 key;
then it runs the quick checks (``run_full``'s ``alongside``, from
:func:`verify.checks.verify_archive`; first of all where the workers already read the
packs, docs/reliability.md K8), and compares the keys the workers return.

Then, in the parent: every batch's Merkle root recomputed from the catalog,
every token verified against the pinned CA (:func:`verify.tokens.verify_token`),
and every sealed manifest compared with the catalog.

Check IDs:

F01 pack files: readable, footer index = catalog, BLAKE3 = catalog
F02 every record authenticates and decompresses (names "bound to another blob id",
    "truncated", "copied from another pack")
F03 SHA-256 of every mail equals its blob id
F04 header fields re-derived from the mail equal the catalog row
F05 every batch's Merkle root recomputes from the catalog
F06 every token verifies (against the CA its batch records, which the CA history trusted at genTime; imprint,
    ESS binding via openssl, genTime plausible)
F07 sealed stamp manifests match the catalog

B8: a pack that fails any of F01–F03 is read once more; clean on the second read, it is a
warning ("ok on 2nd read"), not a finding, unless F04 finds rows that differ (:func:`_add_f04`).

F8: a pack whose first :data:`AUTH_FAIL_LIMIT` records all fail
authentication (and are not simply cut off) is not read further: that is a
wrong key or a foreign archive, not a million corrupt mails; the run stops
when :data:`GLOBAL_FAIL_PACKS` packs in a row end that way before any record
authenticated.
"""
from __future__ import annotations

import base64
import bisect
import concurrent.futures as cf
import contextlib
import datetime as dt
import hashlib
import itertools
import json
import multiprocessing
import os
import threading
from array import array
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from toolkit.errors import MailArchiveError, NextStep
from toolkit.pack import IndexEntry, PackReader, RecordAuthError, RecordCorruptError, open_record, pack_key
from toolkit.reporter import NullReporter
from toolkit.storage.location import SMB_DEFAULTS

from .ahead import (SPLIT_MIN_BYTES, MailChunks, Packed, PartsFuture, adopt, check_ahead, entries_digest,
                    listed_packs, parts_of)
from .mailkey import f04_key, fields_of_key, mail_key  # noqa: F401  (f04_key: the Python side of _F04_KEY)
from .report import Check, Report

FULL_CHECKS = [
    ("F01", "Pack files: readable, index and BLAKE3 checksum as recorded"),
    ("F02", "Every record authenticates and decompresses"),
    ("F03", "SHA-256 of every mail equals its blob id"),
    ("F04", "Header fields re-derived from the mail equal the catalog"),
    ("F05", "Merkle root of every batch recomputes from the catalog"),
    ("F06", "Every timestamp token verifies"),
    ("F07", "Sealed stamp manifests match the catalog"),
    ("F08", "Renewal chains cover their batches; protection not running out"),
]
#: consecutive authentication failures, with no success, after which one pack is given up (F8)
AUTH_FAIL_LIMIT = 20
#: packs in a row given up that way, before any record authenticated, after which the run stops (F8)
GLOBAL_FAIL_PACKS = 3
#: mail bytes kept per record for the header comparison; larger mails get only their first part scanned
SCAN_CAP = 64 * 1024 * 1024
#: failing records probed for "copied from another pack" (F3), and candidates per record
PROBE_RECORDS = 20
PROBE_CANDIDATES = 200
#: below this many pack bytes in all, packs are checked in this process (starting workers costs more)
POOL_MIN_BYTES = 32 * 1024 * 1024
#: the widest plausible gap between a batch's sealing and its genTime before verify_token's MAX_DELAY
STAMP_WINDOW = dt.timedelta(days=1)

_worker_archive = None


def check_session(catalog, memory_limit: int | None = None):
    """:func:`toolkit.catalog.check_session`, its module loaded at the first use: the command line imports this
    module before it forks the pack workers (:class:`EarlyWorkers`), which need no DuckDB."""
    from toolkit.catalog import check_session as session

    return session(catalog, memory_limit)


# ---------------------------------------------------------------------- worker side
def _init_worker(home: str, smb_password: str | None = None, smb_encrypt: bool = True) -> None:
    """The worker's view of the archive: its config, its key (checked against the config) and its media.

    Not :meth:`Archive.open`: a worker never reads the catalog (the parent, which opened the archive with
    all its checks, hands each task its rows), and opening a catalog connection costs ~0.1 s of CPU; not even an
    ``Archive`` (:class:`verify.worker_archive.WorkerArchive`: its module loads DuckDB, which a worker forked
    before the command line loaded it would load for nothing)."""
    global _worker_archive
    import signal

    from toolkit.home import Home
    from toolkit.process_guard import forbid_core_dumps

    from .worker_archive import WorkerArchive

    forbid_core_dumps()  # a forkserver child holds the archive key too (toolkit/process_guard.py)
    # a worker forked from the command line (EarlyWorkers) inherits its SIGTERM handler and, forked while the command
    # line holds SIGINT and SIGTERM (toolkit/cli/early.py), their mask: end as a forkserver child does
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        h = Home(Path(home))
        config = h.load_config()
        # the parent's SMB setting: a worker has no --smb-no-encrypt
        _worker_archive = WorkerArchive(h, config, h.read_key(config.uuid, config.key_check), smb_password,
                                        smb_encrypt)
    except Exception as exc:  # no traceback from the pool: each task names it (EarlyWorkers fork before the
        _worker_archive = exc  # parent has checked the key, which then reports a wrong one as it always does)


def _task_in_worker(task: dict) -> dict:
    if isinstance(_worker_archive, Exception):
        raise _worker_archive
    return check_pack(_worker_archive, task)


def _ahead_in_worker(medium: int, name: str, part: int = 0, parts: int = 1) -> dict | None:
    if isinstance(_worker_archive, Exception):
        raise _worker_archive
    return check_ahead(_worker_archive, medium, name, SCAN_CAP, part, parts)


def _aware(t):
    if t is None:
        return None
    return t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)


def _compare(row: dict, meta) -> list[str]:
    """The catalog fields that differ from what the mail's headers say (``meta``, from
    :func:`toolkit.headers.header_fields`), one text each.

    Only the header block is parsed (docs/verification.md: Message-ID, from, to/cc,
    subject, date). The body is not normalised and hashed again: F03 already
    proved the bytes by their SHA-256, and a dedup key depends only on those
    bytes, so re-deriving it would cost ~40 % of a full verify for nothing new.
    """
    diffs = []
    for name, got in (("message_id", meta.message_id), ("from_addr", meta.from_addr), ("subject", meta.subject)):
        if got != row.get(name):
            diffs.append(f"{name}: catalog {row.get(name)!r}, mail {got!r}")
    a, b = _aware(row.get("sent_date")), _aware(meta.sent_date)
    if a != b:
        diffs.append(f"sent_date: catalog {a.isoformat() if a else None}, mail {b.isoformat() if b else None}")
    for kind, got in (("to", meta.to), ("cc", meta.cc)):
        want = sorted(set(row.get(kind) or []))
        if sorted(set(got)) != want:
            diffs.append(f"{kind} recipients: catalog {want}, mail {sorted(set(got))}")
    return diffs


def check_pack(archive, task: dict) -> dict:
    """Check one pack; a pack that fails its check is read a second time (docs/reliability.md B8).

    One garbled read (a flaky cable, a share that returns wrong bytes once) must not be reported
    as a damaged pack: when the second read is clean, the result is the second one and the first
    read's problems become one warning ("ok on 2nd read"); when it fails too, its problems are the
    findings. A pack that is missing or on an unreachable medium is not read again.
    """
    first = _check_pack_once(archive, task)
    if not first["problems"] or first.get("unread"):
        return first
    second = _check_pack_once(archive, task)
    if second["problems"]:
        return second
    ids = sorted({cid for cid, _d, _o in first["problems"]})
    detail = first["problems"][0][1]
    more = len(first["problems"]) - 1
    second["warnings"] = [(ids[0], f"pack {task['name']}: ok on 2nd read (the first read failed: {detail}"
                           + (f"; +{more} more" if more else "") + ")",
                           {"pack": task["pack_id"], "medium": task["medium_id"], "name": task["name"]})]
    return second


def _check_pack_once(archive, task: dict) -> dict:
    """Check one pack in one sequential pass; returns its problems as (check id, detail, objects) tuples.

    ``task``: medium_id, pack_id, name, bytes, blake3 (hex, the pack checksum), rows (the catalog's entries of its
    messages in offset order, tuples as :data:`_ENTRY_COLUMNS`). ``f04`` in the result: (msg_id, :func:`f04_key`
    of the mail) of every record that authenticated, in offset order, which the parent compares with the catalog
    (:func:`_add_f04`).
    """
    pack, medium, name = task["pack_id"], task["medium_id"], task["name"]
    rows = task["rows"]
    out: dict[str, Any] = {"pack": pack, "medium": medium, "records": len(rows), "ok": 0, "bytes_read": 0,
                           "problems": [], "stopped": False, "auth_failed": [], "f04": []}
    problems = out["problems"]
    where = {"pack": pack, "medium": medium}

    def problem(cid: str, detail: str, **objs) -> None:
        problems.append((cid, detail, {**where, **objs}))

    try:
        storage = archive.storage(medium)
        st = storage.stat(name)
    except MailArchiveError as exc:
        problem("F01", f"pack {name} not checked: medium {medium}: {exc}", name=name, next_step=exc.next_step)
        out["unread"] = True
        return out
    if st is None:
        problem("F01", f"pack {name} is missing from medium {medium}: its {len(rows)} messages cannot be read", name=name)
        out["unread"] = True
        return out
    size = st.size
    if size != task["bytes"]:
        problem("F01", f"pack {name} is {size} bytes, the catalog records {task['bytes']}"
                + (" (truncated)" if size < task["bytes"] else ""), name=name)
    reader = PackReader(storage, name, archive.key, archive.uuid)
    by_offset = {r[_OFFSET]: r for r in rows}
    entries = [_Entry(bytes.fromhex(blob), offset, length, size_, csize)
               for _p, _m, blob, offset, length, size_, csize, _b in rows]
    _check_footer(reader, entries, by_offset, name, problem)
    _check_records(reader, entries, by_offset, size, name, out, problem)
    if not out["stopped"]:
        got = reader.file_blake3
        if got is None:
            problem("F01", f"pack {name}: not hashed", name=name)
        elif got.hex() != task["blake3"]:
            problem("F01", f"pack {name}: checksum (BLAKE3) {got.hex()[:16]}… differs from the catalog's {task['blake3'][:16]}…",
                    name=name)
    out["bytes_read"] = size if not out["stopped"] else out["bytes_read"]
    return out


class _Entry(NamedTuple):
    """A catalog entry as :class:`toolkit.pack.PackReader` reads it: :class:`~toolkit.pack.IndexEntry`'s fields
    (a frozen dataclass costs about a microsecond more to make, per record)."""

    blob_id: bytes
    offset: int
    length: int
    size: int
    csize: int


def _check_footer(reader, entries: list[IndexEntry], by_offset: dict, name: str, problem) -> None:
    """F01: the footer index (a few small reads at the end) against the catalog."""
    try:
        footer = {(e.blob_id.hex(), e.offset, e.length, e.size, e.csize) for e in reader.index()}
    except MailArchiveError as exc:
        problem("F01", f"{exc}", name=name)
        return
    cat = {(e.blob_id.hex(), e.offset, e.length, e.size, e.csize) for e in entries}
    for blob, off, _l, _s, _c in sorted(cat - footer, key=lambda x: x[1]):
        r = by_offset[off]
        problem("F01", f"message {r[_MSG_ID]} (offset {off}) is not in the footer index of pack {name}",
                msg_id=r[_MSG_ID], blob_id=blob, batch=r[_BATCH])
    extra = sorted(footer - cat, key=lambda x: x[1])
    if extra:
        problem("F01", f"pack {name} holds {len(extra)} records the catalog does not list (adoptable), "
                f"first blob {extra[0][0][:16]} at offset {extra[0][1]}", name=name)


def _check_records(reader, entries: list[IndexEntry], by_offset: dict, size: int, name: str, out: dict,
                   problem) -> None:
    """F02–F03 in one sequential read of the records, and F04's key of every mail that authenticates
    (``out["f04"]``, compared by the parent); stops a pack that never authenticates (F8)."""
    problems = out["problems"]
    keys = out["f04"]
    mail = MailChunks(SCAN_CAP)
    consecutive = 0
    it = reader.check_all(entries, on_data=mail)
    try:
        for entry, exc in it:
            r = by_offset[entry.offset]
            out["bytes_read"] += entry.length
            if exc is None:
                out["ok"] += 1
                consecutive = 0
                keys.append((r[_MSG_ID], mail_key(mail.take(entry))))
                continue
            mail.drop()
            objs = {"msg_id": r[_MSG_ID], "blob_id": r[_BLOB_ID], "batch": r[_BATCH]}
            text = str(exc)
            if isinstance(exc, RecordCorruptError) and "bound to another blob id" in text:
                problem("F03", f"message {r[_MSG_ID]}: {text}", **objs, record=exc.record)
                continue
            if isinstance(exc, RecordAuthError):
                if exc.bound_to is not None:
                    text += f" [bound to blob {exc.bound_to.hex()}]"
                    objs["name"] = f"bound_to:{exc.bound_to.hex()}"
                cut_off = entry.offset + entry.length > size
                if cut_off:
                    text += f" [pack is {size} bytes: truncated]"
                elif exc.bound_to is None:
                    out["auth_failed"].append({"msg_id": r[_MSG_ID], "offset": entry.offset, "length": entry.length,
                                               "csize": entry.csize, "index": len(problems)})
                consecutive = 0 if cut_off else consecutive + 1
            problem("F02", f"message {r[_MSG_ID]}: {text}", **objs, record=getattr(exc, "record", None))
            if consecutive >= AUTH_FAIL_LIMIT and out["ok"] == 0:
                out["stopped"] = True
                left = len(entries) - sum(1 for p in problems if p[0] in ("F02", "F03")) - out["ok"]
                problem("F02", f"pack {name}: stopped after {consecutive} consecutive authentication failures and "
                        f"no record that authenticates — wrong key or foreign archive? ({left} records not checked)",
                        name=name)
                break
    except MailArchiveError as exc:  # the storage failed mid-read
        problem("F01", f"pack {name}: reading stopped: {exc}", name=name)
        out["stopped"] = True
    finally:
        it.close()


# ---------------------------------------------------------------------- parent side
def _sql_text_key(col: str) -> str:
    return f"CASE WHEN {col} IS NULL THEN 'N' ELSE 'S' || strlen({col}) || ':' || {col} END"


def _sql_list_key(col: str) -> str:
    # sorted, repeats kept (no list_distinct: a fifth of the query's time): see _F04_KEY
    return f"coalesce(array_to_string(list_transform(list_sort({col}), x -> strlen(x) || ':' || x), ''), '')"


#: a row's compared header fields as one string, as :func:`f04_key` builds it from a mail: each text
#: ``N`` (NULL) or ``S<UTF-8 bytes>:<text>``, the date ``N`` or ``T<microseconds since 1970>``, then each
#: recipient list sorted, ``<UTF-8 bytes>:<address>`` each, after a ``|``. The mail's key lists each address
#: once; a row listing one twice (no import writes that) has another key, and :func:`_add_f04` compares it field by
#: field, as sets, as it does every row whose key differs: equal keys still mean equal fields, so F04 finds the same
_F04_KEY = " || ".join([
    _sql_text_key("m.message_id"), _sql_text_key("m.from_addr"), _sql_text_key("m.subject"),
    "CASE WHEN m.sent_date IS NULL THEN 'N' ELSE 'T' || epoch_us(m.sent_date) END",
    "'|'", _sql_list_key('rc."to"'), "'|'", _sql_list_key("rc.cc"),
])


_TASK_ROWS = """
    WITH rc AS (
        SELECT msg_id, list(address) FILTER (WHERE kind = 'to') AS "to", list(address) FILTER (WHERE kind = 'cc') AS cc
        FROM recipients WHERE kind IN ('to', 'cc'){rc_where} GROUP BY msg_id
    )
    SELECT m.msg_id, m.blob_id, m.pack_id, m."offset", m.length, m.size, m.csize, m.message_id, m.from_addr, m.subject,
           m.sent_date, m.batch_id, rc."to", rc.cc, """ + _F04_KEY + """ AS f04
    FROM messages m LEFT JOIN rc USING (msg_id){m_where}
    ORDER BY m.pack_id, m."offset"
"""


def _task_rows_sql(where: str = "") -> str:
    """The query of the catalog rows with every compared field and the F04 key: of every message, or of those
    ``where`` (a condition on ``m``) selects."""
    if where:
        return _TASK_ROWS.format(rc_where=f" AND msg_id IN (SELECT msg_id FROM messages m WHERE {where})",
                                 m_where=f" WHERE {where}")
    return _TASK_ROWS.format(rc_where="", m_where="")


_PACKS = "SELECT pack_id, medium_id, name, bytes, blake3 FROM packs ORDER BY medium_id, name"

#: what a task carries of each of its pack's messages, one tuple each: all a worker needs to read and name them
_ENTRY_COLUMNS = ("pack_id", "msg_id", "blob_id", "offset", "length", "size", "csize", "batch_id")
_MSG_ID, _BLOB_ID, _OFFSET, _BATCH = 1, 2, 3, 7
#: the packs of one query of the entries or keys: a JSON list parameter (no Arrow: registering an Arrow table makes
#: DuckDB import pyarrow.dataset, ~0.1 CPU-s and ~30 MB with pyarrow itself)
_IN_PART = "pack_id IN (SELECT unnest(from_json($1, '[\"VARCHAR\"]')))"
_HEX_BLOB = "regexp_full_match(m.blob_id, '[0-9a-f]{64}')"
#: a part's entries, without the pack id (a pack's are one slice: :func:`_slices`): a blob id as its 32 bytes when it
#: is the hex text an import writes, else (a damaged or edited row) as its text, unchanged; the batch id's NULL apart
_ENTRIES = f"""SELECT m.msg_id, coalesce(CASE WHEN {_HEX_BLOB} THEN unhex(m.blob_id) END, unhex(repeat('00', 32))),
                      CASE WHEN NOT coalesce({_HEX_BLOB}, false) THEN m.blob_id END, m.blob_id IS NULL,
                      m."offset", m.length, m.size, m.csize, coalesce(m.batch_id, 0), m.batch_id IS NULL
               FROM messages m WHERE m.{_IN_PART} ORDER BY m.pack_id, m."offset", m.msg_id"""
#: how many entries each pack id has, in the entries' order
_PACK_COUNTS = "SELECT pack_id, count(*) FROM messages WHERE pack_id IS NOT NULL GROUP BY pack_id ORDER BY pack_id"
#: rows fetched at once from a query of the entries or keys (as Python tuples, until put into the columns)
_FETCH_ROWS = 8192
#: messages per query of the entries and keys (whole packs, in pack id order): DuckDB sorts one part at a time and
#: builds one part's recipient lists, not the whole catalog's (docs/reliability.md K8)
PART_ROWS = 50_000
#: DuckDB's memory for the session that reads the entries and keys (:func:`toolkit.catalog.check_session`): without
#: a limit it kept every block it read, ~130 MB at a million messages, on top of the entries and keys. A part of
#: :data:`PART_ROWS` tiny mails needs 32-48 MB; a part the limit refuses is read again without it
READ_MEMORY_LIMIT = 64 << 20


def _slices(con, packs: set[str] | None = None) -> dict[str, tuple[int, int]]:
    """pack id -> (first row, rows) of its entries, in pack id order (of the ``packs`` only, when given)."""
    out: dict[str, tuple[int, int]] = {}
    start = 0
    for pack, n in con.execute(_PACK_COUNTS).fetchall():
        if packs is None or pack in packs:
            out[pack] = (start, n)
            start += n
    return out


def _by_parts(con, sql: str, slices: dict[str, tuple[int, int]]):
    """The rows of ``sql`` (which selects from the packs of the JSON list ``$1``) for the packs of ``slices``, in
    their order: run for each part of about :data:`PART_ROWS` messages, fetched :data:`_FETCH_ROWS` at a time;
    yields each fetch's columns (tuples)."""
    packs = list(slices)
    part, rows = [], 0
    for i, pack in enumerate(packs):
        part.append(pack)
        rows += slices[pack][1]
        if rows < PART_ROWS and i + 1 < len(packs):
            continue
        result = con.execute(sql, [json.dumps(part)])
        while True:
            got = result.fetchmany(_FETCH_ROWS)
            if not got:
                break
            yield list(zip(*got))
        part, rows = [], 0


class _Entries:
    """Every pack's catalog entries, column by column in compact arrays (about 90 bytes a message: 8 per number,
    32 per blob id; docs/reliability.md K8), in pack and offset order; :meth:`rows` gives one pack's as tuples."""

    def __init__(self, con, slices: dict[str, tuple[int, int]]):
        self.msg, self.offset, self.length, self.size, self.csize, self.batch = (array("q") for _ in range(6))
        self.no_batch = bytearray()
        blobs = bytearray()
        self.texts: dict[int, str | None] = {}  # blob ids that are not lowercase hex (or NULL): index -> as written
        for msg, blob, text, null, offset, length, size, csize, batch, no_batch in _by_parts(con, _ENTRIES, slices):
            if text.count(None) != len(text) or any(null):
                first = len(self.msg)
                self.texts.update((first + i, t) for i, (t, n) in enumerate(zip(text, null)) if t is not None or n)
            self.msg.extend(msg)
            joined = b"".join(blob)
            if len(joined) != 32 * len(blob):  # never: the query gives 32 bytes each
                raise AssertionError("verify: a blob id of other than 32 bytes")
            blobs += joined
            for col, values in ((self.offset, offset), (self.length, length), (self.size, size),
                                (self.csize, csize), (self.batch, batch)):
                col.extend(values)
            self.no_batch += bytes(no_batch)
        self.blobs = blobs
        self._odd = sorted(self.texts)

    def rows(self, pack: str, start: int, n: int) -> list[tuple]:
        end = start + n
        hexed = self.blobs[32 * start:32 * end].hex()
        blobs = [hexed[i:i + 64] for i in range(0, 64 * n, 64)]
        for i in self._odd[bisect.bisect_left(self._odd, start):bisect.bisect_left(self._odd, end)]:
            blobs[i - start] = self.texts[i]
        batch = self.batch[start:end].tolist()
        if any(self.no_batch[start:end]):
            batch = [None if nb else b for b, nb in zip(batch, self.no_batch[start:end])]
        return list(zip(itertools.repeat(pack, n), self.msg[start:end].tolist(), blobs,
                        self.offset[start:end].tolist(), self.length[start:end].tolist(),
                        self.size[start:end].tolist(), self.csize[start:end].tolist(), batch))

    def digest(self, start: int, n: int) -> bytes | None:
        """:func:`verify.ahead.entries_digest` of the entries ``start`` to ``start + n`` (one pack's), made from the
        columns; None when a blob id among them is not the hex text an import writes (no footer lists it)."""
        end = start + n
        if bisect.bisect_left(self._odd, start) != bisect.bisect_left(self._odd, end):
            return None
        return entries_digest(n, self.offset[start:end], bytes(self.blobs[32 * start:32 * end]),
                              self.length[start:end], self.size[start:end], self.csize[start:end])


class _PackRows(Sequence):
    """A pack's catalog entries as tuples (:data:`_ENTRY_COLUMNS`), in offset order: made from :class:`_Entries`
    when they are first asked for (a worker's copy of the task: when it is sent), and dropped again by
    :meth:`release` once the pack's result is in (docs/reliability.md K8: the parent holds a catalog's entries in
    compact columns, and only the packs in flight as Python objects)."""

    __slots__ = ("_pack", "_entries", "_start", "_n", "_made")

    def __init__(self, pack: str, entries: _Entries, start: int, n: int):
        self._pack, self._entries, self._start, self._n, self._made = pack, entries, start, n, None

    def _rows(self) -> list[tuple]:
        if self._made is None:
            self._made = self._entries.rows(self._pack, self._start, self._n)
        return self._made

    def release(self) -> None:
        self._made = None

    def entries_digest(self) -> bytes | None:
        """The pack's entries as :func:`verify.ahead.entries_digest` (from the columns: no tuple is made)."""
        return self._entries.digest(self._start, self._n)

    def msg_ids(self) -> list[int]:
        return self._entries.msg[self._start:self._start + self._n].tolist()

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i):
        return self._rows()[i]

    def __iter__(self):
        return iter(self._rows())

    def __eq__(self, other):
        return list(self) == list(other)

    def __reduce__(self):  # a worker gets the plain list
        return (list, (self._rows(),))


def _tasks(con) -> list[dict]:
    """One task per pack; its ``rows`` are the catalog's entries of its messages (:data:`_ENTRY_COLUMNS`), in
    offset order (:class:`_PackRows`: held in compact columns, made into tuples while the pack is in flight).

    One short query without the compared fields: the tasks are ready to hand out at once, and small to send.
    The compared fields are read as one key per message (:func:`_catalog_keys`) while the workers read the
    packs, in the same session, and compared in this process (:func:`_add_f04`).
    """
    packs = con.execute(_PACKS).fetchall()
    slices = _slices(con)
    entries = _Entries(con, slices)
    return [
        {"pack_id": p, "medium_id": med, "name": name, "bytes": nbytes, "blake3": sha,
         "rows": _PackRows(p, entries, *slices.get(p, (0, 0)))}
        for p, med, name, nbytes, sha in packs
    ]


_KEYS = """
    WITH rc AS (
        SELECT msg_id, list(address) FILTER (WHERE kind = 'to') AS "to", list(address) FILTER (WHERE kind = 'cc') AS cc
        FROM recipients WHERE kind IN ('to', 'cc') AND msg_id IN (SELECT msg_id FROM messages WHERE """ + _IN_PART + """)
        GROUP BY msg_id
    )
    SELECT m.msg_id, unhex(left(sha256(""" + _F04_KEY + """), 32)) AS f04 FROM messages m LEFT JOIN rc USING (msg_id)
    WHERE m.""" + _IN_PART + """
    ORDER BY m.pack_id, m."offset", m.msg_id
"""


def _digest(key: str) -> bytes:
    """The first 16 bytes of the SHA-256 of a key's UTF-8 (the catalog's side: :data:`_KEYS`)."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()[:16]


class _CatalogKeys:
    """The catalog's F04 keys (:data:`_F04_KEY`) of every message, as the first 16 bytes of their SHA-256, in pack
    and offset order (24 bytes a message with its msg_id, docs/reliability.md K8); :meth:`of_pack` gives one pack's
    as a dict. A key that differs from its mail's differs in its digest (a second preimage of SHA-256 otherwise);
    an equal digest is taken as an equal key."""

    def __init__(self, con, slices: dict[str, tuple[int, int]]):
        self._slices = slices
        self._msg = array("q")
        digests = bytearray()
        for msg, digest in _by_parts(con, _KEYS, slices):
            self._msg.extend(msg)
            digests += b"".join(digest)
        self._digests = digests

    def __len__(self) -> int:
        return len(self._msg)

    def same_in_order(self, pack, mails: list[tuple[int, str]]) -> bool:
        """Whether ``mails`` ((msg_id, key) of every message of ``pack``, in the catalog's order: a pack whose every
        record authenticated) have the catalog's keys: one comparison of the pack's digests; False when they differ
        or are other messages (then each is compared by its msg_id, :meth:`of_pack`)."""
        start, n = self._slices.get(pack, (0, 0))
        if len(mails) != n or self._msg[start:start + n].tolist() != [mid for mid, _key in mails]:
            return False
        sha = hashlib.sha256
        got = b"".join([sha(key.encode("utf-8", "surrogatepass")).digest()[:16] for _mid, key in mails])
        return got == self._digests[16 * start:16 * (start + n)]

    def of_pack(self, pack) -> dict[int, bytes]:
        start, n = self._slices.get(pack, (0, 0))
        d = self._digests
        return dict(zip(self._msg[start:start + n].tolist(), (d[i:i + 16] for i in range(16 * start, 16 * (start + n), 16))))


def _catalog_keys(con, packs: list[str] | None = None) -> _CatalogKeys:
    """The catalog's F04 keys of every message, or of those in ``packs`` (:class:`_CatalogKeys`)."""
    return _CatalogKeys(con, _slices(con, None if packs is None else set(packs)))


def _f04_differ(results: list[dict], keys: _CatalogKeys) -> list[tuple[dict, int, str]]:
    """F04: each mail's key (from the workers) against its row's (``keys``): (result, msg_id, key) of those that
    differ, in the results' order and each pack's offset order."""
    out = []
    for res in results:
        mails = _unpacked(res.get("f04"))
        if not mails:
            continue
        if keys.same_in_order(res["pack"], mails):
            continue
        rows = keys.of_pack(res["pack"])
        out.extend((res, mid, key) for mid, key in mails if rows.get(mid) != _digest(key))
    return out


#: results that may wait unpacked while this process reads the catalog; later ones are packed (:class:`_Waiting`)
LOOSE_RESULTS = 16


_Packed = Packed  # the waiting results' per-mail lists (verify.ahead.Packed)


def _unpacked(value):
    return value.unpack() if isinstance(value, _Packed) else value


class _Waiting:
    """A done-callback for the packs' futures: while :attr:`on` (this process reads the catalog and runs the quick
    checks, and takes no result), each result after the first :data:`LOOSE_RESULTS` has its mails' keys packed
    (:class:`_Packed`, a fifth of their size or less) until it is taken: the results that arrive meanwhile grow with
    the catalog's reading time, hence with its size (docs/reliability.md K8). Taking one unpacks them
    (:func:`_f04_differ`, :func:`verify.ahead.adopt`). A check ahead's entries come as one digest
    (:func:`verify.ahead.check_ahead`)."""

    def __init__(self):
        self.on = True
        self.arrived = 0

    def __call__(self, fut: cf.Future) -> None:
        if not self.on or fut.cancelled() or fut.exception() is not None:
            return
        self.arrived += 1
        res = fut.result()
        if self.arrived > LOOSE_RESULTS and isinstance(res, dict):
            for name in ("f04", "keys"):
                if isinstance(res.get(name), list) and res[name]:
                    res[name] = _Packed(res[name])


def _add_f04(con, differ: list[tuple[dict, int, str]], tasks: dict[str, dict]) -> None:
    """F04: a row whose key differs from its mail's (:func:`_f04_differ`) is compared field by field
    (:func:`_compare`, the full row read now) and each field that differs is named.

    Added to the pack's problems in offset order, as the worker found them. A pack whose first read failed and
    whose second read was clean (B8) but has rows that differ reports those rows and no warning: its second read
    had problems, as a pack with any finding does."""
    if not differ:
        return
    ids = sorted({mid for _res, mid, _key in differ})
    result = con.execute(_task_rows_sql(where="m.msg_id IN (SELECT unnest(string_split($1, ','))::BIGINT)"),
                         [",".join(map(str, ids))])
    names = [d[0] for d in result.description]
    full = {row[0]: dict(zip(names, row)) for row in result.fetchall()}
    entries: dict[str, dict] = {}
    for res, mid, key in differ:
        row = full.get(mid)
        if row is None:  # not in this snapshot (never: the keys come from the session the tasks came from)
            continue
        diffs = _compare(row, fields_of_key(key))
        if not diffs:
            continue
        if res["pack"] not in entries:
            entries[res["pack"]] = {r[_MSG_ID]: r for r in tasks[res["pack"]]["rows"]}
        entry = entries[res["pack"]][mid]
        batch = f" (stamp batch {entry[_BATCH]})" if entry[_BATCH] else ""
        res["problems"].append(("F04", f"message {mid}{batch}: catalog row differs from the mail: " + "; ".join(diffs),
                                {"pack": res["pack"], "medium": res["medium"], "msg_id": mid, "blob_id": entry[_BLOB_ID],
                                 "batch": entry[_BATCH]}))
        res.pop("warnings", None)


def _probe_copies(archive, con, result: dict, task: dict) -> None:
    """F3: name the pack, its medium and the blob a failing record's bytes really belong to, when they are a copy
    from another pack (on this medium or another: the record key depends on the pack id, never on the medium)."""
    failed = result["auth_failed"][:PROBE_RECORDS]
    if not failed:
        return
    try:
        storage = archive.storage(task["medium_id"])
    except MailArchiveError:
        return
    for f in failed:
        if f["length"] > 16 * 1024 * 1024:
            continue
        try:
            record = storage.read(task["name"], f["offset"], f["length"])
        except MailArchiveError:
            continue
        cands = con.execute(
            "SELECT m.pack_id, m.blob_id, m.size, m.csize, m.msg_id, p.medium_id FROM messages m "
            "LEFT JOIN packs p USING (pack_id) WHERE m.csize = ? AND m.pack_id <> ? LIMIT ?",
            [f["csize"], task["pack_id"], PROBE_CANDIDATES],
        ).fetchall()
        for pack_id, blob, size, csize, msg_id, medium_id in cands:
            try:
                open_record(pack_key(archive.key, archive.uuid, bytes.fromhex(pack_id)), archive.uuid,
                            bytes.fromhex(blob), size, csize, record)
            except MailArchiveError:
                continue
            cid, detail, objs = result["problems"][f["index"]]
            result["problems"][f["index"]] = (
                cid, detail + f" [its bytes are a copy of message {msg_id} (blob {blob[:16]}) from pack {pack_id} "
                f"on medium {medium_id}: a record copied from another pack]", {**objs, "name": f"copied_from:{pack_id}"},
            )
            break


class _Prefetcher:
    """Keeps a local disk busy while the checks run on the CPUs.

    A background thread asks the kernel to read the next packs (in the order
    they are handed out) into the page cache, never more than ``ahead`` packs
    beyond those finished; the checks then find their bytes in memory instead
    of waiting for each read. SMB media are left alone (nothing to hint).
    """

    def __init__(self, archive, tasks: list[dict], ahead: int):
        local = {m.id for m in archive.config.media if not str(m.location).startswith("smb://")}
        self._todo = [t for t in tasks if t["medium_id"] in local]
        self._archive = archive
        self._slots = threading.Semaphore(ahead)
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="verify-prefetch", daemon=True)

    def __enter__(self) -> "_Prefetcher":
        if self._todo:
            self._thread.start()
        return self

    def _run(self) -> None:
        for t in self._todo:
            self._slots.acquire()
            if self._stopped.is_set():
                return
            try:
                self._archive.storage(t["medium_id"]).prefetch(t["name"])
            except Exception:  # a hint only: the check itself reports a missing or unreadable pack
                pass

    def finished_one(self) -> None:
        self._slots.release()

    def __exit__(self, *exc) -> None:
        self._stopped.set()
        self._slots.release()
        if self._thread.is_alive():
            self._thread.join(timeout=5)


def _use_pool(tasks: list[dict], workers: int, pool_min_bytes: int) -> bool:
    return workers > 1 and len(tasks) > 1 and sum(t["bytes"] for t in tasks) >= pool_min_bytes


def _pool_context():
    """forkserver: the workers are forked from a clean server process that has the modules loaded
    (fast start), never from this process with its catalog connection and threads."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["verify.deep", "toolkit.archive"])
    return ctx


def _start_pool_server() -> None:
    """Start the fork server now: it imports the workers' modules while this process reads the catalog."""
    _pool_context()
    from multiprocessing import forkserver

    forkserver.ensure_running()


class EarlyWorkers:
    """The pack workers of ``verify --full`` forked before the archive is opened (the command line's pool).

    Forked from this process while it holds no catalog connection and no archive key and runs no thread it
    started (only the imports are done: the workers need them too, so they start with them instead of a
    fork server importing them again, ~0.2 CPU-s, and they are ready while the parent opens the catalog). The
    command line forks them before it loads DuckDB (``verify --full``): the workers do not need it
    (:class:`verify.worker_archive.WorkerArchive`), and the parent loads it while they read packs.
    Each worker then reads the config and key itself (:func:`_init_worker`), as a forkserver child does.
    ``workers``: processes (default: CPUs, at most 8); fewer than 2 starts none. Used by :func:`run_full`
    (``early=``) when the packs are enough for workers (:data:`POOL_MIN_BYTES`), else left unused; shut
    down on leaving the ``with`` block.

    Once forked, the workers start on the packs the local media list (:mod:`verify.ahead`), when they hold at
    least ``ahead_min_bytes``, the last ones of at least ``split_min_bytes`` in parts (:func:`verify.ahead.parts_of`):
    ``ahead`` maps (medium id, pack name) to that check's future, which :func:`run_full` takes for the pack's result only where the catalog proves it the same (``taken`` counts
    those packs, ``redone`` the packs checked again from the catalog's entries)."""

    def __init__(self, home, smb_password: str | None = None, workers: int | None = None, smb_encrypt: bool | None = None,
                 ahead_min_bytes: int = POOL_MIN_BYTES, split_min_bytes: int = SPLIT_MIN_BYTES):
        self.workers = workers or min(os.cpu_count() or 1, 8)
        self.pool: cf.ProcessPoolExecutor | None = None
        self.ahead: dict[tuple[int, str], cf.Future] = {}
        self.taken = self.redone = 0
        self.waiting = _Waiting()  # packs the results of the checks ahead while they wait to be taken (K8)
        if self.workers > 1:
            import toolkit.process_guard  # noqa: F401  (the workers' modules, loaded once here)

            from . import worker_archive  # noqa: F401

            self.pool = cf.ProcessPoolExecutor(max_workers=self.workers, mp_context=multiprocessing.get_context("fork"),
                                               initializer=_init_worker,
                                               initargs=(str(home), smb_password,
                                                         SMB_DEFAULTS["encrypt"] if smb_encrypt is None else smb_encrypt))
            self.pool.submit(int)  # a fork pool forks all its workers at the first submit: now
            listed = listed_packs(home, ahead_min_bytes)
            for (medium, name, _size), k in zip(listed, parts_of(listed, self.workers, split_min_bytes)):
                if k == 1:
                    self.ahead[(medium, name)] = self.pool.submit(_ahead_in_worker, medium, name)
                else:  # the last packs in parts, so that the workers end together (verify.ahead.parts_of)
                    self.ahead[(medium, name)] = PartsFuture(
                        [self.pool.submit(_ahead_in_worker, medium, name, i, k) for i in range(k)])
                self.ahead[(medium, name)].add_done_callback(self.waiting)

    def __enter__(self) -> "EarlyWorkers":
        return self

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)

    def abandon(self) -> None:
        """End the workers now, the packs they are reading unread (a command line that did not run the checks)."""
        if self.pool is not None:
            workers = list((getattr(self.pool, "_processes", None) or {}).values())
            self.pool.shutdown(wait=False, cancel_futures=True)
            for w in workers:
                w.terminate()
            for w in workers:  # gone before this process goes on (or exits): SIGTERM's default action ends them
                w.join(timeout=10)
            self.pool.shutdown(wait=True)


def _run_packs(archive, tasks: list[dict], workers: int, reporter, pool_min_bytes: int, alongside=None,
               pool=None, early=None, on_result=None) -> list[dict]:
    with _Prefetcher(archive, tasks, ahead=workers + 2) as prefetcher:
        return _check_packs(archive, tasks, workers, reporter, pool_min_bytes, prefetcher, alongside, pool, early,
                            on_result)


def _pool(archive, workers: int, pool=None):
    """The process pool for the packs: ``pool`` (:class:`EarlyWorkers`', shut down by its owner), or a new one."""
    if pool is not None:
        return contextlib.nullcontext(pool)
    return cf.ProcessPoolExecutor(max_workers=workers, mp_context=_pool_context(), initializer=_init_worker,
                                  initargs=(str(archive.home), archive.smb_password, archive.smb_encrypt))


def _failed(task: dict, exc: BaseException) -> dict:
    """The result of a pack whose check raised or whose worker died."""
    return {"pack": task["pack_id"], "medium": task["medium_id"], "records": len(task["rows"]), "ok": 0,
            "bytes_read": 0, "stopped": False, "auth_failed": [],
            "problems": [("F01", f"pack {task['name']}: the check failed: {type(exc).__name__}: {exc}",
                          {"pack": task["pack_id"], "medium": task["medium_id"], "name": task["name"]})]}


def _adopted(fut: cf.Future, task: dict) -> dict | None:
    """The result of ``task`` from its pack's check ahead of the catalog (:func:`verify.ahead.adopt`), or None."""
    try:
        got = fut.result()
    except cf.BrokenExecutor as exc:  # the pool is gone: the pack's own check would have failed the same way
        return _failed(task, exc)
    except Exception:  # the check ahead raised: the pack's own check says what it is
        return None
    return adopt(got, task)


class _Tally:
    """The packs' results as they come in, and whether the run must stop (F8: packs in a row in which no
    record authenticates, before any pack did)."""

    def __init__(self, prefetcher, reporter, on_result):
        self.prefetcher, self.reporter, self.on_result = prefetcher, reporter, on_result
        self.results: list[dict] = []
        self.failed_packs = 0
        self.any_ok = False

    def account(self, res: dict) -> bool:
        """Take one pack's result; True when the run must stop."""
        self.prefetcher.finished_one()
        self.results.append(res)
        if self.on_result is not None:
            self.on_result(res)
        self.reporter.advance("verify packs", 1, bytes=res["bytes_read"])
        if res["ok"]:
            self.any_ok = True
            self.failed_packs = 0
        elif res["stopped"]:
            self.failed_packs += 1
        return not self.any_ok and self.failed_packs >= GLOBAL_FAIL_PACKS


def _check_packs(archive, tasks: list[dict], workers: int, reporter, pool_min_bytes: int, prefetcher,
                 alongside=None, pool=None, early=None, on_result=None) -> list[dict]:
    """Check every pack; ``alongside()`` (the quick checks) runs in this process while the workers read packs,
    or first when the packs are checked here. ``early``: the :class:`EarlyWorkers` whose pool this is; the packs
    they began ahead of the catalog (``early.ahead``) are not handed out again unless their result is not taken.
    ``on_result(result)`` is called with each pack's result as it comes in (after ``alongside``)."""
    ahead = early.ahead if early is not None and pool is not None else {}
    tally = _Tally(prefetcher, reporter, on_result)
    if not _use_pool(tasks, workers, pool_min_bytes):
        for f in ahead.values():
            f.cancel()
        if alongside is not None:
            alongside()
        stop = any(tally.account(check_pack(archive, t)) for t in tasks)  # the first True stops the loop
    else:
        with _pool(archive, workers, pool) as pool:
            stop = _check_pooled(pool, tasks, ahead, alongside, early, tally)
    results = tally.results
    if stop:
        results.append({"pack": None, "medium": None, "records": 0, "ok": 0, "bytes_read": 0, "stopped": True,
                        "auth_failed": [], "problems": [(
                            "F02", f"verification stopped: {tally.failed_packs} packs in a row in which no record "
                            "authenticates — wrong key or foreign archive? The remaining packs were not checked.", {})]})
    return results


def _check_pooled(pool, tasks: list[dict], ahead: dict, alongside, early, tally: _Tally) -> bool:
    """:func:`_check_packs` with worker processes; True when the run stopped (F8)."""
    futures: dict = {}
    guesses: dict = {}  # the future of a pack's check ahead of the catalog -> the pack's task
    submitted: list[BaseException] = []
    waiting = _Waiting()  # packs the results that arrive while ``alongside`` runs (K8)

    def submit() -> None:
        # the first submit waits for the fork server to finish loading the modules and fork a worker:
        # the quick checks run meanwhile
        try:
            for t in tasks:
                guess = ahead.pop((t["medium_id"], t["name"]), None)
                if guess is not None:
                    guesses[guess] = t
                else:
                    fut = pool.submit(_task_in_worker, t)
                    futures[fut] = t
                    fut.add_done_callback(waiting)
            for f in ahead.values():  # files the catalog does not list (Q03 names them)
                f.cancel()
        except BaseException as exc:  # handed to the main thread
            submitted.append(exc)

    stop = False
    submitter = threading.Thread(target=submit, name="verify-submit", daemon=True)
    submitter.start()
    try:
        try:
            if alongside is not None:
                alongside()
        finally:
            submitter.join()
            waiting.on = False  # the results are taken as they come from now on
            if early is not None:
                early.waiting.on = False
        if submitted:
            raise submitted[0]
        pending = set(futures) | set(guesses)
        while pending and not stop:
            done, pending = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
            for fut in done:
                res = _pooled_result(pool, fut, futures, guesses, pending, early)
                if res is not None and tally.account(res):
                    stop = True
                    break
    except BaseException:  # the quick checks failed (or an interrupt): read no further packs
        stop = True
        raise
    finally:
        if stop:
            for f in [*futures, *guesses, *ahead.values()]:
                f.cancel()
        if early is not None:  # the workers end while this process writes the report (EarlyWorkers waits)
            pool.shutdown(wait=False)
    return stop


def _pooled_result(pool, fut, futures: dict, guesses: dict, pending: set, early) -> dict | None:
    """The result of a finished future of :func:`_check_pooled`; None when a check ahead of the catalog was not
    proven by it and the pack's own check was handed out instead (its future joins ``pending``)."""
    if fut not in guesses:
        t = futures[fut]
        try:
            return fut.result()
        except Exception as exc:  # a worker died or raised: name the pack, keep going
            return _failed(t, exc)
    t = guesses.pop(fut)  # with its result (the footer's entries): kept no longer
    res = _adopted(fut, t)
    early.taken += res is not None and not res["problems"]  # not a pool that broke
    if res is not None:
        return res
    early.redone += 1  # not proven by the catalog: the pack's own check, as always
    try:
        again = pool.submit(_task_in_worker, t)
    except Exception as exc:
        return _failed(t, exc)
    futures[again] = t
    pending.add(again)
    return None


def run_full(archive, report: Report, *, workers: int | None = None, reporter=None,
             pool_min_bytes: int = POOL_MIN_BYTES, at: dt.datetime | None = None,
             crls: list[bytes] | None = None, subset=None, seed: int = 0, alongside=None,
             early: EarlyWorkers | None = None) -> None:
    """Add F01–F08 to ``report``; packs fan out over ``workers`` processes (default: CPUs, at most 8), or over
    ``early``'s when given (:class:`EarlyWorkers`, already running).

    ``alongside()``, when given, runs in this process while the workers read the packs (the quick checks of
    ``verify --full``: they are independent of the packs' contents, so they need not wait, nor the packs for them);
    the report's checks are added in the order alongside's first, then F01–F08.

    ``at`` fixes the verification time of the tokens (default now) and ``crls`` adds revocation data
    for their TSA chains (I16, :func:`verify.tokens.verify_token`). ``subset`` (a
    :class:`verify.sampling.Subset`) reads only that many packs, the least recently verified first,
    ties in the order ``seed`` gives (F6); every run records the packs it read in the home's
    verify state (:mod:`verify.sampling`)."""
    from . import sampling

    reporter = reporter or NullReporter()
    pool = early.pool if early is not None else None
    if pool is not None:
        workers = early.workers
    elif workers is None:
        workers = min(os.cpu_count() or 1, 8)
    state_path = archive.home_files.verify_state_path
    keys: list[_CatalogKeys] = []  # the catalog's F04 keys, read by _run_full while the workers start
    #: F01–F08, added to the report after the quick checks (which ``alongside`` adds while the packs are read)
    checks = {cid: Check(id=cid, title=title, tier="full") for cid, title in FULL_CHECKS}
    batch_stats: dict = {}  # what the batches' checks add to the report's stats, added after the packs' figures
    threads = archive.catalog.threads
    if workers > 1:  # the worker processes want the cores: this process's queries run on one DuckDB thread
        archive.catalog.use_threads(1)
    try:
        _run_full(archive, report, workers, reporter, pool_min_bytes, at, crls, subset, seed, alongside, pool,
                  state_path, keys, checks, batch_stats, early)
    finally:
        if workers > 1:
            archive.catalog.use_threads(threads)


def _run_full(archive, report: Report, workers: int, reporter, pool_min_bytes: int, at, crls, subset, seed: int,
              alongside, pool, state_path, keys: list, checks: dict[str, Check], batch_stats: dict,
              early=None) -> None:
    from . import sampling

    differ: list[tuple[dict, int, str]] = []  # F04: the mails whose key is not their row's (_f04_differ)
    # The quick checks and the stamp batches' (F05–F08) first where nothing waits for this process meanwhile (the
    # early workers read the packs the media list, or the packs are checked here after them anyway): their memory
    # (DuckDB's for the quick checks' queries, a batch's items and leaves) then comes before this process holds
    # every pack's entries and keys, not on top of them (docs/reliability.md K8). A run that starts its own pool
    # runs them while its workers start.
    quick_first = pool is not None or workers <= 1
    if quick_first:
        _catalog_checks(archive, alongside, batch_stats, checks, at, crls)
    with contextlib.ExitStack() as session:
        con = session.enter_context(check_session(archive.catalog, READ_MEMORY_LIMIT))
        tasks = con.within_limit(_tasks)
        all_packs = {t["pack_id"] for t in tasks}
        if subset is not None:
            tasks = _choose(archive, report, tasks, subset, seed)
        workers = max(1, min(workers, len(tasks)))
        pooled = _use_pool(tasks, workers, pool_min_bytes)
        if pooled and pool is None:
            _start_pool_server()

        def first() -> None:
            """While the workers start on the packs: the catalog's F04 keys, from the snapshot the tasks came from
            (then the session ends), then, unless they ran first, the quick checks and the stamp batches (F05–F08:
            from the catalog, not the packs; into checks that join the report after F01–F04's results, as when they
            ran last)."""
            packs = None if subset is None else [t["pack_id"] for t in tasks]
            keys.append(con.within_limit(lambda c: _catalog_keys(c, packs)))
            session.close()
            # DuckDB keeps the blocks it read of every pack's rows, up to its memory limit: in a large catalog they go
            # with its connection, before the quick checks build theirs or the results are taken (a new connection,
            # ~10 ms CPU: docs/reliability.md K8)
            if len(keys[0]) >= PART_ROWS:
                archive.catalog.close()
            if not quick_first:
                _catalog_checks(archive, alongside, batch_stats, checks, at, crls)
            if pooled:  # a clean run needs the catalog no more: its connection (DuckDB's threads and memory) ends
                archive.catalog.close()  # while the workers read, not after them (a finding's check opens it again)

        by_id = {t["pack_id"]: t for t in tasks}

        def taken(res: dict) -> None:
            """F04 of a pack's result as it comes in (the catalog's keys are read by then: ``first`` runs before any
            is taken); then its mails' keys and its entries as tuples are dropped (K8: only the packs in flight)."""
            differ.extend(_f04_differ([res], keys[0]))
            res.pop("f04", None)
            if res["pack"] in by_id:
                by_id[res["pack"]]["rows"].release()

        reporter.start("verify packs", len(tasks), "packs")
        try:
            # the largest packs first, so that no worker is left with a big one at the end
            order = sorted(tasks, key=lambda t: -t["bytes"]) if pooled else tasks
            results = _run_packs(archive, order, workers, reporter, pool_min_bytes, first, pool, early, taken)
        finally:
            reporter.finish("verify packs")
    report.checks.extend(checks.values())
    by_pack = {t["pack_id"]: t for t in tasks}
    _name_findings(archive, differ, results, by_pack)
    bytes_read, records, ok = _add_results(checks, results)
    checks["F01"].note = f"{len(results)} packs, {bytes_read:,} bytes read"
    if subset is not None:
        checks["F01"].note = (f"subset {subset.text} (seed {seed}): {len(results)} of {len(all_packs)} packs, "
                              f"{bytes_read:,} bytes read")
    read = [r["pack"] for r in results if r["pack"] in by_pack and not r.get("unread")]
    try:
        sampling.record_reads(state_path, str(archive.uuid), read, all_packs, dt.datetime.now(dt.timezone.utc))
    except OSError as exc:  # a read-only home: the run stands, the next subset just does not rotate
        reporter.warn(f"the packs read were not recorded in {state_path}: {exc}")
    checks["F02"].note = f"{ok:,} of {records:,} records authenticate"
    report.stats["bytes_read"] = bytes_read
    report.stats["records_ok"] = ok
    report.stats.update(batch_stats)


def _catalog_checks(archive, alongside, batch_stats: dict, checks: dict, at, crls) -> None:
    """The checks that read the catalog, not the packs: the quick ones (``alongside``), then the stamp batches'
    (F05–F08, :func:`_check_batches`)."""
    if alongside is not None:
        alongside()
    _check_batches(archive, batch_stats, checks, at, crls)


def _name_findings(archive, differ: list[tuple[dict, int, str]], results: list[dict], by_pack: dict) -> None:
    """F04's rows that differ named field by field (:func:`_add_f04`), F3's copied records named (:func:`_probe_copies`),
    in one catalog session; a clean run opens none after its last pack."""
    probed = [res for res in results if res.get("auth_failed") and res["pack"] in by_pack]
    if differ or probed:
        with check_session(archive.catalog) as con:
            _add_f04(con, differ, by_pack)
            for res in probed:
                _probe_copies(archive, con, res, by_pack[res["pack"]])


def _add_results(checks: dict, results: list[dict]) -> tuple[int, int, int]:
    """Every pack's findings and warnings into their checks, by medium and pack; returns (bytes read, records, ok)."""
    bytes_read = records = ok = 0
    for res in sorted(results, key=lambda r: (r["medium"] is None, r["medium"] or 0, r["pack"] or "")):
        bytes_read += res["bytes_read"]
        records += res["records"]
        ok += res["ok"]
        for cid, detail, objs in res["problems"]:
            checks[cid].add(detail, **objs)
        for cid, detail, objs in res.get("warnings", ()):
            checks[cid].warn(detail, **objs)
    return bytes_read, records, ok


def _choose(archive, report: Report, tasks: list[dict], subset, seed: int) -> list[dict]:
    """The tasks of a sampled verification (F6, :func:`verify.sampling.choose`), noted in the report's stats."""
    from . import sampling

    state = sampling.load_state(archive.home_files.verify_state_path, str(archive.uuid))
    chosen = sampling.choose(tasks, subset, seed, state)
    report.stats["subset"] = {"spec": subset.text, "seed": seed, "packs_read": len(chosen),
                              "packs_total": len(tasks), "packs": sorted(t["name"] for t in chosen)}
    return chosen


def _check_batches(archive, stats: dict, checks: dict, at=None, crls=None) -> None:
    """F05–F08 over every stamp batch: its root from the catalog, its token, its sealed manifest, its renewals
    (``stats["protection"]``, :func:`_check_renewals`).

    One batch's leaves at a time (docs/reliability.md K8): a batch holds up to 100,000 of them, an archive any
    number of batches, so the whole archive's leaves (~400 bytes a mail as items and hashes) are never held at
    once; one read-only session serves all batches."""
    from . import ca_history
    from .stamping import _batch_items, item_leaves

    c5, c6, c7 = checks["F05"], checks["F06"], checks["F07"]
    settings = archive.config.settings.get("timestamp") or {}
    kept: list[tuple[int, str | None, str | None, str | None]] = []  # (batch, root, CA, status) for notes and F08
    with check_session(archive.catalog) as con:
        history = ca_history.load(con)
        for row in _batch_rows(con):
            batch, leaf_count, root_hex, token, tsa_url, fp, gen_time, status = row[:8]
            kept.append((batch, root_hex, fp, status))
            items = _batch_items(con, batch)
            _check_root(c5, batch, leaf_count, root_hex, item_leaves(items))  # the leaf hashes go with the call
            if status == "stamped":
                anchor = ca_history.anchor_for(history, settings, fp)
                if anchor is None:
                    c6.add(f"stamp batch {batch}: stamped under TSA CA {(fp or '?')[:16]}…, which is not in the "
                           "archive's CA history (removed?)", NextStep.SEE_CA_HISTORY, batch=batch)
                elif token is None:
                    c6.add(f"stamp batch {batch} is marked stamped but holds no token", batch=batch)
                else:
                    problems = _token_problems(row, anchor, at, crls)
                    if problems:
                        c6.add(f"stamp batch {batch}: token rejected: " + "; ".join(problems), batch=batch)
                _check_manifest(archive, c7, row, items)
            del items
    stamped = [b for b in kept if b[3] == "stamped"]
    c5.note = f"{len(kept)} batches"
    c6.note = f"{len(stamped)} stamped batches under {len({b[2] for b in stamped})} CA(s)"
    _check_renewals(archive, stats, checks["F08"], settings, {b[0]: b[1] for b in kept}, at, crls)
    if not kept:
        for c in (c5, c6, c7):
            c.note = "no stamp batches yet"


def _batch_rows(con) -> list[tuple]:
    """Every stamp batch's row in batch order (a row holds its token, a few KB; the leaves are read by the caller,
    one batch at a time, on the same connection: so the rows are fetched first)."""
    return con.execute(
        """
        SELECT b.batch_id, b.leaf_count, b.merkle_root, b.token, b.tsa_url, b.ca_fingerprint, b.gen_time, b.status,
               b.created_at, b.manifest_name, b.medium_id, b.serial, b.nonce,
               (SELECT max(archived_at) FROM messages m WHERE m.batch_id = b.batch_id),
               (SELECT max(learned_at) FROM envelopes e WHERE e.batch_id = b.batch_id)
        FROM stamp_batches b ORDER BY b.batch_id
        """
    ).fetchall()


def _check_root(c5, batch: int, leaf_count: int, root_hex: str | None, hashes: list[bytes]) -> None:
    """F05: the root from the catalog as it is now (H5, I2)."""
    from .merkle import merkle_root

    if not hashes:
        c5.add(f"stamp batch {batch}: no messages or envelopes in the catalog belong to it ({leaf_count} recorded)", batch=batch)
        return
    got = merkle_root(hashes).hex()
    if got != root_hex or len(hashes) != leaf_count:
        c5.add(f"stamp batch {batch}: the catalog's {len(hashes)} leaves give root {got[:16]}…, the batch records "
               f"{(root_hex or '')[:16]}… over {leaf_count} leaves — rows of a sealed batch were changed (tampering)",
               batch=batch)


def _token_problems(row: tuple, anchor, at=None, crls=None) -> list[str]:
    """F06: the token, against the root the batch records (that root is proven by F05 against the catalog)."""
    from . import ca_history
    from .tokens import verify_token

    (batch, leaf_count, root_hex, token, tsa_url, fp, gen_time, status, created, manifest, medium, serial, nonce,
     max_archived, max_learned) = row
    try:
        root = bytes.fromhex(root_hex or "")
        not_before = max([t for t in (max_archived, max_learned) if t is not None], default=None)
        not_after = (created + STAMP_WINDOW) if created is not None else None
        try:
            n = int(nonce) if nonce else None
        except ValueError:
            n = None
        chk = verify_token(bytes(token), root, anchor.pem, nonce=n, not_before=not_before, not_after=not_after,
                           policy=anchor.policy, at=at, crls=crls)
        problems = list(chk.problems)
        if chk.ok or chk.gen_time is not None:
            if serial and chk.serial and serial.lower().lstrip("0") != chk.serial.lstrip("0"):
                problems.append(f"serial: token {chk.serial}, catalog {serial} (token replaced?)")
            if gen_time is not None and chk.gen_time is not None and abs(_aware(gen_time) - chk.gen_time) > dt.timedelta(seconds=1):
                problems.append(f"genTime: token {chk.gen_time.isoformat()}, catalog {_aware(gen_time).isoformat()} (token replaced?)")
        why = ca_history.trust_problem(anchor, chk.gen_time or (_aware(gen_time) if gen_time is not None else None))
        if why:
            problems.append(why)
    except BaseException as exc:  # verify_token never raises; belt and braces (I14)
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        problems = [f"invalid token: {type(exc).__name__}: {exc}"]
    return problems


def _check_manifest(archive, c7, row: tuple, items: list) -> None:
    """F07: the sealed manifest on its medium agrees with the catalog."""
    from .stamping import manifest_item, read_manifest

    batch, root_hex, token, fp, manifest, medium = row[0], row[2], row[3], row[5], row[9], row[10]
    if not manifest or medium is None:
        c7.add(f"stamp batch {batch} records no manifest", batch=batch)
        return
    try:
        man = read_manifest(archive, {"batch_id": batch, "manifest_name": manifest, "medium_id": medium})
    except MailArchiveError as exc:
        c7.add(f"stamp batch {batch}: manifest {manifest} on medium {medium}: {exc}", batch=batch, medium=medium, name=manifest)
        return
    diffs = []
    if man.get("batch_id") != batch:
        diffs.append(f"batch id {man.get('batch_id')}")
    if man.get("root") != root_hex:
        diffs.append(f"root {str(man.get('root'))[:16]}… (catalog {(root_hex or '')[:16]}…)")
    mleaves = man.get("leaves") or []  # compared one by one: a batch's leaves are not copied into a second list
    differ = sum(1 for a, b in zip(map(manifest_item, mleaves), items) if a != b) + abs(len(mleaves) - len(items))
    if differ:
        diffs.append(f"leaves: manifest {len(mleaves)}, catalog {len(items)}, {differ} differ")
    try:
        mtoken = base64.b64decode(man.get("token") or "")
    except ValueError:
        mtoken = b""
    if token is not None and mtoken != bytes(token):
        diffs.append("token differs from the catalog's")
    if fp and man.get("ca_fingerprint") and man.get("ca_fingerprint") != fp:
        diffs.append(f"CA {str(man.get('ca_fingerprint'))[:16]}… (catalog {fp[:16]}…)")
    if diffs:
        c7.add(f"stamp batch {batch}: manifest {manifest} disagrees with the catalog: " + "; ".join(diffs),
               batch=batch, medium=medium, name=manifest)


def _check_renewals(archive, stats: dict, c8, settings: dict, roots: dict, at=None, crls=None) -> None:
    """F08: every renewal link covers its batch and verifies; a batch whose protection ends soon is a warning.

    ``stats["protection"]`` (the report's) lists, per stamped batch, its CA, its
    renewals and the time it is protected until (for the reports).
    """
    from toolkit.catalog import stamps

    from . import ca_history, renewal

    now = at or dt.datetime.now(dt.timezone.utc)
    with check_session(archive.catalog) as con:
        history = ca_history.load(con)
        chains = renewal.chains(con, history, settings)
        n_renewals = stamps.renewal_count(con)
    rows = []
    for bid, links in chains.items():
        for p in renewal.check_chain(roots.get(bid) or "", links, history, settings, at=at, crls=crls):
            c8.add(f"stamp batch {bid}: {p}", batch=bid)
        until = renewal.protected_until(links)
        anchor = ca_history.anchor_for(history, settings, links[0].ca_fingerprint)
        rows.append({"batch_id": bid, "ca_fingerprint": links[0].ca_fingerprint,
                     "ca_subject": anchor.subject if anchor else None, "renewals": [x.id for x in links[1:]],
                     "protected_until": until})
        if until is not None and until <= now + renewal.WARN_AHEAD:
            state = "has expired" if until <= now else f"ends within {renewal.WARN_AHEAD.days} days"
            c8.warn(f"stamp batch {bid}: protected until {until:%Y-%m-%d} — its newest token's certificate chain "
                    f"{state}", NextStep.RENEW_STAMPS, batch=bid)
    stats["protection"] = rows
    ends = [r["protected_until"] for r in rows if r["protected_until"] is not None]
    c8.note = (f"{n_renewals} renewals; earliest protection ends {min(ends):%Y-%m-%d}" if ends
               else f"{n_renewals} renewals")
