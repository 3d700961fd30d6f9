"""Stamped events (docs/retention.md, docs/timestamps.md): ``events.batch_id`` names the stamp batch
whose Merkle tree holds an event of a stamped kind (``deletion-requested``, ``deletion-approved``,
``deletion-rejected``, ``deletion-purged``; :data:`toolkit.catalog.events.STAMPED_KINDS`) as a leaf
``leaf_hash_event(SHA-256 of the event's canonical JSON)``. NULL for every other event, and for a
stamped event until the next batch takes it."""

SQL = """
ALTER TABLE cat.events ADD COLUMN batch_id INTEGER;
"""
