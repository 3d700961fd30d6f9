"""Archive format v2 (issue 15): pack and catalog-backup checksums are BLAKE3, and the columns say so.

``packs.sha256`` and ``db_backups.sha256`` become ``packs.blake3`` and
``db_backups.blake3`` (hex BLAKE3 of the whole file, :mod:`toolkit.hashes`).
The catalog records its format in ``archive_info`` (key ``format``). A v1
archive never reaches this migration: its ``archive.toml`` says ``format = 1``
and is refused before the catalog is opened for writing. The envelope column
``envelopes.sha256`` keeps its name and its hash: it is SHA-256 of the envelope
text, part of the stamped Merkle leaves.
"""

SQL = """
ALTER TABLE cat.packs RENAME COLUMN sha256 TO blake3;
ALTER TABLE cat.db_backups RENAME COLUMN sha256 TO blake3;
INSERT INTO cat.archive_info VALUES ('format', '2');
"""
