"""Shared pytest configuration.

Service fixtures start throwaway servers (docs/test-services.md): Samba here,
Dovecot and the TSA in tests/fixtures_<name>.py; all through
``services.process.served`` (a missing server fails under CI=true).
"""
from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from services.process import served

# Each tests/fixtures_<name>.py module holds the fixtures of one more service (TSA, Dovecot, ...).
pytest_plugins = sorted(p.stem for p in Path(__file__).parent.glob("fixtures_*.py"))


def pytest_addoption(parser):
    parser.addoption("--long", action="store_true", default=False,
                     help="soak-like tests run their full count (e.g. A4: 50 kills) instead of the "
                          "seed-controlled CI subset (tests/README.md), and the tests marked long run "
                          "(minutes each: huge mails)")


@pytest.fixture(scope="session")
def long_run(request) -> bool:
    """True under ``pytest --long``: soak-like tests run their full count instead of the CI subset."""
    return bool(request.config.getoption("--long"))


_SAMBA: list = []  # this worker's Samba, once started: named in the report of a test that fails with it


@pytest.fixture(scope="session")
def samba():
    from services.samba import start_samba

    with served("samba", start_samba) as server:
        _SAMBA.append(server)
        yield server
        _SAMBA.remove(server)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failing test that uses the shared Samba gets the state of its smbd processes and the server's log
    tail in its report: a server that stops answering (a process stuck in the kernel, stopped, or out of
    file descriptors) can then be told apart from a client fault after the fact, in CI too."""
    outcome = yield
    report = outcome.get_result()
    if report.failed and _SAMBA and "samba" in getattr(item, "fixturenames", ()):
        from services.samba import _log_tail

        server = _SAMBA[-1]
        report.sections.append(("smbd processes", server.processes() or "(none)"))
        if server.log_path is not None:
            report.sections.append(("smbd log (tail)", _log_tail(server.log_path)))


@pytest.fixture
def smb_location(samba, monkeypatch) -> str:
    """A fresh, empty sub-path of the share for one test, with the password in the environment."""
    monkeypatch.setenv("MAILARCHIVE_SMB_PASSWORD", samba.password)
    return samba.url(f"t-{secrets.token_hex(6)}")


def pytest_configure(config):
    config.addinivalue_line("markers", "long: runs only with --long (minutes: huge mails, soaks)")
    _compile_project_sources()


def _compile_project_sources() -> None:
    """Write the bytecode of the toolkit's own packages once, before any test runs.

    Hundreds of tests run ``python -m toolkit`` in a child process. Under PYTHONDONTWRITEBYTECODE
    (set on some machines and CI runners) no child would ever cache its bytecode, and each would
    compile the ~150 modules it imports again: about 0.2 CPU-seconds per call (tests/README.md,
    "Test time"). A child reads up-to-date ``__pycache__`` files even under that setting, and
    compiling an up-to-date tree only stats its files.
    """
    import compileall

    root = Path(__file__).resolve().parent.parent
    for package in ("toolkit", "importers", "exporters", "verify", "media_tools"):
        if (root / package).is_dir():
            compileall.compile_dir(root / package, quiet=2, workers=1)


def pytest_unconfigure(config):
    from tests.cli import stop_server

    stop_server()  # the fork server of tests/cli.py, if this process started one


def pytest_collection_modifyitems(config, items):
    if config.getoption("--long"):
        return
    skip = pytest.mark.skip(reason="long test: run with pytest --long")
    for item in items:
        if "long" in item.keywords:
            item.add_marker(skip)
