"""D6: a broken or hostile IMAP server (tests/services/evil_imap.py) cannot exhaust memory or stop the run.

A 4 GB literal breaks off its folder with a named error (the connection is dropped
and made again for the next folder), a mail whose RFC822.SIZE is above the limit is
listed without being fetched, an unparsable FETCH answer is listed, and the good
folders before and after are imported.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from importers.imap import ImapImporter
from services.evil_imap import MAIL, MIXED, MIXED_ANSWERS, mixed_mail, start_evil_imap
from tests.security.child_rusage import measured
from toolkit.archive import Archive
from toolkit.ingest import Ingest
from toolkit.reporter import ListReporter
from toolkit.source import SourceMail, SourceProblem

FOLDERS = {"A-Good": "good", "B-Evil": "huge-literal", "C-Garbage": "garbage", "D-Huge": "huge-size", "E-Good": "good"}


@pytest.fixture
def evil():
    server = start_evil_imap(FOLDERS)
    yield server
    server.stop()


def _importer(server) -> ImapImporter:
    return ImapImporter(server.url(), "pw", allow_plaintext=True, timeout=10, retries=1, backoff=0.1, prefetch=0)


# The scan runs in a child process forked from a small launcher (tests/security/child_rusage.py), so
# its peak RSS is its own: a child forked from this test process would start as large as the test
# process, whose earlier peaks would hide any allocation made here.
_CHILD = """
import json, sys, time
from importers.imap import ImapImporter
from toolkit.reporter import ListReporter
from toolkit.source import SourceMail, SourceProblem
if sys.argv[1] == "baseline":
    print(json.dumps({}))
    sys.exit(0)
imp = ImapImporter(sys.argv[1], "pw", allow_plaintext=True, timeout=60, retries=1, backoff=0.1, prefetch=0,
                   fetch_in_tasks=False)  # the reader fetches: the same fetch code a pack task runs
started = time.monotonic()
items = list(imp.scan(None, ListReporter()))
print(json.dumps({
    "elapsed": time.monotonic() - started,
    "mails": [[i.folder, i.raw.decode("latin-1")] for i in items if isinstance(i, SourceMail)],
    "problems": {i.ref.split(";")[0]: i.message for i in items if isinstance(i, SourceProblem)},
}))
"""


def _child_peak_rss(arg: str) -> tuple[dict, int]:
    """Run the scan in a child; return its JSON answer and its own peak RSS in bytes."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(Path(__file__).resolve().parents[2]), str(Path(__file__).resolve().parents[1])])}
    m = measured([sys.executable, "-c", _CHILD, arg], env, timeout=120)
    assert m.returncode == 0, m.stderr
    return json.loads(m.stdout), int(m.maxrss_mib * (1 << 20))


def test_D6_hostile_answers_are_listed_and_the_other_folders_imported(evil):
    _, baseline = _child_peak_rss("baseline")
    result, peak = _child_peak_rss(evil.url())
    mails, problems = result["mails"], result["problems"]
    assert [f for f, _ in mails] == ["A-Good", "E-Good"] and all(raw.encode("latin-1") == MAIL for _, raw in mails)
    assert "literal of 4,294,967,295 bytes" in problems["B-Evil"] and "connection was dropped" in problems["B-Evil"]
    assert "5,000,000,000 bytes, above the" in problems["D-Huge"] and "not fetched" in problems["D-Huge"]
    assert "no body" in problems["C-Garbage"]
    assert set(problems) == {"B-Evil", "C-Garbage", "D-Huge"}
    # the evil literal was refused at once (the server goes silent after it, so waiting for the
    # rest would take the 60 s timeout): far below that, with room for a loaded machine
    assert result["elapsed"] < 30
    # nothing big was allocated: the claimed 4 GiB and 5 GB never reach memory
    assert peak - baseline < 200 << 20, (peak, baseline)
    # the body of the oversized mail was never asked for
    huge = evil.commands.index(next(c for c in evil.commands if c.endswith(b'EXAMINE "D-Huge"')))
    after = evil.commands[huge:evil.commands.index(next(c for c in evil.commands if c.endswith(b'EXAMINE "E-Good"')))]
    assert not any(b"BODY.PEEK[]" in c for c in after)


