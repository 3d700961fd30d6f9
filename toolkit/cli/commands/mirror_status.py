"""``mailarchive mirror-status DEST``: is the mirror at DEST current, or stale since when, and how far behind?"""
from __future__ import annotations

import click

from media_tools.mirror import mirror_lag, mirror_status

from ...errors import ExitCode
from ...storage import parse_location
from ..main import cli, command, pass_ctx


def _behind(st: dict) -> str:
    lag = st.get("behind")
    if lag is None:
        return ""
    if not any(lag.values()):
        return "; it holds everything the archive committed"
    return (f"; warning: the mirror is {lag['packs']} pack(s) ({lag['mails']} mail(s)) and {lag['batches']} stamp "
            f"batch(es) behind the archive (committed after that run): run `mailarchive mirror {st['dest']}`")


@command(cli, "mirror-status")
@click.argument("dest")
@pass_ctx
def mirror_status_cmd(ctx, dest):
    """Show whether the mirror at DEST is current or stale since its last completed run, and how many packs,
    mails and stamp batches the archive committed after that run (DEST is not contacted).

    Every `mailarchive mirror DEST` run notes its outcome in the archive home.
    Exit 0 when the latest run completed (also when the archive committed more
    since: the numbers say how far behind), 1 when it failed (the mirror is
    stale since the last completed run) or no run ever completed.
    """
    where = str(parse_location(dest))
    with ctx.open() as archive:  # an archive is there
        st = mirror_status(ctx.home, where)
        st["behind"] = mirror_lag(archive, st)
    ctx.ui.emit(st, lambda st: ctx.ui.say(
        f"Mirror {where}: " + {
            "current": f"current (last completed run {st.get('last_ok')})",
            "never": "no completed run yet",
            "stale": f"stale since {st['stale_since']} (the latest run at {st.get('last_failed')} failed: {st.get('last_error')})",
        }[st["state"]] + _behind(st)))
    click.get_current_context().exit(0 if st["state"] == "current" else int(ExitCode.FINDINGS))
