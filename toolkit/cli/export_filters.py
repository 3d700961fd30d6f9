"""The selection options every ``export`` subcommand shares (exporters/filters.py holds the logic).

An export that selects nothing is a mistake, never a silent success: a
``--folder``, ``--domain`` or ``--address`` that names nothing the archive
holds is a usage error (exit 2) naming it, and a selection that is empty for
any other reason (dates, ``--where``) ends with exit status 1 before anything
is written ("the selection matches no message").
"""
from __future__ import annotations

import dataclasses
import functools

import click
import duckdb

from exporters.filters import Filters, dry_run

from ..catalog import directory, reads
from ..errors import NothingSelectedError, UsageError
from .output import human_bytes

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
    click.option("--as-user", "as_user", metavar="NAME", default=None,
                 help="Only the mail user NAME of the directory may see: from or to one of their addresses, or an "
                      "assigned address of one of their groups (Bcc and journal envelopes included)."),
    click.option("--as-revisor", "as_revisor", metavar="PROFILE", default=None,
                 help="Only the mail in the saved scope of revisor PROFILE (`directory revisor set`)."),
    click.option("--dry-run", is_flag=True, help="Print how many messages and bytes would be exported; write nothing."),
]


def filter_options(f):
    """Add the shared options; the command receives ``filters`` (a Filters) and ``dry_run`` (bool)."""

    @functools.wraps(f)
    def wrapper(*args, since, until, addresses, domains, folders, spam, where, as_user, as_revisor, dry_run, **kw):
        filters = Filters(since=since, until=until, addresses=tuple(addresses), domains=tuple(domains),
                          folders=tuple(folders), spam=spam, where=where)
        filters.sql()  # bad values are usage errors before anything is opened
        ctx = click.get_current_context().obj
        scope = resolve_scope(ctx, as_user, as_revisor)
        if scope is not None:
            filters = dataclasses.replace(filters, scope=scope)
        _check_selection(ctx, filters)
        return f(*args, filters=filters, dry_run=dry_run, **kw)

    for opt in reversed(_OPTIONS):
        wrapper = opt(wrapper)
    return wrapper


def resolve_scope(ctx, as_user: str | None, as_revisor: str | None):
    """The Scope of ``--as-user``/``--as-revisor`` (at most one), built from the directory, or None."""
    if as_user is not None and as_revisor is not None:
        raise UsageError("give --as-user or --as-revisor, not both")
    if as_user is None and as_revisor is None:
        return None
    with ctx.open() as archive, archive.catalog.reading() as con:
        if as_user is not None:
            return directory.user_scope(con, as_user)
        return directory.revisor_scope(con, as_revisor)


def _count(session, filters: Filters) -> int:
    """Messages the filters select, counted in the restricted read session (the condition is user SQL)."""
    where, params = filters.sql()
    try:
        return reads.count_messages(session, where, params)
    except duckdb.Error as exc:
        raise UsageError(f"--where {filters.where!r} cannot run: {str(exc).splitlines()[0]}") from None


#: how to list what the archive holds, for the option that named nothing it holds
_LISTS = {
    "--folder": 'folders with "SELECT DISTINCT folder FROM sightings"',
    "--domain": "domains with \"SELECT DISTINCT split_part(from_addr, '@', 2) FROM messages\"",
    "--address": 'senders with "SELECT DISTINCT from_addr FROM messages"',
}


def _check_selection(ctx, filters: Filters) -> None:
    """Usage error for a folder, domain or address no archived mail has; exit 1 for an empty selection."""
    with ctx.open() as archive, archive.catalog.querying() as con:
        unknown = [
            f"--{opt} {name!r}"
            for opt, key in (("folder", "folders"), ("domain", "domains"), ("address", "addresses"))
            for name in getattr(filters, key)
            if not _count(con, Filters(**{key: (name,)}))
        ]
        if unknown:
            raise UsageError(f"no archived mail matches {', '.join(unknown)}: a typo? (`mailarchive sql` lists "
                             + "; ".join(_LISTS[opt] for opt in dict.fromkeys(u.split()[0] for u in unknown)) + ")")
        if not _count(con, filters):
            raise NothingSelectedError(
                f"the selection matches no message ({as_options(filters) or 'the archive is empty'}): nothing exported")


#: Filters.describe() keys -> the option that sets them (list values: the option once per value)
_OPTION_OF = {"since": "--since", "until": "--until", "where": "--where", "addresses": "--address",
              "domains": "--domain", "folders": "--folder"}


def as_options(filters: Filters) -> str:
    """The selection as the options that make it (``--since 2030-01-01 --domain example.com``), for messages."""
    import shlex

    words: list[str] = []
    for key, value in filters.describe().items():
        if key in _OPTION_OF:
            for v in value if isinstance(value, list) else [value]:
                words += [_OPTION_OF[key], shlex.quote(str(v))]
        elif key == "spam":
            words.append("--spam" if value else "--no-spam")
        elif key == "scope" and isinstance(value, dict):
            for k in ("as_user", "as_revisor"):
                if k in value:
                    words += ["--" + k.replace("_", "-"), shlex.quote(str(value[k]))]
    return " ".join(words)


def emit_dry_run(ctx, filters: Filters) -> None:
    """Count the selection and print it (``--dry-run``)."""
    with ctx.open() as archive:
        r = dry_run(archive, filters)
    r["filters"] = filters.describe()
    ctx.ui.emit(r, lambda r: ctx.ui.say(f"Would export {r['count']} messages, {human_bytes(r['bytes'])} (dry run)"))
