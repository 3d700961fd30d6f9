"""A throwaway Dovecot (IMAP + POP3) server for the tests and the bench.

Its whole state (config, TLS certificate, users, mail, logs) lives under one
work directory; it listens on 127.0.0.1 on free high ports: imap (STARTTLS
offered), imaps, pop3 (STLS offered) and pop3s. The recipe is in
docs/test-services.md. The master runs in the foreground (``dovecot -F``) and
gets SIGTERM when the process that started it dies (PR_SET_PDEATHSIG).
"""
from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from .process import die_with_parent, free_port, stop_process

MAIL_UID = 10143
START_TIMEOUT = 20.0


@dataclass
class DovecotServer:
    host: str
    imap_port: int
    imaps_port: int
    pop3_port: int
    pop3s_port: int
    users: dict[str, str]             # user -> password
    ca_cert_path: Path
    workdir: Path
    conf: Path
    proc: subprocess.Popen = field(repr=False)

    @property
    def log_path(self) -> Path:
        return self.workdir / "log" / "dovecot.log"

    def maildir(self, user: str) -> Path:
        return self.workdir / "mail" / user / "Maildir"

    def doveadm(self, *args: str, input: bytes | None = None, check: bool = True) -> subprocess.CompletedProcess:
        """Run ``doveadm -c CONF ARGS`` (e.g. ``save -u USER -m Folder`` with the mail on stdin)."""
        p = subprocess.run(["doveadm", "-c", str(self.conf), *args], input=input, capture_output=True, timeout=60)
        if check and p.returncode != 0:
            raise RuntimeError(f"doveadm {' '.join(args)} exited {p.returncode}: {p.stderr.decode(errors='replace')}")
        return p

    def save(self, user: str, folder: str, raw: bytes) -> None:
        """Deliver one mail into FOLDER (created if missing) without IMAP."""
        self.doveadm("mailbox", "create", "-u", user, folder, check=False)
        self.doveadm("save", "-u", user, "-m", folder, input=raw)

    def stop(self) -> None:
        stop_process(self.proc)


def _make_cert(tls: Path) -> Path:
    """A self-signed CA-style certificate for 127.0.0.1 (SAN IP and DNS localhost); returns its path."""
    tls.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-days", "2", "-subj", "/CN=mailarchive-test-dovecot",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-keyout", str(tls / "key.pem"), "-out", str(tls / "cert.pem"),
        ],
        check=True, capture_output=True,
    )
    return tls / "cert.pem"


def _config(d: Path, ports: dict[str, int]) -> str:
    return f"""\
instance_name = mailarchive-test-{d.name}
base_dir = {d}/run
state_dir = {d}/state
protocols = imap pop3
listen = 127.0.0.1
log_path = {d}/log/dovecot.log
info_log_path = {d}/log/dovecot.log
ssl = yes
ssl_cert = <{d}/tls/cert.pem
ssl_key = <{d}/tls/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_verbose = yes
auth_failure_delay = 0
login_trusted_networks =
default_login_user = dovenull
default_internal_user = dovecot
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/users
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {d}/users
}}
mail_location = maildir:~/Maildir
namespace inbox {{
  inbox = yes
  separator = /
}}
pop3_uidl_format = %08Xv%08Xu
mail_max_userip_connections = 50
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {ports['imap']}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {ports['imaps']}
    ssl = yes
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {ports['pop3']}
  }}
  inet_listener pop3s {{
    address = 127.0.0.1
    port = {ports['pop3s']}
    ssl = yes
  }}
}}
"""


def add_user(server: DovecotServer, user: str, password: str | None = None) -> str:
    """Add a passwd-file user; returns the password.

    Dovecot notices a changed passwd-file only a second later: add users before the start when you can.
    """
    password = password or secrets.token_urlsafe(12)
    home = server.workdir / "mail" / user
    home.mkdir(parents=True, exist_ok=True)
    os.chown(home, MAIL_UID, MAIL_UID)
    with open(server.workdir / "users", "a") as f:
        f.write(f"{user}:{{PLAIN}}{password}:{MAIL_UID}:{MAIL_UID}::{home}\n")
    server.users[user] = password
    return password


def start_dovecot(workdir: Path, users: tuple[str, ...] = ("alice",)) -> DovecotServer:
    """Start Dovecot for the tests; the caller must ``stop()`` it."""
    dovecot = shutil.which("dovecot") or ("/usr/sbin/dovecot" if os.path.exists("/usr/sbin/dovecot") else None)
    if dovecot is None or shutil.which("doveadm") is None:
        raise RuntimeError(
            "dovecot not installed (apt-get install -y --no-install-recommends dovecot-imapd dovecot-pop3d)"
        )
    if os.geteuid() != 0:
        raise RuntimeError("the throwaway Dovecot server needs root")
    workdir = Path(workdir).absolute()
    for sub in ("run", "state", "log", "mail"):
        (workdir / sub).mkdir(parents=True, exist_ok=True)
    for p in [workdir, *workdir.parents]:  # the mail uid must traverse to its home
        if p == Path("/"):
            break
        if not p.stat().st_mode & 0o001:
            p.chmod(p.stat().st_mode | 0o001)
    cert = _make_cert(workdir / "tls")
    ports = {name: free_port() for name in ("imap", "imaps", "pop3", "pop3s")}
    conf = workdir / "dovecot.conf"
    conf.write_text(_config(workdir, ports))
    (workdir / "users").write_text("")
    with open(workdir / "log" / "dovecot.stdout", "wb") as out:
        proc = subprocess.Popen(
            [dovecot, "-F", "-c", str(conf)],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
        )
    server = DovecotServer(
        "127.0.0.1", ports["imap"], ports["imaps"], ports["pop3"], ports["pop3s"], {}, cert, workdir, conf, proc
    )
    for user in users:
        add_user(server, user)
    deadline = time.monotonic() + START_TIMEOUT
    pending = set(ports.values())
    while pending:
        if proc.poll() is not None:
            raise RuntimeError(f"dovecot exited with {proc.returncode} at start:\n{_tail(workdir)}")
        for port in sorted(pending):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    pending.discard(port)
            except OSError:
                pass
        if pending and time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"dovecot did not listen on {sorted(pending)} within {START_TIMEOUT:.0f} s:\n{_tail(workdir)}")
        if pending:
            time.sleep(0.05)
    return server


def _tail(workdir: Path, lines: int = 30) -> str:
    out = []
    for name in ("dovecot.stdout", "dovecot.log"):
        try:
            out += (workdir / "log" / name).read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            pass
    return "\n".join(out) or "(no log)"
