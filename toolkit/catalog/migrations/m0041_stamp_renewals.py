"""Renewal time-stamps: a newer token over older tokens, so proof outlives a TSA certificate.

A renewal stamps a Merkle tree whose leaves (in ``leaf_index`` order) are,
for each batch it renews, SHA-256(batch root ‖ SHA-256(the batch's current
token)); the current token is the batch's own (``prev_renewal_id`` NULL) or
that of the renewal that covered it last.
"""

SQL = """
CREATE TABLE cat.stamp_renewals (
    renewal_id INTEGER PRIMARY KEY, merkle_root VARCHAR NOT NULL, leaf_count BIGINT NOT NULL, token BLOB,
    tsa_url VARCHAR, ca_fingerprint VARCHAR, gen_time TIMESTAMPTZ, serial VARCHAR, nonce VARCHAR,
    created_at TIMESTAMPTZ, manifest_name VARCHAR, medium_id INTEGER);
CREATE TABLE cat.renewal_links (
    renewal_id INTEGER NOT NULL, leaf_index INTEGER NOT NULL, batch_id INTEGER NOT NULL,
    prev_renewal_id INTEGER, leaf VARCHAR NOT NULL);
"""
