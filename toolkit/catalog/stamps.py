"""The named reads and writes of time-stamping: stamp batches, renewals and their links (docs/formats.md).

Every function takes the connection of a session the caller opened on the
:class:`~toolkit.catalog.Catalog` (``reading()`` for reads, ``writing()``
for writes), so that what belongs to one commit lands in one transaction.
A read session of verify's checks (:mod:`.checking`) serves the reads too.
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Iterable


# -- leaves waiting for a batch ---------------------------------------------------------------------
def unbatched_counts(con) -> tuple[int, int]:
    """(messages, envelopes) that are in no stamp batch yet."""
    m = con.execute("SELECT count(*) FROM messages WHERE batch_id IS NULL").fetchone()[0]
    e = con.execute("SELECT count(*) FROM envelopes WHERE batch_id IS NULL").fetchone()[0]
    return m, e


def unbatched_messages(con, limit: int) -> list[tuple[int, str]]:
    """(msg_id, blob_id) of the first ``limit`` messages in no batch, by msg_id."""
    return con.execute(
        "SELECT msg_id, blob_id FROM messages WHERE batch_id IS NULL ORDER BY msg_id LIMIT ?", [limit]
    ).fetchall()


def unbatched_envelopes(con, limit: int) -> list[tuple[int, str, str]]:
    """(envelope_id, blob_id of its message, envelope sha256) of the first ``limit`` envelopes in no batch."""
    return con.execute(
        "SELECT e.envelope_id, m.blob_id, e.sha256 FROM envelopes e JOIN messages m USING (msg_id) "
        "WHERE e.batch_id IS NULL ORDER BY e.envelope_id LIMIT ?",
        [limit],
    ).fetchall()


# -- batches ----------------------------------------------------------------------------------------
#: a batch's message leaves: its archived messages and the tombstones of its purged ones (same blob id, same
#: msg_id), so that a purge never changes a batch's leaves (docs/retention.md "Purge and tombstones")
_LEAF_MESSAGES = "(SELECT msg_id, blob_id, batch_id FROM messages UNION ALL SELECT msg_id, blob_id, batch_id FROM tombstones)"


def batch_members(con, batch_id: int) -> tuple[list[str], list[tuple[str, str]]]:
    """A batch's message blob ids by msg_id (tombstones of purged mails included), and its envelopes'
    (blob id, sha256) by envelope_id."""
    msgs = con.execute(f"SELECT blob_id FROM {_LEAF_MESSAGES} WHERE batch_id = ? ORDER BY msg_id", [batch_id]).fetchall()
    envs = con.execute(
        f"SELECT m.blob_id, e.sha256 FROM envelopes e JOIN {_LEAF_MESSAGES} m USING (msg_id) "
        "WHERE e.batch_id = ? ORDER BY e.envelope_id",
        [batch_id],
    ).fetchall()
    return [b for (b,) in msgs], [(b, s) for b, s in envs]


def batch_message_ids(con, batch_id: int) -> list[int]:
    """The msg_ids of a batch in leaf order (purged ones included)."""
    return [r[0] for r in con.execute(f"SELECT msg_id FROM {_LEAF_MESSAGES} WHERE batch_id = ? ORDER BY msg_id",
                                      [batch_id]).fetchall()]


def open_batch_ids(con) -> list[int]:
    """The batches sealed but not stamped yet (status pending), oldest first."""
    return [r[0] for r in con.execute(
        "SELECT batch_id FROM stamp_batches WHERE status = 'pending' ORDER BY batch_id").fetchall()]


def open_batches(con) -> list[tuple[int, int, Any]]:
    """(batch_id, leaf_count, created_at) of the pending batches, oldest first."""
    return con.execute(
        "SELECT batch_id, leaf_count, created_at FROM stamp_batches WHERE status = 'pending' ORDER BY batch_id"
    ).fetchall()


def stamped_summary(con) -> tuple[int, int, Any]:
    """(stamped batches, their leaves, the latest genTime)."""
    return con.execute(
        "SELECT count(*), COALESCE(sum(leaf_count), 0), max(gen_time) FROM stamp_batches WHERE status = 'stamped'"
    ).fetchone()


def stamped_count_by_ca(con) -> dict[str, int]:
    """CA fingerprint → number of batches stamped under it."""
    return dict(con.execute(
        "SELECT ca_fingerprint, count(*) FROM stamp_batches WHERE status = 'stamped' GROUP BY ca_fingerprint"
    ).fetchall())


def stamped_count_for_ca(con, fingerprint: str) -> int:
    return con.execute("SELECT count(*) FROM stamp_batches WHERE ca_fingerprint = ? AND status = 'stamped'",
                       [fingerprint]).fetchone()[0]


def earliest_gen_time_for_ca(con, fingerprint: str) -> Any:
    """The earliest genTime among the batches stamped under a CA (None: none)."""
    return con.execute("SELECT min(gen_time) FROM stamp_batches WHERE ca_fingerprint = ? AND status = 'stamped'",
                       [fingerprint]).fetchone()[0]


def next_batch_id(con) -> int:
    return con.execute("SELECT COALESCE(MAX(batch_id), 0) + 1 FROM stamp_batches").fetchone()[0]


def open_batch(con, batch_id: int, first_msg: int | None, last_msg: int | None, leaf_count: int, root_hex: str,
               created_at: dt.datetime) -> None:
    """Record a sealed batch (status pending)."""
    con.execute(
        "INSERT INTO stamp_batches (batch_id, first_msg_id, last_msg_id, leaf_count, merkle_root, status, created_at) "
        "VALUES (?, ?, ?, ?, ?, 'pending', ?)",
        [batch_id, first_msg, last_msg, leaf_count, root_hex, created_at],
    )


def batch_messages_up_to(con, batch_id: int, last_msg: int) -> None:
    """Put every unbatched message with msg_id ≤ ``last_msg`` into the batch."""
    con.execute("UPDATE messages SET batch_id = ? WHERE batch_id IS NULL AND msg_id <= ?", [batch_id, last_msg])


def batch_envelopes_up_to(con, batch_id: int, last_envelope: int) -> None:
    """Put every unbatched envelope (of an existing message) with envelope_id ≤ ``last_envelope`` into the batch."""
    con.execute(
        "UPDATE envelopes SET batch_id = ? WHERE batch_id IS NULL AND envelope_id <= ? "
        "AND msg_id IN (SELECT msg_id FROM messages)",
        [batch_id, last_envelope],
    )


def sealed_batch(con, batch_id: int) -> tuple | None:
    """(merkle_root, leaf_count, first_msg_id, last_msg_id, created_at) of a batch."""
    return con.execute(
        "SELECT merkle_root, leaf_count, first_msg_id, last_msg_id, created_at FROM stamp_batches WHERE batch_id = ?",
        [batch_id],
    ).fetchone()


def batch_for_evidence(con, batch_id: int) -> tuple | None:
    """(status, merkle_root, token, gen_time, serial, tsa_url, ca_fingerprint, created_at, leaf_count) of a batch."""
    return con.execute(
        "SELECT status, merkle_root, token, gen_time, serial, tsa_url, ca_fingerprint, created_at, leaf_count "
        "FROM stamp_batches WHERE batch_id = ?", [batch_id]).fetchone()


def mark_batch_stamped(con, batch_id: int, *, token: bytes, tsa_url: str, ca_fingerprint: str, gen_time: Any,
                       serial: Any, nonce: str, manifest_name: str, medium_id: int) -> None:
    """Record a pending batch's verified token and manifest (status stamped)."""
    con.execute(
        "UPDATE stamp_batches SET status = 'stamped', token = ?, tsa_url = ?, ca_fingerprint = ?, gen_time = ?, "
        "serial = ?, nonce = ?, manifest_name = ?, medium_id = ? WHERE batch_id = ? AND status = 'pending'",
        [token, tsa_url, ca_fingerprint, gen_time, serial, nonce, manifest_name, medium_id, batch_id],
    )


