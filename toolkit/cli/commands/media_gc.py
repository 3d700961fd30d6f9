"""``mailarchive media gc --temp``: remove old temporary files left on the media (docs/reliability.md B3)."""
from __future__ import annotations

import re

import click

from ...errors import ExitCode, UsageError
from ..main import command
from ..output import human_bytes
from .media import media_group

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_AGE = re.compile(r"(\d+(?:\.\d+)?)([smhd])")


def parse_age(text: str) -> float:
    """Seconds of an age such as ``24h``, ``90m``, ``7d`` or ``0s`` (a unit is required)."""
    m = _AGE.fullmatch(text.strip().lower())
    if m is None:
        raise UsageError(f"--older-than takes a number with a unit s, m, h or d (e.g. 24h), not {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def _age(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"


@command(media_group, "gc")
@click.option("--temp", is_flag=True, help="Remove temporary files (NAME.<12 hex>.tmp) a killed writer left behind.")
@click.option("--older-than", "older_than", default="24h", show_default=True,
              help="Only files at least this old by the medium's clock (s, m, h or d: 90m, 24h, 7d).")
@click.option("--medium", "medium_id", type=int, default=None,
              help="Only this medium (default: every active, standby and deactivated medium).")
@click.option("--dry-run", is_flag=True, help="List the files that would be removed; remove nothing.")
@click.pass_context
def gc_cmd(click_ctx, temp, older_than, medium_id, dry_run):
    """Remove leftovers from the media: with --temp, the temporary files of writes that never finished.

    Only names of the toolkit's own temporary pattern are touched (never a
    sealed pack, manifest or label, nor another program's *.tmp file), only
    when older than --older-than by the medium's own clock. Takes the writer
    lock (and the shared lock of a share), so no writer of this archive is
    writing meanwhile. Exit 1 when a medium could not be looked at.
    """
    from media_tools.temp_gc import collect_temp_files

    ctx = click_ctx.obj
    if not temp:
        raise UsageError("say what to remove: --temp (temporary files left by killed writers)")
    seconds = parse_age(older_than)
    with ctx.open(writer=True) as archive:
        result = collect_temp_files(archive, seconds, medium_id=medium_id, dry_run=dry_run).as_dict()

    def human(r):
        verb = "would remove" if r["dry_run"] else "removed"
        for f in r["files"]:
            ctx.ui.say(f"  medium {f['medium']}: {verb} {f['name']} ({human_bytes(f['bytes'])}, {_age(f['age_seconds'])} old)")
        ctx.ui.say(f"{verb.capitalize()} {len(r['files'])} temporary file(s), {human_bytes(r['bytes'])}, on medium "
                   f"{', '.join(map(str, r['media'])) or 'none'}; {r['kept_younger']} younger than {older_than} kept")
        for u in r["unreachable"]:
            ctx.ui.say(f"  medium {u['medium']} not looked at: {u['problem']}")

    ctx.ui.emit(result, human)
    click_ctx.exit(int(ExitCode.FINDINGS) if result["unreachable"] else 0)
