"""A list of keys handed to DuckDB as a registered Arrow table, for ``... IN (SELECT col FROM name)``.

Not as a list parameter: DuckDB's Python binding converts a list parameter element by element and tries to import
pandas for each element, ~70 µs an element where pandas is not installed (docs/architecture.md "Per-statement and
per-file costs that were not the work")."""
from __future__ import annotations

import contextlib
from typing import Iterator, Sequence

import pyarrow as pa


@contextlib.contextmanager
def registered(con, name: str, column: str, values: Sequence, kind: pa.DataType) -> Iterator[str]:
    """``values`` as the one column ``column`` of the view ``name`` on ``con`` while the block runs; yields
    ``(SELECT column FROM name)`` for an ``IN``."""
    con.register(name, pa.table({column: pa.array(values, kind)}))
    try:
        yield f"(SELECT {column} FROM {name})"
    finally:
        con.unregister(name)
