"""``mailarchive demo``: the whole pipeline on sample_data/ into a local test archive."""
from __future__ import annotations

import hashlib
import json
import os
import secrets as _secrets
import shutil
from pathlib import Path

import click

from exporters.eml import export_eml
from importers.eml import EmlImporter
from importers.maildir import MaildirImporter
from importers.mbox import MboxImporter
from media_tools.backup import create_backup
from media_tools.mirror import mirror
from media_tools.restore import restore
from verify.checks import verify_archive
from verify.report import write_html, write_json
from verify.stamping import stamp_pending

from ...archive import Archive
from ...catalog.run_sightings import count_sightings_of_runs
from ...errors import ExitCode, UsageError
from ...ingest import Ingest
from ...keybackup import import_key_backup, write_key_backup
from ...stats import archive_stats
from ...storage import open_storage
from ..demo_tsa import DemoTsa
from ..hints import hint_findings
from ..main import cli, command, pass_ctx
from .verify import _render


def default_sample_data() -> Path:
    return Path(__file__).resolve().parents[3] / "sample_data"


@command(cli, "demo")
@click.option("--dir", "workdir", type=click.Path(path_type=Path, file_okay=False), default=Path("demo-archive"), show_default=True, help="Where the demo archive, its medium, mirror, restore and export go (replaced if it holds an earlier demo).")
@click.option("--sample-data", type=click.Path(path_type=Path, file_okay=False, exists=True), default=None, help="The sample mail (default: the repository's sample_data/).")
@click.option("--mirror", "mirror_dest", default=None, help="Mirror to this location (a path or smb://user@host[:port]/share/path; password from $MAILARCHIVE_SMB_PASSWORD) instead of DIR/mirror.")
@pass_ctx
def demo(ctx, workdir, sample_data, mirror_dest):
    """Run the whole pipeline on sample_data/ and end with a verification report.

    init → key backup read back → import eml, mbox, Maildir and Exchange journal
    reports → re-import (adds nothing) → export eml (byte-identical) → RFC 3161
    stamping at a local test TSA → catalog backup → mirror → restore into a new
    home → full verification of the restored archive (HTML report in DIR).
    """
    sample = sample_data or default_sample_data()
    if not (sample / "eml").is_dir():
        raise UsageError(f"{sample} holds no eml/ folder; pass --sample-data DIR")
    workdir = _fresh_workdir(workdir)
    ui = ctx.ui
    home = workdir / "home"
    password = _secrets.token_urlsafe(16)
    (workdir / "key-backup-password.txt").write_text(password + "\n")
    (workdir / "key-backup-password.txt").chmod(0o600)
    steps: list[dict] = []

    def step(name, ok, detail):
        steps.append({"step": name, "ok": bool(ok), "detail": detail})
        ui.say(f"[{'green' if ok else 'red'}]{'ok  ' if ok else 'FAIL'}[/] {name}: {detail}")

    tsa = DemoTsa(workdir / "tsa")
    try:
        archive = Archive.create(home, str(workdir / "medium-1"), name="demo")
        try:
            backup = _init_and_key_backup(archive, workdir, password, step)
            stats = _import_and_export(archive, sample, workdir, ui, step)
            _stamp(archive, tsa, step)
            dest = _backup_and_mirror(archive, mirror_dest or str(workdir / "mirror"), step)
        finally:
            archive.close()
        restored_home, report = _restore_and_verify(dest, backup, password, workdir, step)
    finally:
        tsa.stop()
    ok = all(s["ok"] for s in steps)
    if not ui.json and not ui.quiet:
        _render(ctx, report)
    result = {"ok": ok, "home": str(home), "restored_home": str(restored_home), "steps": steps, "stats": stats,
              "verify": report.totals()}
    ui.emit(result, lambda r: ui.say(
        f"\nDemo {'passed' if ok else 'FAILED'}. Try:  mailarchive --archive {restored_home} stats   |   "
        f"mailarchive --archive {restored_home} sql \"SELECT decision, count(*) FROM sightings GROUP BY 1\""))
    click.get_current_context().exit(0 if ok else int(ExitCode.FINDINGS))


def _fresh_workdir(workdir: Path) -> Path:
    """``workdir``, emptied if it holds an earlier demo, and marked as a demo's."""
    if workdir.exists():
        if not (workdir / ".mailarchive-demo").exists():
            raise UsageError(f"{workdir} exists and is not an earlier demo; choose another --dir")
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    workdir = workdir.absolute()
    (workdir / ".mailarchive-demo").write_text("created by mailarchive demo\n")
    return workdir


