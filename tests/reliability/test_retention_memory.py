"""Retention, deletion requests and purge at scale (docs/retention.md; docs/reliability.md K8): no Python object per
mail for what DuckDB can decide by set operations, the report written as it goes, a pack's switch in a bounded
number of statements. The figures at a million mails are a bench (bench/RESULTS.md "retain1m").

Each memory test runs the command in its own process with tracemalloc started after the imports, on an archive of
N tiny mails, and bounds the peak of Python allocations per mail well below what the old code took (a list of
MailFacts, Decisions and dicts for every covered mail, then one JSON text of everything).
"""
from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli import PASSWORD, mailarchive
from tests.corpora import REPO

N = 20_000
UTC = dt.timezone.utc


def _mbox(path: Path, n: int) -> None:
    with path.open("w", encoding="ascii") as f:
        for i in range(n):
            f.write(f"From a{i % 50}@example.com Mon Mar  4 10:00:00 2019\nFrom: a{i % 50}@example.com\n"
                    f"To: b{i % 7}@example.org\nSubject: tiny {i}\nMessage-ID: <tiny-{i}@example.com>\n"
                    f"Date: Mon, 4 Mar 2019 10:{i % 60:02d}:00 +0000\n\nbody {i}\n\n")


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("retention-memory")
    _mbox(base / "tiny.mbox", N)
    home = base / "home"
    mailarchive(home, "init", "--medium", str(base / "m1"), "--key-backup", str(base / "kb.txt"))
    mailarchive(home, "import", "mbox", str(base / "tiny.mbox"))
    mailarchive(home, "retention", "set", "--years", "1", "--domain", "example.com", "--actor", "lead")
    return base


@pytest.fixture
def home(template, tmp_path) -> Path:
    """A copy of the template archive (home and medium) whose archive.toml points at the copied medium."""
    import shutil

    shutil.copytree(template / "home", tmp_path / "home")
    shutil.copytree(template / "m1", tmp_path / "m1")
    cfg = tmp_path / "home" / "archive.toml"
    cfg.write_text(cfg.read_text().replace(str(template / "m1"), str(tmp_path / "m1")))
    return tmp_path / "home"


_TRACED = """
import atexit, sys, tracemalloc
import toolkit.cli.main as m
import toolkit.cli.commands.retention, toolkit.cli.commands.delete, toolkit.cli.commands.purge
import toolkit.catalog.retention, toolkit.catalog.user_sql, toolkit.purge_rules, media_tools.purge, duckdb, rich.table
import pyarrow.compute, pyarrow.dataset, pyarrow.substrait, pytz  # what DuckDB loads when it first reads an Arrow table
tracemalloc.start()
atexit.register(lambda: sys.stderr.write("PEAK %d\\n" % tracemalloc.get_traced_memory()[1]))
m.main(sys.argv[1:])
"""


