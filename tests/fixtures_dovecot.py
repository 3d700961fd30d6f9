"""The ``dovecot`` session fixture: one throwaway Dovecot (IMAP + POP3) for the whole test run."""
from __future__ import annotations

import pytest


USERS = 80
_taken: list[str] = []


@pytest.fixture(scope="session")
def dovecot():
    from services.dovecot import start_dovecot
    from services.process import served

    # Users are made before the start: Dovecot re-reads a changed passwd-file only after a second.
    users = tuple(f"t{i:02d}" for i in range(USERS))
    with served("dovecot", lambda workdir: start_dovecot(workdir, users=users)) as server:
        yield server


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
