"""The ``dovecot`` session fixture: one throwaway Dovecot (IMAP + POP3) for the whole test run."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from conftest import require_service


USERS = 40
_taken: list[str] = []


@pytest.fixture(scope="session")
def dovecot():
    # Not under tmp_path_factory (see the samba fixture): a concurrent pytest run prunes old basetemps.
    from services.dovecot import start_dovecot

    workdir = Path(tempfile.mkdtemp(prefix="mailarchive-dovecot-"))
    try:
        # Users are made before the start: Dovecot re-reads a changed passwd-file only after a second.
        server = start_dovecot(workdir, users=tuple(f"t{i:02d}" for i in range(USERS)))
    except Exception as exc:  # not installed, not root, dovecot failed to start
        shutil.rmtree(workdir, ignore_errors=True)
        require_service("dovecot", exc)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def mail_user(dovecot, request) -> tuple[str, str]:
    """A fresh, empty mailbox user for one test: (user, password)."""
    free = [u for u in sorted(dovecot.users) if u not in _taken]
    assert free, f"all {USERS} test mailbox users are used: raise USERS in tests/fixtures_dovecot.py"
    _taken.append(free[0])
    return free[0], dovecot.users[free[0]]


@pytest.fixture
def fault_proxy():
    from services.faultproxy import FaultProxy

    proxies = []

    def make(host: str, port: int) -> FaultProxy:
        p = FaultProxy(host, port)
        proxies.append(p)
        return p

    yield make
    for p in proxies:
        p.close()
