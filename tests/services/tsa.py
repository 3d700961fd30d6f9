"""A local RFC 3161 test TSA (test CA + `openssl ts -reply` behind HTTP on 127.0.0.1) for the tests.

A throwaway RFC 3161 time-stamping authority with misbehaving modes and forged tokens; it is
test equipment, not part of the product (``mailarchive demo`` runs its own minimal TSA,
``toolkit/cli/demo_tsa.py``).

``make_pki`` creates a test root CA and a TSA certificate with ``openssl``;
``Tsa.reply`` turns a TimeStampReq into a TimeStampResp with
``openssl ts -reply`` (one at a time: openssl rewrites its serial file);
``start_tsa`` puts that behind a small HTTP server on 127.0.0.1.

``make_pki(..., intermediate=True)`` makes a second shape of PKI: an RSA
root CA, an ECDSA intermediate CA under it, and the ECDSA TSA certificate
under the intermediate; the TSA then puts the intermediate into every
token's certificate bag, so a verifier that trusts only the root must build
the chain through it. ``validity_days`` shortens the TSA certificate's life
(for tests of certificates that expire).

The server's ``mode`` makes it misbehave for the I10/I4 tests:
``ok`` answers properly, ``http500`` answers HTTP 500, ``reject`` answers a
TimeStampResp with status rejection (2), ``hang`` never answers (until
``stop``), ``replay`` answers the previous good response again (wrong nonce),
``mods`` answers a real token with the status grantedWithMods (1),
``waiting`` answers status waiting (3), ``reject-policy`` a rejection with a
status text and the failure unacceptedPolicy. ``waiting_left = N`` makes the next
N answers ``waiting`` whatever the mode (a TSA that is busy for a while).

Modes of real TSAs' HTTP quirks: ``redirect`` answers 307 with a Location (``redirect_code`` sets the
code), ``html`` a 200 text/html page, ``empty`` a 200 with no body, ``octet`` a good token as
application/octet-stream, ``truncated`` a good token cut short of its Content-Length, ``drip`` a good
token one byte every ``drip_pause`` seconds (a slow TSA; each byte well within a socket timeout), ``huge``
2 MiB of zeros. ``strip`` (a set of "nonce", "cert_req", "policy") removes those fields from the request before
openssl sees it: a TSA that does not echo the nonce, leaves its certificate out of the token, or
answers under its default policy whatever was asked.

``start_tsa(..., tls=True)`` serves HTTPS with a server certificate from its
own TLS CA (``TsaServer.tls_ca_path``); ``auth=(user, password)`` demands
HTTP basic authentication and answers 401 otherwise.

Forged tokens (EKU not critical, no signing-certificate attribute) cannot come
from ``openssl ts -reply``; ``forge_response`` re-signs the TSTInfo of a real
token with ``openssl cms -sign -econtent_type id-ct-TSTInfo`` and wraps it as
``TimeStampResp ::= SEQUENCE { PKIStatusInfo { granted }, token }``.
"""
from __future__ import annotations

import subprocess
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

POLICY_OID = "1.3.6.1.4.1.55555.1.1"
TSTINFO_OID = "1.2.840.113549.1.9.16.1.4"
# TimeStampResp { status PKIStatusInfo { status rejection(2) } }
REJECTION_RESPONSE = bytes.fromhex("3005300302" "0102")
WAITING_RESPONSE = bytes.fromhex("3005300302" "0103")
# rejection, statusString "policy not supported", failInfo unacceptedPolicy (bit 15)
POLICY_REJECTION_RESPONSE = bytes.fromhex(
    "3022" "3020" "020102" "3016" "0c14" + b"policy not supported".hex() + "0303000001"
)


def _openssl(*args: str, cwd: Path | None = None, input: bytes | None = None) -> bytes:
    p = subprocess.run(["openssl", *args], cwd=cwd, input=input, capture_output=True, timeout=60)
    if p.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed: {p.stderr.decode(errors='replace')}")
    return p.stdout


@dataclass
class Pki:
    """A root CA and one TSA certificate under it, as files in ``dir``."""

    dir: Path
    ca_cert: Path
    ca_key: Path
    tsa_cert: Path
    tsa_key: Path
    intermediate_cert: Path | None = None  # the CA between root and TSA certificate, when there is one

    def issue_tsa_cert(self, name: str, eku: str = "critical,timeStamping") -> tuple[Path, Path]:
        """Another TSA certificate under this CA with the given extendedKeyUsage value."""
        return _issue(self.dir, name, self.ca_cert, self.ca_key, eku)


_EC = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256")
_RSA = ("-newkey", "rsa:2048")


