"""The Arrow schema of each catalog table that is appended to in bulk.

The columns and types follow the migrations (``toolkit/catalog/migrations``);
rows are appended by name, so the order here is only the order of the Arrow
tables built from them. ``TABLES`` names the schema of each table.
"""
from __future__ import annotations

import pyarrow as pa

_TS = pa.timestamp("us", tz="UTC")

PACK_SCHEMA = pa.schema(
    [
        ("pack_id", pa.string()), ("medium_id", pa.int32()), ("name", pa.string()), ("bytes", pa.int64()),
        ("records", pa.int32()), ("blake3", pa.string()), ("created_at", _TS), ("run_id", pa.int32()),
    ]
)
MESSAGE_SCHEMA = pa.schema(
    [
        ("msg_id", pa.int64()), ("blob_id", pa.string()), ("dedup_key", pa.string()),
        ("pack_id", pa.string()), ("offset", pa.int64()), ("length", pa.int64()),
        ("size", pa.int64()), ("csize", pa.int64()), ("message_id", pa.string()),
        ("subject", pa.string()), ("from_addr", pa.string()), ("from_name", pa.string()),
        ("sent_date", _TS), ("internal_date", _TS), ("spam", pa.bool_()), ("defects", pa.string()),
        ("id_conflict", pa.bool_()), ("archived_at", _TS), ("run_id", pa.int32()), ("batch_id", pa.int32()),
    ]
)
RECIPIENT_SCHEMA = pa.schema([("msg_id", pa.int64()), ("kind", pa.string()), ("address", pa.string())])
ENVELOPE_SCHEMA = pa.schema(
    [
        ("envelope_id", pa.int64()), ("msg_id", pa.int64()), ("run_id", pa.int32()), ("text", pa.string()),
        ("sha256", pa.string()), ("learned_at", _TS), ("batch_id", pa.int32()),
    ]
)
SIGHTING_SCHEMA = pa.schema(
    [
        ("msg_id", pa.int64()), ("run_id", pa.int32()), ("source_uri", pa.string()), ("folder", pa.string()),
        ("source_ref", pa.string()), ("via", pa.string()), ("decision", pa.string()), ("flags", pa.string()),
        ("internal_date", _TS), ("seen_at", _TS), ("owner", pa.string()),
    ]
)
RUN_ERROR_SCHEMA = pa.schema(
    [("run_id", pa.int32()), ("kind", pa.string()), ("source_ref", pa.string()), ("message", pa.string())]
)
MESSAGE_LINK_SCHEMA = pa.schema(
    [("msg_id", pa.int64()), ("parent_msg_id", pa.int64()), ("kind", pa.string()), ("run_id", pa.int32()),
     ("source_ref", pa.string())]
)
CONVERSION_SCHEMA = pa.schema([("msg_id", pa.int64()), ("source_kind", pa.string()), ("converter", pa.string())])

TABLES: dict[str, pa.Schema] = {
    "packs": PACK_SCHEMA,
    "messages": MESSAGE_SCHEMA,
    "recipients": RECIPIENT_SCHEMA,
    "envelopes": ENVELOPE_SCHEMA,
    "sightings": SIGHTING_SCHEMA,
    "run_errors": RUN_ERROR_SCHEMA,
    "message_links": MESSAGE_LINK_SCHEMA,
    "conversions": CONVERSION_SCHEMA,
}


def rows_table(table: str, rows: list[dict]) -> pa.Table:
    """The Arrow table of ``rows`` (dicts with every column of ``table``; other keys are ignored)."""
    schema = TABLES[table]
    return pa.table({name: [row[name] for row in rows] for name in schema.names}, schema=schema)


def columns_table(table: str, columns: dict[str, list | pa.Array]) -> pa.Table:
    """The Arrow table of ``columns`` (exactly the columns of ``table``, each a list of values or an
    Arrow array, all of one length): converted column by column, never row by row."""
    schema = TABLES[table]
    if set(columns) != set(schema.names):
        raise ValueError(f"{table}: columns {sorted(set(columns) ^ set(schema.names))} do not match its schema")
    arrays = [_array(columns[f.name], f.type) for f in schema]
    return pa.Table.from_arrays(arrays, schema=schema)


def _array(values: list | pa.Array, type_: pa.DataType) -> pa.Array:
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        return values if values.type == type_ else values.cast(type_)
    return pa.array(values, type_)
