"""A throwaway Samba (SMB3) server for the tests.

Its whole state (config, passdb, locks, logs, the share) lives under one
work directory; it listens on 127.0.0.1 on a free high port. The recipe and
its pitfalls are in docs/test-services.md: never start smbd with
``--no-process-group`` (its SIGTERM handler signals its process group, which
would then be the test runner), and stop it by PID.
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

USER = "mailarchive-test"
SHARE = "mail"
START_TIMEOUT = 20.0


@dataclass
class SambaServer:
    host: str
    port: int
    user: str
    password: str
    share: str
    share_dir: Path
    proc: subprocess.Popen = field(repr=False)
    log_path: Path | None = None

    def url(self, path: str = "") -> str:
        tail = f"/{path.strip('/')}" if path.strip("/") else ""
        return f"smb://{self.user}@{self.host}:{self.port}/{self.share}{tail}"

    def stop(self) -> None:
        stop_process(self.proc)

    def server_process_of(self, client_port: int) -> int:
        """The PID of the smbd process that holds the server end of the connection from 127.0.0.1:``client_port``
        (read from /proc: the socket's inode in /proc/net/tcp, then the smbd process with that socket open)."""
        want = f"0100007F:{self.port:04X} 0100007F:{client_port:04X}"
        inode = None
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            fields = line.split()
            if f"{fields[1]} {fields[2]}" == want:
                inode = fields[9]
        if inode is None:
            raise LookupError(f"no connection from 127.0.0.1:{client_port} to the test Samba")
        target = f"socket:[{inode}]"
        for pid in _descendants(self.proc.pid):
            try:
                fds = os.listdir(f"/proc/{pid}/fd")
            except OSError:
                continue
            for fd in fds:
                try:
                    if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                        return pid
                except OSError:
                    continue
        raise LookupError(f"no smbd process holds the connection from 127.0.0.1:{client_port}")

    def processes(self) -> str:
        """One line per smbd process of this server: PID, state, what it waits in, open files (for a failure report)."""
        lines = []
        for pid in [self.proc.pid, *_descendants(self.proc.pid)]:
            try:
                status = dict(line.split(":\t", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                              if ":\t" in line)
                wchan = Path(f"/proc/{pid}/wchan").read_text()
                fds = len(os.listdir(f"/proc/{pid}/fd"))
            except OSError:
                continue
            lines.append(f"pid {pid} state {status.get('State', '?').strip()} wchan {wchan or '-'} fds {fds}")
        return "\n".join(lines)


def _descendants(pid: int) -> list[int]:
    """The processes below ``pid`` (smbd forks one per client, plus its helpers), from each process's PPid."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])  # after "pid (comm) state"
        parents.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        kids = parents.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def _config(workdir: Path, port: int, extra_global: tuple[str, ...] = (), extra_share: tuple[str, ...] = ()) -> str:
    dirs = {
        "private dir": "private",
        "lock directory": "lock",
        "state directory": "state",
        "cache directory": "cache",
        "pid directory": "pid",
        "ncalrpc dir": "ncalrpc",
        "binddns dir": "binddns",
        "usershare path": "usershares",
    }
    lines = [
        "[global]",
        "interfaces = 127.0.0.1",
        "bind interfaces only = yes",
        f"smb ports = {port}",
        "disable netbios = yes",
        "server min protocol = SMB3",
        "server max protocol = SMB3",
        "map to guest = never",
        *extra_global,
    ]
    for key, sub in dirs.items():
        (workdir / sub).mkdir(parents=True, exist_ok=True)
        lines.append(f"{key} = {workdir / sub}")
    (workdir / "log").mkdir(exist_ok=True)
    lines += [
        f"passdb backend = tdbsam:{workdir / 'private' / 'passdb.tdb'}",
        f"log file = {workdir / 'log'}/log.%m",
        "load printers = no",
        "printcap name = /dev/null",
        "disable spoolss = yes",
        "rpc start on demand helpers = no",
        "",
        f"[{SHARE}]",
        f"path = {workdir / 'share'}",
        "read only = no",
        f"valid users = {USER}",
        f"force user = {USER}",
        "acl allow execute always = yes",
        *extra_share,
        "",
    ]
    return "\n".join(lines)


def _ensure_user() -> None:
    if subprocess.run(["id", "-u", USER], capture_output=True).returncode == 0:
        return
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER],
        check=True,
        capture_output=True,
    )


def _log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def start_samba(workdir: Path, extra_global: tuple[str, ...] = (), extra_share: tuple[str, ...] = ()) -> SambaServer:
    """Start smbd for the tests; the caller must ``stop()`` it. ``extra_global``: more [global] lines,
    ``extra_share``: more lines for the share (e.g. ``create mask = 0444``; a ``[name]`` line among them starts
    another share, whose lines follow it)."""
    smbd = shutil.which("smbd") or ("/usr/sbin/smbd" if os.path.exists("/usr/sbin/smbd") else None)
    smbpasswd = shutil.which("smbpasswd") or "/usr/bin/smbpasswd"
    if smbd is None or not os.path.exists(smbpasswd):
        raise RuntimeError("smbd/smbpasswd not installed (apt-get install -y --no-install-recommends samba)")
    if os.geteuid() != 0:
        raise RuntimeError("the throwaway Samba server needs root (useradd, smbd)")

    workdir = Path(workdir).absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    share_dir = workdir / "share"
    share_dir.mkdir(exist_ok=True)
    _ensure_user()
    shutil.chown(share_dir, user=USER)
    # smbd runs as root and maps to USER: the tree above must be traversable.
    for p in [workdir, *workdir.parents]:
        if p == Path("/"):
            break
        if not p.stat().st_mode & 0o001:
            p.chmod(p.stat().st_mode | 0o001)

    port = free_port()
    conf = workdir / "smb.conf"
    conf.write_text(_config(workdir, port, tuple(extra_global), tuple(extra_share)))
    password = secrets.token_urlsafe(12)
    subprocess.run(
        [smbpasswd, "-c", str(conf), "-s", "-a", USER],
        input=f"{password}\n{password}\n".encode(),
        check=True,
        capture_output=True,
    )

    log_path = workdir / "log" / "smbd.stdout"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [smbd, "-F", "--debug-stdout", "-s", str(conf)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
        )
    server = SambaServer("127.0.0.1", port, USER, password, SHARE, share_dir, proc, log_path)

    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"smbd exited with {proc.returncode} at start:\n{_log_tail(log_path)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return server
        except OSError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(
                f"smbd did not accept connections on 127.0.0.1:{port} within {START_TIMEOUT:.0f} s:\n"
                f"{_log_tail(log_path)}"
            )
        time.sleep(0.1)
