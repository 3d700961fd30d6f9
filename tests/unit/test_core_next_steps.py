"""Errors, verify findings and listed refusals of the core say what to do next as a kind
(``toolkit.errors.NextStep``) and name no command, option or variable; the command line phrases the kind
(toolkit/cli/hints.py), so its messages and reports read as before."""
from __future__ import annotations

import json

import pytest

from tests.cli import mailarchive
from toolkit.archive import Archive
from toolkit.errors import LockedError, NextStep, StorageError
from toolkit.home import Home

COMMAND_WORDS = ("mailarchive", "`", "--", "MAILARCHIVE_")


@pytest.fixture
def home(tmp_path):
    Archive.create(tmp_path / "home", str(tmp_path / "medium1")).close()
    return tmp_path / "home"


def _plain(text: str) -> bool:
    return not any(w in text for w in COMMAND_WORDS)


def test_with_hint_phrases_the_cause_first_and_rephrases_whole_messages():
    from toolkit.cli.hints import phrase, with_hint

    cause = StorageError("the TSA rejected the login (HTTP 401)", next_step=NextStep.GIVE_TSA_PASSWORD)
    err = StorageError(f"stamp batch 3 stays pending: {cause}", next_step=NextStep.RETRY_STAMPING, cause=cause)
    assert with_hint(err) == ("stamp batch 3 stays pending: the TSA rejected the login (HTTP 401); no password given "
                              "(MAILARCHIVE_TSA_PASSWORD or --password-file); `mailarchive timestamp run` retries it")
    assert phrase("x", NextStep.REBUILD_NEEDS_FORCE, path="/h/catalog.db") == (
        "/h/catalog.db exists; `db rebuild` replaces the catalog only with --force (the old one is moved aside)")
    assert phrase("x", None) == "x"


def test_a_verify_finding_keeps_its_kind_and_the_reports_add_the_command(home, tmp_path):
    from verify.checks import verify_archive

    with Archive.open(home) as archive:
        report = verify_archive(archive)
    [item] = report.get("Q08").items
    assert item == {"detail": "no catalog backup yet", "next_step": NextStep.DB_BACKUP.value}
    assert all(_plain(i["detail"]) for c in report.checks for i in c.items)

    mailarchive(home, "verify", "--json-report", str(tmp_path / "r.json"))
    q08 = next(c for c in json.loads((tmp_path / "r.json").read_text())["checks"] if c["id"] == "Q08")
    assert q08["examples"] == [{"detail": "no catalog backup yet; run `mailarchive db backup`", "next_step": "db-backup"}]


def test_the_writer_lock_names_no_option_and_the_cli_adds_it(home):
    with Archive.open(home, writer=True):
        with pytest.raises(LockedError) as info:
            Home(home).lock(0)
        assert _plain(str(info.value)) and info.value.next_step is NextStep.WAIT_LONGER_FOR_LOCK
        p = mailarchive(home, "db", "backup", check=11)
    assert "wait for it to finish, or pass --lock-wait SECONDS" in " ".join(p.stderr.split())


def test_consolidation_refusals_carry_kinds_and_the_cli_phrases_them(home):
    from media_tools.consolidate import plan_consolidation

    with Archive.open(home) as archive:
        plan = plan_consolidation(archive, [7], 1, probe_media=False)
    assert plan.refusals == ["source medium 7 does not exist"]
    assert plan.refusal_steps == {"source medium 7 does not exist": {"next_step": NextStep.LIST_MEDIA.value}}

    p = mailarchive(home, "media", "consolidate", "--from", "7", "--into", "1", "--dry-run", check=2)
    assert "refused: source medium 7 does not exist; `mailarchive media list` shows the media" in " ".join(
        p.stdout.split() + p.stderr.split())
    p = mailarchive(home, "media", "consolidate", "--from", "7", "--into", "1", check=2)
    assert "source medium 7 does not exist; `mailarchive media list` shows the media" in " ".join(p.stderr.split())


def test_an_existing_archive_refuses_init_without_naming_the_option(home, tmp_path):
    from toolkit.errors import ArchiveExistsError

    with pytest.raises(ArchiveExistsError) as info:
        Archive.create(home, str(tmp_path / "medium2"))
    assert _plain(str(info.value)) and info.value.next_step is NextStep.CHOOSE_OTHER_HOME


def test_the_hint_goes_before_an_epilogue_added_after_the_raise():
    from toolkit.cli.hints import with_hint
    from toolkit.errors import MediumLabelError

    exc = MediumLabelError("medium 2 at /x is labelled as medium 3; check the location", next_step=NextStep.RETARGET_MEDIUM)
    exc.epilogue = "\nThe mirror at /m is stale since 2026-01-01; the next run catches up."
    exc.args = (f"{exc}{exc.epilogue}",)
    assert with_hint(exc) == ("medium 2 at /x is labelled as medium 3; check the location (or use `media retarget`)"
                              "\nThe mirror at /m is stale since 2026-01-01; the next run catches up.")
