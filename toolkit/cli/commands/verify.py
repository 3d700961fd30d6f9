"""``mailarchive verify``, ``mailarchive verify-evidence`` and ``mailarchive export evidence`` (docs/timestamps.md, docs/verification.md)."""
from __future__ import annotations

from pathlib import Path

import click
from rich.markup import escape

from ...errors import ExitCode, UsageError
from ..hints import hint_findings
from ..main import cli, command

_STYLE = {"ok": "green", "finding": "bold red", "warning": "yellow", "skipped": "dim"}


def _render(ctx, report) -> None:
    d = report.as_dict()
    rows = []
    for c in d["checks"]:
        ex = c["examples"][0]["detail"] if c["examples"] else c.get("note", "")
        more = f" (+{c['count'] - 1} more)" if c["count"] > 1 else ""
        style = _STYLE.get(c["status"], "")
        rows.append([c["id"], escape(c["title"]), f"[{style}]{c['status']}[/]", c["count"],
                     escape((ex[:160] + "…" if len(ex) > 160 else ex) + (more if c["examples"] else ""))])
    a, t = d["archive"], d["totals"]
    ctx.ui.table(f"{d['mode'].capitalize()} verification of {escape(a['name'])} ({a['uuid']})",
                 ["ID", "Check", "Result", "Count", "Example / note"], rows)
    verdict = "clean" if report.exit_code == 0 else f"{t['findings']} findings in {t['checks_finding']} checks"
    ctx.ui.say(f"{verdict}; {t['warnings']} warnings; {t['checks_skipped']} checks skipped")


def _parse_at(value: str | None):
    """``--at TIME``: ISO 8601, a time without zone is UTC."""
    import datetime as dt

    if value is None:
        return None
    try:
        t = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"--at {value}: not an ISO 8601 time (e.g. 2031-05-01T12:00:00Z)") from None
    return t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)


def _read_crls(paths) -> list[bytes]:
    """The ``--crl`` files, each checked to be a readable CRL (PEM or DER)."""
    from verify.revocation import load_crl

    out = []
    for p in paths:
        try:
            data = p.read_bytes()
            load_crl(data)
        except (OSError, ValueError) as exc:
            raise UsageError(f"--crl {p}: not a readable certificate revocation list (PEM or DER): {exc}") from None
        out.append(data)
    return out


_AT_HELP = ("Verify as of this time (ISO 8601, UTC unless a zone is given) instead of now: the tokens' genTime "
            "must not be later, and revocations dated after it do not count.")
_CRL_HELP = ("A CRL (PEM or DER) of the TSA's CA or an intermediate; repeatable. A TSA certificate revoked at or "
             "before a token's genTime fails it; revoked later, the token still verifies (unless for key compromise).")


def _early_workers(ctx, full: bool, workers: int | None):
    """``verify --full``'s pack workers, forked before the archive opens (:class:`verify.deep.EarlyWorkers`): those
    the command line forked at start-up for these arguments (toolkit/cli/early.py), else forked now."""
    import contextlib
    import os

    from ..early import release, take

    if not full:
        release()
        return contextlib.nullcontext()
    from toolkit.storage.location import SMB_DEFAULTS

    password = os.environ.get("MAILARCHIVE_SMB_PASSWORD")
    got = take(ctx.home, workers, password, bool(SMB_DEFAULTS["encrypt"]))
    if got is not None:
        return got
    from verify.deep import EarlyWorkers

    return EarlyWorkers(ctx.home, password, workers)


@command(cli, "verify")
@click.option("--full", is_flag=True, help="Also read every pack: BLAKE3 checksum, every record authenticated and decompressed, "
              "blob ids, header fields against the catalog, Merkle roots, tokens, manifests.")
