"""Running the real `mailarchive` command in a process of its own, as users and scripts do."""
from __future__ import annotations

import atexit
import shutil
import json
import locale
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

PASSWORD = "correct horse battery staple"


#: The key-backup KDF profile ``mailarchive()`` gives every ``init`` (tests/README.md, "Test time"):
#: the cheap ``test`` profile, so that the hundreds of throwaway archives do not each spend two
#: strong Argon2id derivations. A test of the default passes ``kdf_profile=None``.
TEST_KDF_PROFILE = "test"


def mailarchive(home: Path, *args: str, env: dict | None = None, input: str | None = None, check: int | None = 0, json_out: bool = False, timeout: float = 300,
                kdf_profile: str | None = TEST_KDF_PROFILE):
    if args and args[0] == "init" and kdf_profile is not None and not any(a.startswith("--kdf-profile") for a in args):
        args = ("init", "--kdf-profile", kdf_profile, *args[1:])
    full_env = {**os.environ, "MAILARCHIVE_PASSWORD": PASSWORD, **(env or {})}
    cmd = [sys.executable, "-m", "toolkit", "--archive", str(home)]
    if json_out:
        cmd.append("--json")
    cmd += list(args)
    p = run_cli(cmd, env=full_env, input=input, timeout=timeout)
    if check is not None and p.returncode != check:
        raise AssertionError(
            f"mailarchive {' '.join(args)} exited {p.returncode}, expected {check}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"
        )
    if json_out and p.returncode in (0, 1, 130) and p.stdout.strip():
        p.result = json.loads(p.stdout)
    return p


#: ``MAILARCHIVE_TEST_FORK=0`` starts each command with ``subprocess.run`` (a fresh interpreter)
#: instead of forking it from the per-worker server of ``tests/cli_server.py``.
FORK = os.environ.get("MAILARCHIVE_TEST_FORK", "1") != "0"


def run_cli(cmd: list[str], env: dict, input: str | None = None, timeout: float | None = None) -> subprocess.CompletedProcess:
    """``subprocess.run(cmd, capture_output=True, text=True, env=env, input=input, timeout=timeout)``
    for ``cmd = [sys.executable, "-m", "toolkit", ...]``: the same process boundary, exit status
    and output, with the child forked from a server that has the imports done
    (tests/cli_server.py; tests/README.md, "Test time")."""
    if not FORK or cmd[:3] != [sys.executable, "-m", "toolkit"]:
        return subprocess.run(cmd, capture_output=True, text=True, env=env, input=input, timeout=timeout)
    with tempfile.TemporaryDirectory(prefix="cli-") as tmp:
        stdin = os.devnull
        if input is not None:
            stdin = os.path.join(tmp, "in")
            with open(stdin, "w", encoding=locale.getpreferredencoding(False)) as f:
                f.write(input)
        out, err = os.path.join(tmp, "out"), os.path.join(tmp, "err")
        for name in (out, err):
            open(name, "wb").close()
        request = {"argv": cmd[3:], "env": env, "cwd": os.getcwd(), "stdin": stdin, "stdout": out, "stderr": err}
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(_server())
            s.sendall(json.dumps(request).encode() + b"\n")
            pid = int(_line(s))
            s.settimeout(timeout)
            try:
                returncode = int(_line(s))
            except TimeoutError:
                os.kill(pid, signal.SIGKILL)
                s.settimeout(None)
                _line(s)
                raise subprocess.TimeoutExpired(cmd, timeout, output=_read(out), stderr=_read(err)) from None
        return subprocess.CompletedProcess(cmd, returncode, _read(out), _read(err))


def _line(s: socket.socket) -> bytes:
    """One line from the server (bytes up to a newline; a pid or an exit status)."""
    data = b""
    while not data.endswith(b"\n"):
        chunk = s.recv(64)
        if not chunk:
            raise RuntimeError("the mailarchive fork server (tests/cli_server.py) ended")
        data += chunk
    return data


def _read(name: str) -> str:
    with open(name, encoding=locale.getpreferredencoding(False)) as f:  # universal newlines, as text=True
        return f.read()


_SERVER: dict = {}
_SERVER_LOCK = threading.Lock()


def _server() -> str:
    """The socket path of this process's fork server, started on first use."""
    with _SERVER_LOCK:
        if _SERVER.get("pid") != os.getpid():
            tmp = tempfile.mkdtemp(prefix="cli-server-")
            path = os.path.join(tmp, "sock")
            proc = subprocess.Popen([sys.executable, "-m", "tests.cli_server", path], cwd=Path(__file__).resolve().parent.parent,
                                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
            if proc.stdout.readline().strip() != "ready":
                raise RuntimeError("the mailarchive fork server (tests/cli_server.py) did not start")
            atexit.register(stop_server)
            _SERVER.update(pid=os.getpid(), path=path, proc=proc)
        return _SERVER["path"]


def stop_server() -> None:
    """End this process's fork server and wait for it (so its children's CPU time is counted as ours)."""
    with _SERVER_LOCK:
        if _SERVER.get("pid") == os.getpid():
            proc = _SERVER.pop("proc")
            proc.terminate()
            proc.wait()
            shutil.rmtree(os.path.dirname(_SERVER.pop("path")), ignore_errors=True)
            _SERVER.clear()
