"""A second Ctrl-C/SIGTERM that lands inside a DuckDB query ends the command as interrupted (exit 130), whatever
shape DuckDB gives the KeyboardInterrupt (toolkit/cli/main.py _caused_by_interrupt; docs/reliability.md A3)."""
from __future__ import annotations

import duckdb
import pyarrow as pa
import pytest

from toolkit.cli.main import _caused_by_interrupt


def _raised(fn) -> BaseException:
    try:
        fn()
    except BaseException as exc:  # noqa: BLE001 (the shape is what the test looks at)
        return exc
    raise AssertionError("nothing raised")


def test_an_arrow_reader_interrupted_inside_a_query_counts_as_interrupted():
    schema = pa.schema([("a", pa.int64())])

    def batches():
        yield pa.record_batch([pa.array(range(10))], schema=schema)
        raise KeyboardInterrupt

    con = duckdb.connect()
    con.register("reader", pa.RecordBatchReader.from_batches(schema, batches()))
    exc = _raised(lambda: con.execute("SELECT sum(a) FROM reader").fetchall())
    assert not isinstance(exc, KeyboardInterrupt) and _caused_by_interrupt(exc)


@pytest.mark.parametrize("exc", [duckdb.Error("KeyboardInterrupt: <EMPTY MESSAGE>"),  # the fresh-clone run's
                                 RuntimeError("Query interrupted")])
def test_duckdb_s_unchained_words_for_an_interrupt_count(exc):
    assert _caused_by_interrupt(exc)


@pytest.mark.parametrize("exc", [duckdb.Error("Catalog Error: Table with name x does not exist"),
                                 duckdb.IOException("IO Error: Could not write file: No space left on device"),
                                 RuntimeError("Query interrupted by the operator's query"),
                                 ValueError("KeyboardInterrupt"), RuntimeError("something else")])
def test_other_errors_do_not(exc):
    assert not _caused_by_interrupt(exc)