def stamped_tokens(con) -> list[tuple]:
    """(batch_id, merkle_root, token, ca_fingerprint, gen_time, tsa_url) of every stamped batch with a token."""
    return con.execute(
        "SELECT batch_id, merkle_root, token, ca_fingerprint, gen_time, tsa_url FROM stamp_batches "
        "WHERE status = 'stamped' AND token IS NOT NULL ORDER BY batch_id"
    ).fetchall()


def batch_roots(con) -> dict[int, str]:
    """batch_id → merkle root (hex) of every batch."""
    return dict(con.execute("SELECT batch_id, merkle_root FROM stamp_batches").fetchall())


def stamped_batch_ids(con) -> set[int]:
    """The ids of the batches committed as stamped."""
    return {b for (b,) in con.execute("SELECT batch_id FROM stamp_batches WHERE status = 'stamped'").fetchall()}


def batch_ids(con) -> set[int]:
    return {r[0] for r in con.execute("SELECT batch_id FROM stamp_batches").fetchall()}


# -- renewals ---------------------------------------------------------------------------------------
def renewals(con) -> list[tuple]:
    """(renewal_id, merkle_root, token, ca_fingerprint, gen_time, tsa_url, leaf_count) of every renewal."""
    return con.execute(
        "SELECT renewal_id, merkle_root, token, ca_fingerprint, gen_time, tsa_url, leaf_count FROM stamp_renewals "
        "ORDER BY renewal_id"
    ).fetchall()


def renewal_count(con) -> int:
    return con.execute("SELECT count(*) FROM stamp_renewals").fetchone()[0]


def renewal_links(con, renewal_id: int) -> list[tuple[int, int, str]]:
    """(batch_id, leaf_index, leaf hex) of a renewal's leaves in order."""
    return con.execute(
        "SELECT batch_id, leaf_index, leaf FROM renewal_links WHERE renewal_id = ? ORDER BY leaf_index", [renewal_id]
    ).fetchall()


def next_renewal_id(con) -> int:
    return con.execute("SELECT COALESCE(MAX(renewal_id), 0) + 1 FROM stamp_renewals").fetchone()[0]


def record_renewal(con, renewal_id: int, *, root_hex: str, token: bytes, tsa_url: str | None,
                   ca_fingerprint: str | None, gen_time: Any, serial: Any, nonce: str | None, created_at: Any,
                   manifest_name: str, medium_id: int, links: Iterable[tuple]) -> None:
    """A renewal and its links ``(leaf_index, batch_id, prev_renewal_id, leaf hex)``, in the caller's transaction."""
    links = [list(link) for link in links]
    con.execute(
        "INSERT INTO stamp_renewals (renewal_id, merkle_root, leaf_count, token, tsa_url, ca_fingerprint, gen_time, "
        "serial, nonce, created_at, manifest_name, medium_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [renewal_id, root_hex, len(links), token, tsa_url, ca_fingerprint, gen_time, serial, nonce, created_at,
         manifest_name, medium_id],
    )
    if links:
        con.executemany("INSERT INTO renewal_links (renewal_id, leaf_index, batch_id, prev_renewal_id, leaf) "
                        "VALUES (?, ?, ?, ?, ?)", [[renewal_id, *link] for link in links])
