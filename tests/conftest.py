"""Shared pytest configuration.

Service fixtures start throwaway servers (shared/SERVICES.md). Only Samba is
here so far; the Dovecot and TSA fixtures will be added here later.
"""
from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from pathlib import Path

import pytest

# Each tests/fixtures_<name>.py module holds the fixtures of one more service (TSA, Dovecot, ...).
pytest_plugins = sorted(p.stem for p in Path(__file__).parent.glob("fixtures_*.py"))


def require_service(name: str, exc: BaseException) -> None:
    """A missing service fails the run in CI and skips the test elsewhere."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{name} unavailable in CI: {exc}")
    pytest.skip(f"{name} unavailable: {exc}")


@pytest.fixture(scope="session")
def samba():
    # Not under tmp_path_factory: a concurrent pytest run prunes old /tmp/pytest-of-*/pytest-N
    # directories, which would pull the share out from under a running smbd.
    from services.samba import start_samba

    workdir = Path(tempfile.mkdtemp(prefix="mailarchive-samba-"))
    try:
        server = start_samba(workdir)
    except Exception as exc:  # not installed, not root, smbd failed to start
        shutil.rmtree(workdir, ignore_errors=True)
        require_service("samba", exc)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def smb_location(samba, monkeypatch) -> str:
    """A fresh, empty sub-path of the share for one test, with the password in the environment."""
    monkeypatch.setenv("MAILARCHIVE_SMB_PASSWORD", samba.password)
    return samba.url(f"t-{secrets.token_hex(6)}")
