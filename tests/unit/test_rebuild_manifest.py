"""``db rebuild`` reads stamp manifests: message leaves give blob ids back; envelope and deletion-event
leaves (whose rows only the catalog held) are counted by kind, so the rebuild can name what it lost."""
from __future__ import annotations

from media_tools.rebuild import manifest_batch


def test_leaves_other_than_messages_are_counted_by_kind():
    doc = {"batch_id": 7, "root": "ab" * 32, "token": "", "leaves": [
        {"kind": "message", "blob_id": "11" * 32},
        {"blob_id": "22" * 32},  # a manifest of before leaf kinds: a message
        {"kind": "envelope", "blob_id": "11" * 32, "envelope_sha256": "33" * 32},
        {"kind": "event", "event_sha256": "44" * 32, "event_id": 3},
        {"kind": "event", "event_sha256": "55" * 32, "event_id": 4},
    ]}
    row, blobs, others = manifest_batch(doc, "stamps/batch-7.manifest", 1)
    assert blobs == ["11" * 32, "22" * 32]
    assert others == {"envelope": 1, "event": 2}
    assert row["batch_id"] == 7 and row["leaf_count"] == 5
