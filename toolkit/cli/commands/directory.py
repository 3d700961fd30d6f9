"""``mailarchive directory import | list | revisor set | revisor remove``: the archive's people (issue 19).

Every change names its actor (``--actor NAME``, else ``$MAILARCHIVE_ACTOR``) and is
recorded in the catalog's append-only ``events`` table with what changed and the
new directory version.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import click

from ...catalog import directory
from ...directory_file import norm_domain, parse_directory
from ...errors import UsageError
from ..environment import actor_name
from ..main import cli, command, pass_ctx, subgroup

directory_group = subgroup(cli, "directory", "The archive's people: local domains, users, groups, revisor profiles.")
revisor_group = subgroup(directory_group, "revisor", "Saved scopes of revisors (folders and domains).")

_ACTOR = click.option("--actor", envvar="MAILARCHIVE_ACTOR", metavar="NAME", default=None,
                      help="Who makes the change (default: $MAILARCHIVE_ACTOR); recorded in the event log.")


@command(directory_group, "import")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@_ACTOR
@pass_ctx
def import_cmd(ctx, file, actor):
    """Replace the directory by the one in FILE (TOML; docs/formats.md shows the format).

    domains = [...] are the local domains, aliases = {alias = "domain"} their
    alias domains, [[user]] tables have a name and addresses = [...], [[group]]
    tables a name, members = [...] and assigned = [...] (addresses). The whole
    directory is replaced; an identical file changes nothing.
    """
    actor = actor_name(actor)
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {file}: {exc.strerror or exc}") from None
    new = parse_directory(data, str(file))
    source = {"file": file.name, "sha256": hashlib.sha256(data).hexdigest()}
    with ctx.open(writer=True) as archive, archive.catalog.writing() as con:
        r = directory.replace_directory(con, new, actor, source)
    r["counts"] = {"domains": len(new.domains), "aliases": len(new.aliases), "users": len(new.users),
                   "groups": len(new.groups)}
    ctx.ui.emit(r, lambda r: ctx.ui.say(
        (f"Directory version {r['version']}: " if r["changed"] else f"Directory unchanged (version {r['version']}): ")
        + ", ".join(f"{n} {k}" for k, n in r["counts"].items())))


@command(directory_group, "list")
@click.option("--json", "as_json", is_flag=True, help="Print the directory as one JSON object (like the global --json).")
@pass_ctx
def list_cmd(ctx, as_json):
    """Show the directory: version, local domains and aliases, users, groups, revisor profiles, last change."""
    if as_json:
        ctx.ui.json = True
    with ctx.open() as archive, archive.catalog.reading() as con:
        d = directory.current(con)
        history = directory.changes(con)
        owned = directory.owned_sightings(con)
        r = {"version": len(history), **d.as_dict(), "revisors": directory.revisors(con),
             "last_change": history[-1] if history else None,
             "owned_sightings": {n: owned.get(n, 0) for n in d.users}}
    ctx.ui.emit(r, lambda r: _show(ctx, r))


def _show(ctx, r: dict) -> None:
    last = r["last_change"]
    ctx.ui.say(f"Directory version {r['version']}"
               + (f", last changed {last['at']:%Y-%m-%d %H:%M} by {last['actor']} ({last['kind']})" if last else ""))
    rows = [["domain", d, ""] for d in r["domains"]] + [["alias", a, f"→ {t}"] for a, t in r["aliases"].items()]
    rows += [["user", n, ", ".join(a) + f"; owns {r['owned_sightings'].get(n, 0)} sightings"]
             for n, a in r["users"].items()]
    rows += [["group", n, "members: " + ", ".join(g["members"]) + "; assigned: " + ", ".join(g["assigned"])]
             for n, g in r["groups"].items()]
    rows += [["revisor", n, "everything" if p["all"] else
              "; ".join(x for x in ("domains: " + ", ".join(p["domains"]) if p["domains"] else "",
                                    "folders: " + ", ".join(p["folders"]) if p["folders"] else "") if x)]
             for n, p in r["revisors"].items()]
    ctx.ui.table("Directory", ["kind", "name", "details"], rows)


@command(revisor_group, "set")
@click.argument("name")
@click.option("--domain", "domains", metavar="DOMAIN", multiple=True,
              help="Mail from or to an address of DOMAIN (and its aliases, for a local domain); repeatable.")
@click.option("--folder", "folders", metavar="FOLDER", multiple=True,
              help="Mail seen in source folder FOLDER or its subfolders; repeatable.")
@click.option("--all", "everything", is_flag=True, help="Everything (an unrestricted revisor).")
@_ACTOR
@pass_ctx
def revisor_set_cmd(ctx, name, domains, folders, everything, actor):
    """Save (or replace) revisor profile NAME: the mail of the given domains or folders, or --all."""
    actor = actor_name(actor)
    if everything == bool(domains or folders):
        raise UsageError("give the profile's scope: --domain and/or --folder, or --all (not both)")
    doms = [norm_domain(d, "--domain") for d in domains]
    fols = [f.strip().strip("/") for f in folders]
    if not all(fols):
        raise UsageError("--folder needs a folder name (e.g. INBOX or Archive/2019)")
    with ctx.open(writer=True) as archive, archive.catalog.writing() as con:
        r = directory.set_revisor(con, name, domains=doms, folders=fols, everything=everything, actor=actor)
    r["revisor"] = name
    ctx.ui.emit(r, lambda r: ctx.ui.say(f"Revisor profile {name} saved (directory version {r['version']})"))


@command(revisor_group, "remove")
@click.argument("name")
@_ACTOR
@pass_ctx
def revisor_remove_cmd(ctx, name, actor):
    """Remove revisor profile NAME."""
    actor = actor_name(actor)
    with ctx.open(writer=True) as archive, archive.catalog.writing() as con:
        r = directory.remove_revisor(con, name, actor)
    r["revisor"] = name
    ctx.ui.emit(r, lambda r: ctx.ui.say(f"Revisor profile {name} removed (directory version {r['version']})"))
