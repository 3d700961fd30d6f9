"""The pure, per-mail part of ingest: journal unwrap, hash, header scan, compress + seal.

``prepare`` has no shared state and touches no storage or catalog, so it runs
inline or in worker processes (DESIGN §13). Sealing is speculative: the
record is sealed for the pack that is open when the chunk is sent out; the
driver re-seals the rare record that lands in the next pack, and drops the
record of a mail that turns out to be a duplicate.
"""
from __future__ import annotations

import hashlib
import uuid as uuidlib
from dataclasses import dataclass, field

from .headers import MailMeta, scan
from .journal import is_journal_report, parse_journal_report
from .pack import seal_record


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


def unwrap(raw: bytes) -> tuple[bytes, Envelope | None, list[str]]:
    """The bytes to archive, the journal envelope if any, and journal defects."""
    if not is_journal_report(raw):
        return raw, None, []
    report = parse_journal_report(raw)
    if report is None:  # a look-alike: an ordinary mail
        return raw, None, []
    if report.original is None:  # nothing to unwrap: keep the report itself, flagged (D13)
        return raw, None, list(report.defects) or ["journal-no-original"]
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
    return report.original, env, ["journal-unwrapped", *report.defects]


def prepare(raw: bytes, pack_key: bytes | None, archive_uuid: uuidlib.UUID, pack_id: bytes | None) -> Prepared:
    data, envelope, defects = unwrap(raw)
    blob = hashlib.sha256(data).digest()
    meta = scan(data)
    p = Prepared(blob_id=blob.hex(), meta=meta, data=data if data is not raw else None, envelope=envelope, defects=defects)
    if pack_key is not None:
        p.record, p.csize = seal_record(pack_key, archive_uuid, blob, data)
        p.sealed_for = pack_id
    return p
