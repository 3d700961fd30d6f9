"""Warnings of the core that belong to no command's reporter, for whoever shows them (the core never prints).

The command line sets :func:`configure` at start (its warnings go to stderr, also with ``--quiet`` and ``--json``);
unset, a warning is only kept in :data:`GIVEN`, for a caller of the Python API to read. No DuckDB here: the
command line sets the sink before it knows whether the command opens the catalog.

Who warns: :meth:`toolkit.catalog.connection.Catalog` when a writer session could not end with its checkpoint
(docs/reliability.md A12).
"""
from __future__ import annotations

from typing import Callable

_SINK: dict[str, Callable[[str], None] | None] = {"warn": None}
#: The warnings given in this process, in order.
GIVEN: list[str] = []


def configure(*, warn: Callable[[str], None] | None) -> None:
    """Send this process's warnings to ``warn(message)`` (None: keep them in :data:`GIVEN` only)."""
    _SINK["warn"] = warn


def warn(message: str) -> None:
    GIVEN.append(message)
    sink = _SINK["warn"]
    if sink is not None:
        sink(message)