def _issue(d: Path, name: str, ca_cert: Path, ca_key: Path, eku: str, days: int = 3650,
           ca: bool = False, rsa: bool = False) -> tuple[Path, Path]:
    key, csr, crt, ext = (d / f"{name}.key", d / f"{name}.csr", d / f"{name}.crt", d / f"{name}.ext")
    if ca:
        ext.write_text("basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n"
                       "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n")
    else:
        ext.write_text(
            "basicConstraints=critical,CA:FALSE\n"
            "keyUsage=critical,digitalSignature,nonRepudiation\n"
            f"extendedKeyUsage={eku}\n"
            "subjectKeyIdentifier=hash\n"
            "authorityKeyIdentifier=keyid\n"
        )
    _openssl("req", "-new", *(_RSA if rsa else _EC), "-nodes",
             "-keyout", str(key), "-out", str(csr), "-subj", f"/O=mailarchive tests/CN={name}")
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key),
             "-CAcreateserial", "-days", str(days), "-sha256", "-extfile", str(ext), "-out", str(crt))
    return crt, key


def make_pki(d: Path, name: str = "test", *, intermediate: bool = False, validity_days: int = 3650,
             rsa_tsa: bool = False) -> Pki:
    """A root CA (CA:TRUE, keyCertSign) and a TSA certificate (critical timeStamping EKU).

    With ``intermediate`` the root is RSA and an ECDSA intermediate CA
    issues the (ECDSA) TSA certificate; otherwise everything is ECDSA P-256.
    ``rsa_tsa`` gives the TSA an RSA key (tokens signed with RSA).
    """
    d = Path(d)
    d.mkdir(parents=True, exist_ok=True)
    ca_key, ca_crt, ca_ext = d / "ca.key", d / "ca.crt", d / "ca.ext"
    ca_ext.write_text(
        "[v3]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n"
        "subjectKeyIdentifier=hash\n"
    )
    _openssl("req", "-x509", *(_RSA if intermediate else _EC), "-nodes",
             "-keyout", str(ca_key), "-out", str(ca_crt), "-days", "3650", "-sha256",
             "-subj", f"/O=mailarchive tests/CN={name} root CA", "-config", str(ca_ext), "-extensions", "v3")
    if not intermediate:
        tsa_crt, tsa_key = _issue(d, f"{name}-tsa", ca_crt, ca_key, "critical,timeStamping", validity_days, rsa=rsa_tsa)
        return Pki(d, ca_crt, ca_key, tsa_crt, tsa_key)
    int_crt, int_key = _issue(d, f"{name}-intermediate", ca_crt, ca_key, "", 3650, ca=True)
    tsa_crt, tsa_key = _issue(d, f"{name}-tsa", int_crt, int_key, "critical,timeStamping", validity_days, rsa=rsa_tsa)
    return Pki(d, ca_crt, ca_key, tsa_crt, tsa_key, intermediate_cert=int_crt)


class Tsa:
    """``openssl ts -reply`` over one PKI; ``embed_ca`` puts the root into the certificate bag too."""

    def __init__(self, pki: Pki, embed_ca: bool = False, *, chain_in_token: bool = True, ess_cert_id_alg: str = "sha256",
                 name: str = "tsa", config: dict[str, str | None] | None = None):
        """``chain_in_token=False`` leaves an intermediate CA out of the tokens (the verifier's CA file must hold it);
        ``ess_cert_id_alg="sha1"`` makes openssl sign an ESSCertID (v1) signing-certificate attribute instead of v2.
        ``config`` overrides lines of the ``openssl ts`` TSA section (a value None drops the line), e.g.
        ``{"signer_digest": "sha512", "accuracy": None, "ordering": "yes", "clock_precision_digits": "6"}``."""
        self.pki = pki
        self.cnf = pki.dir / f"{name}.cnf"
        serial = pki.dir / f"{name}serial"
        serial.write_text("01\n")
        certs = str(pki.ca_cert) if embed_ca else ""
        if pki.intermediate_cert is not None and chain_in_token:  # the chain's middle link travels in every token
            certs = str(pki.intermediate_cert)
        lines = {"serial": str(serial), "signer_cert": str(pki.tsa_cert), "signer_key": str(pki.tsa_key),
                 "certs": certs or None, "signer_digest": "sha256", "default_policy": POLICY_OID,
                 "digests": "sha256, sha384, sha512", "accuracy": "secs:1", "ordering": "no", "tsa_name": "yes",
                 "ess_cert_id_chain": "no", "ess_cert_id_alg": ess_cert_id_alg, **(config or {})}
        self.cnf.write_text("[tsa]\ndefault_tsa = tsa_config\n[tsa_config]\n"
                            + "".join(f"{k} = {v}\n" for k, v in lines.items() if v is not None))
        self._lock = threading.Lock()
        self._n = 0
        self._name = name

    def reply(self, query: bytes) -> bytes:
        with self._lock:
            self._n += 1
            q = self.pki.dir / f"{self._name}-q{self._n}.tsq"
            r = self.pki.dir / f"{self._name}-r{self._n}.tsr"
            q.write_bytes(query)
            try:
                _openssl("ts", "-reply", "-config", str(self.cnf), "-queryfile", str(q), "-out", str(r))
                return r.read_bytes()
            finally:
                q.unlink(missing_ok=True)
                r.unlink(missing_ok=True)


