"""``mailarchive import eml ...`` (more sources join this group)."""
from __future__ import annotations

import signal
from pathlib import Path

import click
from rich.filesize import decimal

from ...errors import ExitCode
from ...ingest import CONVERTED_TWIN, DUPLICATE, EXACT, ID_CONFLICT, JOURNAL_MERGE, NEW, Ingest
from ..main import Context, cli, command, pass_ctx, subgroup
from ..output import human_bytes
from ..executor_option import executor_option
from ..passwords import read_secret
from ..problems import problem_lines
from ..tuning import ingest_tuning, parse_limit

import_group = subgroup(cli, "import", "Import mail into the archive (resumable: rerun the same command after any stop).")


def dry_run_option(f):
    """``--dry-run`` on an import command: the run only scans and counts (see toolkit.dryrun)."""
    def remember(click_ctx, param, value):
        if value:
            click_ctx.find_object(Context).dry_run = True

    return click.option("--dry-run", is_flag=True, expose_value=False, callback=remember,
                        help="Scan and count what would be read, skipped and archived; write nothing.")(f)


def run_dry(ctx, importers) -> int:
    """The dry run of ``importers``: counts from a scan, nothing written (the catalog opened for reading)."""
    from ...dryrun import dry_run

    with ctx.open() as archive:
        sources = [dry_run(archive, imp, ctx.ui.reporter()).as_dict() for imp in importers]
    keys = ("read", "bytes", "would_archive", "would_archive_bytes", "duplicates", "skipped", "errors")
    result = {"dry_run": True, **{k: sum(s[k] for s in sources) for k in keys}, "sources": sources}

    def human(r):
        ctx.ui.say(
            f"Dry run, nothing written: would read {r['read']} mails ({decimal(r['bytes'])}), archive "
            f"{r['would_archive']} ({decimal(r['would_archive_bytes'])}), {r['duplicates']} already archived; "
            f"{r['skipped']} skipped, {r['errors']} errors"
        )
        for line in problem_lines([p for s in r["sources"] for p in s["problems"]], ctx.ui.log is not None):
            ctx.ui.say(line)

    ctx.ui.emit(result, human)
    return int(ExitCode.FINDINGS) if result["errors"] else 0


def _no_mail_finding(s: dict, resumed: bool) -> None:
    """A run that read its source from the start and found no mail at all gets a finding (exit 1): the
    wrong path, file, account or folder? A resumed or incremental run that finds nothing new is normal."""
    if s["status"] != "complete" or s["seen"] or resumed:
        return
    why = [f"{s['skipped']} entries skipped as not mail"] if s["skipped"] else []
    why += [f"{s['errors']} not readable as mail"] if s["errors"] else []
    text = f"{' and '.join(why)} (listed)" if why else "nothing in it"
    s["errors"] += 1
    s["problems"].append({"ref": s["source"], "kind": "error", "message": f"no mail found: {text}; is this the right source?"})


def run_imports(ctx, importers) -> int:
    """Run importers one after another into the archive; one summary per source."""
    if ctx.dry_run:
        return run_dry(ctx, importers)
    from ...process_guard import steady_large_buffers

    steady_large_buffers()  # the source's blocks read in this process are not faulted in afresh each
    summaries = []
    started = _started_workers(ctx)
    try:
        _run_each(ctx, importers, summaries, started)
    finally:
        if started is not None:
            started.abandon()  # spawned at start-up, and no run took them (or not all of its sources ran)
    return _report(ctx, summaries)


def _started_workers(ctx):
    """The import's workers spawned at start-up for this command line (toolkit/cli/early.py), else None."""
    from .. import early

    click_ctx = click.get_current_context()
    return early.take_import(click_ctx.info_name, tuple(click_ctx.params.get("sources") or ()),
                             ctx.executor is not None and ctx.executor.distributed)


def _run_each(ctx, importers, summaries: list, started) -> None:
    """Run each importer into the archive (a summary each), until one is interrupted; the first run that starts
    a local pool takes the workers ``started`` at start-up."""
    with ctx.open(writer=True) as archive:
        for importer in importers:
            ing = Ingest(archive, ctx.ui.reporter(), parse_limit=parse_limit(), executor=ctx.executor,
                         started=started, **ingest_tuning())
            previous = {}

            def stop(signum, frame, ing=ing):
                ing.request_stop()
                for s, h in previous.items():  # a second signal interrupts at once
                    signal.signal(s, h)

            for s in (signal.SIGINT, signal.SIGTERM):
                previous[s] = signal.signal(s, stop)
            try:
                summaries.append(ing.run(importer).as_dict())
                _no_mail_finding(summaries[-1], ing.resumed)
            finally:
                for s, h in previous.items():
                    signal.signal(s, h)
            if summaries[-1]["status"] == "interrupted":
                break


