"""A commit appends each table once, as columns: no Python loop over its rows (issue 15, point 5).

The commit of an import run is traced line by line (``sys.settrace``): the Python lines it runs must
not grow with the number of rows it commits, so a commit of 300 mails runs about as many lines as a
commit of 10. The rows themselves are checked against the mails.
"""
from __future__ import annotations

import sys
from collections import Counter

from importers.eml import EmlImporter
from tests.corpora import REPO
from toolkit.archive import Archive
from toolkit.catalog import ingest_rows
from toolkit.ingest import Ingest
from toolkit.ingest_writer import IngestWriter
from toolkit.source import RunSummary

OWN = str(REPO / "toolkit")
TO = ["bob@example.net", "carol@example.net"]


def _source(root, n: int) -> None:
    root.mkdir()
    for i in range(n):
        raw = (f"From: Alice <alice@example.com>\nTo: {', '.join(TO)}\nCc: dave{i}@example.org\n"
               f"Subject: m{i}\nDate: Mon, 1 Jan 2024 10:00:00 +0000\nMessage-ID: <m{i}@example.com>\n\n"
               f"body {i}\n").encode()
        (root / f"{i:04d}.eml").write_bytes(raw)
        if i % 10 == 0:  # an exact copy: a sighting of the same message
            (root / f"{i:04d}-copy.eml").write_bytes(raw)


def _trace_commits(monkeypatch) -> tuple[list[tuple[int, int]], list[Counter]]:
    """From now on, per commit: (lines of the project's code run, rows committed), and the appends per table."""
    commits: list[tuple[int, int]] = []
    appends: list[Counter] = []
    real_commit = IngestWriter.commit_parts

    def commit(self, parts, *args, **kwargs):
        lines = 0

        def tracer(frame, event, arg):  # lines of the project's own code (not of lazy imports in libraries)
            nonlocal lines
            if event == "line" and frame.f_code.co_filename.startswith(OWN):
                lines += 1
            return tracer

        rows = sum(len(p.rows.messages) + len(p.rows.sightings) + len(p.rows.recipients) for p in parts)
        appends.append(Counter())
        sys.settrace(tracer)
        try:
            return real_commit(self, parts, *args, **kwargs)
        finally:
            sys.settrace(None)
            commits.append((lines, rows))

    def counting(real):
        def append(con, table, *args, **kwargs):
            appends[-1][table] += 1
            return real(con, table, *args, **kwargs)
        return append

    def counting_packs(real):
        def add(con, rows, *args, **kwargs):
            appends[-1]["packs"] += 1
            return real(con, rows, *args, **kwargs)
        return add

    monkeypatch.setattr(IngestWriter, "commit_parts", commit)
    for name in ("append_rows", "append_columns"):
        if hasattr(ingest_rows, name):
            monkeypatch.setattr(ingest_rows, name, counting(getattr(ingest_rows, name)))
    monkeypatch.setattr(ingest_rows, "add_packs", counting_packs(ingest_rows.add_packs))  # one statement for a commit's packs
    return commits, appends


def _import(tmp_path, n: int) -> Archive:
    """n mails imported into a new archive, in one commit."""
    src = tmp_path / f"src{n}"
    _source(src, n)
    a = Archive.create(tmp_path / f"home{n}", str(tmp_path / f"m{n}"))
    Ingest(a, workers=0, pack_target=1 << 30).run(EmlImporter(str(src)))
    return a


def test_a_commit_runs_no_python_line_per_row(tmp_path, monkeypatch):
    commits, appends = _trace_commits(monkeypatch)
    _import(tmp_path, 10).close()
    a = _import(tmp_path, 300)
    try:
        (small_lines, small_rows), (large_lines, large_rows) = commits
        assert large_rows - small_rows > 1000
        # a loop over the rows would run at least one line per row: 1000 more rows, 1000 more lines
        assert large_lines - small_lines < 100, (small_lines, large_lines)
        for per_table in appends:  # one append per table that has rows
            assert set(per_table) == {"packs", "messages", "recipients", "sightings"}
            assert set(per_table.values()) == {1}
        with a.catalog.reading() as con:
            msg = con.execute("SELECT min(msg_id), max(msg_id), count(*), count(DISTINCT pack_id), "
                              "bool_or(id_conflict) FROM messages").fetchone()
            rec = con.execute("SELECT kind, count(*) FROM recipients GROUP BY 1 ORDER BY 1").fetchall()
            sightings = con.execute("SELECT count(*), count(DISTINCT msg_id), min(via), max(via), "
                                    "count(*) FILTER (WHERE decision = 'exact-duplicate') FROM sightings "
                                    "JOIN messages USING (msg_id)").fetchone()
            mid_of_first = con.execute("SELECT message_id FROM messages WHERE msg_id = 1").fetchone()[0]
        assert msg == (1, 300, 300, 1, False)
        assert rec == [("cc", 300), ("to", 600)]
        assert sightings[:2] == (330, 300) and sightings[2] == sightings[3] and sightings[4] == 30
        assert mid_of_first == "m0@example.com"
    finally:
        a.close()


