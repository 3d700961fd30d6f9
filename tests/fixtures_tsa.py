"""The throwaway RFC 3161 TSA (tests/services/tsa.py) as pytest fixtures."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tsa():
    """A local TSA on 127.0.0.1 (test CA + ``openssl ts -reply``); tests that change ``mode`` put it back to "ok"."""
    from conftest import require_service
    from services.tsa import start_tsa

    workdir = Path(tempfile.mkdtemp(prefix="mailarchive-tsa-"))
    try:
        server = start_tsa(workdir)
    except Exception as exc:  # openssl missing or too old
        shutil.rmtree(workdir, ignore_errors=True)
        require_service("tsa", exc)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def tsa_ok(tsa):
    """The session TSA, guaranteed in mode "ok" before and after the test."""
    tsa.mode = "ok"
    yield tsa
    tsa.mode = "ok"
