"""The throwaway RFC 3161 TSA (tests/services/tsa.py) as pytest fixtures."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tsa():
    """A local TSA on 127.0.0.1 (test CA + ``openssl ts -reply``); tests that change ``mode`` put it back to "ok"."""
    from services.process import served
    from services.tsa import start_tsa

    with served("tsa", start_tsa) as server:
        yield server


@pytest.fixture
def tsa_ok(tsa):
    """The session TSA, guaranteed in mode "ok" before and after the test."""
    tsa.mode = "ok"
    yield tsa
    tsa.mode = "ok"
