"""Journal envelopes kept as evidence, and fuller stamp batch records (docs/dedup.md, docs/timestamps.md)."""

SQL = """
CREATE TABLE cat.envelopes (
    envelope_id BIGINT PRIMARY KEY, msg_id BIGINT NOT NULL, run_id INTEGER, text VARCHAR NOT NULL,
    sha256 VARCHAR NOT NULL, learned_at TIMESTAMPTZ NOT NULL, batch_id INTEGER);
ALTER TABLE cat.stamp_batches ADD COLUMN created_at TIMESTAMPTZ;
ALTER TABLE cat.stamp_batches ADD COLUMN manifest_name VARCHAR;
ALTER TABLE cat.stamp_batches ADD COLUMN medium_id INTEGER;
ALTER TABLE cat.stamp_batches ADD COLUMN serial VARCHAR;
ALTER TABLE cat.stamp_batches ADD COLUMN nonce VARCHAR;
"""
