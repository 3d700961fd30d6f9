"""The HTML report renders in headless Chromium (Debian package `chromium`) and shows the summary table."""
from __future__ import annotations

import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from tests.integration.verify_support import build_archive, messages, run_verify
from verify.report import write_html

from fixtures_tsa import tsa  # noqa: F401

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _chromium() -> str:
    from services.process import require_service

    for name in ("/usr/bin/chromium", "chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    require_service("chromium", FileNotFoundError("no chromium binary (apt-get install -y chromium)"))


def _run(chromium: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def report_file(tmp_path_factory, tsa):  # noqa: F811
    """A full report of an archive with one flipped bit (so it has a finding to show)."""
    root = tmp_path_factory.mktemp("html")
    home = build_archive(root, tsa)
    victim = messages(home)[6]
    with open(victim["pack"], "r+b") as f:
        f.seek(victim["offset"] + 10)
        b = f.read(1)
        f.seek(victim["offset"] + 10)
        f.write(bytes([b[0] ^ 0x01]))
    report = run_verify(home)
    assert report.exit_code == 1
    path = root / "report.html"
    write_html(report, path)
    return path


def test_html_is_self_contained(report_file):
    html = report_file.read_text()
    assert "<script" not in html.lower()
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "").replace("http://127.0.0.1", "")
    assert html.count("<svg") >= 3  # coverage, per month, per medium
    assert "verify-test" in html and "F02" in html


def test_html_renders_in_headless_chromium(report_file, tmp_path):
    chromium = _chromium()
    png = tmp_path / "report.png"
    shot = _run(chromium, tmp_path / "profile", f"--screenshot={png}", "--window-size=1200,1600", report_file.as_uri())
    assert png.exists(), shot.stderr[-2000:]
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1200, 1600)
    # The rendered DOM holds the summary table with one row per check, the finding marked.
    dom = _run(chromium, tmp_path / "profile2", "--dump-dom", report_file.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    assert '<table id="summary">' in html
    rows = html.count('class="check-row"')
    assert rows == report_file.read_text().count('class="check-row"') and rows >= 18  # one per check (Q10 is the 18th)
    assert 'data-check="F02" data-status="finding"' in html
    assert 'data-check="Q01" data-status="ok"' in html
    if os.environ.get("KEEP_REPORT_PNG"):
        shutil.copyfile(png, os.environ["KEEP_REPORT_PNG"])
