"""Retention and approved deletion (docs/retention.md).

``retention_policies``: keep mail N years from its sent date (the internal date when it has
none), for one scope: ``scope_kind`` ``domain``, ``folder`` or ``user`` with its
``scope_value``. Setting a policy for a scope that has one replaces that row. With no policy
that covers a mail, the mail is not deletable.

``legal_holds``: a hold on a ``user``, an ``address`` or a ``query`` (a restricted WHERE over
``messages``), in force while ``released_at`` is NULL. A mail covered by a hold in force is
not deletable, whatever the policies say.

``deletion_requests``: one row per ``delete request``: the WHERE it was made with, the reason,
the requesting actor, and its ``status``: ``pending``, then ``approved`` or ``rejected`` by
another actor, then ``purged``. ``deletion_items`` freezes the mails a request selected when it
was made (an approval approves exactly those).

``tombstones``: what stays of a purged mail: its msg_id, blob id and the batch that stamped
it, so that the batch's Merkle root still recomputes; no content, no metadata.
"""

SQL = """
CREATE TABLE cat.retention_policies (
    scope_kind VARCHAR NOT NULL, scope_value VARCHAR NOT NULL, years INTEGER NOT NULL,
    set_by VARCHAR NOT NULL, set_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (scope_kind, scope_value));
CREATE TABLE cat.legal_holds (
    hold_id INTEGER PRIMARY KEY, kind VARCHAR NOT NULL, value VARCHAR NOT NULL, reason VARCHAR,
    set_by VARCHAR NOT NULL, set_at TIMESTAMPTZ NOT NULL,
    released_by VARCHAR, released_at TIMESTAMPTZ);
CREATE TABLE cat.deletion_requests (
    request_id INTEGER PRIMARY KEY, where_sql VARCHAR NOT NULL, reason VARCHAR NOT NULL,
    requested_by VARCHAR NOT NULL, requested_at TIMESTAMPTZ NOT NULL, status VARCHAR NOT NULL,
    decided_by VARCHAR, decided_at TIMESTAMPTZ, decision_note VARCHAR, purged_at TIMESTAMPTZ);
CREATE TABLE cat.deletion_items (request_id INTEGER NOT NULL, msg_id BIGINT NOT NULL);
CREATE TABLE cat.tombstones (
    msg_id BIGINT PRIMARY KEY, blob_id VARCHAR NOT NULL, batch_id INTEGER, request_id INTEGER NOT NULL,
    purged_at TIMESTAMPTZ NOT NULL);
"""
