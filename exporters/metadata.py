"""``export metadata DEST.parquet|.csv|.json``: one row per selected message, for auditors and migrations.

Columns: the catalog fields of ``messages`` (msg_id, blob_id, message_id,
subject, from_addr, from_name, sent_date, internal_date, size, spam,
defects, id_conflict, archived_at, run_id, pack_id), ``recipients`` (a
list of {kind, address}: to, cc, bcc — including Bcc learned from journal
reports — and envelope) and ``sightings`` (a list of {source_uri, folder,
source_ref, via, decision, flags, internal_date, seen_at}).

Parquet and JSON keep the lists as lists (JSON: one array of objects);
CSV cannot, so there the two list columns hold JSON text. The format
follows DEST's suffix. The file is written under a temporary name and
linked into place (create-only): it is complete or absent. Neither name is
followed if it is a symlink (a symlink at DEST is an error naming it); the
file gets mode 0600 unless ``mode`` asks for more.
"""
from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

import polars as pl

from toolkit.archive import Archive
from toolkit.catalog import reads
from toolkit.errors import UsageError

from .filters import Filters
from .naming import DEFAULT_FILE_MODE, open_exclusive
from .target_space import stops_when_full

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
    df = metadata_frame(archive, filters)
    tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.part")
    try:
        with open_exclusive(dest.parent, tmp, mode=mode) as f:  # O_NOFOLLOW|O_EXCL, mode set exactly
            if fmt == "parquet":
                df.write_parquet(f)
            elif fmt == "json":
                f.write(json.dumps(df.to_dicts(), ensure_ascii=False, indent=1, default=_json_default).encode("utf-8"))
            else:
                flat = df.with_columns(
                    pl.Series("recipients", [json.dumps(v, ensure_ascii=False) for v in df["recipients"].to_list()]),
                    pl.Series("sightings", [json.dumps(v, ensure_ascii=False, default=_json_default)
                                            for v in df["sightings"].to_list()]),
                )
                flat.write_csv(f)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, dest)  # create-only; a symlink planted at DEST meanwhile is not followed
        except FileExistsError:
            raise UsageError(f"refusing to write {str(dest)!r}: something (a file or a symlink) appeared there") from None
    finally:
        tmp.unlink(missing_ok=True)
    return {"dest": str(dest), "format": fmt, "rows": df.height, "filters": (filters or Filters()).describe()}


def _json_default(v):
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return str(v)
