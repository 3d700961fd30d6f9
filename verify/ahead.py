"""Packs checked ahead of the catalog: ``verify --full``'s workers start before the parent has read it
(docs/verification.md, "Full verification").

The command line forks the pack workers before it opens the archive (:class:`verify.deep.EarlyWorkers`). Instead of
waiting for the parent to open the catalog and read the packs' entries, they start at once on the packs the
local media list (:func:`list_packs`, largest first): each such pack is read in one pass with the entries of its own
footer index (:func:`check_ahead`), as :func:`verify.deep.check_pack` reads it with the catalog's.

Such a check is a guess that the catalog agrees with the pack. The parent takes its result only when it is
certain that the pack's own check would have found the same (:func:`adopt`): every record authenticated and gave
its mail's F04 key, the footer's entries are the catalog's entries of that pack (the same list of blob id,
offset, length, size and compressed size), and the file's size and BLAKE3 are those the catalog records. Then
the pack's check would read the same records in the same order with the same results and find nothing, and its
result is built from this one. In any other case (a record fails, the footer cannot be read, the catalog lists
other entries, another size or checksum, another medium, or no such pack) the result is dropped and the pack is
checked as before, from the catalog's entries, with its second read (docs/reliability.md B8): findings, their
words and their order are those of a run without the guess. A pack the media list and the catalog does not know
is read for nothing (the quick checks report it, Q03); a pack the catalog knows and the media do not list is
checked as before (F01 names it missing).
"""
from __future__ import annotations

import concurrent.futures as cf
import hashlib
import marshal
import re
import threading
import zlib
from array import array
from operator import itemgetter
from pathlib import Path

from toolkit.pack import HEADER_SIZE, PackReader

from .mailkey import mail_key

#: the media states whose packs a full verification reads (verify.checks.LIVE_STATES)
_LIVE = ("active", "standby", "deactivated")
_PACK_NAME = re.compile(r"^packs/[0-9a-f]{2}/[0-9a-f]{32}\.pack$")


class MailChunks:
    """``on_data`` of :meth:`toolkit.pack.PackReader.check_all`: the decompressed chunks of the record being read,
    up to ``cap`` bytes of it (larger mails get only their first part scanned for the header fields)."""

    __slots__ = ("cap", "offset", "chunks", "n")

    def __init__(self, cap: int):
        self.cap = cap
        self.offset: int | None = None
        self.chunks: list[bytes] = []
        self.n = 0

    def __call__(self, entry, chunk: bytes) -> None:
        if self.offset != entry.offset:
            self.offset, self.chunks, self.n = entry.offset, [], 0
        if self.n < self.cap:
            self.chunks.append(chunk)
        self.n += len(chunk)

    def take(self, entry) -> bytes:
        """The mail of ``entry`` (its kept chunks), forgetting them."""
        data = b"".join(self.chunks) if self.offset == entry.offset else b""
        self.chunks = []
        return data

    def drop(self) -> None:
        self.chunks = []


def list_packs(home, min_bytes: int) -> list[tuple[int, str]]:
    """(medium id, pack name) of every pack file on the live local media of the archive at ``home``, largest
    first; none when they hold fewer than ``min_bytes`` in all (then the packs are not worth workers) or the
    home cannot be read (the command then reports that as always). SMB media are not listed here."""
    return [(medium, name) for medium, name, _size in listed_packs(home, min_bytes)]


def listed_packs(home, min_bytes: int) -> list[tuple[int, str, int]]:
    """:func:`list_packs` with each file's size: (medium id, pack name, bytes)."""
    from toolkit.home import Home
    from toolkit.storage import open_storage, parse_location

    try:
        media = [m for m in Home(Path(home)).load_config().media
                 if m.state in _LIVE and not parse_location(m.location).is_smb]
        found = []
        for m in media:
            for e in open_storage(m.location).list("packs"):
                if _PACK_NAME.match(e.name):
                    found.append((e.size, m.id, e.name))
    except Exception:  # a guess only: the checks themselves report an unreadable home or medium
        return []
    if sum(size for size, _m, _n in found) < min_bytes:
        return []
    found.sort(key=lambda f: -f[0])
    return [(medium, name, size) for size, medium, name in found]


#: a pack read ahead is split between the workers only when it has at least this many bytes
SPLIT_MIN_BYTES = 8 << 20