def _message(rows, n: int, mid: str | None, *, conflict: bool = False) -> None:
    rows.messages.add(blob_id=f"{n:064x}", dedup_key=f"{n + 100:064x}", pack_id="ab" * 16, offset=n * 10, length=10,
                      size=8, csize=9, message_id=mid, subject=f"s{n}", from_addr="a@x", from_name=None,
                      sent_date=None, internal_date=None, spam=False, defects=None, id_conflict=conflict)


def _sighting(rows, target: tuple, ref: str, decision: str, via: str | None) -> None:
    rows.sightings.add(target=target, folder="INBOX", source_ref=ref, decision=decision, flags=None,
                       internal_date=None, item_via=via)


def test_every_kind_of_pending_row_lands_where_its_target_points(tmp_path):
    """New targets number from the catalog's next msg_id, old ones stay; envelopes, errors, the item's own
    ``via`` (else the run's), an id-conflict inside the commit, and the keys handed back to the run."""
    a = Archive.create(tmp_path / "home", str(tmp_path / "m1"))
    try:
        w = IngestWriter(a.catalog, "import", "eml:/src", "eml")
        w.open_run(False, 1, "host")
        _message(w.rows, 1, "same@x")
        _sighting(w.rows, ("new", 0), "first", "new", None)
        w.commit(None, 1, RunSummary(w.run_id, "eml:/src"))  # msg_id 1

        rows = w.rows
        _message(rows, 2, "same@x")
        _message(rows, 3, None)
        _message(rows, 4, "same@x", conflict=True)
        rows.messages["id_conflict"][0] = True  # flagged after it was added, as the driver does
        rows.recipients += [(("new", 1), "to", "b@x"), (("old", 1), "envelope", "c@x")]
        rows.envelopes.append((("old", 1), "Sender: a@x", "e" * 64))
        _sighting(rows, ("new", 2), "n2", "id-conflict", "imap")
        _sighting(rows, ("old", 1), "o1", "journal-merge", None)
        rows.errors.append(("skipped", "junk.txt", "not a mail"))
        done = w.commit(None, 1, RunSummary(w.run_id, "eml:/src"))
        assert done.blobs == {f"{2:064x}": 2, f"{3:064x}": 3, f"{4:064x}": 4}
        assert done.keys == {f"{n + 100:064x}": n for n in (2, 3, 4)}
        assert done.mids == {"same@x": 2}  # the first new message with that id
        with a.catalog.reading() as con:
            msgs = con.execute("SELECT msg_id, message_id, id_conflict, run_id, batch_id IS NULL, "
                               "archived_at IS NOT NULL FROM messages ORDER BY 1").fetchall()
            recs = con.execute("SELECT msg_id, kind, address FROM recipients ORDER BY 1").fetchall()
            envs = con.execute("SELECT envelope_id, msg_id, text, run_id FROM envelopes").fetchall()
            sights = con.execute("SELECT msg_id, source_ref, decision, via, source_uri FROM sightings "
                                 "ORDER BY 2").fetchall()
            errs = con.execute("SELECT run_id, kind, source_ref, message FROM run_errors").fetchall()
        run = w.run_id
        assert msgs == [(1, "same@x", False, run, True, True), (2, "same@x", True, run, True, True),
                        (3, None, False, run, True, True), (4, "same@x", True, run, True, True)]
        assert recs == [(1, "envelope", "c@x"), (3, "to", "b@x")]
        assert envs == [(1, 1, "Sender: a@x", run)]
        assert sights == [(1, "first", "new", "eml", "eml:/src"), (4, "n2", "id-conflict", "imap", "eml:/src"),
                          (1, "o1", "journal-merge", "eml", "eml:/src")]
        assert errs == [(run, "skipped", "junk.txt", "not a mail")]
    finally:
        a.close()


def test_a_run_uses_one_catalog_thread_and_rarer_collections_and_puts_both_back(tmp_path):
    """Issue 15 (driver CPU): during a run the catalog's sessions use one DuckDB thread and the collector's
    thresholds are raised; after it both are what they were."""
    import gc

    from toolkit.ingest import RUN_GC_THRESHOLDS
    from toolkit.reporter import NullReporter

    seen = []

    class Watching(NullReporter):
        def advance(self, *args, **kwargs):
            seen.append((a.catalog.threads, _catalog_threads(a), gc.get_threshold()[0]))

    src = tmp_path / "src"
    _source(src, 5)
    a = Archive.create(tmp_path / "home", str(tmp_path / "m"))
    try:
        before = gc.get_threshold()
        a.catalog.use_threads(2)
        Ingest(a, Watching(), workers=0).run(EmlImporter(str(src)))
        assert seen and all(s == (1, 1, RUN_GC_THRESHOLDS[0]) for s in seen)
        assert gc.get_threshold() == before
        assert a.catalog.threads == 2 and _catalog_threads(a) == 2
    finally:
        a.close()


