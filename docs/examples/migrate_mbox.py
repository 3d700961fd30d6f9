#!/usr/bin/env python3
"""Migrate an mbox with the library API (docs/api.md): a new archive in a temporary directory,
one import, an mbox export, a full verify; prints one JSON summary and exits 0 when all went well.

    python docs/examples/migrate_mbox.py [MBOX] [--keep DIR]

MBOX defaults to sample_data/mbox/archive-2018.mbox. Run it from a checkout (or with the toolkit
installed); with --keep the archive and the export stay in DIR (which must not exist yet).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # a checkout without installing; an installed toolkit works the same

from exporters import Filters, export_mbox  # noqa: E402
from importers import MboxImporter  # noqa: E402
from toolkit import MailArchiveError, archive_stats, import_mail, init_archive, open_archive, verify_archive  # noqa: E402


def migrate(mbox: Path, work: Path) -> dict:
    """Import ``mbox`` into a new archive below ``work``, export it again and verify; the summary."""
    created = init_archive(work / "archive", password="correct horse battery staple 2018",
                           key_backup=work / "key-backup.txt", name="example")
    with open_archive(created.home, writer=True) as archive:
        run = import_mail(archive, MboxImporter(str(mbox), variant="mboxrd"), workers=0)
    with open_archive(created.home) as archive:   # exports and verify only read
        exported = export_mbox(archive, work / "export", Filters())
        report = verify_archive(archive, full=True, workers=1)
        stats = archive_stats(archive)
    return {
        "archive": {"uuid": created.uuid, "fingerprint": created.fingerprint},
        "import": {"status": run.status, "seen": run.seen, "archived": run.archived,
                   "duplicates": run.duplicates, "errors": run.errors},
        "export": {"selected": exported.selected, "written": exported.written, "errors": len(exported.errors),
                   "dest": exported.dest},
        "verify": {"mode": report.mode, "ok": report.exit_code == 0, "findings": report.findings,
                   "warnings": report.warnings},
        "stats": {"messages": stats.messages, "packs": stats.packs, "media": len(stats.media)},
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mbox", nargs="?", type=Path, default=REPO / "sample_data" / "mbox" / "archive-2018.mbox")
    ap.add_argument("--keep", type=Path, default=None, help="keep the archive and the export in this new directory")
    args = ap.parse_args()
    try:
        if args.keep is not None:
            args.keep.mkdir(parents=True)
            summary = migrate(args.mbox, args.keep)
        else:
            with tempfile.TemporaryDirectory(prefix="migrate-mbox-") as tmp:
                summary = migrate(args.mbox, Path(tmp))
    except MailArchiveError as exc:   # every toolkit error carries the command line's exit status
        print(json.dumps({"error": str(exc), "exit_code": int(exc.exit_code)}))
        return int(exc.exit_code)
    print(json.dumps(summary, indent=1))
    clean = summary["import"]["errors"] == 0 and summary["export"]["errors"] == 0 and summary["verify"]["ok"]
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