def _report(ctx, summaries: list) -> int:
    """Print the result of the runs; their exit status."""
    totals = {k: sum(s[k] for s in summaries) for k in ("seen", "archived", "duplicates", "merged", "errors", "skipped", "bytes")}
    decisions = dict.fromkeys(DECISIONS, 0)  # every kind, also when 0: they add up to "seen"
    for s in summaries:
        for k, v in s["decisions"].items():
            decisions[k] = decisions.get(k, 0) + v
    result = {**totals, "decisions": decisions, "seconds": round(sum(s["seconds"] for s in summaries), 3),
              "run_ids": [s["run_id"] for s in summaries], "sources": summaries}
    interrupted = any(s["status"] == "interrupted" for s in summaries)
    result["status"] = "interrupted" if interrupted else "complete"
    ctx.ui.emit(result, lambda r: _print_summary(ctx, r))
    if interrupted:
        ctx.ui.say("Interrupted: everything read so far is committed; run the same command again to resume.")
        return int(ExitCode.INTERRUPTED)
    return int(ExitCode.FINDINGS) if totals["errors"] else 0


#: Every decision an arriving mail gets; their counts add up to "seen".
DECISIONS = (NEW, ID_CONFLICT, CONVERTED_TWIN, EXACT, DUPLICATE, JOURNAL_MERGE)


def summary_line(r) -> str:
    """'N seen = A archived (…) + D duplicates (…) + M journal-merge; besides: S skipped, E errors', every kind named."""
    d = r["decisions"]
    twins = f", {d[CONVERTED_TWIN]} {CONVERTED_TWIN}" if d.get(CONVERTED_TWIN) else ""
    return (
        f"{r['seen']} seen = {r['archived']} archived ({d.get(NEW, 0)} {NEW}, {d.get(ID_CONFLICT, 0)} {ID_CONFLICT}{twins})"
        f" + {r['duplicates']} duplicates ({d.get(EXACT, 0)} {EXACT}, {d.get(DUPLICATE, 0)} {DUPLICATE})"
        f" + {r['merged']} {JOURNAL_MERGE}; besides: {r['skipped']} skipped, {r['errors']} errors"
    )


def _print_summary(ctx, r) -> None:
    rate = r["seen"] / r["seconds"] if r["seconds"] else 0
    ctx.ui.say(
        f"Imported: {summary_line(r)} — {human_bytes(r['bytes'])} in {r['seconds']:.1f} s "
        f"({rate:.0f} mails/s); runs {', '.join(map(str, r['run_ids']))}"
    )
    for line in problem_lines([p for s in r["sources"] for p in s["problems"]], ctx.ui.log is not None):
        ctx.ui.say(line)


def _smb_password(sources, password_file):
    if any(s.startswith("smb://") for s in sources):
        return read_secret(password_file, "MAILARCHIVE_SMB_PASSWORD", "SMB password")
    return None


@command(import_group, "eml")
@click.argument("sources", nargs=-1, required=True)
@dry_run_option
@executor_option
@click.option("--password-file", type=click.Path(path_type=Path, dir_okay=False), default=None, help="SMB password file for smb:// sources (else $MAILARCHIVE_SMB_PASSWORD).")
@click.option("--force-raw", is_flag=True, help="Archive files that do not look like mail too (no header block: a picture, a program); flagged with their defects, kept forever.")
@click.pass_context
def eml_cmd(click_ctx, sources, password_file, force_raw):
    """Import .eml files: each regular file below each SOURCE is one message.

    SOURCE is a file, a directory tree, or smb://user@host[:port]/share/path.
    Symbolic links are never followed and FIFOs or devices never opened; they
    and empty files are listed. A file that does not start with a mail header
    block (a picture, a program, a text) is skipped as "not mail" and listed,
    never archived, unless --force-raw is given. A SOURCE that does not exist
    exits 2; one that holds no mail exits 1. Killed or interrupted runs resume from the last
    committed file when the same command runs again; a run after a completed
    one reads everything again and records each mail as a duplicate.

    A file that starts with an mbox From_ line ("From sender date", followed
    by a mail header block) loses that line, as mail clients do; the rest is
    archived as one message (never split) with the note from-line-removed.
    An Apple Mail .emlx loses its byte-count line and plist trailer (note
    emlx-wrapper-removed; flags and date-received from the plist). A mail
    program's own files (.msf, table_of_contents, .mh_sequences, ...) are
    listed as skipped; an Outlook Express .dbx, a Dovecot dbox file or a mail
    saved as UTF-16 is an error naming the conversion (docs/sources.md).
    """
    ctx = click_ctx.obj
    password = _smb_password(sources, password_file)
    from importers.eml import EmlImporter  # here: `import mbox` and the others need not import it

    rc = run_imports(ctx, [EmlImporter(s, smb_password=password, force_raw=force_raw) for s in sources])
    click_ctx.exit(rc)
