"""``mailarchive media consolidate | retarget``."""
from __future__ import annotations

from pathlib import Path

import click

from ...errors import ExitCode, UsageError
from ..hints import phrase_listed, with_hint
from ..main import command, pass_ctx
from .media import _human_bytes, media_group
from ..passwords import read_secret


def _ids(text: str) -> list[int]:
    try:
        ids = [int(x) for x in text.replace(" ", "").split(",") if x]
    except ValueError:
        raise UsageError(f"--from takes medium IDs separated by commas (e.g. 1,2), not {text!r}") from None
    if not ids:
        raise UsageError("--from needs at least one medium ID")
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        raise UsageError(f"--from {text}: medium {', '.join(map(str, twice))} named twice; name each medium once")
    return ids


def _say_plan(ctx, plan: dict) -> None:
    free = "unknown" if plan["free_space"] is None else _human_bytes(plan["free_space"])
    ctx.ui.say(
        f"Plan: media {', '.join(map(str, plan['sources']))} → {plan['target']}: {len(plan['packs'])} pack(s), "
        f"{_human_bytes(plan['bytes'])}, {plan['meta_files']} stamp/backup/config file(s); "
        f"{_human_bytes(plan['copy_bytes'])} to copy; {free} free at the target "
        f"(it must keep {_human_bytes(plan['margin'])} free beyond the copy); about {plan['estimated_seconds']:.0f} s"
    )
    for r in plan["refusals"]:
        ctx.ui.say(f"  refused: {r}")


@command(media_group, "consolidate")
@click.option("--from", "sources", required=True, help="Source medium IDs, comma-separated (e.g. 1,2).")
@click.option("--into", "target", required=True, type=int, help="Target medium ID (active or standby).")
@click.option("--dry-run", is_flag=True, help="Print the plan (packs, bytes, free space, estimate, refusals) and stop.")
@click.option("--accept-loss", is_flag=True, help="Move damaged source packs as they are and list every affected mail (P6).")
@click.option("--purge-sources", is_flag=True, help="Delete each source pack after its target copy fully verified and was committed.")
@click.pass_context
def consolidate_cmd(click_ctx, sources, target, dry_run, accept_loss, purge_sources):
    """Move every pack of the --from media onto the --into medium; the sources become retired aliases.

    Each pack is copied, its copy verified (size + BLAKE3 checksum), then its medium
    ID is moved in the catalog in one transaction. Mails keep their numbers
    and their stamps. A damaged source pack stops everything before the
    catalog changes (the affected mails are named) unless --accept-loss.
    Interrupted? Rerun the same command: finished copies are reused after a
    verification. Sources keep their files unless --purge-sources.
    """
    ctx = click_ctx.obj
    ids = _ids(sources)
    if not dry_run:  # the disk reads the first source packs while the catalog's modules load and it opens
        from media_tools.read_ahead import first_packs, read_ahead

        read_ahead(first_packs(ctx.home, ids))
    from media_tools.consolidate import (
        ConsolidationRefused, SourceDamaged, consolidate, plan_consolidation, refused_message,
    )

    with ctx.open(writer=True) as archive:
        if dry_run:
            plan = plan_consolidation(archive, ids, target, purge_sources=purge_sources, probe_media=False).as_dict()
            plan["refusals"] = phrase_listed(plan["refusals"], plan["refusal_steps"])
            ctx.ui.emit({"plan": plan, "dry_run": True}, lambda r: _say_plan(ctx, r["plan"]))
            click_ctx.exit(0 if plan["ok"] else int(ExitCode.USAGE))
        try:
            result = consolidate(
                archive, ids, target, accept_loss=accept_loss, purge_sources=purge_sources, reporter=ctx.ui.reporter()
            )
        except ConsolidationRefused as exc:
            plan = exc.plan.as_dict()
            plan["refusals"] = phrase_listed(plan["refusals"], plan["refusal_steps"])
            if ctx.ui.json:
                ctx.ui.emit({"plan": plan, "status": "refused", "error": refused_message(plan["refusals"])})
            raise ConsolidationRefused(refused_message(plan["refusals"]), exc.plan) from None
        except SourceDamaged as exc:
            if ctx.ui.json:
                ctx.ui.emit({"plan": exc.plan.as_dict(), "status": "damaged", "damaged": exc.damaged,
                             "error": with_hint(exc)})
            raise
    result["status"] = "complete"

    def human(r):
        s = r["summary"]
        ctx.ui.say(
            f"Consolidated media {', '.join(map(str, s['sources']))} into {s['target']}: {s['packs_moved']} pack(s), "
            f"{_human_bytes(s['bytes_moved'])} ({_human_bytes(s['bytes_copied'])} copied, {s['already_copied']} reused) "
            f"in {s['seconds']:.1f} s" + (f", {s['mb_per_s']} MB/s" if s["mb_per_s"] else "")
        )
        for m in r["lost"]:
            ctx.ui.say(f"  LOST: mail {m['msg_id']} {m['message_id'] or ''} {m['subject']!r} ({m['pack']})")
        if s["packs_purged"]:
            ctx.ui.say(f"  purged {s['packs_purged']} source pack file(s)")

    ctx.ui.emit(result, human)
    click_ctx.exit(int(ExitCode.FINDINGS) if result["lost"] else 0)


@command(media_group, "retarget")
@click.argument("medium_id", type=int)
@click.argument("location")
@click.option("--verify", is_flag=True, help="Also compare the BLAKE3 checksum of every pack with the catalog.")
@click.option("--password-file", type=click.Path(path_type=Path, dir_okay=False), default=None, help="SMB password file (else $MAILARCHIVE_SMB_PASSWORD, else a prompt).")
@pass_ctx
def retarget_cmd(ctx, medium_id, location, verify, password_file):
    """Point medium MEDIUM_ID at LOCATION, where its files were copied by other means.

    Refused unless LOCATION's MEDIUM.json is this archive's label for this
    medium and every pack the catalog keeps on the medium is there with its
    size (--verify: and its BLAKE3 checksum). The refusal names what is missing.
    """
    from media_tools.retarget import retarget

    password = None
    if location.startswith("smb://"):
        password = read_secret(password_file, "MAILARCHIVE_SMB_PASSWORD", f"SMB password for {location}")
    with ctx.open(writer=True, repointing=True) as archive:
        result = retarget(archive, medium_id, location, smb_password=password, verify=verify, reporter=ctx.ui.reporter())
    ctx.ui.emit(
        result,
        lambda r: ctx.ui.say(
            f"Medium {r['medium']} now points at {r['to']} (was {r['from']}); {r['packs']} pack(s) present"
            + (", hashes verified" if r["verified"] else "")
        ),
    )
