"""The per-mail work the archive format fixes (format v2, docs/formats.md), as the benches' floors count it:
SHA-256 of the mail (the blob id; in batches, by the engine an import chooses on this machine,
toolkit/blob_ids.py), the body normalised and hashed with BLAKE3 (the dedup key), zstd level 1 + AES-256-GCM
(the sealed record) and BLAKE3 of the record (the pack file's checksum)."""
from __future__ import annotations

import os
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from toolkit import blob_ids  # noqa: E402
from toolkit.hashes import checksum_hasher  # noqa: E402
from toolkit.headers import hash_body, split_offsets  # noqa: E402
from toolkit.pack import seal_record  # noqa: E402

#: how much mail one call of :func:`work_cpu` is given at most by the callers (the import's hash batch)
BATCH_BYTES = 8 * 1024 * 1024


def work_cpu(mails: list[bytes], key: bytes | None = None, archive_uuid: uuid.UUID | None = None) -> float:
    """CPU seconds (this thread's process) of the format's work on ``mails``."""
    key, archive_uuid = key or os.urandom(32), archive_uuid or uuid.uuid4()
    c0 = time.process_time()
    for raw, blob in zip(mails, blob_ids.sha256_many(mails)):
        hash_body(raw, split_offsets(raw)[1])
        record, _ = seal_record(key, archive_uuid, blob, raw, check=False)
        checksum_hasher().update(record).digest()
    return time.process_time() - c0


def work_cpu_batched(mails: list[bytes]) -> float:
    """:func:`work_cpu` over ``mails`` in batches of about :data:`BATCH_BYTES`, as a pack task hashes them."""
    key, archive_uuid = os.urandom(32), uuid.uuid4()
    total, batch, size = 0.0, [], 0
    for raw in mails:
        batch.append(raw)
        size += len(raw)
        if size >= BATCH_BYTES:
            total += work_cpu(batch, key, archive_uuid)
            batch, size = [], 0
    return total + (work_cpu(batch, key, archive_uuid) if batch else 0.0)
