"""Deciding ahead (toolkit/ingest.py ``Ingest._drive``, docs/architecture.md): the driver decides a task's mails
while the task before it is still writing its pack, and commits each task when its pack is written, in
source order. Here the driver is held at the farthest order this allows (:class:`Ahead`: no task is committed
before the next one is decided), without depending on timing, and then stopped, or one task fails (its pack
name is taken). Each time: the tasks committed are a prefix of the source in order, whatever depended on a
task not committed is not committed either, verify finds no damage, and the rerun completes to exactly the
catalog of a clean run (the rows an import decides: bench/bench_driver_cpu.py compares the same tables).
"""
from __future__ import annotations

import itertools
import random
from pathlib import Path

import pytest

from importers.eml import EmlImporter
from tests.corpora import REPO
from toolkit.archive import Archive
from toolkit.errors import PackNameTakenError
from toolkit.ingest import Ingest
from toolkit.pack import pack_name
from toolkit.reporter import NullReporter

SAMPLE = REPO / "sample_data"
DIRECT = SAMPLE / "eml" / "2021" / "projects" / "2021-03-15_vertragsentwurf.eml"
JOURNAL = SAMPLE / "journal" / "journal-report-1.eml"
N = 36
PACK = 12 * 1024  # a task of about four mails: a dozen tasks

#: the rows an import decides (as bench/bench_driver_cpu.py compares them; where records lie in which pack
#: differs between a run in one go and a run stopped and rerun, so pack ids and offsets are left out)
TABLES = {
    "messages": "SELECT msg_id, blob_id, dedup_key, size, message_id, subject, from_addr, sent_date, id_conflict "
                "FROM messages ORDER BY msg_id",
    "recipients": "SELECT msg_id, kind, address FROM recipients ORDER BY ALL",
    "sightings": "SELECT msg_id, source_uri, folder, source_ref, decision FROM sightings ORDER BY ALL",
    "envelopes": "SELECT envelope_id, msg_id, text, sha256 FROM envelopes ORDER BY ALL",
    "cursors": "SELECT source_uri, cursor FROM cursors ORDER BY ALL",
}


def _source(root: Path) -> Path:
    """N mails; among them exact copies and relayed copies (same dedup key) of mails a few tasks before, and
    mails sharing a Message-ID with an earlier, different one (id-conflicts): decided against tasks that may
    not be committed yet."""
    rng = random.Random(7)
    root.mkdir()
    mails = []
    for i in range(N):
        body = "".join(rng.choice("abcdefgh ijklmnop\n") for _ in range(rng.randint(2000, 3500)))
        mid = f"<ahead-{i % 30}@example.com>"  # the last six share a Message-ID with the first six
        mails.append(f"From: a{i}@example.com\nTo: b{i % 3}@example.org\nSubject: ahead {i}\n"
                     f"Date: Tue, 2 Mar 2021 09:{i % 60:02d}:00 +0100\nMessage-ID: {mid}\n\n{body}")
        (root / f"{i:03d}.eml").write_text(mails[-1])
    for i in range(6):
        (root / f"{4 * i + 6:03d}x.eml").write_text(mails[4 * i + 1])  # an exact copy, a task or two later
        (root / f"{4 * i + 9:03d}y.eml").write_text("Received: from relay.example.net\n" + mails[4 * i + 2])
    # a mail, then two journal reports of it (tasks later, the second with another Bcc): the evidence the first
    # report adds must count for the second while neither is committed (a journal-merge each)
    report = JOURNAL.read_bytes()
    (root / "002d.eml").write_bytes(DIRECT.read_bytes())
    (root / "007j.eml").write_bytes(report)
    (root / "011j.eml").write_bytes(report.replace(b"legal@example.net", b"audit@example.net"))
    (root / "015j.eml").write_bytes(report)  # the same report again: its envelope is known, a duplicate
    return root


class Ahead(Ingest):
    """The driver with each commit held back until the next task is decided (while one is left to decide):
    the farthest ahead that deciding ahead goes, reached on every run. ``log`` records the order."""

    def __init__(self, *args, stop_after: int | None = None, **kw):
        super().__init__(*args, **kw)
        self.log: list[tuple[str, int]] = []
        self._stop_after = stop_after

    def _ready(self) -> bool:
        return (len(self._decided) >= 2 or not self._inflight) and super()._ready()

    def _end(self, t) -> None:
        self.log.append(("decided", t.base))
        super()._end(t)
        if self._stop_after is not None and sum(e == "decided" for e, _ in self.log) == self._stop_after:
            self.request_stop()  # as Ctrl-C does, with the tasks before it decided and not all committed

    def _commit(self, group) -> None:
        self.log.extend(("commit", t.base) for t in group)
        super()._commit(group)


def _dump(archive: Archive) -> dict:
    with archive.catalog.reading() as con:
        return {name: con.execute(sql).fetchall() for name, sql in TABLES.items()}


def _clean(tmp_path: Path, src: Path) -> dict:
    archive = Archive.create(tmp_path / "clean-home", str(tmp_path / "clean-medium"))
    try:
        s = Ingest(archive, workers=0, pack_target=PACK).run(EmlImporter(str(src)))
        assert s.status == "complete"
        return _dump(archive)
    finally:
        archive.close()


def _decided_ahead(log: list[tuple[str, int]]) -> bool:
    """Was some task decided before the task before it was committed?"""
    pending = 0
    for event, _ in log:
        pending += 1 if event == "decided" else -1
        if pending >= 2:
            return True
    return False


