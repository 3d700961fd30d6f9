"""``mailarchive demo``: the whole pipeline on sample_data/ into a local test archive."""
from __future__ import annotations

import hashlib
import secrets as _secrets
import shutil
from pathlib import Path

import click

from exporters.eml import export_eml
from importers.eml import EmlImporter

from ..archive import Archive
from ..errors import ExitCode, UsageError
from ..ingest import Ingest
from ..keybackup import import_key_backup, write_key_backup
from ..stats import archive_stats
from .main import cli, command, pass_ctx


def default_sample_data() -> Path:
    return Path(__file__).resolve().parents[2] / "sample_data"


@command(cli, "demo")
@click.option("--dir", "workdir", type=click.Path(path_type=Path, file_okay=False), default=Path("demo-archive"), show_default=True, help="Where the demo archive, its medium and the export go (replaced if it holds an earlier demo).")
@click.option("--sample-data", type=click.Path(path_type=Path, file_okay=False, exists=True), default=None, help="The sample mail (default: the repository's sample_data/).")
@pass_ctx
def demo(ctx, workdir, sample_data):
    """Run the whole pipeline on sample_data/: init, key backup check, import, re-import, export, verification.

    Ends with a report: every exported file must be byte-identical to the
    archived original (SHA-256), and the re-import must add nothing.
    """
    sample = sample_data or default_sample_data()
    if not (sample / "eml").is_dir():
        raise UsageError(f"{sample} holds no eml/ folder; pass --sample-data DIR")
    if workdir.exists():
        if not (workdir / ".mailarchive-demo").exists():
            raise UsageError(f"{workdir} exists and is not an earlier demo; choose another --dir")
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    (workdir / ".mailarchive-demo").write_text("created by mailarchive demo\n")
    ui = ctx.ui
    home = workdir / "home"
    password = _secrets.token_urlsafe(16)
    (workdir / "key-backup-password.txt").write_text(password + "\n")
    (workdir / "key-backup-password.txt").chmod(0o600)
    steps: list[dict] = []

    def step(name, ok, detail):
        steps.append({"step": name, "ok": bool(ok), "detail": detail})
        ui.say(f"[{'green' if ok else 'red'}]{'ok ' if ok else 'FAIL'}[/] {name}: {detail}")

    archive = Archive.create(home, str(workdir / "medium-1"), name="demo")
    try:
        backup = workdir / "key-backup.txt"
        write_key_backup(backup, archive.key, archive.uuid, password.encode())
        rec = import_key_backup(backup.read_text(), password.encode(), expected_uuid=archive.uuid)
        step("init", True, f"archive {archive.uuid}, key fingerprint {archive.fingerprint}, medium 1 at {workdir / 'medium-1'}")
        step("key backup", rec.key == archive.key, f"{backup} reads back to the same key (password in {workdir / 'key-backup-password.txt'})")

        first = Ingest(archive, ui.reporter()).run(EmlImporter(str(sample / "eml")))
        step("import eml", first.errors == 0, f"{first.seen} mails seen, {first.archived} archived, "
             f"{first.duplicates} duplicates, decisions {first.decisions}")
        second = Ingest(archive, ui.reporter()).run(EmlImporter(str(sample / "eml")))
        step("re-import", second.archived == 0, f"{second.seen} seen again, {second.archived} archived, {second.duplicates} duplicates")

        export_dir = workdir / "export"
        ex = export_eml(archive, export_dir, reporter=ui.reporter())
        step("export eml", not ex.errors, f"{ex.written} files into {export_dir}")

        stats = archive_stats(archive)
        mismatched = 0
        for row in _manifest(export_dir):
            digest = hashlib.sha256((export_dir / row["path"]).read_bytes()).hexdigest()
            mismatched += digest != row["sha256"]
        step("verify export", mismatched == 0 and ex.written == stats["messages"],
             f"{ex.written} of {stats['messages']} archived messages exported byte-identical, {mismatched} mismatches")
        files = [p for p in (sample / "eml").rglob("*") if p.is_file() and not p.name.startswith(".")]
        with archive.catalog.reading() as con:
            sighted = con.execute(
                "SELECT count(DISTINCT source_ref) FROM sightings WHERE run_id = ?", [first.run_id]
            ).fetchone()[0]
        step("nothing lost", sighted == len(files),
             f"{len(files)} source files, {sighted} recorded with a dedup decision")
    finally:
        archive.close()
    ok = all(s["ok"] for s in steps)
    result = {"ok": ok, "home": str(home), "steps": steps, "stats": stats}
    ui.emit(result, lambda r: ui.say(
        f"\nDemo {'passed' if ok else 'FAILED'}. Try:  mailarchive --archive {home} stats   |   "
        f"mailarchive --archive {home} sql \"SELECT decision, count(*) FROM sightings GROUP BY 1\""))
    click.get_current_context().exit(0 if ok else int(ExitCode.FINDINGS))


def _manifest(export_dir: Path) -> list[dict]:
    import json

    return json.loads((export_dir / "manifest.json").read_text())["messages"]
