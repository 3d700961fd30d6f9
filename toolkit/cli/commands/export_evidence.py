"""``mailarchive export evidence DEST``: one evidence bundle per stamped message (verify/evidence.py,
docs/timestamps.md). Its own module, so that ``verify`` does not load the export commands and exporters."""
from __future__ import annotations

from pathlib import Path

import click
from rich.markup import escape

from ...errors import ExitCode
from .export_eml import export_group
from ..export_mode import mode_option
from ..hints import hint_findings
from ..main import command


@command(export_group, "evidence")
@click.argument("dest", type=click.Path(path_type=Path, file_okay=False))
@click.option("--where", default=None, help="SQL condition over the catalog's messages (alias m), e.g. \"m.msg_id = 42\".")
@mode_option
@click.pass_context
def evidence_cmd(click_ctx, dest, where, mode):
    """Write one evidence bundle per selected, stamped message into DEST.

    A bundle holds the mail, its Merkle inclusion path, the batch root, the
    RFC 3161 token and the pinned TSA CA certificate, plus evidence.json and
    SHA256SUMS; `mailarchive verify-evidence`, sha256sum and `openssl ts
    -verify` check it without the archive. Messages not yet stamped are
    listed as errors (exit 1). evidence-index.json is written last.
    """
    from verify.evidence import export_evidence

    from ...catalog.user_sql import check_condition

    ctx = click_ctx.obj
    if where is not None:
        where = check_condition(where)  # one SQL expression, before anything is opened or written
    with ctx.open() as archive:
        summary = export_evidence(archive, dest, where=where, reporter=ctx.ui.reporter(), mode=mode)
    hint_findings(summary["errors"])
    ctx.ui.emit(
        summary,
        lambda r: ctx.ui.say(
            f"Wrote {r['written']} evidence bundles ({r['already_present']} already present) of {r['selected']} selected "
            f"into {escape(r['dest'])}" + "".join(f"\n  error: message {e['msg_id']}: {escape(e['error'])}" for e in r["errors"])
        ),
    )
    click_ctx.exit(int(ExitCode.FINDINGS) if summary["errors"] else 0)
