"""``mailarchive migrate check PLAN`` and ``migrate run PLAN``: many sources in one run (docs/cli.md)."""
from __future__ import annotations

import signal
import sys
from pathlib import Path

import click

from ...errors import ExitCode, UsageError
from ...migrate.plan import PROMPT, SERVER_KINDS, Plan, load_plan
from ...migrate.sources import ServerOptions
from ..executor_option import executor_option
from ..main import cli, command, subgroup
from ..output import human_bytes
from ..tuning import ingest_tuning, parse_limit
from .import_imap_pop3 import server_options

migrate_group = subgroup(cli, "migrate", "Run a migration plan: many sources, read in parallel, one catalog writer.")


def _passwords(plan: Plan) -> tuple[dict[int, str], list[tuple[int, str]]]:
    """The password of every server line: read from its file, or asked once now for ``-``; problems listed."""
    out, problems = {}, []
    for line in plan.lines:
        if line.kind not in SERVER_KINDS:
            continue
        if line.password_file == PROMPT:
            if not sys.stdin.isatty():
                problems.append((line.number, "password_file is '-' but there is no terminal to ask on"))
                continue
            out[line.number] = click.prompt(f"Password for {line.label()}", hide_input=True, err=True)
            continue
        try:
            secret = Path(line.password_file).read_text(encoding="utf-8").rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append((line.number, f"cannot read the password file {line.password_file}: "
                                          f"{getattr(exc, 'strerror', None) or exc}"))
            continue
        if not secret:
            problems.append((line.number, f"the password file {line.password_file} is empty"))
        out[line.number] = secret
    return out, problems


def _problem_text(plan_path: Path, problems: list[tuple[int, str]]) -> str:
    return "\n".join(f"{plan_path}: {'line ' + str(n) if n else 'plan'}: {why}" for n, why in problems)


@command(migrate_group, "check")
@click.argument("plan_file", metavar="PLAN", type=click.Path(path_type=Path, dir_okay=False))
@server_options
@click.pass_context
def check_cmd(click_ctx, plan_file, ca_file, insecure, allow_plaintext, retries, timeout):
    """Check every line of a plan without importing anything: its syntax, that each local source
    exists, and for each server account that it is reachable, that TLS verifies and that the login is
    accepted. Every broken line is listed in one run; exit status 1 when any line is broken."""
    from ...migrate.check import check_plan

    ctx = click_ctx.obj
    plan = load_plan(plan_file)
    passwords, pw_problems = _passwords(plan)
    server = ServerOptions(ca_file, insecure, allow_plaintext, timeout, retries)
    problems = sorted(check_plan(plan, passwords, server) + pw_problems + _own_place_problems(ctx, plan))
    result = {"plan": str(plan_file), "lines": len(plan.lines) + len({n for n, _ in plan.problems if n}),
              "ok": not problems, "problems": [{"line": n, "problem": why} for n, why in problems]}

    def human(r):
        if r["ok"]:
            ctx.ui.say(f"{plan_file}: all {len(plan.lines)} sources can run.")
        else:
            ctx.ui.say(f"{plan_file}: {len(problems)} problem(s); nothing was run.\n" + _problem_text(plan_file, problems))

    ctx.ui.emit(result, human)
    click_ctx.exit(0 if not problems else int(ExitCode.FINDINGS))


