"""``mailarchive stats``."""
from __future__ import annotations

from ...stats import archive_stats
from ..main import cli, command, pass_ctx


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
