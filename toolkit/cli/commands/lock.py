"""``mailarchive lock status | break``: the writer lock on a shared (smb://) medium.

The lock and its heartbeat are described in ``toolkit.shared_lock``. ``status``
shows the holder and the age of its last heartbeat by the server's clock;
``break`` removes a lock only with ``--yes`` (the operator has made sure its
host no longer writes to the share).
"""
from __future__ import annotations

import click

from ...errors import UsageError
from ...shared_lock import SETTINGS, break_lock, inspect
from ..main import cli, command, pass_ctx, subgroup

lock_group = subgroup(cli, "lock", "The writer lock on shared (smb://) media: who holds it, and breaking a dead one.")


def _state(info) -> str:
    if info is None:
        return "free"
    if info.dead_local:
        return "dead"  # its process on this host is gone: the next writer breaks it
    return "stale" if info.stale else "held"


@command(lock_group, "status")
@click.option("--medium", "medium_id", type=int, default=None, help="The medium (default: the active one).")
@pass_ctx
def status_cmd(ctx, medium_id):
    """Show the writer lock of a medium: holder, last heartbeat (by the server's clock), and its state.

    States: free; held (heartbeat younger than the timeout); stale (no
    heartbeat for longer than the timeout); dead (held by a process of this
    host that no longer runs).
    """
    with ctx.open() as archive:
        mid = archive.active_medium_id() if medium_id is None else medium_id
        info = inspect(archive.storage(mid))
    r = {
        "medium": mid,
        "state": _state(info),
        "holder": None if info is None else {k: v for k, v in info.holder.items() if k != "token"},
        "heartbeat_age_seconds": None if info is None or info.age is None else round(info.age, 1),
        "stale_after_seconds": SETTINGS["stale_after"],
    }

    def human(r):
        if info is None:
            ctx.ui.say(f"Medium {mid}: no writer lock")
        else:
            ctx.ui.say(f"Medium {mid}: lock {r['state']}: {info.describe()}")

    ctx.ui.emit(r, human)


@command(lock_group, "break")
@click.option("--medium", "medium_id", type=int, default=None, help="The medium (default: the active one).")
@click.option("--yes", is_flag=True, help="Confirm: the holder's host no longer writes to this medium.")
@pass_ctx
def break_cmd(ctx, medium_id, yes):
    """Remove the writer lock of a medium (only with --yes).

    Run it only once you are sure the holder no longer runs: a writer whose
    lock is removed stops at its next write (exit 3), but two writers at once
    must never happen.
    """
    if yes:
        from ...home import Home
        from ...home_place import refuse_copy_unlocked

        refuse_copy_unlocked(Home(ctx.home))  # a copy breaks no lock on the original's media (O11)
    with ctx.open() as archive:
        mid = archive.active_medium_id() if medium_id is None else medium_id
        storage = archive.storage(mid)
        info = inspect(storage)
        if info is None:
            raise UsageError(f"medium {mid} has no writer lock; nothing to break")
        if not yes:
            raise UsageError(
                f"medium {mid} is locked by {info.describe()}; state {_state(info)}. "
                f"If that writer no longer runs, confirm with `mailarchive lock break --yes`"
            )
        held = break_lock(storage)
    r = {"medium": mid, "broken": {k: v for k, v in (held or {}).items() if k != "token"}}
    ctx.ui.emit(r, lambda r: ctx.ui.say(f"Medium {mid}: removed the writer lock of {info.describe()}"))
