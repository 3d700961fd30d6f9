"""``mailarchive sql``."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ...catalog import reads
from ...errors import UsageError
from ..export_filters import resolve_scope
from ..main import cli, command, pass_ctx


@command(cli, "sql")
@click.argument("query")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json", "parquet"]), default="table", show_default=True)
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), default=None, help="Write to this file instead of stdout (required for parquet).")
@click.option("--as-user", "as_user", metavar="NAME", default=None,
              help="See only the mail of directory user NAME (messages, recipients, sightings, envelopes; no other table).")
@click.option("--as-revisor", "as_revisor", metavar="PROFILE", default=None,
              help="See only the mail in the saved scope of revisor PROFILE (same tables as --as-user).")
@pass_ctx
def sql_cmd(ctx, query, fmt, out, as_user, as_revisor):
    """Run one read-only SQL QUERY (a SELECT) over the catalog (DuckDB dialect).

    The query cannot read or write files, load extensions or change settings;
    --out and --format are written by mailarchive itself. Tables: messages, recipients, sightings, packs, media, runs, run_errors,
    cursors, stamp_batches, db_backups, events, and the directory's domains, domain_aliases, users,
    user_addresses, groups, group_members, group_assigned, revisor_scopes. With --as-user or
    --as-revisor only messages, recipients, sightings and envelopes exist, holding the rows in scope. Example:
    mailarchive sql "SELECT decision, count(*) FROM sightings GROUP BY 1"
    """
    import duckdb

    from ...catalog.user_sql import check_query

    if fmt == "parquet" and out is None:
        raise UsageError("--format parquet needs --out FILE")
    check_query(query)  # one SELECT, before the archive is opened
    scope = resolve_scope(ctx, as_user, as_revisor)
    with ctx.open() as archive:
        with archive.catalog.querying(scope=scope) as session:
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
