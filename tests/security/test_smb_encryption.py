"""SMB3 encryption is asked for on every share that offers it; --smb-no-encrypt turns it off; signing stays required.

Against the real test Samba. A relay between client and server keeps every
byte of both directions, so the tests see what crosses the wire: a marker
in a mail on the share must not appear there when the session encrypts,
and does appear (which proves the check can fail) when it does not.
"""
from __future__ import annotations

import secrets
import socket
import threading

import pytest

from services.process import served
from tests.cli import mailarchive
from toolkit.storage.location import parse_location
from toolkit.storage.smb import SmbStorage

pytestmark = [pytest.mark.security, pytest.mark.samba]


class Relay:
    """127.0.0.1:port → target, forwarding both ways and keeping everything that passed."""

    def __init__(self, port: int):
        self.target = ("127.0.0.1", port)
        self.wire = bytearray()
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src, dst):
        try:
            while data := src.recv(65536):
                with self._lock:
                    self.wire += data
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def seen(self, marker: bytes) -> bool:
        with self._lock:
            return marker in self.wire

    def close(self):
        self._listener.close()


@pytest.fixture(scope="module")
def samba_no_encryption():
    """A second Samba that does not offer encryption at all (as an old server)."""
    from services.samba import start_samba

    with served("samba-noenc", lambda wd: start_samba(wd, ("server smb encrypt = off",))) as server:
        yield server


def _share_with_mail(server, marker: bytes) -> str:
    """A fresh sub-path of the share holding one mail with ``marker`` in its body; its smb:// path part."""
    sub = f"enc-{secrets.token_hex(6)}"
    root = server.share_dir / sub
    root.mkdir()
    (root / "secret.eml").write_bytes(
        b"From: a@example.com\r\nTo: b@example.com\r\nSubject: salary list\r\n"
        b"Message-ID: <" + marker + b"@example.com>\r\n\r\n" + marker * 20 + b"\r\n"
    )
    return sub


def _storage(server, port: int, sub: str, **kw) -> SmbStorage:
    loc = parse_location(f"smb://{server.user}@127.0.0.1:{port}/{server.share}/{sub}")
    return SmbStorage(loc, server.password, timeout=30, **kw)


def _session(storage: SmbStorage):
    (conn,) = storage._cache.values()
    (session,) = conn.session_table.values()
    return conn, session


def test_encryption_is_asked_for_by_default_and_mail_never_crosses_in_clear(samba):
    marker = b"MARK" + secrets.token_hex(8).encode()
    sub = _share_with_mail(samba, marker)
    relay = Relay(samba.port)
    try:
        st = _storage(samba, relay.port, sub)
        try:
            assert st.read("secret.eml").endswith(marker * 20 + b"\r\n")
            conn, session = _session(st)
            assert st.encrypted and session.encrypt_data
            assert conn.require_signing  # signing stays required (encryption covers it on this session)
        finally:
            st.close()
        assert not relay.seen(marker)
    finally:
        relay.close()


def test_no_encrypt_sends_in_clear_but_signed(samba):
    marker = b"MARK" + secrets.token_hex(8).encode()
    sub = _share_with_mail(samba, marker)
    relay = Relay(samba.port)
    try:
        st = _storage(samba, relay.port, sub, encrypt=False)
        try:
            assert st.read("secret.eml").endswith(marker * 20 + b"\r\n")
            conn, session = _session(st)
            assert not st.encrypted and not session.encrypt_data
            assert conn.require_signing and session.signing_required
        finally:
            st.close()
        assert relay.seen(marker)  # the check above can fail
    finally:
        relay.close()


def test_a_server_without_encryption_is_used_signed_only_with_a_warning(samba_no_encryption):
    server = samba_no_encryption
    marker = b"MARK" + secrets.token_hex(8).encode()
    sub = _share_with_mail(server, marker)
    warnings = []
    st = _storage(server, server.port, sub, warn=warnings.append)
    try:
        assert st.read("secret.eml").endswith(marker * 20 + b"\r\n")
        conn, session = _session(st)
        assert not st.encrypted and not session.encrypt_data
        assert conn.require_signing and session.signing_required
    finally:
        st.close()
    assert len(warnings) == 1 and f"127.0.0.1:{server.port}" in warnings[0] and "signing only" in warnings[0]


@pytest.mark.parametrize("flag", [False, True])
def test_import_share_encrypts_unless_smb_no_encrypt(samba, tmp_path, flag):
    marker = b"MARK" + secrets.token_hex(8).encode()
    sub = _share_with_mail(samba, marker)
    relay = Relay(samba.port)
    try:
        home = tmp_path / "home"
        mailarchive(home, "init", "--medium", str(tmp_path / "medium"), "--key-backup", str(tmp_path / "kb.txt"))
        url = f"smb://{samba.user}@127.0.0.1:{relay.port}/{samba.share}/{sub}"
        args = (["--smb-no-encrypt"] if flag else []) + ["import", "share", url]
        r = mailarchive(home, *args, env={"MAILARCHIVE_SMB_PASSWORD": samba.password}, json_out=True, timeout=120).result
        assert r["archived"] == 1
        assert relay.seen(marker) is flag
    finally:
        relay.close()


def test_import_share_from_a_server_without_encryption_warns(samba_no_encryption, tmp_path):
    server = samba_no_encryption
    sub = _share_with_mail(server, b"MARK" + secrets.token_hex(8).encode())
    home = tmp_path / "home"
    mailarchive(home, "init", "--medium", str(tmp_path / "medium"), "--key-backup", str(tmp_path / "kb.txt"))
    p = mailarchive(home, "import", "share", server.url(sub), env={"MAILARCHIVE_SMB_PASSWORD": server.password,
                                                                   "COLUMNS": "10000"}, json_out=True, timeout=120)
    assert p.result["archived"] == 1
    assert "does not offer encryption" in p.stderr and f":{server.port}" in p.stderr