def _catalog_threads(archive) -> int:
    with archive.catalog.reading() as con:
        return con.execute("SELECT current_setting('threads')").fetchone()[0]


def _task_rows(k: int):
    """The pending rows of the k-th of three decided tasks: every kind of row, targets new to the task and old
    (messages of the task before: the driver numbers them ahead, docs/dedup.md "Deciding ahead")."""
    from toolkit.ingest_writer import PendingRows

    rows = PendingRows()
    base = 1 + 3 * k  # three new messages per task
    for i in range(3):
        _message(rows, 10 * k + i, f"m{k}-{i}@x" if i else "shared@x", conflict=k > 0 and i == 0)
        _sighting(rows, ("new", i), f"t{k}/{i}", "new" if not (k and i == 0) else "id-conflict",
                  "msg:mapi2mime/1" if i == 2 else None)
        rows.recipients += [(("new", i), "to", f"r{k}{i}@x"), (("new", i), "cc", "c@x")]
    if k:
        rows.conflicts.add(base - 3)  # the first message of the task before shares "shared@x"
        rows.recipients.append((("old", base - 1), "envelope", f"e{k}@x"))
        rows.envelopes.append((("old", base - 1), f"Sender: s{k}@x", f"{k:064x}"))
        _sighting(rows, ("old", base - 2), f"t{k}/dup", "exact-duplicate", None)
        rows.links.append((("new", 1), ("old", base - 1), "embedded", f"t{k}/1"))
    rows.envelopes.append((("new", 1), f"Sender: own{k}@x", f"{k + 100:064x}"))
    rows.conversions.append((("new", 2), "msg", "mapi2mime/1"))
    rows.errors.append(("skipped", f"t{k}/junk", "not a mail"))
    if k != 1:  # the middle task read no cursor of its own: the group's is the last one's
        rows.set_cursor({"path": f"t{k}"})
    return rows


def _commit_dump(archive) -> dict:
    with archive.catalog.reading() as con:
        return {table: con.execute(f"SELECT * {drop} FROM {table} ORDER BY ALL").fetchall()
                for table, drop in (("messages", "EXCLUDE (archived_at)"), ("recipients", ""),
                                    ("envelopes", "EXCLUDE (learned_at)"), ("sightings", "EXCLUDE (seen_at)"),
                                    ("message_links", ""), ("conversions", ""), ("run_errors", ""),
                                    ("cursors", "EXCLUDE (updated_at)"), ("packs", "EXCLUDE (created_at)"),
                                    ("runs", "EXCLUDE (started_at, finished_at, pid, host)"))}


def test_tasks_committed_in_one_transaction_give_the_rows_of_one_commit_each(tmp_path):
    """Commit groups (toolkit/ingest.py ``Ingest._due``): the rows of three decided tasks committed by one
    ``commit_parts`` are exactly those of three commits, one per task, in the same order."""
    from toolkit.ingest_writer import Part
    from toolkit.pack import PackInfo

    packs = [PackInfo(bytes([k]) * 16, f"packs/p{k}.pack", 100 + k, 3, bytes([k]) * 32, []) for k in range(3)]
    dumps, done = [], []
    for grouped in (False, True):
        a = Archive.create(tmp_path / f"home{grouped}", str(tmp_path / f"m{grouped}"))
        try:
            w = IngestWriter(a.catalog, "import", "eml:/src", "eml")
            w.open_run(False, 1, "host")
            summary = RunSummary(w.run_id, "eml:/src", seen=12, archived=9)
            if grouped:
                parts = [Part(_task_rows(k), [packs[k]], 1 + 3 * k) for k in range(3)]
                w.commit_parts(parts, 1, summary)
                done.append([p.committed for p in parts])
            else:
                got = []
                for k in range(3):
                    w.rows = _task_rows(k)
                    got.append(w.commit(packs[k], 1, summary, base=1 + 3 * k))
                done.append(got)
            assert w.last_cursor == {"path": "t2"}
            dumps.append(_commit_dump(a))
        finally:
            a.close()
    assert dumps[0] == dumps[1]
    assert done[0] == done[1]
    assert len(dumps[1]["messages"]) == 9 and len(dumps[1]["envelopes"]) == 5 and len(dumps[1]["packs"]) == 3
    assert [r[1] for r in dumps[1]["cursors"]] == ['{"path": "t2"}']
