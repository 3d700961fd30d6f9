"""The verify result model and its outputs: statuses and exit code, JSON, findings Parquet/CSV, self-contained HTML."""
from __future__ import annotations

import datetime as dt
import json

import polars as pl
import pytest

from verify.report import MAX_EXAMPLES, Report, render_html, write_findings, write_json


def _report() -> Report:
    r = Report(archive={"name": "acme <mail>", "uuid": "u-1", "fingerprint": "ab-cd", "home": "/h", "media": "1:active"},
               mode="full", started_at=dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.timezone.utc),
               finished_at=dt.datetime(2024, 5, 1, 12, 1, tzinfo=dt.timezone.utc), host="h", version="0.1.0")
    r.check("Q01", "Media reachable")
    r.check("Q03", "Unknown packs", severity="warning").add("orphan pack", pack="ab" * 16, medium=1)
    f = r.check("F02", "Records authenticate", tier="full")
    for i in range(MAX_EXAMPLES + 5):
        f.add(f"record <b>{i}</b> failed", msg_id=i, pack="cd" * 16, medium=1, batch=2)
    r.check("F06", "Tokens", tier="full").skip("only with --full")
    r.stats = {"messages": 30, "packs": 2, "bytes_read": 1234, "by_month": [["2019-01", 10], ["no date", 20]],
               "by_medium": [[1, 30]], "stamps": {"stamped_messages": 10, "batches_stamped": 1, "batches_pending": 1,
                                                   "latest_gen_time": dt.datetime(2024, 5, 1, tzinfo=dt.timezone.utc)}}
    return r


def test_statuses_and_exit_code():
    r = Report()
    r.check("Q01", "a")
    w = r.check("Q03", "b", severity="warning")
    w.add("orphan")
    assert w.status == "warning" and r.exit_code == 0  # warnings never fail the run
    c = r.check("Q02", "c")
    c.warn("only a warning")
    assert c.status == "warning" and r.exit_code == 0
    c.add("missing pack", pack="p")
    assert c.status == "finding" and c.count == 2 and r.exit_code == 1
    c.warn("another warning")
    assert c.status == "finding"  # a warning never downgrades a finding
    t = r.totals()
    assert t["checks_finding"] == 1 and t["checks_warning"] == 1 and t["checks_ok"] == 1 and t["exit_code"] == 1


def test_json_is_plain_and_capped(tmp_path):
    r = _report()
    path = tmp_path / "r.json"
    write_json(r, path)
    d = json.loads(path.read_text())
    assert d["totals"]["findings"] == MAX_EXAMPLES + 5 and d["totals"]["exit_code"] == 1
    f02 = next(c for c in d["checks"] if c["id"] == "F02")
    assert f02["count"] == MAX_EXAMPLES + 5 and len(f02["examples"]) == MAX_EXAMPLES
    assert f02["examples"][0] == {"msg_id": 0, "pack": "cd" * 16, "medium": 1, "batch": 2, "detail": "record <b>0</b> failed"}
    assert d["started_at"] == "2024-05-01T12:00:00+00:00"
    assert d["stats"]["stamps"]["latest_gen_time"].startswith("2024-05-01")
    assert next(c for c in d["checks"] if c["id"] == "F06")["status"] == "skipped"


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_findings_file_has_every_finding(tmp_path, suffix):
    r = _report()
    path = tmp_path / f"findings{suffix}"
    assert write_findings(r, path) == MAX_EXAMPLES + 5 + 1
    df = pl.read_parquet(path) if suffix == ".parquet" else pl.read_csv(path, infer_schema_length=0)
    assert df.height == MAX_EXAMPLES + 6  # all findings, not only the examples
    assert {"check", "status", "msg_id", "pack", "medium", "batch", "detail"} <= set(df.columns)
    last = df.filter(pl.col("msg_id") == str(MAX_EXAMPLES + 4))
    assert last.height == 1 and last["check"][0] == "F02" and last["batch"][0] == "2"
    assert df.filter(pl.col("check") == "Q03")["status"][0] == "warning"


def test_findings_file_needs_a_known_suffix(tmp_path):
    with pytest.raises(ValueError):
        write_findings(_report(), tmp_path / "f.xlsx")


def test_findings_file_of_a_clean_report(tmp_path):
    r = Report()
    r.check("Q01", "a")
    assert write_findings(r, tmp_path / "f.parquet") == 0
    assert pl.read_parquet(tmp_path / "f.parquet").height == 0


def test_html_is_self_contained_and_escaped():
    html = render_html(_report())
    assert html.startswith("<!DOCTYPE html>")
    assert "<script" not in html and "<link" not in html and "src=" not in html
    assert "record <b>" not in html and "record &lt;b&gt;0&lt;/b&gt;" in html  # details are escaped
    assert "acme &lt;mail&gt;" in html
    assert '<table id="summary">' in html and html.count('class="check-row"') == 4
    assert 'data-check="F02" data-status="finding"' in html and 'data-check="F06" data-status="skipped"' in html
    assert html.count("<svg") == 3  # coverage, per month, per medium
    assert "10 of 30 messages stamped" in html
    assert "… and 5 more" in html
    assert "@media print" in html
    assert "FINDINGS" in html


def test_html_clean_report_and_empty_charts():
    r = Report(archive={"name": "x"}, mode="quick")
    r.check("Q01", "a")
    html = render_html(r)
    assert "CLEAN" in html and "no data" in html
