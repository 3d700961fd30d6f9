"""toolkit/cli/early.py: which command lines fork ``verify --full``'s workers before click and rich load.

Only ``[global options] verify --full [verify options]`` with options the reading knows; anything else (another
command, an unknown option, ``--help``, ``--subset``, a bad ``--workers``) forks nothing, and the command starts its
workers where it always did.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from toolkit.cli.early import verify_full_args


@pytest.mark.parametrize("argv, want", [
    (["verify", "--full"], (Path("archive"), None, True)),
    (["--archive", "/a", "--json", "verify", "--full"], (Path("/a"), None, True)),
    (["--archive=/a", "--quiet", "--smb-no-encrypt", "verify", "--workers", "3", "--full"], (Path("/a"), 3, False)),
    (["--lock-wait", "2", "--log-file", "l.log", "verify", "--full", "--workers=2", "--json-report", "r.json",
      "--at", "2030-01-01", "--crl", "c.pem", "--findings=f.csv", "--html-report", "r.html"], (Path("archive"), 2, True)),
    (["--progress-interval", "5", "verify", "--full", "--full"], (Path("archive"), None, True)),
])
def test_verify_full_forks_for_its_home_and_workers(argv, want, monkeypatch):
    monkeypatch.delenv("MAILARCHIVE_HOME", raising=False)
    assert verify_full_args(argv) == want


def test_the_home_of_the_environment_counts_as_the_command_lines(monkeypatch):
    monkeypatch.setenv("MAILARCHIVE_HOME", "/env/home")
    assert verify_full_args(["verify", "--full"])[0] == Path("/env/home")
    assert verify_full_args(["--archive", "/a", "verify", "--full"])[0] == Path("/a")


@pytest.mark.parametrize("argv", [
    [], ["verify"], ["verify", "--json-report", "r.json"], ["--full", "verify"], ["import", "eml", "--full"],
    ["verify", "--full", "--subset", "10%"], ["verify", "--full", "--seed", "1"], ["verify", "--full", "--help"],
    ["verify", "--full", "-h"], ["--help", "verify", "--full"], ["--version"], ["verify", "--full", "extra"],
    ["verify", "--full", "--workers", "0"], ["verify", "--full", "--workers", "x"], ["verify", "--full", "--workers"],
    ["verify", "--full", "--workers", "²"], ["--archive"], ["--archive", "/a", "verify", "--full", "--"],
    ["--unknown", "verify", "--full"], ["verify", "--full=1"], ["--json=1", "verify", "--full"],
    ["verify-evidence", "--full"], ["verify", "--ful"],
])
def test_anything_else_forks_nothing(argv):
    assert verify_full_args(argv) is None


def _start_in_child(home: str, out) -> None:
    """In a spawned child: start() as the command line's would run it there (the main module imported again)."""
    import sys

    from toolkit.cli import early

    early._is_the_command = lambda: True
    sys.argv = ["mailarchive", "--archive", home, "verify", "--full"]
    early.start()
    out.put("workers" in early._started)


def test_a_spawned_child_of_the_command_forks_nothing(tmp_path):
    """A spawned child (or a fork server) of ``mailarchive verify --full`` imports its main module again, with the
    parent's arguments: it must not fork workers of its own."""
    import multiprocessing

    from toolkit.archive import Archive

    Archive.create(tmp_path / "home", str(tmp_path / "medium"), name="early-child").close()
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    child = ctx.Process(target=_start_in_child, args=(str(tmp_path / "home"), out))
    child.start()
    try:
        assert out.get(timeout=120) is False
    finally:
        child.join()


# -- an import's workers (spawned) ------------------------------------------------------------------------------

from toolkit.cli.early import import_args, more_than_first_chunk  # noqa: E402


@pytest.mark.parametrize("argv, want", [
    (["import", "eml", "src"], (Path("archive"), "eml", ("src",), 2)),
    (["--archive", "/a", "--json", "--quiet", "import", "mbox", "a.mbox", "b.mbox"], (Path("/a"), "mbox", ("a.mbox", "b.mbox"), 2)),
    (["import", "maildir", "--executor", "local", "md", "--password-file=p"], (Path("archive"), "maildir", ("md",), 2)),
    (["import", "eml", "--force-raw", "--executor=local", "src", "--password-file", "p"], (Path("archive"), "eml", ("src",), 2)),
    (["--lock-wait", "3", "import", "mbox", "--variant", "mboxrd", "--max-message-size", "1G", "x.mbox",
      "--max-expansion-ratio", "20", "--max-expansion-after=1G"], (Path("archive"), "mbox", ("x.mbox",), 2)),
])
def test_a_local_import_spawns_its_workers_early(argv, want, monkeypatch):
    monkeypatch.delenv("MAILARCHIVE_HOME", raising=False)
    assert import_args(argv, {"MAILARCHIVE_WORKERS": "2"}) == want


