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
    """The session TSA, guaranteed in mode "ok" (no request stripping, nothing seen) before and after the test."""
    def reset():
        tsa.mode, tsa.strip, tsa.redirect_code, tsa.drip_pause = "ok", set(), 307, 0.2
        tsa.seen.clear()

    reset()
    yield tsa
    reset()


@pytest.fixture(scope="session")
def tsa_b():
    """A second local TSA with its own PKI: an RSA root CA, an ECDSA intermediate CA (sent in every token) and an
    ECDSA TSA certificate; ``ca_cert_path`` is the root alone."""
    from services.process import served
    from services.tsa import start_tsa

    with served("tsa-b", lambda workdir: start_tsa(workdir, "tsa-b", intermediate=True)) as server:
        server.mode = "ok"
        yield server


@pytest.fixture(scope="session")
def tsa_short():
    """A local TSA whose TSA certificate is valid for 30 days only (its tokens' protection runs out soon)."""
    from services.process import served
    from services.tsa import start_tsa

    with served("tsa-short", lambda workdir: start_tsa(workdir, "tsa-short", validity_days=30)) as server:
        yield server


TSA_USER, TSA_PASSWORD = "stamper", "tsa-secret-7731"


@pytest.fixture(scope="session")
def tsa_https():
    """A local TSA over HTTPS (server certificate from its own TLS CA: ``tls_ca_path``) that demands HTTP basic
    authentication as TSA_USER / TSA_PASSWORD; ``user_url`` is its URL with the user name in it."""
    from services.process import served
    from services.tsa import start_tsa

    def start(workdir):
        server = start_tsa(workdir, "tsa-https", tls=True, auth=(TSA_USER, TSA_PASSWORD))
        server.user_url = server.url.replace("https://", f"https://{TSA_USER}@")
        return server

    with served("tsa-https", start) as server:
        yield server
