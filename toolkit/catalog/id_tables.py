"""A list of keys handed to DuckDB as a registered Arrow table, for ``... IN (SELECT col FROM name)``.

Not as a list parameter: DuckDB's Python binding converts a list parameter element by element and tries to import
pandas for each element, ~70 µs an element where pandas is not installed (docs/architecture.md "Per-statement and
per-file costs that were not the work")."""
from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Iterator, Sequence

if TYPE_CHECKING:
    import pyarrow as pa


@contextlib.contextmanager
def registered_table(con, name: str, table: "pa.Table") -> Iterator[str]:
    """``table`` as the view ``name`` on ``con`` while the block runs; yields the name."""
    con.register(name, table)
    try:
        yield name
    finally:
        con.unregister(name)


@contextlib.contextmanager
def registered(con, name: str, column: str, values: Sequence, kind: str) -> Iterator[str]:
    """``values`` as the one column ``column`` (of the Arrow type ``kind``: ``"int64"``, ``"string"``) of the view
    ``name`` on ``con`` while the block runs; yields ``(SELECT column FROM name)`` for an ``IN``."""
    import pyarrow as pa

    with registered_table(con, name, pa.table({column: pa.array(values, getattr(pa, kind)())})):
        yield f"(SELECT {column} FROM {name})"
