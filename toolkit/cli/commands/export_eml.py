"""``mailarchive export eml DEST`` (more targets join this group)."""
from __future__ import annotations

from pathlib import Path

import click

from exporters.eml import LAYOUTS, export_eml
from exporters.zip_package import export_eml_zip

from ...errors import ExitCode
from ..export_filters import emit_dry_run, filter_options
from ..export_mode import mode_option
from ..main import cli, command, subgroup

export_group = subgroup(cli, "export", "Export archived mail, byte-identical to what was imported.")


@command(export_group, "eml")
@click.argument("dest", type=click.Path(path_type=Path))
@click.option("--zip", "as_zip", is_flag=True,
              help="Write DEST as one new zip file (for auditors): the .eml files with the manifest inside.")
@click.option("--layout", type=click.Choice(LAYOUTS), default="flat", show_default=True,
              help="flat: all files in DEST; folder: one directory per source folder (a copy per folder); "
                   "date: DEST/YYYY/MM/.")
@click.option("--with-converted-twins", is_flag=True,
              help="Also write a converted mail (from an Outlook item) whose original MIME is selected too.")
@filter_options
@mode_option
@click.pass_context
def eml_cmd(click_ctx, dest, as_zip, layout, with_converted_twins, filters, dry_run, mode):
    """Write one .eml file per selected message into DEST, plus manifest.csv/.json listing SHA-256 per file.

    File names are derived safely from date, message number and subject. A
    rerun completes an interrupted export without rewriting finished files;
    the manifest is written last, so an export without manifest.json is incomplete.
    Readers run beside an import. With --zip, DEST is a zip file that must
    not exist yet; it appears only once complete.
    """
    ctx = click_ctx.obj
    if dry_run:
        emit_dry_run(ctx, filters)
        return
    if not as_zip and dest.is_file() and not dest.is_symlink():
        raise click.BadParameter(f"{dest} is a file; export eml writes into a directory (or use --zip)",
                                 param_hint="DEST")
    with ctx.open() as archive:
        export = export_eml_zip if as_zip else export_eml
        summary = export(archive, dest, filters=filters, layout=layout, reporter=ctx.ui.reporter(), mode=mode,
                         converted_twins=with_converted_twins)
    finish_export(click_ctx, summary, "into")


def _read_back_line(rb: dict | None) -> str:
    if not rb:
        return ""
    line = f"\n  read back: {rb['checked']} copies byte-identical"
    line += f", {rb['altered']} altered by the server" if rb["altered"] else ""
    line += f", {rb['missing']} missing" if rb["missing"] else ""
    if rb["without_uid"]:
        line += (f"; {rb['without_uid']} copies could not be read back: the server reports no UIDs (no UIDPLUS)")
    return line


def finish_export(click_ctx, summary, what: str) -> None:
    """Say (or emit as JSON) what an export wrote; exit 1 when any message could not be exported."""
    ctx = click_ctx.obj
    r = summary.as_dict()
    ctx.ui.emit(
        r,
        lambda r: ctx.ui.say(
            f"Exported {r['written']} new, {r['already_present']} already present, {len(r['errors'])} errors "
            f"of {r['selected']} selected {what} {r['dest']}"
            + (f"\n  {len(r['converted_twins_left_out'])} converted mail(s) left out: their original MIME is "
               "exported (--with-converted-twins writes them too)" if r.get("converted_twins_left_out") else "")
            + _read_back_line(r.get("read_back"))
            + "".join(f"\n  error: message {e['msg_id']}: {e['error']}" for e in r["errors"])
        ),
    )
    click_ctx.exit(int(ExitCode.FINDINGS) if summary.errors else 0)