def query_for(data: bytes, nonce: bool = True) -> bytes:
    """A SHA-256 TimeStampReq over ``data`` (with nonce and certReq), via rfc3161-client."""
    from rfc3161_client import HashAlgorithm, TimestampRequestBuilder

    return (
        TimestampRequestBuilder().data(data).hash_algorithm(HashAlgorithm.SHA256).nonce(nonce=nonce)
        .cert_request(cert_request=True).build().as_bytes()
    )


def _der_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b


def der_sequence(*parts: bytes) -> bytes:
    body = b"".join(parts)
    return b"\x30" + _der_len(len(body)) + body


def token_of(response: bytes, workdir: Path) -> bytes:
    """The TimeStampToken (CMS ContentInfo) inside a TimeStampResp."""
    src, out = workdir / "tok-in.tsr", workdir / "tok-out.der"
    src.write_bytes(response)
    _openssl("ts", "-reply", "-in", str(src), "-token_out", "-out", str(out))
    return out.read_bytes()


def tst_info_of(response: bytes, workdir: Path) -> bytes:
    """The DER TSTInfo signed inside a TimeStampResp."""
    tok, out = workdir / "tst-tok.der", workdir / "tst-info.der"
    tok.write_bytes(token_of(response, workdir))
    _openssl("cms", "-verify", "-noverify", "-inform", "DER", "-in", str(tok), "-out", str(out))
    return out.read_bytes()


def forge_response(tst_info: bytes, signer_cert: Path, signer_key: Path, workdir: Path, extra_certs: Path | None = None) -> bytes:
    """A granted TimeStampResp whose token is ``tst_info`` signed by ``openssl cms -sign``.

    cms -sign adds contentType, signingTime and messageDigest but never the
    ESS signing-certificate attribute that RFC 3161 §2.4.1 requires.
    """
    src, out = workdir / "forge-in.der", workdir / "forge-out.der"
    src.write_bytes(tst_info)
    args = ["cms", "-sign", "-binary", "-nodetach", "-nosmimecap", "-md", "sha256",
            "-econtent_type", TSTINFO_OID, "-in", str(src), "-signer", str(signer_cert),
            "-inkey", str(signer_key), "-outform", "DER", "-out", str(out)]
    if extra_certs:
        args += ["-certfile", str(extra_certs)]
    _openssl(*args)
    token = out.read_bytes()
    granted = der_sequence(b"\x02\x01\x00")
    return der_sequence(granted, token)


def _der_tree(der: bytes, at: int = 0) -> tuple[list, int]:
    """[tag, children or content bytes] of the DER item at ``at``, and where it ends."""
    tag, first = der[at], der[at + 1]
    if first < 0x80:
        start, length = at + 2, first
    else:
        n = first & 0x7F
        start, length = at + 2 + n, int.from_bytes(der[at + 2: at + 2 + n], "big")
    end = start + length
    if not tag & 0x20:
        return [tag, der[start:end]], end
    kids, pos = [], start
    while pos < end:
        kid, pos = _der_tree(der, pos)
        kids.append(kid)
    return [tag, kids], end


def _der_encode(node: list) -> bytes:
    tag, value = node
    body = b"".join(_der_encode(k) for k in value) if isinstance(value, list) else value
    return bytes([tag]) + _der_len(len(body)) + body


