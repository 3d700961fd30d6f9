"""The environment variables of the test hooks, read here at the command line's edge and handed
to the core, which reads no environment itself (tests/unit/test_no_environ.py).

* ``MAILARCHIVE_FAULT=point[:nth]`` and ``MAILARCHIVE_FAULT_SLOW=point:seconds``: the crash and
  stall points of ``toolkit/faults.py``;
* ``MAILARCHIVE_LARGE_MAIL=BYTES``: ``import eml`` streams files above this size (default 32 MiB).
"""
from __future__ import annotations

import os

from ..errors import UsageError


def configure_test_hooks(environ=os.environ) -> None:
    """Hand the test hooks of ``environ`` to the core (unset ones are cleared)."""
    from .. import faults

    faults.configure(kill=environ.get("MAILARCHIVE_FAULT"), slow=environ.get("MAILARCHIVE_FAULT_SLOW"))
    large = environ.get("MAILARCHIVE_LARGE_MAIL")
    if large:
        try:
            nbytes = int(large)
        except ValueError:
            raise UsageError(f"MAILARCHIVE_LARGE_MAIL must be a number of bytes, not {large!r}") from None
        from importers.eml import set_large_mail

        set_large_mail(nbytes)


def actor_name(given: str | None, environ=os.environ) -> str:
    """Who acts: ``--actor NAME``, else ``$MAILARCHIVE_ACTOR``; recorded in the event log (docs/retention.md)."""
    name = given if given is not None else environ.get("MAILARCHIVE_ACTOR")
    if name is None or not name.strip():
        raise UsageError("name who acts: --actor NAME or $MAILARCHIVE_ACTOR (it is recorded)")
    return name.strip()
