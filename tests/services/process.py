"""What every throwaway test server shares: a free port, a child that dies with the runner, a clean stop,
and the fixture shape (temp dir, start, fail in CI or skip elsewhere, stop, remove)."""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import socketserver
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, TypeVar

T = TypeVar("T")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def die_with_parent() -> None:
    """``preexec_fn`` of a server: SIGTERM it when the test runner dies without its finalizers."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def stop_process(proc: subprocess.Popen, timeout: float = 10) -> None:
    """SIGTERM, then SIGKILL when it does not end within ``timeout`` seconds."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)


def require_service(name: str, exc: BaseException) -> None:
    """A missing service fails the run in CI and skips the test elsewhere."""
    import pytest  # here, so that bench scripts can start the servers without pytest

    if os.environ.get("CI") == "true":
        pytest.fail(f"{name} unavailable in CI: {exc}")
    pytest.skip(f"{name} unavailable: {exc}")


@contextlib.contextmanager
def served(name: str, start: Callable[[Path], T]) -> Iterator[T]:
    """A session fixture's body: ``start(workdir)`` in a fresh temp dir, stopped and removed afterwards.

    Not under tmp_path_factory: a concurrent pytest run prunes old /tmp/pytest-of-*/pytest-N
    directories, which would pull the files out from under a running server.
    """
    workdir = Path(tempfile.mkdtemp(prefix=f"mailarchive-{name}-"))
    try:
        server = start(workdir)
    except Exception as exc:  # not installed, not root, or the server failed to start
        shutil.rmtree(workdir, ignore_errors=True)
        require_service(name, exc)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


class LineHandler(socketserver.StreamRequestHandler):
    """A scripted server's connection: read lines, ``send`` answers."""

    timeout = 30

    def send(self, data: bytes) -> None:
        self.wfile.write(data)
        self.wfile.flush()


@dataclass
class ScriptedServer:
    """A threaded TCP server on 127.0.0.1 playing a script (tests/services/evil_*.py); records the commands."""

    scheme: str = ""
    host: str = "127.0.0.1"
    port: int = 0
    commands: list[bytes] = field(default_factory=list)
    _server: socketserver.ThreadingTCPServer | None = None

    def url(self, user: str = "evil") -> str:
        return f"{self.scheme}://{user}@{self.host}:{self.port}"

    def serve(self, handler: type[LineHandler]) -> None:
        self._server = socketserver.ThreadingTCPServer((self.host, 0), handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, name=f"scripted-{self.scheme}", daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
