"""The demo's own RFC 3161 time-stamping authority: a throwaway root CA and TSA certificate made
with ``openssl``, answering with ``openssl ts -reply`` over HTTP on 127.0.0.1.

For ``mailarchive demo`` only: it always answers properly and its certificates die with the demo
directory. The tests use their own TSA with failure modes (tests/services/tsa.py).
"""
from __future__ import annotations

import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

#: The policy the demo TSA stamps under (a private OID arc: the demo is not a real TSA).
DEMO_POLICY = "1.3.6.1.4.1.55555.1.2"


def _run_openssl(*args: str) -> None:
    p = subprocess.run(["openssl", *args], capture_output=True, timeout=60)
    if p.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {p.stderr.decode(errors='replace').strip()}")


class DemoTsa:
    """A demo root CA and TSA under ``workdir``, served on ``url`` until :meth:`stop`."""

    def __init__(self, workdir: Path):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ca_cert_path = self.dir / "demo-root.crt"
        self._config = self.dir / "demo-tsa.cnf"
        self._make_certificates()
        self._lock = threading.Lock()  # openssl rewrites its serial file: one reply at a time
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/tsa"
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="demo-tsa", daemon=True)
        self._thread.start()

    def _make_certificates(self) -> None:
        d, ec = self.dir, ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes")
        (d / "root.ext").write_text("[v3]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign\n"
                                    "[tsa]\nbasicConstraints=critical,CA:FALSE\n"
                                    "keyUsage=critical,digitalSignature,nonRepudiation\n"
                                    "extendedKeyUsage=critical,timeStamping\n")
        _run_openssl("req", "-x509", *ec, "-keyout", str(d / "demo-root.key"), "-out", str(self.ca_cert_path),
                     "-days", "30", "-subj", "/O=mailarchive demo/CN=demo root CA",
                     "-config", str(d / "root.ext"), "-extensions", "v3")
        _run_openssl("req", "-new", *ec, "-keyout", str(d / "demo-tsa.key"), "-out", str(d / "demo-tsa.csr"),
                     "-subj", "/O=mailarchive demo/CN=demo TSA")
        _run_openssl("x509", "-req", "-in", str(d / "demo-tsa.csr"), "-CA", str(self.ca_cert_path),
                     "-CAkey", str(d / "demo-root.key"), "-CAcreateserial", "-days", "30", "-sha256",
                     "-extfile", str(d / "root.ext"), "-extensions", "tsa", "-out", str(d / "demo-tsa.crt"))
        (d / "demo-tsa.serial").write_text("01\n")
        self._config.write_text(
            f"[tsa]\ndefault_tsa = demo\n[demo]\nserial = {d / 'demo-tsa.serial'}\n"
            f"signer_cert = {d / 'demo-tsa.crt'}\nsigner_key = {d / 'demo-tsa.key'}\nsigner_digest = sha256\n"
            f"default_policy = {DEMO_POLICY}\ndigests = sha256, sha384, sha512\naccuracy = secs:1\n"
            "ess_cert_id_alg = sha256\n")

    def reply(self, query: bytes) -> bytes:
        with self._lock:
            q, r = self.dir / "query.tsq", self.dir / "reply.tsr"
            q.write_bytes(query)
            _run_openssl("ts", "-reply", "-config", str(self._config), "-queryfile", str(q), "-out", str(r))
            return r.read_bytes()

    def _handler(self):
        tsa = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server API)
                try:
                    status, body = 200, tsa.reply(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                except RuntimeError as exc:  # openssl refused the query
                    status, body = 400, str(exc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/timestamp-reply" if status == 200 else "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        return Handler

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)
