"""``messages`` without its PRIMARY KEY index (docs/formats.md).

DuckDB keeps a primary key as an ART index, and every checkpoint (each import commit ends
in one when the catalog is detached) writes the index's changed parts: measured on an
encrypted catalog, a commit of 2,000 rows then took ~30 ms at 20,000 messages and ~350 ms
at 2 million, against ~16 ms at any size without the index. msg_ids are handed out by the
one writer (the next after the highest, under the writer lock) and only ever grow, so the
table's zone maps find a msg_id without an index; their uniqueness is checked by quick
verify (Q05) instead of by an insert. The table is copied as it is, in msg_id order.
"""

SQL = """
CREATE TABLE cat.messages_unindexed (
    msg_id BIGINT NOT NULL, blob_id VARCHAR NOT NULL, dedup_key VARCHAR NOT NULL,
    pack_id VARCHAR NOT NULL, "offset" BIGINT NOT NULL, length BIGINT NOT NULL,
    size BIGINT NOT NULL, csize BIGINT NOT NULL,
    message_id VARCHAR, subject VARCHAR, from_addr VARCHAR, from_name VARCHAR,
    sent_date TIMESTAMPTZ, internal_date TIMESTAMPTZ, spam BOOLEAN NOT NULL,
    defects VARCHAR, id_conflict BOOLEAN NOT NULL, archived_at TIMESTAMPTZ NOT NULL,
    run_id INTEGER, batch_id INTEGER);
INSERT INTO cat.messages_unindexed BY NAME SELECT * FROM cat.messages ORDER BY msg_id;
DROP VIEW cat.converted_twins;
DROP TABLE cat.messages;
ALTER TABLE cat.messages_unindexed RENAME TO messages;
CREATE VIEW cat.converted_twins AS
    SELECT l.parent_msg_id AS original_msg_id, l.msg_id AS converted_msg_id, c.source_kind, c.converter,
           o.message_id, o.subject, l.run_id, l.source_ref
    FROM cat.message_links l JOIN cat.messages o ON o.msg_id = l.parent_msg_id
    LEFT JOIN cat.conversions c ON c.msg_id = l.msg_id
    WHERE l.kind = 'converted-twin';
"""
