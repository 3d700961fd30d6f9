"""The HTML verify report shows, per stamp batch, the CA it was stamped under and "protected until",
marking batches whose protection ends within 90 days — checked in the DOM headless Chromium renders."""
from __future__ import annotations

import re

from tests.cli import mailarchive
from tests.corpora import REPO
from tests.integration.test_html_report import _chromium, _run

SAMPLE = REPO / "sample_data" / "eml"


def test_html_report_shows_ca_and_protection_per_batch(tmp_path, tsa, tsa_short):
    home = tmp_path / "home"
    mailarchive(home, "init", "--key-backup", str(tmp_path / "kb.txt"))
    mailarchive(home, "import", "eml", str(SAMPLE / "2019"))
    mailarchive(home, "timestamp", "run", "--tsa-url", tsa.url, "--ca-cert", str(tsa.ca_cert_path), "--all")
    mailarchive(home, "import", "eml", str(SAMPLE / "2020"))
    mailarchive(home, "timestamp", "run", "--tsa-url", tsa_short.url, "--ca-cert", str(tsa_short.ca_cert_path), "--all")
    report = tmp_path / "report.html"
    mailarchive(home, "verify", "--full", "--html-report", str(report))

    dom = _run(_chromium(), tmp_path / "profile", "--dump-dom", report.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    assert '<table id="batches">' in html
    rows = dict(re.findall(r'<tr class="batch-row" data-batch="(\d+)" data-warning="(true|false)">', html))
    assert rows == {"1": "false", "2": "true"}
    row1 = re.search(r'data-batch="1".*?</tr>', html, re.S).group(0)
    row2 = re.search(r'data-batch="2".*?</tr>', html, re.S).group(0)
    assert "CN=test root CA" in row1 and "CN=tsa-short root CA" in row2
    assert re.search(r'class="protected-until">\d{4}-\d\d-\d\d</td>', row1)
    assert "renew" in row2