def parts_of(listed: list[tuple[int, str, int]], workers: int, min_bytes: int = SPLIT_MIN_BYTES) -> list[int]:
    """Into how many parts each pack of ``listed`` (largest first) is read ahead: the last ``workers`` packs of at
    least ``min_bytes`` into ``workers`` parts each, every other pack whole. The packs are handed out in that
    order, so the workers end on parts of packs, not on a whole one each: they end nearer together."""
    parts = [1] * len(listed)
    if workers < 2:
        return parts
    big = [i for i, (_m, _n, size) in enumerate(listed) if size >= min_bytes]
    for i in big[-workers:]:
        parts[i] = workers
    return parts


def _part_range(entries: list, part: int, parts: int) -> list:
    """The entries (sorted by offset) of part ``part`` of ``parts``: by the records' bytes, each record in the part
    where its first byte falls (every part computes the same split from the same footer)."""
    if not entries:
        return []
    first = entries[0].offset
    span = max(1, entries[-1].offset + entries[-1].length - first)
    lo, hi = span * part // parts, span * (part + 1) // parts
    return [e for e in entries if lo <= e.offset - first < hi or (part == parts - 1 and e.offset - first >= hi)]


def check_ahead(archive, medium: int, name: str, scan_cap: int, part: int = 0, parts: int = 1) -> dict | None:
    """Read one pack with its footer's entries, in a worker; None as soon as anything is not as it should be.

    Returns the file's size and BLAKE3 (hex), its entries as their :func:`entries_digest` (offset order: what the
    parent holds of them while it reads the catalog is one digest, docs/reliability.md K8) and the F04 keys
    (:func:`verify.mailkey.mail_key`) of every record, in offset order (packed by the parent while they wait,
    :class:`Packed`).

    ``part`` of ``parts`` > 1: only the records of that part (:func:`_part_range`), read from the first of them on;
    part 0 reads the whole file for its BLAKE3, the others give none; the entries and keys of a part are lists
    ((offset, blob id, length, size, compressed size) each). :func:`join_parts` makes one result of the parts'
    results."""
    storage = archive.storage(medium)
    st = storage.stat(name)
    if st is None:
        return None
    reader = PackReader(storage, name, archive.key, archive.uuid)
    entries = reader.index()
    if parts > 1:
        entries = _part_range(sorted(entries, key=lambda e: e.offset), part, parts)
    keys = []
    mail = MailChunks(scan_cap)
    whole = part == 0
    it = reader.check_all(entries, on_data=mail, whole_file=whole)
    try:
        for entry, exc in it:
            if exc is not None:
                return None
            keys.append(mail_key(mail.take(entry)))
    finally:
        it.close()
    if whole and reader.file_blake3 is None:
        return None
    got = {"size": st.size, "blake3": reader.file_blake3.hex() if whole else None, "keys": keys,
           "entries": sorted((e.offset, e.blob_id, e.length, e.size, e.csize) for e in entries)}
    return got if parts > 1 else _whole(got)


def entries_digest(n: int, offsets, blob_ids: bytes, lengths, sizes, csizes) -> bytes | None:
    """SHA-256 of ``n`` entries of a pack in offset order: their count, then each column's 8-byte integers, then their
    32-byte blob ids. Two lists of entries have one digest only when they are the same list (a second preimage of
    SHA-256 otherwise), so the parent compares a pack's catalog entries with its footer's by their digests
    (:func:`adopt`). None when a value does not fit (no such entry is read: nothing to compare)."""
    h = hashlib.sha256(n.to_bytes(8, "little"))
    try:
        for col in (offsets, lengths, sizes, csizes):
            col = col if isinstance(col, array) else array("q", col)
            if len(col) != n:
                return None
            h.update(col)
    except (OverflowError, TypeError):
        return None
    if len(blob_ids) != 32 * n:
        return None
    h.update(blob_ids)
    return h.digest()


def _whole(got: dict) -> dict | None:
    """A pack's result from its entries as a list: the entries as their :func:`entries_digest` (None when a blob id
    is not 32 bytes or a number does not fit: no catalog entry is that one)."""
    entries = got["entries"]
    if any(len(e[1]) != 32 for e in entries):
        return None
    digest = entries_digest(len(entries), [e[0] for e in entries], b"".join(e[1] for e in entries),
                            [e[2] for e in entries], [e[3] for e in entries], [e[4] for e in entries])
    if digest is None:
        return None
    return {"size": got["size"], "blake3": got["blake3"], "keys": got["keys"], "entries": digest}


