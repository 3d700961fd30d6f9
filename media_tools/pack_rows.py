"""The catalog rows one pack on a medium gives, read with the archive key alone (``db rebuild``, ``db adopt``).

:func:`read_pack` reads the pack's footer index, the BLAKE3 checksum of the whole file, and every
record (decrypted and authenticated, as a reader of the archive does), and scans each mail's headers
as the import did: the ``packs`` row and, per record, its ``messages`` row (without a msg_id) and
recipients. What a pack cannot tell is left as ``db rebuild`` documents it (media_tools/rebuild.py):
``internal_date``, ``run_id`` and sightings came from the sources; ``archived_at`` is the file's
mtime. :func:`number_rows` hands out msg_ids and :func:`append_pack` writes the rows with the same
appends as an import's commit.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Container
from dataclasses import dataclass, field

from toolkit import hashes
from toolkit.catalog import ingest_rows
from toolkit.errors import MailArchiveError
from toolkit.headers import scan
from toolkit.pack import PackReader

CHUNK = 1 << 20


@dataclass
class Record:
    """One authenticated record of a pack: its ``messages`` row (msg_id still unset) and recipients."""

    row: dict
    recipients: list[tuple[str, str]]  # (kind, address)

    @property
    def blob_id(self) -> str:
        return self.row["blob_id"]

    @property
    def dedup_key(self) -> str:
        return self.row["dedup_key"]


@dataclass
class PackRead:
    medium_id: int
    name: str
    pack_id: str
    pack: dict | None = None  # the ``packs`` row; None when the pack itself could not be read
    records: list[Record] = field(default_factory=list)  # read and authenticated, in offset order
    skipped: list[str] = field(default_factory=list)     # blob ids left unread (the caller's ``skip``, or twice here)
    problems: list[dict] = field(default_factory=list)   # the pack, or a record, that did not read

    @property
    def count(self) -> int:
        """The records the footer index lists."""
        return self.pack["records"] if self.pack else 0


def read_pack(archive, storage, medium_id: int, entry, pack_id: str, skip: Container[str] = ()) -> PackRead:
    """Read pack ``entry`` (a storage listing entry) of medium ``medium_id``; records whose blob id is in
    ``skip`` are not read (``db rebuild``: already found). A problem never raises: it is listed."""
    out = PackRead(medium_id=medium_id, name=entry.name, pack_id=pack_id)
    reader = PackReader(storage, entry.name, archive.key, archive.uuid)
    try:
        index = reader.index()
        h = hashes.checksum_hasher()
        with storage.open_read(entry.name) as f:
            while chunk := f.read(CHUNK):
                h.update(chunk)
    except MailArchiveError as exc:
        out.problems.append({"medium": medium_id, "pack": entry.name, "problem": str(exc)})
        return out
    archived_at = dt.datetime.fromtimestamp(entry.mtime, dt.timezone.utc)
    out.pack = {"pack_id": pack_id, "medium_id": medium_id, "name": entry.name, "bytes": entry.size,
                "records": len(index), "blake3": h.hexdigest(), "created_at": archived_at, "run_id": None}
    here: set[str] = set()
    for ie in sorted(index, key=lambda x: x.offset):
        blob = ie.blob_id.hex()
        if blob in skip or blob in here:
            out.skipped.append(blob)
            continue
        try:
            raw = reader.read(ie)
        except MailArchiveError as exc:
            out.problems.append({"medium": medium_id, "pack": entry.name, "blob_id": blob, "problem": str(exc)})
            continue
        here.add(blob)
        out.records.append(_record(ie, blob, pack_id, raw, archived_at))
    return out


def _record(ie, blob: str, pack_id: str, raw: bytes, archived_at: dt.datetime) -> Record:
    meta = scan(raw)
    row = {
        "msg_id": None, "blob_id": blob, "dedup_key": meta.dedup_key.hex(), "pack_id": pack_id,
        "offset": ie.offset, "length": ie.length, "size": ie.size, "csize": ie.csize,
        "message_id": meta.message_id, "subject": meta.subject, "from_addr": meta.from_addr,
        "from_name": meta.from_name,
        "sent_date": (meta.sent_date if meta.sent_date is None or meta.sent_date.tzinfo
                      else meta.sent_date.replace(tzinfo=dt.timezone.utc)),
        "internal_date": None, "spam": bool(meta.spam),
        "defects": ",".join(meta.defects) if meta.defects else None, "id_conflict": False,
        "archived_at": archived_at, "run_id": None, "batch_id": None,
    }
    recipients = [(kind, a) for kind, addrs in (("to", meta.to), ("cc", meta.cc), ("bcc", meta.bcc)) for a in addrs]
    return Record(row, recipients)


def number_rows(records: list[Record], first_msg_id: int) -> tuple[list[dict], list[dict]]:
    """The ``messages`` and ``recipients`` rows of ``records``, numbered from ``first_msg_id`` in their order."""
    messages: list[dict] = []
    recipients: list[dict] = []
    for i, rec in enumerate(records):
        msg_id = first_msg_id + i
        messages.append(dict(rec.row, msg_id=msg_id))
        recipients += [{"msg_id": msg_id, "kind": kind, "address": a} for kind, a in rec.recipients]
    return messages, recipients


def append_pack(con, pack: dict, messages: list[dict], recipients: list[dict]) -> None:
    """The rows of one pack, inside the caller's transaction: the same appends as an import's commit."""
    ingest_rows.append_rows(con, "packs", [pack])
    ingest_rows.append_rows(con, "messages", messages)
    ingest_rows.append_rows(con, "recipients", recipients)
