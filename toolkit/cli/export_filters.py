"""The selection options every ``export`` subcommand shares (exporters/filters.py holds the logic)."""
from __future__ import annotations

import functools

import click

from exporters.filters import Filters, dry_run

_OPTIONS = [
    click.option("--since", metavar="DATE", default=None,
                 help="Only mail dated on or after DATE (YYYY-MM-DD or ISO date-time; the sent date, else the internal date)."),
    click.option("--until", metavar="DATE", default=None,
                 help="Only mail dated up to DATE (a bare date includes that whole day)."),
    click.option("--address", "addresses", metavar="ADDR", multiple=True,
                 help="Only mail from or to ADDR (any recipient kind, Bcc from journal reports included); repeatable."),
    click.option("--domain", "domains", metavar="DOMAIN", multiple=True,
                 help="Only mail from or to an address at DOMAIN or its subdomains; repeatable."),
    click.option("--folder", "folders", metavar="FOLDER", multiple=True,
                 help="Only mail seen in source folder FOLDER (e.g. INBOX, Archive/2019) or its subfolders; repeatable."),
    click.option("--spam/--no-spam", "spam", default=None,
                 help="Only spam, or no spam (default: both)."),
    click.option("--where", default=None, metavar="SQL",
                 help="SQL condition over the catalog's messages (alias m), e.g. \"m.size > 1000000\"."),
    click.option("--dry-run", is_flag=True, help="Print how many messages and bytes would be exported; write nothing."),
]


def filter_options(f):
    """Add the shared options; the command receives ``filters`` (a Filters) and ``dry_run`` (bool)."""

    @functools.wraps(f)
    def wrapper(*args, since, until, addresses, domains, folders, spam, where, dry_run, **kw):
        filters = Filters(since=since, until=until, addresses=tuple(addresses), domains=tuple(domains),
                          folders=tuple(folders), spam=spam, where=where)
        filters.sql()  # bad values are usage errors before anything is opened
        return f(*args, filters=filters, dry_run=dry_run, **kw)

    for opt in reversed(_OPTIONS):
        wrapper = opt(wrapper)
    return wrapper


def emit_dry_run(ctx, filters: Filters) -> None:
    """Count the selection and print it (``--dry-run``)."""
    with ctx.open() as archive:
        r = dry_run(archive, filters)
    r["filters"] = filters.describe()
    ctx.ui.emit(r, lambda r: ctx.ui.say(f"Would export {r['count']} messages, {r['bytes'] / 1e6:.1f} MB (dry run)"))
