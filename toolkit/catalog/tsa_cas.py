"""The named reads and writes of the TSA CA history (table ``tsa_cas``, see ``verify.ca_history``).

Every function takes the connection of a session the caller opened; rows are
never deleted here (a retired CA is kept so that older batches keep verifying).
"""
from __future__ import annotations

import datetime as dt
from typing import Any


def all_cas(con) -> list[tuple]:
    """(fingerprint, pem, subject, not_after, added_at, retired_at, tsa_urls JSON, policy), oldest first."""
    return con.execute(
        "SELECT fingerprint, pem, subject, not_after, added_at, retired_at, tsa_urls, policy FROM tsa_cas ORDER BY added_at"
    ).fetchall()


def ca_state(con, fingerprint: str) -> tuple | None:
    """(retired_at, tsa_urls JSON, policy) of a CA, or None when it is not in the history."""
    return con.execute("SELECT retired_at, tsa_urls, policy FROM tsa_cas WHERE fingerprint = ?",
                       [fingerprint]).fetchone()


def ca_known(con, fingerprint: str) -> bool:
    return bool(con.execute("SELECT count(*) FROM tsa_cas WHERE fingerprint = ?", [fingerprint]).fetchone()[0])


def ca_pem(con, fingerprint: str) -> str:
    """The stored PEM file (anchor plus intermediates) of a known CA."""
    return con.execute("SELECT pem FROM tsa_cas WHERE fingerprint = ?", [fingerprint]).fetchone()[0]


def ca_start(con, fingerprint: str) -> tuple | None:
    """(added_at, tsa_urls JSON) of a CA, or None when it is not in the history."""
    return con.execute("SELECT added_at, tsa_urls FROM tsa_cas WHERE fingerprint = ?", [fingerprint]).fetchone()


def fingerprints_starting(con, prefix: str) -> list[str]:
    return [r[0] for r in con.execute("SELECT fingerprint FROM tsa_cas WHERE starts_with(fingerprint, ?)",
                                      [prefix]).fetchall()]


def add_ca(con, *, fingerprint: str, der: bytes, pem: str, subject: str, not_after: Any, added_at: Any,
           tsa_urls_json: str, policy: str | None) -> None:
    """A CA new to the history (not retired)."""
    con.execute(
        "INSERT INTO tsa_cas (fingerprint, der, pem, subject, not_after, added_at, retired_at, tsa_urls, policy) "
        "VALUES (?, ?, ?, ?, ?, ?, NULL, ?, ?)",
        [fingerprint, der, pem, subject, not_after, added_at, tsa_urls_json, policy],
    )


def set_policy(con, fingerprint: str, policy: str) -> None:
    con.execute("UPDATE tsa_cas SET policy = ? WHERE fingerprint = ?", [policy, fingerprint])


def set_tsa_urls(con, fingerprint: str, tsa_urls_json: str) -> None:
    con.execute("UPDATE tsa_cas SET tsa_urls = ? WHERE fingerprint = ?", [tsa_urls_json, fingerprint])


def set_pem(con, fingerprint: str, pem: str) -> None:
    con.execute("UPDATE tsa_cas SET pem = ? WHERE fingerprint = ?", [pem, fingerprint])


def set_start(con, fingerprint: str, added_at: Any, tsa_urls_json: str) -> None:
    con.execute("UPDATE tsa_cas SET added_at = ?, tsa_urls = ? WHERE fingerprint = ?",
                [added_at, tsa_urls_json, fingerprint])


def retire_ca(con, fingerprint: str, when: dt.datetime) -> None:
    con.execute("UPDATE tsa_cas SET retired_at = ? WHERE fingerprint = ?", [when, fingerprint])