def join_parts(got: list[dict | None]) -> dict | None:
    """One :func:`check_ahead` result from the results of a pack's parts, in part order; None when a part has none,
    or the parts read files of other sizes, or records of one part overlap the next one's or the pack's header (as
    :meth:`toolkit.pack.PackReader.check_all` fails a record that begins before the previous one ends)."""
    if not got or any(g is None for g in got) or got[0]["blake3"] is None or len({g["size"] for g in got}) != 1:
        return None
    entries = [e for g in got for e in g["entries"]]
    end = HEADER_SIZE
    for offset, _blob, length, _size, _csize in entries:
        if offset < end:
            return None
        end = offset + length
    return _whole({"size": got[0]["size"], "blake3": got[0]["blake3"], "keys": [k for g in got for k in g["keys"]],
                   "entries": entries})


class Packed:
    """A list of plain values (ints, texts, bytes, tuples of them) held as one compressed marshal string (a fifth
    of their size or less); equal when their values are."""

    __slots__ = ("_data",)

    def __init__(self, items: list):
        self._data = zlib.compress(marshal.dumps(items), 1)

    def unpack(self) -> list:
        return marshal.loads(zlib.decompress(self._data))

    def __eq__(self, other):
        return isinstance(other, Packed) and self.unpack() == other.unpack()


class PartsFuture(cf.Future):
    """The future of a pack read ahead in parts: done when every part's future is, with :func:`join_parts` of their
    results (or the first part's exception); cancelling it cancels the parts."""

    def __init__(self, parts: list[cf.Future]):
        super().__init__()
        self._parts = parts
        self._left = len(parts)
        self._lock = threading.Lock()
        for p in parts:
            p.add_done_callback(self._part_done)

    def _part_done(self, _part: cf.Future) -> None:
        with self._lock:
            self._left -= 1
            if self._left:
                return
        try:
            try:
                got = [p.result() for p in self._parts]
            except BaseException as exc:  # a part raised, or was cancelled: as a whole pack's check would
                self.set_exception(exc)
            else:
                self.set_result(join_parts(got))
        except cf.InvalidStateError:  # this future was cancelled meanwhile
            pass

    def cancel(self) -> bool:
        for p in self._parts:
            p.cancel()
        return super().cancel()


_MSG_ID = itemgetter(1)


def adopt(got: dict | None, task: dict) -> dict | None:
    """The result :func:`verify.deep.check_pack` gives ``task`` (a catalog task), built from a :func:`check_ahead`
    result of its pack when that one proves it; None when it does not (the pack is then checked as before)."""
    if got is None or got["size"] != task["bytes"] or got["blake3"] != task["blake3"]:
        return None
    rows = task["rows"]
    # the footer's entries, sorted, have no two at one offset (check_all fails the second one: "overlaps"), and the
    # rows come in offset order: the same list in the same order is the same entries, any other list is not
    # (compared by their digests: verify.deep._PackRows.entries_digest)
    digest = rows.entries_digest() if hasattr(rows, "entries_digest") else rows_digest(rows)
    if digest is None or got["entries"] != digest:
        return None
    # the same entries: the pack's check reads them in offset order (the rows' order) and finds each record good,
    # its footer equal to the catalog, its size and BLAKE3 too
    msg_ids = rows.msg_ids() if hasattr(rows, "msg_ids") else list(map(_MSG_ID, rows))
    keys = got["keys"].unpack() if isinstance(got["keys"], Packed) else got["keys"]
    return {"pack": task["pack_id"], "medium": task["medium_id"], "records": len(rows), "ok": len(rows),
            "bytes_read": got["size"], "problems": [], "stopped": False, "auth_failed": [],
            "f04": list(zip(msg_ids, keys))}


_HEX_ID = re.compile(r"[0-9a-f]{64}")


def rows_digest(rows) -> bytes | None:
    """:func:`entries_digest` of a task's rows (tuples as :data:`verify.deep._ENTRY_COLUMNS`); None when a blob id is
    not the lowercase hex text an import writes (then no footer's entries are the same)."""
    if any(not isinstance(r[2], str) or not _HEX_ID.fullmatch(r[2]) for r in rows):
        return None
    return entries_digest(len(rows), [r[3] for r in rows], bytes.fromhex("".join(r[2] for r in rows)),
                          [r[4] for r in rows], [r[5] for r in rows], [r[6] for r in rows])
