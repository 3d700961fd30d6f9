"""The catalog's ``media`` table: a copy of the media registry in ``archive.toml``, kept for SQL.

The registry in the config is the truth; this table is replaced as a whole after each change to it.
"""
from __future__ import annotations

from typing import Iterable, Protocol

from .connection import Catalog


class MediumRow(Protocol):
    """What the table keeps of a registry entry (a :class:`toolkit.config.MediumEntry`)."""

    id: int
    location: str
    state: str
    alias_of: int | None
    created: str | None


def replace_media_rows(catalog: Catalog, media: Iterable[MediumRow]) -> None:
    """Replace the ``media`` table's rows by one row per registry entry, in one transaction."""
    with catalog.writing() as con:
        replace_media_rows_in(con, media)


def replace_media_rows_in(con, media: Iterable[MediumRow]) -> None:
    """:func:`replace_media_rows` inside the caller's transaction (with other changes that belong to it)."""
    rows = [
        [m.id, m.location, "smb" if m.location.startswith("smb://") else "local", m.state, m.alias_of, m.created or None]
        for m in media
    ]
    con.execute("DELETE FROM media")
    if rows:
        con.executemany("INSERT INTO media VALUES (?, ?, ?, ?, ?, ?)", rows)

