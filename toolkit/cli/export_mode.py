"""``--mode``: the permissions of the files an export writes (shared by the export subcommands)."""
from __future__ import annotations

import functools

import click

from exporters.naming import parse_mode

_HELP = ("Permissions of the exported files, in octal (default 0600: only you can read the plaintext mail). "
         "E.g. 0640 lets the group read them; new directories get the matching x bits (0750). "
         "The owner always keeps read and write.")


def mode_option(f):
    """Add ``--mode OCTAL``; the command receives ``mode`` as an int (a bad value is a usage error, exit 2)."""

    @click.option("--mode", "mode_text", metavar="OCTAL", default=None, help=_HELP)
    @functools.wraps(f)
    def wrapper(*args, mode_text, **kw):
        return f(*args, mode=parse_mode(mode_text), **kw)

    return wrapper