def _init_and_key_backup(archive, workdir: Path, password: str, step) -> Path:
    backup = workdir / "key-backup.txt"
    write_key_backup(backup, archive.key, archive.uuid, password.encode())
    rec = import_key_backup(backup.read_text(), password.encode(), expected_uuid=archive.uuid)
    step("init", True, f"archive {archive.uuid}, key fingerprint {archive.fingerprint}")
    step("key backup", rec.key == archive.key, f"{backup} reads back to the same key")
    return backup


def _import_and_export(archive, sample: Path, workdir: Path, ui, step) -> dict:
    """Import every sample source, re-import one, export eml and check nothing was lost; the stats."""
    sources = [EmlImporter(str(sample / "eml")), EmlImporter(str(sample / "journal"))]
    sources += [MboxImporter(str(p), variant="mboxrd" if "2018" in p.name else "auto")
                for p in sorted((sample / "mbox").glob("*.mbox"))]
    sources.append(MaildirImporter(str(sample / "maildir")))
    seen = archived = errors = merged = 0
    first_runs = []
    for imp in sources:
        s = Ingest(archive, ui.reporter()).run(imp)
        first_runs.append(s.run_id)
        seen, archived, errors, merged = seen + s.seen, archived + s.archived, errors + s.errors, merged + s.merged
    step("import", errors == 0, f"{seen} mails from {len(sources)} sources (eml, journal, mbox, Maildir): "
         f"{archived} archived, {merged} journal merges, {seen - archived - merged} duplicates")
    again = Ingest(archive, ui.reporter()).run(EmlImporter(str(sample / "eml")))
    step("re-import", again.archived == 0, f"{again.seen} seen again, {again.archived} archived")

    export_dir = workdir / "export"
    ex = export_eml(archive, export_dir, reporter=ui.reporter())
    manifest = json.loads((export_dir / "manifest.json").read_text())["messages"]
    bad = sum(hashlib.sha256((export_dir / r["path"]).read_bytes()).hexdigest() != r["sha256"] for r in manifest)
    stats = archive_stats(archive)
    step("export eml", not ex.errors and bad == 0 and ex.written == stats["messages"],
         f"{ex.written} of {stats['messages']} messages exported byte-identical into {export_dir}")
    sighted = count_sightings_of_runs(archive.catalog, first_runs)
    step("nothing lost", sighted == seen, f"{seen} source mails, {sighted} recorded with a dedup decision")
    return stats


def _stamp(archive, tsa: DemoTsa, step) -> None:
    ca_pem = tsa.ca_cert_path.read_text()
    archive.config.settings["timestamp"] = {"tsa_url": tsa.url, "ca_pem": ca_pem}
    archive.save_config()
    batches = stamp_pending(archive, tsa_url=tsa.url, ca_pem=ca_pem.encode(), all_=True)
    step("timestamp", bool(batches), f"{len(batches)} RFC 3161 batch(es) stamped by the local test TSA at {tsa.url}")


def _backup_and_mirror(archive, dest: str, step) -> str:
    b = create_backup(archive, kind="full")
    step("db backup", True, f"verified catalog backup {getattr(b, 'name', b)}")
    with open_storage(dest, os.environ.get("MAILARCHIVE_SMB_PASSWORD")) as dest_storage:
        m = mirror(archive, dest_storage)
    step("mirror", not (m.failed or m.missing_locally or m.corrupt_locally),
         f"{len(m.copied)} files copied to {dest}")
    return dest


def _restore_and_verify(dest: str, backup: Path, password: str, workdir: Path, step):
    """Restore a new home from the mirror and verify it in full: (its path, the report)."""
    restored_home = workdir / "restored-home"
    with open_storage(dest, os.environ.get("MAILARCHIVE_SMB_PASSWORD")) as dest_storage:
        r = restore(dest_storage, backup.read_text(), password.encode(), restored_home)
    step("restore", not r.losses, f"new home {restored_home} from the mirror: {r.messages} messages, "
         f"{r.packs_ok}/{r.packs} packs intact")
    with Archive.open(restored_home) as restored:
        report = verify_archive(restored, full=True)
        hint_findings(item for c in report.checks for item in c.items)
        write_html(report, workdir / "verify-report.html")
        write_json(report, workdir / "verify-report.json")
    step("verify --full", report.exit_code == 0,
         f"restored archive: {report.totals()['checks']} checks, {report.findings} findings; "
         f"report {workdir / 'verify-report.html'}")
    return restored_home, report