def test_D6_run_completes_with_the_problems_listed(evil, tmp_path):
    archive = Archive.create(tmp_path / "home", str(tmp_path / "m1"))
    try:
        summary = Ingest(archive, workers=0).run(_importer(evil))
        assert summary.status == "complete"
        assert (summary.archived, summary.duplicates, summary.errors) == (1, 1, 3)
        with archive.catalog.reading() as con:
            errors = con.execute("SELECT source_ref FROM run_errors ORDER BY source_ref").fetchall()
        assert [e[0].split(";")[0] for e in errors] == ["B-Evil", "C-Garbage", "D-Huge"]
    finally:
        archive.close()


@pytest.mark.parametrize("in_tasks", [False, True])
def test_D3_throttling_and_bye_back_off_and_resume_without_a_login_storm(tmp_path, in_tasks):
    """NO [THROTTLED] twice: the same connection waits and asks again; BYE: one reconnect, one login more.
    With the pack task fetching (``in_tasks``) the listing has its own connection: one login more."""
    server = start_evil_imap({"T-Throttled": "throttle", "U-Bye": "bye"})
    archive = Archive.create(tmp_path / "home", str(tmp_path / "m1"))
    try:
        imp = ImapImporter(server.url(), "pw", allow_plaintext=True, timeout=10, retries=3, backoff=0.05, prefetch=0,
                           fetch_in_tasks=in_tasks)
        summary = Ingest(archive, workers=0).run(imp)
    finally:
        archive.close()
        server.stop()
    assert (summary.status, summary.seen, summary.errors) == ("complete", 2, 0)
    if not in_tasks:
        assert imp.throttled == 2 and imp.reconnects == 1 and imp.logins == 2
    assert sum(c.endswith(b"LOGIN evil \"pw\"") for c in server.commands) == 2 + in_tasks
    assert server.body_fetches == {"T-Throttled": 2, "U-Bye": 1}


@pytest.mark.parametrize("in_tasks", [False, True])
def test_D6_malformed_short_and_long_literals_are_listed_per_mail_and_the_reader_stays_in_step(tmp_path, in_tasks):
    """The lean FETCH reader (toolkit/net/fetch_reader.py) on one body FETCH of seven answers: a literal shorter
    and one longer than RFC822.SIZE, garbage around a literal, a size that is no number, an unterminated list
    and an untagged EXISTS in between: each bad mail is listed by its own ref with its reason, the good ones
    before and after are archived, and nothing is fetched a second time (the answers stayed in step)."""
    server = start_evil_imap({"M-Mixed": "mixed"})
    archive = Archive.create(tmp_path / "home", str(tmp_path / "m1"))
    try:
        imp = ImapImporter(server.url(), "pw", allow_plaintext=True, timeout=10, retries=1, backoff=0.05, prefetch=0,
                           fetch_in_tasks=in_tasks)
        summary = Ingest(archive, workers=0).run(imp)
        with archive.catalog.reading() as con:
            errors = dict(con.execute("SELECT source_ref, message FROM run_errors").fetchall())
    finally:
        archive.close()
        server.stop()
    assert (summary.seen, summary.archived, summary.errors) == (2, 2, MIXED - 2), summary
    for uid, why in MIXED_ANSWERS.items():
        ref = f"M-Mixed;UIDVALIDITY=7;UID={uid}"
        if why is None:
            assert ref not in errors, errors[ref]
        else:
            assert why in errors[ref] and "not archived" in errors[ref], (uid, errors[ref])
    assert "the server announced %d" % len(mixed_mail(2)) in errors["M-Mixed;UIDVALIDITY=7;UID=2"]
    assert "RFC822.SIZE b'lots'" in errors["M-Mixed;UIDVALIDITY=7;UID=5"]
    body_fetches = [c for c in server.commands if b"BODY.PEEK[]" in c]
    assert len(body_fetches) == 1, body_fetches  # one FETCH, no retry: no answer broke the framing
