"""The environment variables of the test hooks, read here at the command line's edge and handed
to the core, which reads no environment itself (tests/unit/test_no_environ.py).

* ``MAILARCHIVE_FAULT=point[:nth]`` and ``MAILARCHIVE_FAULT_SLOW=point:seconds``: the crash and
  stall points of ``toolkit/faults.py``;
* ``MAILARCHIVE_LARGE_MAIL=BYTES``: ``import eml``, ``maildir`` and ``share`` stream files above this size (default
  32 MiB);
* ``MAILARCHIVE_PST_STALL_LIMIT=SECONDS``: how long libpff may stay silent reading a PST/OST store
  before that place of the store is given up (default 300; importers/pst_guard.py).
"""
from __future__ import annotations

import os

from ..errors import UsageError


def configure_test_hooks(environ=os.environ) -> None:
    """Hand the test hooks of ``environ`` to the core (unset ones are cleared)."""
    from .. import faults

    faults.configure(kill=environ.get("MAILARCHIVE_FAULT"), slow=environ.get("MAILARCHIVE_FAULT_SLOW"))
    large = _number(environ, "MAILARCHIVE_LARGE_MAIL", int, "bytes")
    if large is not None:
        from importers.walk import set_large_mail

        set_large_mail(large)
    stall = _number(environ, "MAILARCHIVE_PST_STALL_LIMIT", float, "seconds")
    if stall is not None:
        from importers.pst_guard import set_stall_limit

        set_stall_limit(stall)


def _number(environ, name: str, kind, unit: str):
    """The number a test hook variable holds (None when unset or empty); a usage error naming it otherwise."""
    text = environ.get(name)
    if not text:
        return None
    try:
        return kind(text)
    except ValueError:
        raise UsageError(f"{name} must be a number of {unit}, not {text!r}") from None


def actor_name(given: str | None, environ=os.environ) -> str:
    """Who acts: ``--actor NAME``, else ``$MAILARCHIVE_ACTOR``; recorded in the event log (docs/retention.md)."""
    name = given if given is not None else environ.get("MAILARCHIVE_ACTOR")
    if name is None or not name.strip():
        raise UsageError("name who acts: --actor NAME or $MAILARCHIVE_ACTOR (it is recorded)")
    return name.strip()
