"""A migration's report holds its sources' skipped and failed entries in columns and writes them a chunk at a time
(toolkit/migrate/report.py; docs/reliability.md K8)."""
from __future__ import annotations

import datetime as dt
import json
import tracemalloc

from toolkit.migrate.plan import PlanLine
from toolkit.migrate.report import MigrationReport, Outcome, write_json
from toolkit.problem_list import ProblemList

_REASONS = ("not mail: binary (--force-raw archives it anyway)", "empty file")


def _summary(refs, kind="skipped") -> dict:
    problems = ProblemList({"ref": r, "kind": kind, "message": _REASONS[i % 2]} for i, r in enumerate(refs))
    return {"run_id": 1, "seen": len(refs), "skipped": len(refs), "problems": problems}


def test_an_outcome_holds_a_source_s_problems_in_columns():
    """20,000 skipped files of a share line: the report adds under 30 bytes each beside the refs (a dict each held
    ~280 bytes: ~280 MB for a line that skips a million files, on top of the import's own lists)."""
    refs = [f"dept{i % 40:02d}/documents/report-{i:06d}.docx" for i in range(20_000)]
    summary = _summary(refs)
    outcome = Outcome(PlanLine(2, "share", "/srv/files"))
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        outcome.add(summary)
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (held - before) / len(refs) < 30, (held - before) / len(refs)
    assert outcome.problems[7] == {"ref": refs[7], "kind": "skipped", "message": "empty file"}


def test_an_outcome_adds_the_problems_of_every_run_of_its_source_in_order():
    """A source that failed and was retried adds the partial run's problems (a list of dicts from an older summary
    works as well as a ProblemList) and the next run's, in order; the counts add up."""
    outcome = Outcome(PlanLine(3, "imap", "imaps://mail.example.com", user="ann"))
    outcome.add({"run_id": 4, "errors": 1, "problems": [{"ref": "INBOX/7", "kind": "error", "message": "timeout"}]})
    outcome.add(_summary(["INBOX/8", "INBOX/9"]))
    assert outcome.problems == [{"ref": "INBOX/7", "kind": "error", "message": "timeout"},
                                {"ref": "INBOX/8", "kind": "skipped", "message": _REASONS[0]},
                                {"ref": "INBOX/9", "kind": "skipped", "message": _REASONS[1]}]
    assert outcome.counts["errors"] == 1 and outcome.counts["skipped"] == 2 and outcome.run_ids == [4, 1]


def test_the_report_file_is_the_indented_json_of_the_report_with_every_list_whole(tmp_path):
    lines = [PlanLine(n, "share", f"/srv/{n}") for n in (2, 3, 4)]
    outcomes = [Outcome(ln) for ln in lines]
    outcomes[0].add(_summary([f"a/{i}.pdf" for i in range(5000)]))
    outcomes[2].add(_summary(["b/é\n.doc"], kind="error"))
    report = MigrationReport("plan.csv", 2, 1, outcomes, dt.datetime(2026, 12, 6, tzinfo=dt.timezone.utc))
    result = report.as_dict()
    write_json(result, tmp_path / "report.json")
    text = (tmp_path / "report.json").read_text(encoding="utf-8")
    whole = json.loads(json.dumps(result, default=lambda o: o.to_list() if isinstance(o, ProblemList) else str(o)))
    assert text == json.dumps(whole, ensure_ascii=False, indent=1) + "\n"
    assert [len(s["problems"]) for s in json.loads(text)["sources"]] == [5000, 0, 1]
