"""``--executor``: where an import's pack tasks run (toolkit/executors.py, docs/architecture.md).

Shared by the import commands (and any command that runs an ingest): the parsed
value lands on the command's :class:`~toolkit.cli.main.Context` as ``executor``.
"""
from __future__ import annotations

import click

from ..errors import UsageError
from ..executors import parse_executor
from .main import Context

EXECUTOR_HELP = ("Where the pack tasks run: local (worker processes on this machine, the default), "
                 "local-cluster:N (a Dask cluster of N worker processes started here) or dask://HOST:PORT "
                 "(a running Dask scheduler; its workers must reach the active medium at the same location, "
                 "and receive the archive key to seal records). Needs the extra 'dask' except for local.")


def executor_option(f):
    """Add ``--executor local|local-cluster:N|dask://HOST:PORT`` to a command."""
    def remember(click_ctx, param, value):
        try:
            spec = parse_executor(value)
        except UsageError as exc:
            raise click.BadParameter(str(exc).split(": ", 1)[-1]) from None
        click_ctx.find_object(Context).executor = spec

    return click.option("--executor", default="local", show_default=True, expose_value=False, callback=remember,
                        metavar="local|local-cluster:N|dask://HOST:PORT", help=EXECUTOR_HELP)(f)