def traced(home: Path, *args: str, check: int = 0) -> tuple[int, str]:
    """(peak of Python allocations, stdout) of ``mailarchive --archive HOME ARGS`` run in its own process."""
    env = {**os.environ, "MAILARCHIVE_PASSWORD": PASSWORD}
    p = subprocess.run([sys.executable, "-c", _TRACED, "--archive", str(home), *args], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == check, p.stderr[-3000:]
    peak = int(p.stderr.rsplit("PEAK ", 1)[1].split()[0])
    return peak, p.stdout


def baseline(home: Path, writer: bool = False) -> int:
    """The peak of a command that opens the archive and reads (or, ``writer``, writes) one small table: the cost
    of opening it (a writer checks the migrations, loading their modules)."""
    if writer:
        return traced(home, "--json", "retention", "set", "--years", "1", "--domain", "example.com", "--actor", "x")[0]
    return traced(home, "--json", "delete", "list")[0]


def test_the_report_of_every_mail_is_written_as_it_goes(home):
    base = baseline(home)
    peak, out = traced(home, "--json", "retention", "report", "--at", "2030-01-01")
    r = json.loads(out)
    assert out == json.dumps(r, ensure_ascii=False) + "\n"  # the text of one json.dumps of the whole result
    assert r["counts"] == {"deletable": N, "no-policy": 0} and len(r["mails"]) == N
    keys = [(m["deletable_from"], m["msg_id"]) for m in r["mails"]]
    assert keys == sorted(keys)  # soonest deletable first
    # a page of 10,000 decisions at most (~800 bytes a row); the old code held every mail's facts, decision and
    # dict, then the whole JSON text: ~2.9 KB a mail
    print("PEAKX", peak, base); assert peak - base < 10 * 1024 * 1024 + 100 * N, (peak, base)


def test_a_deletion_request_and_its_approval_hold_no_object_per_covered_mail(home):
    """The policy covers all N mails; a request of ten of them: the old code held a Policy per covered mail and
    the facts of every one (~125 bytes a covered mail), now DuckDB works the coverage out."""
    base = baseline(home, writer=True)
    peak, out = traced(home, "--json", "delete", "request", "--where", "m.msg_id <= 10", "--reason", "tidy",
                       "--actor", "anna")
    assert json.loads(out)["mails"] == 10
    print("PEAKX", peak, base); assert peak - base < 30 * N, (peak, base)
    peak, out = traced(home, "--json", "delete", "approve", "1", "--actor", "officer")
    assert json.loads(out)["mails"] == 10
    print("PEAKX", peak, base); assert peak - base < 30 * N, (peak, base)


def test_a_request_of_half_the_mails_freezes_exactly_them(home):
    _, out = traced(home, "--json", "delete", "request", "--where", "m.msg_id % 2 = 0", "--reason", "tidy",
                    "--actor", "anna")
    assert json.loads(out)["mails"] == N // 2
    items = mailarchive(home, "sql", "SELECT count(*) AS n, count(DISTINCT msg_id) AS d, max(msg_id % 2) AS odd "
                        "FROM deletion_items", "--format", "json")
    assert json.loads(items.stdout) == [{"n": N // 2, "d": N // 2, "odd": 0}]


class _Counting:
    """A DuckDB connection that counts the statements run through it."""

    def __init__(self, con):
        self.con, self.statements = con, 0

    def execute(self, *a, **k):
        self.statements += 1
        return self.con.execute(*a, **k)

    def executemany(self, sql, rows):
        self.statements += len(rows)
        return self.con.executemany(sql, rows)

    def __getattr__(self, name):
        return getattr(self.con, name)


def test_a_pack_switch_is_a_few_statements_whatever_its_mails(home):
    """docs/retention.md step 4 for a pack of N mails, half purged: the old code ran an UPDATE per kept mail and an
    INSERT per tombstone (N statements); now each table is one statement joined with an Arrow table."""
    from toolkit.archive import Archive
    from toolkit.catalog import purge_rows

    os.environ.setdefault("MAILARCHIVE_PASSWORD", PASSWORD)
    a = Archive.open(home, writer=True)
    try:
        with a.catalog.writing() as con:
            pack = con.execute("SELECT pack_id, count(*) FROM messages GROUP BY 1 ORDER BY 2 DESC LIMIT 1").fetchone()[0]
            rows = purge_rows.pack_records(con, pack)
            gone, keep = rows[::2], rows[1::2]
            moved = {r[1]: (r[2] + 1, r[3], r[5]) for r in keep}
            new = {"pack_id": "cd" * 16, "medium_id": 1, "name": "packs/cd/" + "cd" * 16 + ".pack", "bytes": 1,
                   "records": len(keep), "blake3": "00" * 32}
            counting = _Counting(con)
            purge_rows.switch_pack(counting, pack, new, moved, [(r[0], r[1], r[6]) for r in gone], 1,
                                   dt.datetime(2030, 1, 1, tzinfo=UTC), {"request_id": 1})
            assert counting.statements < 30, counting.statements
            assert con.execute("SELECT count(*) FROM tombstones").fetchone()[0] == len(gone)
            got = dict(con.execute('SELECT blob_id, "offset" FROM messages WHERE pack_id = ?', [new["pack_id"]]).fetchall())
            assert got == {b: o for b, (o, _, _) in moved.items()}
            con.execute("ROLLBACK")
            con.execute("BEGIN TRANSACTION")
    finally:
        a.close()
