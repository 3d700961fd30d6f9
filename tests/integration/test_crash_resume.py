"""Crash and resume of an import (docs/reliability.md A1, A3, A4, A5; docs/dedup.md durability).

Each test kills a real `mailarchive import` at a named point (MAILARCHIVE_FAULT)
or with a signal, reruns the same command, and compares with a clean run:
the same set of blob ids, no duplicate rows, every row's pack on the medium.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli import PASSWORD, mailarchive

N_MAILS = 240
PACK_TARGET = 64 * 1024  # many small packs, so kills land between packs too

KILL_POINTS = [
    "after_source_read",       # a mail read, nothing written
    "storage.after_write",     # pack temp file written, not fsynced
    "storage.after_fsync",     # fsynced, not renamed
    "pack.before_commit",      # footer written, before the create-only rename
    "after_pack_seal",         # pack renamed into place, catalog not committed
    "after_db_commit",         # committed with its cursor
]


def _make_source(root: Path, n: int, start: int = 0) -> None:
    root.mkdir(parents=True, exist_ok=True)
    rng = random.Random(1234 + start)
    for i in range(start, start + n):
        body = "".join(rng.choice("abcdefghij klmnop\n") for _ in range(rng.randint(200, 3000)))
        mid = f"<crash-{i}@example.com>" if i % 7 else None  # some without Message-ID
        hdr = f"From: a{i % 13}@example.com\nTo: b@example.org\nSubject: crash test {i}\nDate: Mon, 1 Mar 2021 10:{i % 60:02d}:00 +0100\n"
        if mid:
            hdr += f"Message-ID: {mid}\n"
        (root / f"{i // 100:03d}").mkdir(exist_ok=True)
        (root / f"{i // 100:03d}" / f"{i:05d}.eml").write_text(hdr + "\n" + body)


def _run_import(home: Path, source: Path, fault: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "MAILARCHIVE_PASSWORD": PASSWORD, "MAILARCHIVE_PACK_TARGET": str(PACK_TARGET)}
    env.pop("MAILARCHIVE_FAULT", None)
    if fault:
        env["MAILARCHIVE_FAULT"] = fault
    return subprocess.run(
        [sys.executable, "-m", "toolkit", "--archive", str(home), "--json", "import", "eml", str(source)],
        capture_output=True, text=True, env=env, timeout=300,
    )


def _state(home: Path) -> dict:
    """Every message row's blob id (each row joined to its pack) and every pack row's name and size, in one command."""
    rows = json.loads(mailarchive(
        home, "sql", "SELECT 'blob' AS kind, m.blob_id AS name, NULL AS bytes FROM messages m JOIN packs p USING (pack_id) "
        "UNION ALL SELECT 'pack', name, bytes FROM packs", "--format", "json").stdout)
    return {"blobs": [r["name"] for r in rows if r["kind"] == "blob"],
            "packs": {r["name"]: r["bytes"] for r in rows if r["kind"] == "pack"}}


# Kill points that fall between creating a pack's temp file and renaming it into place: a kill
# there leaves that one temp file behind (B3: readers ignore it, it is never counted as mail).
TEMP_POINTS = {"storage.after_write", "storage.after_fsync", "pack.before_commit"}

A4_KILLS = 50  # kills of the full A4 crash loop (pytest --long)


def _check_against_clean(home: Path, medium: Path, clean_blobs: set[str], max_temp: int = 0) -> None:
    """Compare with the clean run; ``max_temp`` is how many kills landed at a TEMP_POINTS site."""
    st = _state(home)
    assert len(st["blobs"]) == len(set(st["blobs"])), "duplicate rows after resume"
    assert set(st["blobs"]) == clean_blobs, "resumed archive differs from a clean run"
    for name, size in st["packs"].items():  # no row without its pack
        assert (medium / name).stat().st_size == size
    # Temp files come only from kills while a pack was being written, at most one per such kill;
    # any other leftover means a temp file leaked on a normal path. None is ever a catalogued pack.
    temps = [p.relative_to(medium).as_posix() for p in medium.rglob("*.tmp")]
    assert len(temps) <= max_temp, temps
    assert not set(temps) & set(st["packs"])


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    root = tmp_path_factory.mktemp("clean")
    source = root / "src"
    _make_source(source, N_MAILS)
    home = root / "home"
    mailarchive(home, "init", "--medium", str(root / "m1"))
    p = _run_import(home, source)
    assert p.returncode == 0, p.stderr
    return source, set(_state(home)["blobs"])


@pytest.mark.parametrize("point", KILL_POINTS)
def test_a1_kill_at_each_point_then_resume(tmp_path, clean, point):
    source, clean_blobs = clean
    home, medium = tmp_path / "home", tmp_path / "m1"
    mailarchive(home, "init", "--medium", str(medium))
    p = _run_import(home, source, fault=f"{point}:2")
    assert p.returncode == -signal.SIGKILL, (p.returncode, p.stderr)
    p = _run_import(home, source)
    assert p.returncode == 0, p.stderr
    summary = json.loads(p.stdout)
    assert summary["errors"] == 0
    _check_against_clean(home, medium, clean_blobs, max_temp=int(point in TEMP_POINTS))
    # a further run adds nothing
    again = json.loads(_run_import(home, source).stdout)
    assert again["archived"] == 0 and again["seen"] == N_MAILS


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a3_signal_finishes_current_pack_and_exits_130(tmp_path, clean, sig):
    source, clean_blobs = clean
    home, medium = tmp_path / "home", tmp_path / "m1"
    mailarchive(home, "init", "--medium", str(medium))
    # every commit waits 0.2 s, so the run is still going when the signal comes, however fast the machine
    env = {**os.environ, "MAILARCHIVE_PASSWORD": PASSWORD, "MAILARCHIVE_PACK_TARGET": str(PACK_TARGET),
           "MAILARCHIVE_FAULT_SLOW": "after_db_commit:0.2"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "toolkit", "--archive", str(home), "--json", "import", "eml", str(source)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    # wait until the first pack is committed, then signal
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if list(medium.rglob("*.pack")):
            break
        time.sleep(0.02)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    r = json.loads(out)
    assert r["status"] == "interrupted" and 0 < r["seen"] < N_MAILS
    st = _state(home)
    assert len(st["blobs"]) == r["archived"]  # everything reported was committed
    p = _run_import(home, source)
    assert p.returncode == 0, p.stderr
    _check_against_clean(home, medium, clean_blobs)


def test_a4_random_crash_loop(tmp_path, clean, long_run):
    """A4: kills at random points and passages; the seed is printed so a failure reproduces.

    CI runs one round of 8 attempts (at least one kill), with a fresh seed each run. ``pytest --long``
    asks for A4_KILLS (50) kills in all; MAILARCHIVE_CRASH_KILLS sets another count and
    MAILARCHIVE_CRASH_SEED replays a printed seed (tests/README.md): rounds of attempts, each on a
    fresh archive, until that many kills have landed, every round checked against the clean run.
    """
    source, clean_blobs = clean
    seed = int(os.environ.get("MAILARCHIVE_CRASH_SEED", random.randrange(1 << 30)))
    want_kills = int(os.environ.get("MAILARCHIVE_CRASH_KILLS", A4_KILLS if long_run else 0))
    print(f"crash loop seed {seed} (MAILARCHIVE_CRASH_SEED={seed} reproduces)")
    rng = random.Random(seed)
    total_kills = rounds = 0
    while rounds == 0 or total_kills < want_kills:
        home, medium = tmp_path / f"home{rounds}", tmp_path / f"m{rounds}"
        rounds += 1
        mailarchive(home, "init", "--medium", str(medium))
        kills = temp_kills = 0
        for _ in range(8):
            point = rng.choice(KILL_POINTS)
            p = _run_import(home, source, fault=f"{point}:{rng.randint(1, 2)}")
            if p.returncode == -signal.SIGKILL:
                kills += 1
                temp_kills += point in TEMP_POINTS
            else:
                assert p.returncode == 0, (seed, p.stderr)
        assert kills >= 1, seed  # the first pass always dies; once all is archived, pack-writing points are not reached
        p = _run_import(home, source)
        assert p.returncode == 0, (seed, p.stderr)
        _check_against_clean(home, medium, clean_blobs, max_temp=temp_kills)
        total_kills += kills
    print(f"crash loop seed {seed}: {total_kills} kills in {rounds} rounds")


def test_a5_source_grows_between_crash_and_resume(tmp_path, clean):
    source, clean_blobs = clean
    src = tmp_path / "src"
    import shutil

    shutil.copytree(source, src)
    home, medium = tmp_path / "home", tmp_path / "m1"
    mailarchive(home, "init", "--medium", str(medium))
    assert _run_import(home, src, fault="after_db_commit:2").returncode == -signal.SIGKILL
    _make_source(src, 50, start=N_MAILS)  # new mail arrives, sorted after and between existing dirs
    (src / "000" / "00000b.eml").write_text("From: late@example.com\nSubject: late\nMessage-ID: <late@x>\n\nlate arrival\n")
    p = _run_import(home, src)
    assert p.returncode == 0, p.stderr
    st = _state(home)
    assert len(st["blobs"]) == len(set(st["blobs"]))
    assert clean_blobs < set(st["blobs"])
    # the file that sorted before the cursor is found by the next full run, as a new mail, never lost
    p = json.loads(_run_import(home, src).stdout)
    assert p["decisions"].get("new", 0) <= 1
    assert len(set(_state(home)["blobs"])) == N_MAILS + 51


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a3_second_signal_during_the_shutdown_exits_130_and_the_rerun_equals_a_clean_run(tmp_path, clean, sig):
    """A3: the first signal starts the orderly stop (the chunks in flight are committed); a second one
    while that runs interrupts at once. Exit 130 with no traceback, nothing reported that was not
    committed, at most one temp file per worker (each may be writing a pack when the second signal ends the
    run at once: the next chunk is sent before the commit it waits for), and the rerun equals the clean run."""
    source, clean_blobs = clean
    home, medium = tmp_path / "home", tmp_path / "m1"
    mailarchive(home, "init", "--medium", str(medium))
    # every commit waits 0.5 s: the orderly stop is still committing when the second signal comes
    env = {**os.environ, "MAILARCHIVE_PASSWORD": PASSWORD, "MAILARCHIVE_PACK_TARGET": str(PACK_TARGET),
           "MAILARCHIVE_FAULT_SLOW": "after_db_commit:0.5", "MAILARCHIVE_WORKERS": "2"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "toolkit", "--archive", str(home), "--json", "import", "eml", str(source)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None and not list(medium.rglob("*.pack")):
        time.sleep(0.02)
    proc.send_signal(sig)
    time.sleep(0.1)
    assert proc.poll() is None, "the run ended before the second signal: the test did not test the shutdown"
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err, err
    if out.strip():  # the summary, when the second signal let it be printed, counts only what was committed;
        r = json.loads(out)  # else the object of an interrupted command (docs/cli.md "Output")
        assert r["status"] == "interrupted"
        assert r["archived"] <= len(_state(home)["blobs"]) if "archived" in r else r["exit_code"] == 130
    p = _run_import(home, source)
    assert p.returncode == 0, p.stderr
    _check_against_clean(home, medium, clean_blobs, max_temp=2)  # one per worker
