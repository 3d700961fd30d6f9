"""The library example docs/examples/migrate_mbox.py runs as users run it (a subprocess) and does
what docs/api.md says: a new archive, the mbox archived, exported and verified in full."""
from __future__ import annotations

import json
import subprocess
import sys

import exporters
import importers
import media_tools
import toolkit
import verify
from tests.cli import mailarchive
from tests.corpora import REPO

EXAMPLE = REPO / "docs" / "examples" / "migrate_mbox.py"
MBOX = REPO / "sample_data" / "mbox" / "archive-2018.mbox"
EXPECTED = json.loads((REPO / "sample_data" / "EXPECTED.json").read_text())


def run_example(*args: str) -> tuple[int, dict]:
    p = subprocess.run([sys.executable, str(EXAMPLE), *args], capture_output=True, text=True, timeout=300,
                       cwd="/")  # from anywhere, not only the checkout
    assert p.stdout.strip(), f"no output; stderr:\n{p.stderr}"
    return p.returncode, json.loads(p.stdout)


def test_example_migrates_exports_and_verifies(tmp_path):
    rc, out = run_example(str(MBOX), "--keep", str(tmp_path / "work"))
    n = EXPECTED["mbox"]["archive-2018.mbox"]
    assert rc == 0, out
    assert out["import"] == {"status": "complete", "seen": n, "archived": n, "duplicates": 0, "errors": 0}
    assert out["export"]["selected"] == out["export"]["written"] == n and out["export"]["errors"] == 0
    assert out["verify"]["mode"] == "full" and out["verify"]["ok"] and out["verify"]["findings"] == 0
    assert out["stats"]["messages"] == n

    # the command line sees the archive the API made, and the export is the mbox the API wrote
    home = tmp_path / "work" / "archive"
    stats = mailarchive(home, "stats", json_out=True).result
    assert stats["uuid"] == out["archive"]["uuid"] and stats["messages"] == n
    export = tmp_path / "work" / "export"
    manifest = json.loads((export / "manifest.json").read_text())
    assert manifest["kind"] == "mbox" and manifest["complete"] and manifest["count"] == n
    assert {m["path"] for m in manifest["messages"]} == {"messages.mbox"}
    assert (export / "messages.mbox").read_bytes().count(b"\nFrom ") == n - 1


def test_example_reports_a_missing_source_with_its_exit_status(tmp_path):
    rc, out = run_example(str(tmp_path / "no-such.mbox"))
    assert rc == out["exit_code"] != 0 and "no-such.mbox" in out["error"]


def test_every_public_name_resolves():
    for package in (toolkit, importers, exporters, verify, media_tools):
        assert package.__all__ and sorted(set(package.__all__)) == sorted(package.__all__)
        for name in package.__all__:
            assert getattr(package, name) is not None, (package.__name__, name)


def test_api_in_process_results_are_dataclasses_and_errors_carry_exit_codes(tmp_path):
    import dataclasses

    import pytest

    from toolkit import ExitCode, MailArchiveError

    created = toolkit.init_archive(tmp_path / "home", password="correct horse battery staple 2018",
                                   key_backup=tmp_path / "kb.txt")
    lists = MBOX.parent / "lists.mbox"
    with toolkit.open_archive(created.home) as reader:
        with pytest.raises(MailArchiveError) as refused:
            toolkit.import_mail(reader, importers.MboxImporter(str(lists)), workers=0)
        assert refused.value.exit_code == ExitCode.USAGE and "writer=True" in str(refused.value)
    with toolkit.open_archive(created.home, writer=True) as archive:
        dry = toolkit.dry_run_import(archive, importers.MboxImporter(str(lists)))
        run = toolkit.import_mail(archive, importers.MboxImporter(str(lists)), workers=0)
    n = EXPECTED["mbox"]["lists.mbox"]
    assert dry.would_archive == run.archived == n and run.status == "complete"
    with toolkit.open_archive(created.home) as archive:
        meta = toolkit.export_metadata(archive, tmp_path / "meta.csv", exporters.Filters())
        stats = toolkit.archive_stats(archive)
    for result in (created, dry, run, meta, stats, *stats.media):
        assert dataclasses.is_dataclass(result), type(result)
    assert meta.format == "csv" and meta.rows == n and meta.dest.is_file()
    assert stats.messages == n and stats.media[0].id == 1 and stats.media[0].messages == n
    with pytest.raises(MailArchiveError) as none:
        toolkit.open_archive(tmp_path / "nothing-here")
    assert none.value.exit_code == ExitCode.NO_ARCHIVE


def test_api_stamps_with_a_real_tsa_and_full_verify_checks_the_tokens(tmp_path, tsa_ok):
    created = toolkit.init_archive(tmp_path / "home", password="correct horse battery staple 2018",
                                   key_backup=tmp_path / "kb.txt")
    ca = tsa_ok.ca_cert_path.read_bytes()
    with toolkit.open_archive(created.home, writer=True) as archive:
        toolkit.import_mail(archive, importers.MboxImporter(str(MBOX), variant="mboxrd"), workers=0)
        assert toolkit.stamp_pending(archive, tsa_url=tsa_ok.url, ca_pem=ca) == ()  # fewer than min_pending wait
        (batch,) = toolkit.stamp_pending(archive, tsa_url=tsa_ok.url, ca_pem=ca, all_pending=True)
    n = EXPECTED["mbox"]["archive-2018.mbox"]
    assert isinstance(batch, toolkit.StampedBatch)
    assert batch.messages == batch.leaf_count == n and batch.tsa_url == tsa_ok.url and batch.gen_time is not None
    with toolkit.open_archive(created.home) as archive:
        report = toolkit.verify_archive(archive, full=True, workers=1)
    status = {c.id: c.status for c in report.checks}
    assert report.exit_code == 0 and status["Q07"] == status["F05"] == status["F06"] == status["F07"] == "ok"
