"""Following a long run without a terminal: progress lines, the run log, whole lines, skips by reason."""
from __future__ import annotations

import re
from pathlib import Path

from importers.mbox import MboxImporter
from tests.cli import mailarchive
from toolkit.cli.progress import LineReporter, TaskState, describe
from toolkit.reporter import NullReporter


def _mbox(path: Path, n: int) -> Path:
    with open(path, "w") as f:
        for i in range(n):
            f.write(f"From a@b Mon Jan  1 00:00:00 2020\nFrom: a@example.com\nSubject: s{i}\n"
                    f"Message-ID: <p{i}@x>\n\n" + f"line of text {i}\n" * 60 + "\n")
    return path


class Recorder(NullReporter):
    def __init__(self):
        self.calls: list[tuple] = []

    def start(self, task, total=None, unit="items"):
        self.calls.append(("start", task, total, unit))

    def advance(self, task, n=1, **fields):
        self.calls.append(("advance", task, n))

    def finish(self, task):
        self.calls.append(("finish", task))


def test_mbox_reports_bytes_of_the_file_size(tmp_path):
    path = _mbox(tmp_path / "in.mbox", 300)
    size = path.stat().st_size
    rec = Recorder()
    items = 0
    seen_done = []
    done = 0
    for _ in MboxImporter(str(path)).scan(None, rec):
        items += 1
        done = sum(c[2] for c in rec.calls if c[:2] == ("advance", "mbox"))
        seen_done.append(done)
    assert items == 300
    assert ("start", "mbox", size, "bytes") in rec.calls
    assert all(c[2] >= 0 for c in rec.calls if c[:2] == ("advance", "mbox"))
    assert 0 < seen_done[0] < seen_done[150] < size        # it moves while the file is read
    assert sum(c[2] for c in rec.calls if c[:2] == ("advance", "mbox")) == size
    assert rec.calls[-1] == ("finish", "mbox")
    # rendered as bytes of the size with a rate and an ETA
    t = TaskState("mbox", size, "bytes", done=size // 4, started=0.0)
    text = describe(t, now=10.0)
    assert re.fullmatch(r"\S+ kB of \S+ kB \(25%\), \S+ kB/s, ETA 30s", text), text


def test_line_reporter_writes_periodic_lines(tmp_path):
    lines: list[str] = []
    r = LineReporter(lines.append, 0.01)
    r.start("mbox", 1000, "bytes")
    r.advance("mbox", 250)
    import time
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(lines) < 3:
        time.sleep(0.01)
    r.finish("mbox")
    n = len(lines)
    time.sleep(0.05)
    assert len(lines) == n                                   # finished: no more lines
    assert n >= 3 and all(line.startswith("progress mbox: 250 bytes of 1.0 kB (25%)") for line in lines), lines


def test_not_a_terminal_gets_progress_lines_with_bytes_of_total(tmp_path):
    path = _mbox(tmp_path / "big.mbox", 1500)
    home = tmp_path / "home"
    mailarchive(home, "init", "--medium", str(tmp_path / "m1"), "--key-backup", str(tmp_path / "kb.txt"))
    p = mailarchive(home, "--progress-interval", "0.05", "import", "mbox", str(path),
                    env={"MAILARCHIVE_PACK_TARGET": str(64 * 1024), "MAILARCHIVE_FAULT_SLOW": "after_db_commit:0.1"})
    total = re.escape(__import__("rich.filesize").filesize.decimal(path.stat().st_size))
    lines = [ln for ln in p.stderr.splitlines() if re.match(rf"progress mbox: \S+ \S+ of {total} \(\d+%\), ", ln)]
    assert len(lines) >= 2, p.stderr
    assert len({ln.split(",")[0] for ln in lines}) >= 2        # the byte count moves between lines
    assert "Imported: 1500 seen" in p.stderr


def test_log_file_lists_every_skip_and_the_summary_stays_short(tmp_path):
    src = tmp_path / ("a-directory-with-a-rather-long-name-" + "x" * 60)
    src.mkdir()
    for i in range(5):
        (src / f"note{i}.txt").write_text("just some text, no headers\n")
    (src / "ok.eml").write_text("From: a@example.com\nSubject: ok\nMessage-ID: <ok@x>\n\nbody\n")
    home = tmp_path / "home"
    log = tmp_path / "logs" / "mailarchive.log"
    mailarchive(home, "init", "--medium", str(tmp_path / "m1"), "--key-backup", str(tmp_path / "kb.txt"))
    p = mailarchive(home, "--log-file", str(log), "import", "share", str(src), check=None)
    text = log.read_text()
    lines = text.splitlines()
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z pid=\d+ "
    assert all(re.match(stamp + r"event=\w+", ln) for ln in lines), text
    assert re.match(stamp + r"event=start command=.*import share", lines[0])
    skips = [ln for ln in lines if " event=skip " in ln]
    assert sorted(re.search(r"ref=(\S+)", ln).group(1) for ln in skips) == [f"note{i}.txt" for i in range(5)]
    assert all('reason="not mail: no header block"' in ln for ln in skips)
    assert any(" event=source " in ln and " archived=1 " in ln and " skipped=5 " in ln for ln in lines)
    assert re.match(stamp + rf"event=end exit={p.returncode} ", lines[-1])
    # the terminal: counted by reason, whole lines (no wrap at 80 columns in a pipe)
    assert "skipped 5× not mail: no header block (e.g. note0.txt)" in p.stderr
    assert "note3.txt" not in p.stderr
    assert any(ln.startswith("Imported: 1 seen") and "runs 1" in ln for ln in p.stderr.splitlines()), p.stderr
    # a second run appends
    mailarchive(home, "--log-file", str(log), "stats", check=None)
    assert log.read_text().startswith(text) and log.read_text().count(" event=start ") == 2


def _scan_progress(importer) -> tuple[int | None, list[int]]:
    """The "scan" task's total and its count after each item the importer yielded."""
    rec = Recorder()
    counts = []
    for _ in importer.scan(None, rec):
        counts.append(sum(c[2] for c in rec.calls if c[:2] == ("advance", "scan")))
    total = next((c[2] for c in rec.calls if c[:2] == ("start", "scan")), None)
    counts.append(sum(c[2] for c in rec.calls if c[:2] == ("advance", "scan")))
    assert ("finish", "scan") in rec.calls
    return total, counts


import pytest  # noqa: E402


@pytest.mark.samba
def test_scan_count_moves_on_an_smb_share_and_for_eml(tmp_path, samba, smb_location):
    from importers.eml import EmlImporter
    from importers.share import ShareImporter

    sub = smb_location.rstrip("/").rpartition("/")[2]
    root = samba.share_dir / sub
    for i in range(6):
        (root / f"d{i % 2}").mkdir(parents=True, exist_ok=True)
        (root / f"d{i % 2}" / f"{i}.eml").write_text(f"From: a@example.com\nSubject: {i}\n\nbody\n")
    for importer in (ShareImporter(smb_location, smb_password=samba.password),
                     EmlImporter(smb_location, smb_password=samba.password), EmlImporter(str(root))):
        total, counts = _scan_progress(importer)
        assert total == 6, importer
        assert counts[-1] == 6 and 0 < counts[2] < 6, (importer, counts)   # it moves while mail is read


def test_tables_in_a_pipe_are_not_cut_at_80_columns(tmp_path):
    medium = tmp_path / ("a-long-directory-name-" * 5) / "medium-one"
    home = tmp_path / "home"
    mailarchive(home, "init", "--medium", str(medium), "--key-backup", str(tmp_path / "kb.txt"))
    out = mailarchive(home, "media", "list", "--no-check").stdout
    assert any(str(medium) in line for line in out.splitlines()), out


def test_a_problem_is_said_live_as_an_error_and_a_warning_as_a_warning(tmp_path):
    """A mail the run could not archive was said live as "warning:" while the summary counted it as an error;
    the live line now says "error:" for it, and a note about an archived mail stays a warning."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "store.eml").write_bytes(b"!BDN" + bytes(508))      # an Outlook store named .eml: not importable so
    (src / "ok.eml").write_bytes(b"From: a@example.com\nSubject: ok\nMessage-ID: <ok@x>\n\nbody\n")
    (src / "twice.eml").write_bytes(b"From a@b Mon Jan  1 00:00:00 2020\nFrom: a@example.com\nSubject: t\n\n"
                                    b"x\n\nFrom b@c Mon Jan  1 00:00:00 2020\nFrom: b@example.com\n\ny\n")
    home = tmp_path / "home"
    mailarchive(home, "init", "--medium", str(tmp_path / "m"))
    r = mailarchive(home, "import", "eml", str(src), check=1)
    said = [line for line in r.stderr.splitlines()       # the live lines (the summary's list is indented)
            if ("store.eml" in line or "twice.eml" in line) and not line.startswith(" ")]
    assert [line.split(":", 1)[0] for line in said if "store.eml" in line] == ["error"], r.stderr
    assert [line.split(":", 1)[0] for line in said if "twice.eml" in line] == ["warning"], r.stderr