@command(migrate_group, "run")
@click.argument("plan_file", metavar="PLAN", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--parallel", type=click.IntRange(1, 256), default=1, show_default=True, help="Sources read at once.")
@click.option("--per-server", type=click.IntRange(1, 256), default=4, show_default=True, help="Connections at once to one server (host:port).")
@click.option("--retry-wait", type=click.FloatRange(0, 3600), default=30.0, show_default=True, help="Seconds before a throttled source is tried again (after the others).")
@click.option("--report", "report_file", type=click.Path(path_type=Path, dir_okay=False), default=None, help="Write the summary as JSON to this file.")
@click.option("--html-report", type=click.Path(path_type=Path, dir_okay=False), default=None, help="Write the summary as a self-contained HTML page to this file.")
@server_options
@executor_option
@click.pass_context
def run_cmd(click_ctx, plan_file, parallel, per_server, retry_wait, report_file, html_report, ca_file, insecure,
            allow_plaintext, retries, timeout):
    """Import every source of a plan into the archive.

    PLAN is a CSV file (header kind,location,user,password_file,owner,folders) or a
    TOML file of [[source]] tables with those keys (docs/cli.md). --parallel N reads
    N sources at once, at most --per-server connections to one server; one writer
    commits them in plan-line order, so the catalog is the one a sequential run
    makes. A rerun resumes each source from its cursor and skips those read to the
    end. Exit status 1 when any source failed (the others are complete).
    """
    from ...migrate.check import own_place_problems
    from ...migrate.run import run_plan
    from ...migrate.report import render_html, write_json

    ctx = click_ctx.obj
    plan = load_plan(plan_file)
    passwords, pw_problems = _passwords(plan)
    problems = sorted(plan.problems + pw_problems)
    if problems:
        raise UsageError(f"the plan has {len(problems)} problem(s); nothing was run (migrate check lists "
                         f"reachability and logins too):\n" + _problem_text(plan_file, problems))
    server = ServerOptions(ca_file, insecure, allow_plaintext, timeout, retries)
    # every source's Ingest gets these settings; a Dask executor is opened once for the whole plan
    with ctx.open(writer=True) as archive:
        own = own_place_problems(plan, archive.home, archive.config)
        if own:
            raise UsageError(f"the plan has {len(own)} problem(s); nothing was run:\n" + _problem_text(plan_file, own))
        result = run_plan(archive, plan, passwords, server, reporter=ctx.ui.reporter(), parallel=parallel,
                          per_server=per_server, retry_wait=retry_wait,
                          ingest_options={"parse_limit": parse_limit(), **ingest_tuning(),
                                          "executor": ctx.executor}, on_start=_on_signals)
    if report_file is not None:
        write_json(result, report_file)
    if html_report is not None:
        html_report.write_text(render_html(result), encoding="utf-8")
    ctx.ui.emit(result, lambda r: _show(ctx, r))
    click_ctx.exit(_exit_code(result))


def _own_place_problems(ctx, plan: Plan) -> list[tuple[int, str]]:
    """``migrate check``: the lines whose source lies inside the archive's own places, when the home has a config
    (a plan may be checked before the archive exists)."""
    from ...home import Home
    from ...migrate.check import own_place_problems

    try:
        config = Home(ctx.home).load_config()
    except Exception:  # no archive (yet), or one the run itself will report on
        return []
    return own_place_problems(plan, ctx.home, config)


def _on_signals(migration) -> callable:
    """SIGINT/SIGTERM stop the migration (committed work stays); a second signal interrupts at once.
    Returns the function that puts the previous handlers back."""
    previous = {}

    def stop(signum, frame):
        migration.request_stop()
        for s, h in previous.items():
            signal.signal(s, h)

    for s in (signal.SIGINT, signal.SIGTERM):
        previous[s] = signal.signal(s, stop)
    return lambda: [signal.signal(s, h) for s, h in previous.items()]


def _exit_code(r: dict) -> int:
    if r["status"] == "interrupted":
        return int(ExitCode.INTERRUPTED)
    if r["status"] == "failed" or r["errors"]:
        return int(ExitCode.FINDINGS)
    return 0


def _show(ctx, r: dict) -> None:
    rows = [[s["line"], s["kind"], f"{s['user'] + ' ' if s['user'] else ''}{s['location']}", s["owner"] or "",
             s["status"], s["seen"], s["archived"], s["duplicates"], s["errors"], human_bytes(s["bytes"]),
             f"{s['seconds']:.1f}", s["reason"] or ""] for s in r["sources"]]
    ctx.ui.table(f"Migration {r['status']}: {r['plan']}",
                 ["line", "kind", "source", "owner", "status", "seen", "archived", "duplicates", "errors", "bytes",
                  "s", "reason"], rows)
    ctx.ui.say(f"{r['seen']} seen, {r['archived']} archived, {r['duplicates']} duplicates, {r['errors']} errors, "
               f"{human_bytes(r['bytes'])} in {r['seconds']:.1f} s")
    for w in r["warnings"]:
        ctx.ui.say(f"warning: {w}")
    if r["status"] == "interrupted":
        ctx.ui.say("Interrupted: everything committed stays; run the same plan again to resume.")
