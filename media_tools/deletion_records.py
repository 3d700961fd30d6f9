"""Deletion records: what a purge removed, written on the medium beside the packs (docs/formats.md
"Deletion records", docs/retention.md "Purge and tombstones").

The catalog's tombstones say which mails an approved deletion removed; a catalog rebuilt from the
media (``db rebuild``) would otherwise not know them and report their stamp leaves as missing. So
before a purge switches a pack in the catalog it writes one sealed record per (request, old pack)
under ``deletions/``, create-only: the request (who asked, who approved, why, when), the actor and
the purge time, the old and new pack, and per purged mail its msg_id, blob id and stamp batch. When
every pack of a request is done, a second record (``...-done``) says the request is purged. Both
are JSON sealed with AES-256-GCM under the archive's ``deletion-record`` subkey (the format of stamp
manifests), so a record cannot be forged or altered without the archive key.

A rerun after a kill between writing a record and the catalog commit finds the record and uses it
as it is (its purge time included), so the catalog and the medium agree whatever the timing.
"""
from __future__ import annotations

import json

from toolkit import crypto
from toolkit.errors import IntegrityError, MailArchiveError

DIR = "deletions"
SUFFIX = ".deletion"
PURPOSE = "deletion-record"
CONTEXT = b"deletion-record"
FORMAT = 1


def pack_record_name(request_id: int, old_pack_id: str) -> str:
    return f"{DIR}/{int(request_id):08d}-{old_pack_id}{SUFFIX}"


def done_record_name(request_id: int) -> str:
    return f"{DIR}/{int(request_id):08d}-done{SUFFIX}"


def _key(archive) -> bytes:
    return crypto.derive_key(archive.key, archive.uuid, PURPOSE)


def open_record(archive, sealed: bytes, name: str) -> dict:
    plain = crypto.open_blob(_key(archive), sealed, CONTEXT, what=f"deletion record {name}")
    try:
        doc = json.loads(plain)
    except ValueError:
        raise IntegrityError(f"deletion record {name}: not JSON") from None
    if not isinstance(doc, dict) or doc.get("archive") != str(archive.uuid) or doc.get("format") != FORMAT:
        raise IntegrityError(f"deletion record {name}: of another archive or an unknown format")
    return doc


def put_record(archive, storage, name: str, doc: dict, same: tuple[str, ...]) -> dict:
    """Write ``doc`` sealed as ``name`` (create-only) and return it; when a killed run left that record
    already, return the stored one instead, after checking that it agrees on the keys ``same``."""
    doc = {"format": FORMAT, "archive": str(archive.uuid), **doc}
    if storage.exists(name):
        old = open_record(archive, storage.read(name), name)
        if any(old.get(k) != doc.get(k) for k in same):
            raise IntegrityError(f"deletion record {name} on the medium describes another purge than this one; "
                                 "nothing was switched (move it aside only once you know where it came from)")
        return old
    storage.put(name, crypto.seal_blob(_key(archive), json.dumps(doc, sort_keys=True).encode(), CONTEXT))
    return doc


def read_records(archive, storage) -> tuple[list[dict], list[dict]]:
    """(the records on a medium, the problems: records that do not open), by name."""
    docs, problems = [], []
    for e in sorted(storage.list(DIR), key=lambda e: e.name):
        if not e.name.endswith(SUFFIX):
            continue
        try:
            doc = open_record(archive, storage.read(e.name), e.name)
        except MailArchiveError as exc:
            problems.append({"record": e.name, "problem": str(exc)})
            continue
        docs.append(dict(doc, _name=e.name))
    return docs, problems
