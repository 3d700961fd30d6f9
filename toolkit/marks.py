"""High-water marks on the media: what the catalog had committed (RELIABILITY H2).

After the catalog commits a pack's rows, the import writes a small create-only object
``marks/pack-<pack_id>.mark`` on the medium that holds the pack; after a stamp batch is
committed as stamped, ``marks/batch-<batch_id:08d>.mark`` goes on the medium of its manifest.
A mark is written only after the commit, so (unlike a pack file, which is written first and is
an orphan when the commit never happens) it proves that some catalog once held that pack or
batch. A catalog that lacks a marked pack or batch is older than the media: it was put back
from an older backup or copy, and quick verify reports it.

A mark holds a little JSON (archive uuid, what it marks, when); verify reads only its name.
A mark that already exists (a batch id used again after such a rollback) is left as it is.

Marks travel with what they mark: ``mirror`` copies them (after the packs and manifests they name),
a consolidation copies them to its target, and a restore keeps them in the media it points at, so
a catalog restored from an older backup than the mirror's packs is found the same way (docs/formats.md).
A pack a purge removed (``purge-pack-switched``) is no longer in the catalog, and its mark, kept on a
mirror, proves nothing newer: :func:`lacking` leaves such packs out.
"""
from __future__ import annotations

import datetime as dt
import json
import re

from .errors import ObjectExistsError
from .storage import Storage

MARKS_DIR = "marks"
PACK_MARK_RE = re.compile(r"^marks/pack-([0-9a-f]{32})\.mark$")
BATCH_MARK_RE = re.compile(r"^marks/batch-([0-9]{8,})\.mark$")


def pack_mark_name(pack_id_hex: str) -> str:
    return f"{MARKS_DIR}/pack-{pack_id_hex}.mark"


def batch_mark_name(batch_id: int) -> str:
    return f"{MARKS_DIR}/batch-{batch_id:08d}.mark"


def _put(storage: Storage, name: str, archive_uuid, what: dict) -> None:
    body = {"archive": str(archive_uuid), **what,
            "committed_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    try:
        storage.put(name, json.dumps(body, sort_keys=True).encode() + b"\n")
    except ObjectExistsError:
        pass


def mark_pack(storage: Storage, archive_uuid, pack_id_hex: str, max_msg_id: int | None) -> None:
    """Record on the pack's medium that the catalog committed pack ``pack_id_hex``."""
    _put(storage, pack_mark_name(pack_id_hex), archive_uuid, {"pack": pack_id_hex, "max_msg_id": max_msg_id})


def mark_batch(storage: Storage, archive_uuid, batch_id: int) -> None:
    """Record on the manifest's medium that the catalog committed stamp batch ``batch_id`` as stamped."""
    _put(storage, batch_mark_name(batch_id), archive_uuid, {"batch": batch_id})


def marked_pack(name: str) -> str | None:
    """The pack id a mark's name (medium-relative) names, else None."""
    m = PACK_MARK_RE.match(name)
    return m.group(1) if m else None


def marked_batch(name: str) -> int | None:
    """The stamp batch a mark's name (medium-relative) names, else None."""
    m = BATCH_MARK_RE.match(name)
    return int(m.group(1)) if m else None


def lacking(names, pack_ids: set[str], stamped_batches: set[int], purged_pack_ids: set[str]) -> tuple[list[str], list[int]]:
    """(packs, batches) marked in ``names`` that a catalog holding ``pack_ids`` and ``stamped_batches`` lacks,
    sorted: that catalog is older than the media (Q10). Packs removed by a purge the catalog recorded
    (``purged_pack_ids``) are not missing."""
    packs, batches = set(), set()
    for n in names:
        if (p := marked_pack(n)) is not None and p not in pack_ids and p not in purged_pack_ids:
            packs.add(p)
        elif (b := marked_batch(n)) is not None and b not in stamped_batches:
            batches.add(b)
    return sorted(packs), sorted(batches)