@pytest.mark.parametrize("argv", [
    ["import"], ["import", "eml"], ["import", "imap", "src"], ["import", "pst", "x.pst"], ["import", "source", "s"],
    ["import", "eml", "--dry-run", "src"], ["import", "eml", "src", "--help"], ["import", "eml", "-h", "src"],
    ["--help", "import", "eml", "src"], ["import", "eml", "--executor", "local-cluster:2", "src"],
    ["import", "eml", "--executor=dask://h:1", "src"], ["import", "eml", "smb://u@h/share/x"],
    ["import", "eml", "src", "--"], ["import", "eml", "src", "--executor"], ["import", "mbox", "--force-raw", "x"],
    ["import", "maildir", "--variant", "mboxo", "md"], ["import", "eml", "--force-raw=1", "src"], ["--unknown", "import", "eml", "src"],
    ["verify", "--full"], ["import", "eml", "-", "src"],
])
def test_any_other_import_command_line_spawns_nothing(argv):
    assert import_args(argv, {}) is None


@pytest.mark.parametrize("workers, want", [("", 2), ("1", 1), ("3", 3), ("0", None), ("x", None), ("-1", None)])
def test_the_worker_count_is_the_imports(workers, want, monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    got = import_args(["import", "eml", "src"], {"MAILARCHIVE_WORKERS": workers})
    assert (got and got[3]) == want


def test_the_early_reading_knows_the_imports_first_chunk_and_config_name():
    import toolkit.cli.early as early
    import toolkit.home
    import toolkit.ingest

    assert (early.FIRST_CHUNK, early.FIRST_CHUNK_BYTES) == (toolkit.ingest.FIRST_CHUNK, toolkit.ingest.FIRST_CHUNK_BYTES)
    assert early._CONFIG_NAME == toolkit.home.CONFIG_NAME


def test_only_a_source_larger_than_the_first_chunk_spawns_workers(tmp_path):
    """The driver prepares the first chunk itself, and a source of one chunk starts no pool: nor early workers."""
    small = tmp_path / "small"
    (small / "sub").mkdir(parents=True)
    for i in range(256):
        (small / "sub" / f"{i}.eml").write_bytes(b"x")
    assert not more_than_first_chunk((str(small),))
    (small / "one-more.eml").write_bytes(b"x")
    assert more_than_first_chunk((str(small),))
    big = tmp_path / "big.mbox"
    with open(big, "wb") as f:
        f.truncate(8 * 1024 * 1024)
    assert not more_than_first_chunk((str(big),))
    with open(big, "ab") as f:
        f.write(b"x")
    assert more_than_first_chunk((str(big),))
    assert more_than_first_chunk((str(tmp_path / "small" / "sub"), str(tmp_path / "small" / "one-more.eml")))
    assert not more_than_first_chunk((str(tmp_path / "missing"),))


@pytest.mark.parametrize("argv, variant", [
    (["--archive", "h", "import", "mbox", "x.mbox"], "auto"),
    (["import", "mbox", "--variant", "mboxrd", "x.mbox"], "mboxrd"),
    (["import", "mbox", "x.mbox", "--variant=mboxcl2"], "mboxcl2"),
    (["import", "mbox", "--max-message-size", "1M", "x.mbox"], None),
    (["import", "mbox", "--variant", "mboxo", "--max-expansion-ratio=3", "x.mbox"], None),
    (["import", "mbox", "--max-expansion-after", "2G", "x.mbox"], None),
])
def test_the_mbox_variant_a_task_ahead_is_scanned_with(argv, variant):
    """The start-up scans an mbox's first chunk with the command line's ``--variant``; with a size limit given (parsed
    by the command only) it sends nothing ahead."""
    from toolkit.cli.early import _mbox_variant

    assert _mbox_variant(argv) == variant
