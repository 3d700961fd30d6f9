"""Every TSA CA certificate the archive has trusted, with when it was trusted.

``fingerprint`` is the SHA-256 of ``der`` (the trust anchor, the first
certificate of the file it came from); ``pem`` is that whole file (anchor
plus any intermediates). ``tsa_urls`` is a JSON list of the TSA URLs it
served; ``policy`` (optional) is the TSA policy OID every token under this
CA must carry. A batch stamped at genTime T verifies only against the CA whose
fingerprint it records, and only if ``added_at <= T`` (a small clock skew
allowed) and ``retired_at`` is empty or later than T.
"""

SQL = """
CREATE TABLE cat.tsa_cas (
    fingerprint VARCHAR PRIMARY KEY, der BLOB NOT NULL, pem VARCHAR NOT NULL, subject VARCHAR,
    not_after TIMESTAMPTZ, added_at TIMESTAMPTZ NOT NULL, retired_at TIMESTAMPTZ, tsa_urls VARCHAR, policy VARCHAR);
"""
