"""``mailarchive stats`` and ``mailarchive sql``."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ..catalog import reads
from ..errors import UsageError
from ..stats import archive_stats
from .main import cli, command, pass_ctx


@command(cli, "stats")
@pass_ctx
def stats_cmd(ctx):
    """Counts and bytes: messages, packs, recipients, sightings, runs, per medium."""
    with ctx.open() as archive:
        s = archive_stats(archive)

    def human(r):
        ctx.ui.say(
            f"Archive {r['uuid']}: {r['messages']} messages ({r['message_bytes'] / 1e6:.1f} MB), "
            f"{r['packs']} packs ({r['pack_bytes'] / 1e6:.1f} MB), {r['sightings']} sightings, {r['runs']} runs"
        )
        ctx.ui.table(
            "Per medium", ["medium", "state", "packs", "messages", "pack bytes"],
            [[m["id"], m["state"], m["packs"], m["messages"], m["pack_bytes"]] for m in r["media"]],
        )
        if r["decisions"]:
            ctx.ui.say("Decisions: " + ", ".join(f"{k} {v}" for k, v in sorted(r["decisions"].items())))

    ctx.ui.emit(s, human)


@command(cli, "sql")
@click.argument("query")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json", "parquet"]), default="table", show_default=True)
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), default=None, help="Write to this file instead of stdout (required for parquet).")
@pass_ctx
def sql_cmd(ctx, query, fmt, out):
    """Run one read-only SQL QUERY (a SELECT) over the catalog (DuckDB dialect).

    The query cannot read or write files, load extensions or change settings;
    --out and --format are written by mailarchive itself. Tables: messages, recipients, sightings, packs, media, runs, run_errors,
    cursors, stamp_batches, db_backups, events. Example:
    mailarchive sql "SELECT decision, count(*) FROM sightings GROUP BY 1"
    """
    import duckdb

    from ..user_sql import check_query

    if fmt == "parquet" and out is None:
        raise UsageError("--format parquet needs --out FILE")
    check_query(query)  # one SELECT, before the archive is opened
    with ctx.open() as archive:
        with archive.catalog.querying() as session:
            try:
                table = reads.user_query(session, query)
            except duckdb.Error as exc:
                raise UsageError(f"the query failed: {str(exc).strip()}") from None
    import polars as pl

    df = pl.from_arrow(table)
    if fmt == "parquet":
        df.write_parquet(out)
        return
    if fmt == "csv" or (ctx.ui.json is False and fmt == "csv"):
        text = df.write_csv()
    elif fmt == "json" or ctx.ui.json:
        text = json.dumps(df.to_dicts(), default=str, ensure_ascii=False) + "\n"
    else:
        with pl.Config(tbl_rows=1000, tbl_cols=50, fmt_str_lengths=80, tbl_width_chars=200):
            text = str(df) + "\n"
    if out:
        out.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