def _committed_prefix(archive: Archive, src: Path) -> None:
    """The committed sightings are the source's first files, in order (the cursor's), and each committed
    message was decided against committed ones only: every sighting's message is there."""
    files = sorted(p.name for p in src.iterdir())
    with archive.catalog.reading() as con:
        refs = [Path(r[0]).name for r in con.execute("SELECT source_ref FROM sightings ORDER BY msg_id, source_ref").fetchall()]
        dangling = con.execute("SELECT count(*) FROM sightings s LEFT JOIN messages m USING (msg_id) "
                               "WHERE m.msg_id IS NULL").fetchone()[0]
        ids = [r[0] for r in con.execute("SELECT msg_id FROM messages ORDER BY msg_id").fetchall()]
    assert dangling == 0
    assert sorted(refs) == files[:len(refs)], refs
    assert ids == list(range(1, len(ids) + 1))


def _no_damage(archive: Archive) -> list[str]:
    """verify's findings: none; returns the unknown (adoptable) packs it lists."""
    from verify.checks import verify_archive

    report = verify_archive(archive)
    assert report.findings == 0, [(c.id, c.items) for c in report.checks if c.status == "finding"]
    return sorted(i["name"] for i in report.get("Q03").items)


def test_stopped_while_tasks_are_decided_ahead_the_rerun_completes_exactly(tmp_path):
    src = _source(tmp_path / "src")
    clean = _clean(tmp_path, src)
    archive = Archive.create(tmp_path / "home", str(tmp_path / "medium"))
    try:
        ingest = Ahead(archive, workers=2, pack_target=PACK, stop_after=4)
        s = ingest.run(EmlImporter(str(src)))
        assert s.status == "interrupted"
        assert _decided_ahead(ingest.log), ingest.log
        commits = [base for event, base in ingest.log if event == "commit"]
        assert commits == sorted(commits) and commits  # in source order
        with archive.catalog.reading() as con:
            archived = con.execute("SELECT count(*) FROM messages").fetchone()[0]
            counts = con.execute("SELECT seen, archived FROM runs").fetchone()
        assert 0 < archived < len(clean["messages"])
        assert counts == (s.seen, s.archived)  # the run's counters are those of what it committed
        _committed_prefix(archive, src)
        _no_damage(archive)
        again = Ingest(archive, workers=2, pack_target=PACK).run(EmlImporter(str(src)))
        assert again.status == "complete"
        assert _dump(archive) == clean
        assert _no_damage(archive) == []
    finally:
        archive.close()


def test_a_task_failing_while_others_are_decided_ahead_commits_none_after_it(tmp_path):
    src = _source(tmp_path / "src")
    clean = _clean(tmp_path, src)
    counter = itertools.count(1)
    ids = lambda: next(counter).to_bytes(16, "big")  # noqa: E731
    taken = pack_name((6).to_bytes(16, "big"))  # the sixth task sent meets a file it did not write
    archive = Archive.create(tmp_path / "home", str(tmp_path / "medium"))
    try:
        archive.storage(1).put(taken, b"a stranger's file\n")
        ingest = Ahead(archive, workers=2, pack_target=PACK, pack_ids=ids)
        with pytest.raises(PackNameTakenError):
            ingest.run(EmlImporter(str(src)))
        assert _decided_ahead(ingest.log), ingest.log
        with archive.catalog.reading() as con:
            status = con.execute("SELECT status FROM runs").fetchone()[0]
            packs = {r[0] for r in con.execute("SELECT name FROM packs").fetchall()}
            archived = con.execute("SELECT count(*) FROM messages").fetchone()[0]
        assert status == "failed" and taken not in packs
        assert 0 < archived < len(clean["messages"])
        _committed_prefix(archive, src)
        assert _no_damage(archive) == [taken]  # the stranger: listed, never deleted; nothing else left
        again = Ingest(archive, workers=2, pack_target=PACK).run(EmlImporter(str(src)))
        assert again.status == "complete"
        assert _dump(archive) == clean
        assert _no_damage(archive) == [taken]
    finally:
        archive.close()


def test_a_commit_numbered_otherwise_than_decided_is_rolled_back(tmp_path):
    """The driver numbers a decided task's new messages before its commit; a catalog whose next msg_id is
    another (something else wrote messages) makes that commit fail whole, nothing written, never a sighting
    pointing at another message."""
    from toolkit.ingest_writer import IngestWriter
    from toolkit.source import RunSummary

    a = Archive.create(tmp_path / "home", str(tmp_path / "medium"))
    try:
        w = IngestWriter(a.catalog, "import", "eml:/src", "eml")
        w.open_run(False, 1, "host")
        rows = w.rows
        rows.messages.add(blob_id="1" * 64, dedup_key="2" * 64, pack_id="ab" * 16, offset=0, length=10, size=8,
                          csize=9, message_id="<x@y>", subject="s", from_addr="a@x", from_name=None, sent_date=None,
                          internal_date=None, spam=False, defects=None, id_conflict=False)
        rows.sightings.add(target=("new", 0), folder="INBOX", source_ref="r", decision="new", flags=None,
                           internal_date=None, item_via=None)
        with pytest.raises(AssertionError, match="next msg_id is 1, the run decided with 7"):
            w.commit(None, 1, RunSummary(w.run_id, "eml:/src"), base=7)
        with a.catalog.reading() as con:
            assert con.execute("SELECT (SELECT count(*) FROM messages) + (SELECT count(*) FROM sightings)"
                               ).fetchone()[0] == 0
        assert w.commit(None, 1, RunSummary(w.run_id, "eml:/src"), base=1).base == 1
    finally:
        a.close()
