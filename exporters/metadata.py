"""``export metadata DEST.parquet|.csv|.json``: one row per selected message, for auditors and migrations.

Columns: the catalog fields of ``messages`` (msg_id, blob_id, message_id,
subject, from_addr, from_name, sent_date, internal_date, size, spam,
defects, id_conflict, archived_at, run_id, pack_id), ``recipients`` (a
list of {kind, address}: to, cc, bcc — including Bcc learned from journal
reports — and envelope) and ``sightings`` (a list of {source_uri, folder,
source_ref, via, decision, flags, internal_date, seen_at}).

Parquet and JSON keep the lists as lists (JSON: one array of objects);
CSV cannot, so there the two list columns hold JSON text. The format
follows DEST's suffix. The rows are read and written a page (a range of
msg_ids) at a time, in msg_id order: Parquet gets a row group per page;
JSON and CSV are the same bytes as one whole-table write
(docs/reliability.md K8). The file is written under a temporary name and
linked into place (create-only): it is complete or absent. Neither name is
followed if it is a symlink (a symlink at DEST is an error naming it); the
file gets mode 0600 unless ``mode`` asks for more.
"""
from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Iterator

import polars as pl

from toolkit.archive import Archive
from toolkit.catalog import reads
from toolkit.errors import UsageError
from toolkit.process_guard import give_back_freed_memory

from .filters import Filters
from .naming import DEFAULT_FILE_MODE, open_exclusive
from .target_space import stops_when_full

#: DuckDB's memory in the session of the paged read: enough for a page's sorts and lists, and what it read is not
#: kept cached for the whole export (docs/reliability.md K8)
EXPORT_MEMORY_LIMIT = 128 << 20

FORMATS = {".parquet": "parquet", ".csv": "csv", ".json": "json"}

def format_of(dest: Path, fmt: str | None = None) -> str:
    if fmt:
        if fmt not in FORMATS.values():
            raise UsageError(f"unknown format {fmt!r}; choose parquet, csv or json")
        return fmt
    got = FORMATS.get(Path(dest).suffix.lower())
    if got is None:
        raise UsageError(f"{dest}: name the file .parquet, .csv or .json (or give --format)")
    return got


def metadata_frames(archive: Archive, filters: Filters | None = None) -> Iterator[pl.DataFrame]:
    """The metadata rows as polars DataFrames of a page of messages each, in msg_id order (the first one even
    when nothing is selected); memory is bounded by the page, not the catalog (docs/reliability.md K8)."""
    where, params = (filters or Filters()).sql()
    with archive.catalog.querying(memory_limit=EXPORT_MEMORY_LIMIT) as session:  # may hold the operator's --where
        pages = reads.metadata_pages(session, where, params)
        while True:
            try:
                table = next(pages)
            except StopIteration:
                return
            except Exception as exc:  # duckdb.Error for a bad --where
                raise UsageError(f"the selection failed: {exc}") from None
            yield pl.from_arrow(table)
            del table
            give_back_freed_memory()  # the page's DuckDB and Arrow buffers (docs/reliability.md K8)


def metadata_frame(archive: Archive, filters: Filters | None = None) -> pl.DataFrame:
    """The metadata rows as a polars DataFrame (one row per message)."""
    where, params = (filters or Filters()).sql()
    with archive.catalog.querying() as session:  # the filters may hold the operator's --where
        try:
            table = reads.metadata_table(session, where, params)
        except Exception as exc:  # duckdb.Error for a bad --where
            raise UsageError(f"the selection failed: {exc}") from None
    return pl.from_arrow(table)


@stops_when_full
def export_metadata(archive: Archive, dest: Path, filters: Filters | None = None, fmt: str | None = None,
                    mode: int = DEFAULT_FILE_MODE) -> dict:
    """Write the metadata file; returns {"dest", "format", "rows"}."""
    from toolkit.places import refuse_overlap

    refuse_overlap(archive, dest, "export metadata", around=False)  # never plaintext into a medium or the home
    dest = Path(dest)
    fmt = format_of(dest, fmt)
    if dest.is_symlink():
        raise UsageError(f"refusing to write {str(dest)!r}: it is a symlink; metadata exports never follow one")
    if dest.exists():
        raise UsageError(f"{dest} exists; metadata exports never replace a file — remove it or choose another name")
    if not dest.parent.is_dir():
        raise UsageError(f"{dest.parent} is not a directory")
    tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.part")
    rows = 0
    try:
        with open_exclusive(dest.parent, tmp, mode=mode) as f:  # O_NOFOLLOW|O_EXCL, mode set exactly
            # page by page: the file grows while the selection is read (docs/reliability.md K8)
            rows = _WRITERS[fmt](f, metadata_frames(archive, filters))
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, dest)  # create-only; a symlink planted at DEST meanwhile is not followed
        except FileExistsError:
            raise UsageError(f"refusing to write {str(dest)!r}: something (a file or a symlink) appeared there") from None
    finally:
        tmp.unlink(missing_ok=True)
    return {"dest": str(dest), "format": fmt, "rows": rows, "filters": (filters or Filters()).describe()}


def _write_parquet(f, frames: Iterator[pl.DataFrame]) -> int:
    """One Parquet file, a row group per page (zstd, as polars writes it)."""
    import pyarrow.parquet as pq

    rows = 0
    writer = None
    try:
        for df in frames:
            table = df.to_arrow()
            if writer is None:
                writer = pq.ParquetWriter(f, table.schema, compression="zstd")
            writer.write_table(table)
            rows += df.height
    finally:
        if writer is not None:
            writer.close()
    return rows


def _write_json(f, frames: Iterator[pl.DataFrame]) -> int:
    """One JSON array of objects, the same bytes as ``json.dumps(all rows, indent=1)`` written a page at a time."""
    rows = 0
    for df in frames:
        if not df.height:
            continue
        text = json.dumps(df.to_dicts(), ensure_ascii=False, indent=1, default=_json_default)
        f.write((",\n" if rows else "[\n").encode("utf-8") + text[2:-2].encode("utf-8"))  # without "[\n" and "\n]"
        rows += df.height
    f.write(b"\n]" if rows else b"[]")
    return rows


def _write_csv(f, frames: Iterator[pl.DataFrame]) -> int:
    """CSV with a header line, the two list columns as JSON text."""
    rows = 0
    first = True
    for df in frames:
        if df.height or first:
            flat = df.with_columns(
                pl.Series("recipients", [json.dumps(v, ensure_ascii=False) for v in df["recipients"].to_list()],
                          dtype=pl.String),
                pl.Series("sightings", [json.dumps(v, ensure_ascii=False, default=_json_default)
                                        for v in df["sightings"].to_list()], dtype=pl.String),
            )
            flat.write_csv(f, include_header=first)
            first = False
        rows += df.height
    return rows


_WRITERS = {"parquet": _write_parquet, "json": _write_json, "csv": _write_csv}


def _json_default(v):
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return str(v)