def pss_resign(response: bytes, rsa_key: Path) -> bytes:
    """The response with its SignerInfo signed again with RSASSA-PSS (SHA-256, MGF1-SHA-256, salt 32) by the
    same RSA key: a token as a TSA signing with PSS makes it (``openssl ts -reply`` cannot: "Error during
    signature generation"). Its signed attributes, ESS binding included, are unchanged."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding

    def oid(dotted: str) -> list:
        from verify.tsa_client import _oid_der

        return [0x06, _oid_der(dotted)[2:]]

    tree, _ = _der_tree(response)
    signed_data = tree[1][1][1][1][1][0]  # TimeStampResp → token ContentInfo → [0] → SignedData
    items = signed_data[1][-1][1][0][1]  # signerInfos → the SignerInfo's items
    at = next(i for i, item in enumerate(items) if item[0] == 0x04)  # the signature, its algorithm before it
    attrs = next(item for item in items if item[0] == 0xA0)
    key = serialization.load_pem_private_key(Path(rsa_key).read_bytes(), None)
    signature = key.sign(_der_encode([0x31, attrs[1]]),
                         padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32), hashes.SHA256())
    sha256 = [0x30, [oid("2.16.840.1.101.3.4.2.1")]]
    params = [0x30, [[0xA0, [sha256]], [0xA1, [[0x30, [oid("1.2.840.113549.1.1.8"), sha256]]]], [0xA2, [[0x02, b"\x20"]]]]]
    items[at - 1] = [0x30, [oid("1.2.840.113549.1.1.10"), params]]
    items[at] = [0x04, signature]
    return _der_encode(tree)


def cert_der(path: Path) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    return x509.load_pem_x509_certificate(Path(path).read_bytes()).public_bytes(Encoding.DER)


def der_sort_certificates(response: bytes, certs: list[Path]) -> bytes:
    """The response with its certificate bag re-ordered as DER SET OF requires.

    openssl writes the bag in insertion order, which rfc3161-client refuses
    (InvalidSetOrdering). The bag is outside the signature, and re-ordering
    keeps every length, so the token stays valid.
    """
    ders = [cert_der(c) for c in certs]
    for order in (ders, ders[::-1]):
        at = response.find(b"".join(order))
        if at >= 0:
            return response.replace(b"".join(order), b"".join(sorted(ders)), 1)
    raise ValueError("the certificates are not adjacent in the response")


@dataclass
class TsaServer:
    url: str
    ca_cert_path: Path
    tsa_cert_path: Path
    workdir: Path
    tsa: Tsa
    pki: Pki
    mode: str = "ok"
    requests: int = 0
    waiting_left: int = 0
    posts: int = 0  # every POST, also those refused for their login
    auth: tuple[str, str] | None = None
    tls_ca_path: Path | None = None
    strip: set = field(default_factory=set)
    redirect_code: int = 307
    drip_pause: float = 0.2
    seen: list = field(default_factory=list)  # (method, path, Authorization header or None) of every request
    drips_finished: int = 0  # answers of mode "drip" that got to their last byte (the client waited that long)
    _httpd: ThreadingHTTPServer | None = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)
    _stopping: threading.Event = field(default_factory=threading.Event, repr=False)
    _last: bytes | None = field(default=None, repr=False)

    def answer(self, query: bytes) -> tuple[int, bytes]:
        self.requests += 1
        mode = self.mode
        if self.strip:
            query = strip_query(query, self.strip)
        if self.waiting_left > 0:
            self.waiting_left -= 1
            return 200, WAITING_RESPONSE
        if mode == "waiting":
            return 200, WAITING_RESPONSE
        if mode == "reject-policy":
            return 200, POLICY_REJECTION_RESPONSE
        if mode == "mods":
            resp = self.tsa.reply(query)
            granted = bytes.fromhex("3003020100")  # PKIStatusInfo { granted }: outside the signature
            at = resp.find(granted)
            assert 0 < at < 8, "unexpected TimeStampResp layout"
            return 200, resp[:at] + bytes.fromhex("3003020101") + resp[at + len(granted):]
        if mode == "http500":
            return 500, b"internal error"
        if mode == "reject":
            return 200, REJECTION_RESPONSE
        if mode == "hang":
            self._stopping.wait(300)
            return 503, b"stopping"
        if mode == "replay" and self._last is not None:
            return 200, self._last
        resp = self.tsa.reply(query)
        self._last = resp
        return 200, resp

    def stop(self) -> None:
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)


def strip_query(query: bytes, fields: set) -> bytes:
    """The TimeStampReq without its nonce ("nonce"), certReq ("cert_req") and/or reqPolicy ("policy")."""
    def item(at):
        first = query[at + 1]
        if first < 0x80:
            return at + 2, at + 2 + first
        n = first & 0x7F
        return at + 2 + n, at + 2 + n + int.from_bytes(query[at + 2: at + 2 + n], "big")

    at, end = item(0)
    keep, integers = [], 0
    while at < end:
        tag, (_, stop) = query[at], item(at)
        integers += tag == 0x02
        if not ((tag == 0x02 and integers == 2 and "nonce" in fields) or (tag == 0x01 and "cert_req" in fields)
                or (tag == 0x06 and "policy" in fields)):
            keep.append(query[at:stop])
        at = stop
    return der_sequence(*keep)


def make_tls(d: Path) -> tuple[Path, Path, Path]:
    """(TLS CA certificate, server certificate, server key) for 127.0.0.1, made with openssl."""
    d = Path(d)
    d.mkdir(parents=True, exist_ok=True)
    ca_key, ca_crt, ext = d / "tls-ca.key", d / "tls-ca.crt", d / "tls.ext"
    ext.write_text("[v3]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign\n"
                   "[srv]\nbasicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    _openssl("req", "-x509", *_EC, "-nodes", "-keyout", str(ca_key), "-out", str(ca_crt), "-days", "30",
             "-subj", "/O=mailarchive tests/CN=TLS CA", "-config", str(ext), "-extensions", "v3")
    key, csr, crt = d / "tls-server.key", d / "tls-server.csr", d / "tls-server.crt"
    _openssl("req", "-new", *_EC, "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", "/CN=127.0.0.1")
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key), "-CAcreateserial",
             "-days", "30", "-sha256", "-extfile", str(ext), "-extensions", "srv", "-out", str(crt))
    return ca_crt, crt, key


def start_tsa(workdir: Path, name: str = "test", *, intermediate: bool = False, validity_days: int = 3650,
              tls: bool = False, auth: tuple[str, str] | None = None) -> TsaServer:
    """A test CA + TSA under ``workdir`` and an HTTP(S) TSA on 127.0.0.1 (free port); see :func:`make_pki`."""
    import base64

    workdir = Path(workdir)
    pki = make_pki(workdir / "pki", name, intermediate=intermediate, validity_days=validity_days)
    tsa = Tsa(pki)
    holder: dict[str, TsaServer] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - a TSA takes POSTs only; a client that follows a redirect sends a GET
            holder["server"].seen.append(("GET", self.path, self.headers.get("Authorization")))
            self._send(405, "text/plain", b"POST a TimeStampReq")

        def do_POST(self):  # noqa: N802 (http.server API)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            holder["server"].seen.append(("POST", self.path, self.headers.get("Authorization")))
            holder["server"].posts += 1
            need = holder["server"].auth
            if need is not None:
                want = "Basic " + base64.b64encode(f"{need[0]}:{need[1]}".encode()).decode()
                if self.headers.get("Authorization") != want:
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="tsa"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
            server = holder["server"]
            mode = server.mode if server.waiting_left == 0 else "ok"
            if mode == "redirect":
                self.send_response(server.redirect_code)
                self.send_header("Location", "/moved-tsa")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if mode in ("html", "empty", "huge"):
                payload = {"html": b"<html><body><h1>Please log in</h1></body></html>", "empty": b"",
                           "huge": bytes(2 << 20)}[mode]
                self._send(200, "text/html" if mode == "html" else "application/timestamp-reply", payload)
                return
            try:
                status, payload = server.answer(body)
            except Exception as exc:  # openssl refused the query
                status, payload = 400, str(exc).encode()
            ctype = ("application/octet-stream" if mode == "octet" else "application/timestamp-reply"
                     ) if status == 200 else "text/plain"
            self._send(status, ctype, payload, truncated=mode == "truncated",
                       pause=server.drip_pause if mode == "drip" else None)

        def _send(self, status, ctype, payload, truncated=False, pause=None):
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            try:
                if truncated:
                    self.wfile.write(payload[: len(payload) // 2])
                    self.close_connection = True
                elif pause is not None:
                    for i in range(len(payload)):
                        if holder["server"]._stopping.wait(pause):
                            return
                        if i == len(payload) - 1:  # counted before the client can have the whole answer
                            holder["server"].drips_finished += 1
                        self.wfile.write(payload[i:i + 1])
                        self.wfile.flush()
                else:
                    self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout tests)
                pass

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    port = httpd.server_address[1]
    tls_ca = None
    if tls:
        import ssl

        tls_ca, crt, key = make_tls(workdir / "tls")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(crt), str(key))
        httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    server = TsaServer(
        url=f"{'https' if tls else 'http'}://127.0.0.1:{port}/tsa", ca_cert_path=pki.ca_cert, tsa_cert_path=pki.tsa_cert,
        workdir=workdir, tsa=tsa, pki=pki, _httpd=httpd, auth=auth, tls_ca_path=tls_ca,
    )
    holder["server"] = server
    server._thread = threading.Thread(target=httpd.serve_forever, name="test-tsa", daemon=True)
    server._thread.start()
    return server
