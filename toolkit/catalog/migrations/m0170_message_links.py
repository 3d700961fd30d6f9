"""Links between archived messages (issue 17): an embedded message archived as its own mail points at
the mail it was embedded in (``kind`` ``embedded``). One row per pair and kind; ``run_id`` and
``source_ref`` name the sighting that first gave the link."""

SQL = """
CREATE TABLE cat.message_links (
    msg_id BIGINT NOT NULL, parent_msg_id BIGINT NOT NULL, kind VARCHAR NOT NULL,
    run_id INTEGER, source_ref VARCHAR);
"""
