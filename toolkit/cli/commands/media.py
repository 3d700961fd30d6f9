"""``mailarchive media list | add | activate | deactivate | remove``."""
from __future__ import annotations

from pathlib import Path

import click

from ..main import cli, command, pass_ctx, subgroup
from ..output import human_bytes as _human_bytes
from ..passwords import read_secret


def _registry():
    """media_tools.registry, imported when a command runs (it loads the catalog's DuckDB: ``media consolidate``
    starts reading its source packs before that, media_tools/read_ahead.py)."""
    from media_tools import registry

    return registry


media_group = subgroup(cli, "media", "Numbered storage media: local directories or smb:// shares.")


@command(media_group, "list")
@click.option("--no-check", is_flag=True, help="Do not contact the media (no reachability check).")
@pass_ctx
def list_cmd(ctx, no_check):
    """List the media with state, packs, bytes and whether each is reachable and correctly labelled."""
    with ctx.open() as archive:
        rows = _registry().list_media(archive, check=not no_check)
    ctx.ui.emit(
        {"media": rows},
        lambda r: ctx.ui.table(
            "Media",
            ["id", "state", "location", "packs", "messages", "bytes", "reachable"],
            [
                [m["id"], m["state"] + (f" → {m['alias_of']}" if m["alias_of"] else ""), m["location"], m["packs"],
                 m["messages"], _human_bytes(m["bytes"]),
                 "-" if m["reachable"] is None else ("yes" if m["reachable"] else f"NO: {m['problem']}")]
                for m in r["media"]
            ],
        ),
    )


@command(media_group, "add")
@click.argument("location")
@click.option("--activate", is_flag=True, help="Make the new medium the active one (it receives new packs).")
@click.option("--password-file", type=click.Path(path_type=Path, dir_okay=False), default=None, help="SMB password file (else $MAILARCHIVE_SMB_PASSWORD, else a prompt).")
@pass_ctx
def add_cmd(ctx, location, activate, password_file):
    """Add a medium at LOCATION (a path, or smb://user@host[:port]/share/path) with the next unused ID.

    The location must be empty of other media; it is probed for write access
    and labelled (MEDIUM.json). SMB passwords are stored sealed under the key.
    """
    password = None
    if location.startswith("smb://"):
        password = read_secret(password_file, "MAILARCHIVE_SMB_PASSWORD", f"SMB password for {location}")
    with ctx.open(writer=True) as archive:
        entry = _registry().add(archive, location, activate=activate, smb_password=password)
        result = {"id": entry.id, "location": entry.location, "state": entry.state}
    ctx.ui.emit(result, lambda r: ctx.ui.say(f"Added medium {r['id']} at {r['location']} ({r['state']})"))


def _state_change(ctx, fn, medium_id, verb):
    with ctx.open(writer=True) as archive:
        entry = fn(archive, medium_id)
        result = {"id": entry.id, "state": entry.state}
    ctx.ui.emit(result, lambda r: ctx.ui.say(f"Medium {r['id']} {verb} (now {r['state']})"))


@command(media_group, "activate")
@click.argument("medium_id", type=int)
@pass_ctx
def activate_cmd(ctx, medium_id):
    """Make medium ID the one active medium (the previous one goes to standby)."""
    _state_change(ctx, _registry().activate, medium_id, "activated")


@command(media_group, "deactivate")
@click.argument("medium_id", type=int)
@pass_ctx
def deactivate_cmd(ctx, medium_id):
    """Take a standby medium out of service; it keeps its ID and its packs stay in the catalog."""
    _state_change(ctx, _registry().deactivate, medium_id, "deactivated")


@command(media_group, "remove")
@click.argument("medium_id", type=int)
@pass_ctx
def remove_cmd(ctx, medium_id):
    """Remove an empty medium. Refused for a medium holding packs or lying below one that does.

    Its ID is never handed out again.
    """
    _state_change(ctx, _registry().remove, medium_id, "removed")


@command(media_group, "move")
@click.argument("medium_id", type=int)
@click.argument("location")
@click.option("--password-file", type=click.Path(path_type=Path, dir_okay=False), default=None, help="SMB password file for an smb:// LOCATION (else $MAILARCHIVE_SMB_PASSWORD, else a prompt).")
@pass_ctx
def move_cmd(ctx, medium_id, location, password_file):
    """Copy medium ID's files to LOCATION, verify every copy, then point the medium there.

    LOCATION is a path or smb://user@host[:port]/share/path. Each copy is read
    back and its BLAKE3 checksum compared before the switch; an interrupted move
    resumes when rerun (good copies are kept). The old location is left as it
    is. Use it to bring a restored archive's media (at the mirror) back onto
    local disk or another share.
    """
    from media_tools.move import move_medium

    password = None
    if location.startswith("smb://"):
        password = read_secret(password_file, "MAILARCHIVE_SMB_PASSWORD", f"SMB password for {location}")
    with ctx.open(writer=True, repointing=True) as archive:
        result = move_medium(archive, medium_id, location, smb_password=password, reporter=ctx.ui.reporter())
    ctx.ui.emit(result, lambda r: ctx.ui.say(
        f"Medium {r['medium']} moved to {r['to']} (was {r['from']}): {r['files']} files verified, "
        f"{r['copied']} copied ({_human_bytes(r['bytes_copied'])}), {r['already_there']} already there; "
        f"the old location is untouched"))