@click.option("--json-report", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Write the machine-readable report (one entry per check, plus totals) to this file.")
@click.option("--html-report", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Write a self-contained, printable HTML report to this file.")
@click.option("--findings", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Write every finding and warning, one row each, to F.parquet or F.csv.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Processes reading packs with --full (default: the CPU count, at most 8).")
@click.option("--at", "at", default=None, metavar="TIME", help=_AT_HELP)
@click.option("--crl", "crl", type=click.Path(path_type=Path, dir_okay=False, exists=True), multiple=True,
              help=_CRL_HELP + " Tokens are checked only with --full.")
@click.option("--subset", "subset", default=None, metavar="FRACTION|N",
              help="Sampled full verification: read only this share of the packs (10%, 0.1, 1/10) or this many "
                   "packs (5), the least recently verified first, so that repeated runs cover every pack "
                   "(--subset 25% four times reads each pack once). Implies --full for the packs it reads.")
@click.option("--seed", "seed", type=click.IntRange(min=0), default=None,
              help="With --subset: orders the packs that were verified equally long ago (default 0); "
                   "the same seed and history choose the same packs.")
@click.pass_context
def verify_cmd(click_ctx, full, json_report, html_report, findings, workers, at, crl, subset, seed):
    """Check the archive: catalog against media (quick), or every byte too (--full).

    Quick checks run as SQL over the catalog and a listing of the media:
    media reachable and labelled, every pack present with its size, unknown
    packs (a warning: listed as adoptable, never deleted), every message in
    a known pack, dedup keys unique, media ID rules, timestamp coverage,
    catalog backups. --full reads each pack once, in parallel processes.
    Quick verify does not read packs, so a flipped bit inside a pack is only
    found by --full. --subset 10% is a full verification of a tenth of the
    packs, those verified least recently first (HOME/verify-state.json records
    which packs each run read): ten such runs read every pack. Exit 0 when
    clean (warnings allowed), 1 with findings.
    """
    if findings is not None and findings.suffix.lower() not in (".parquet", ".csv"):
        raise UsageError(f"--findings {findings}: the file name must end in .parquet or .csv")
    if seed is not None and subset is None:
        raise UsageError("--seed orders the packs of a sampled verification: give --subset FRACTION|N too")
    if subset is not None:
        from verify.sampling import parse_subset

        try:
            subset = parse_subset(subset)
        except UsageError as exc:  # the library names no option: "subset 0: ..." becomes "--subset 0: ..."
            raise UsageError(f"--{exc}") from None
        full = True
    if crl and not full:
        raise UsageError("--crl applies to the timestamp tokens, which only `verify --full` checks")
    at_time, crls = _parse_at(at), _read_crls(crl)
    ctx = click_ctx.obj
    with _early_workers(ctx, full and subset is None, workers) as early:
        # DuckDB (verify.checks, the archive) is loaded after the fork: the pack workers do not need it
        from verify.checks import verify_archive
        from verify.report import write_findings, write_html, write_json

        with ctx.open() as archive:
            report = verify_archive(archive, full=full, workers=workers, reporter=ctx.ui.reporter(), now=at_time,
                                    crls=crls or None, subset=subset, seed=seed or 0, early=early)
    hint_findings(item for c in report.checks for item in c.items)  # the reports read as before, with the commands
    if json_report:
        write_json(report, json_report)
    if html_report:
        write_html(report, html_report)
    if findings:
        write_findings(report, findings)
    ctx.ui.emit(report.as_dict(), lambda _r: _render(ctx, report))
    click_ctx.exit(report.exit_code)


@command(cli, "verify-evidence")
@click.argument("bundles", nargs=-1, required=True, type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--ca-cert", type=click.Path(path_type=Path, dir_okay=False, exists=True), multiple=True,
              help="Verify the tokens against this CA certificate (the TSA's, from a source you trust) "
                   "instead of the bundle's tsa-ca.pem; repeat it for the CAs of renewal links.")
@click.option("--trust-bundle-ca", is_flag=True,
              help="Accept the bundle's own tsa-ca.pem as trust anchor (compare its fingerprint with the TSA's first).")
@click.option("--at", "at", default=None, metavar="TIME", help=_AT_HELP)
@click.option("--crl", "crl", type=click.Path(path_type=Path, dir_okay=False, exists=True), multiple=True, help=_CRL_HELP)
@click.pass_context
def verify_evidence_cmd(click_ctx, bundles, ca_cert, trust_bundle_ca, at, crl):
    """Check evidence bundles written by `export evidence`, with no archive and no key.

    Each BUNDLE is one bundle directory, or a directory of bundles. Checks
    that message.eml hashes to the stamped blob id, that its inclusion path
    leads to the batch root, and that the RFC 3161 token stamps that root
    under the CA (also with `openssl ts -verify`). A bundle's own CA proves
    nothing (anyone can make one): without --ca-cert or --trust-bundle-ca no
    bundle verifies. Exit 0 when all verify, 1 otherwise.
    """
    from verify.evidence import find_bundles, verify_evidence

    ctx = click_ctx.obj
    from verify.tokens import load_ca

    at_time, crls = _parse_at(at), _read_crls(crl)
    ca = None
    if ca_cert:
        ca = b""
        for c in ca_cert:
            try:
                ca += load_ca(c.read_bytes())[1]
            except (OSError, ValueError) as exc:
                raise UsageError(f"--ca-cert {c}: not a readable X.509 certificate (PEM or DER): {exc}") from None
    results = []
    for b in bundles:
        found = find_bundles(b)
        if not found:
            raise UsageError(f"{b} is neither an evidence bundle (no evidence.json) nor a directory of bundles")
        results += [verify_evidence(p, ca, trust_bundle_ca, at=at_time, crls=crls or None).as_dict() for p in found]
    bad = [r for r in results if not r["ok"]]

    def human(r):
        for x in r["bundles"]:
            from verify.evidence import TRUST_ANCHOR_MISSING

            untrusted = x["problems"] == [TRUST_ANCHOR_MISSING]
            head = "[green]OK[/]" if x["ok"] else ("[bold red]NOT TRUSTED[/]" if untrusted else "[bold red]FAILED[/]")
            ctx.ui.say(f"{head} {escape(x['path'])}: message {x['msg_id']}, batch {x['batch_id']}, genTime {x['gen_time']}, "
                       f"TSA {escape(str(x['tsa_subject']))}, CA SHA-256 {x['ca_fingerprint']}")
            for p in x["problems"]:
                ctx.ui.say(f"    {escape(p)}")
        ctx.ui.say(f"{len(r['bundles']) - r['failed']} of {len(r['bundles'])} bundles verify")

    ctx.ui.emit({"bundles": results, "failed": len(bad)}, human)
    click_ctx.exit(int(ExitCode.FINDINGS) if bad else 0)
