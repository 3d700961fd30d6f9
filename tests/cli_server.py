"""A fork server for ``tests/cli.py::mailarchive``: each command still runs in a process of its own.

A ``python -m toolkit`` child spends most of its CPU on starting Python and importing DuckDB,
pyarrow, cryptography and the toolkit (tests/README.md, "Test time"). This server imports them
once per pytest worker; for each command it forks a child that takes the command's environment,
working directory, stdin/stdout/stderr files and argv, runs ``toolkit`` as ``__main__`` (as
``python -m toolkit`` does) and exits through the normal interpreter shutdown (atexit handlers,
non-daemon threads, finalizers). The server reaps the child and reports its exit status the way
``subprocess`` does (``-N`` for a signal). Nothing the command does persists in the server: the
child is a separate process, forked before any command ran.

The command-line layer (``toolkit.cli``) is not imported here: it reads the environment at import
(the consoles' width and colour), so each child imports it under its own environment.

Protocol, one Unix-socket connection per command: the client sends one JSON line
``{"argv", "env", "cwd", "stdin", "stdout", "stderr"}`` (paths of files); the server answers a
line with the child's pid, then a line with its exit status when it ends. The server ends when
its parent (the pytest process) ends.
"""
from __future__ import annotations

import json
import os
import select
import signal
import socket
import sys


def _preload() -> None:
    import importlib
    import pkgutil

    for pkg in ("toolkit", "importers", "exporters", "verify", "media_tools"):
        package = importlib.import_module(pkg)
        for m in pkgutil.walk_packages(package.__path__, pkg + "."):
            if m.name.startswith("toolkit.cli") or m.name.endswith("__main__"):
                continue
            importlib.import_module(m.name)
    for name in ("click", "rich.console", "rich.table", "rich.markup", "rich.progress", "rich.text"):
        importlib.import_module(name)
    loaded = [n for n in sys.modules if n.startswith("toolkit.cli.") and n != "toolkit.cli.commands"]
    assert not loaded, f"the CLI layer must load in each child, not here: {loaded}"


def _die_with_parent() -> None:
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() == 1:
        sys.exit(0)


def serve(path: str) -> dict:
    """Accept commands until the parent ends; returns the request in each forked child."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.set_wakeup_fd(wake_w)
    print("ready", flush=True)
    waiting: dict[int, socket.socket] = {}
    while True:
        try:
            ready, _, _ = select.select([listener, wake_r], [], [])
        except InterruptedError:
            continue
        if wake_r in ready:
            os.read(wake_r, 4096)
            while waiting:
                try:
                    pid, status = os.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    break
                if pid == 0:
                    break
                conn = waiting.pop(pid, None)
                if conn is not None:
                    try:
                        conn.sendall(f"{os.waitstatus_to_exitcode(status)}\n".encode())
                    except OSError:
                        pass
                    conn.close()
        if listener in ready:
            conn, _ = listener.accept()
            request = json.loads(conn.makefile("rb").readline())
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                signal.set_wakeup_fd(-1)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                for c in (listener, conn, *waiting.values()):
                    c.close()
                os.close(wake_r)
                os.close(wake_w)
                return request
            conn.sendall(f"{pid}\n".encode())
            waiting[pid] = conn


def _become(request: dict) -> None:
    """In the child: the command's environment, directory and standard files, as a fresh process has."""
    import random
    import tempfile

    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    tempfile.tempdir = None  # TMPDIR of this command
    random.seed()
    for fd, (name, flags) in enumerate(((request["stdin"], os.O_RDONLY),
                                        (request["stdout"], os.O_WRONLY | os.O_TRUNC),
                                        (request["stderr"], os.O_WRONLY | os.O_TRUNC))):
        f = os.open(name, flags)
        os.dup2(f, fd)
        os.close(f)
    sys.path[0] = request["cwd"]  # as `python -m` puts the working directory first


def main() -> None:
    _preload()
    _die_with_parent()
    request = serve(sys.argv[1])
    _become(request)
    sys.exit(_run(request["argv"]))


def _run(argv: list[str]) -> int:
    """Run ``python -m toolkit ARGV`` in this process; its exit status, as the interpreter would give it.

    The end is the interpreter's own (atexit handlers, waiting for non-daemon threads, flushing
    stdout and stderr) except for the final module teardown: a forked interpreter can crash there
    (native libraries whose threads stayed in the server), so the child leaves with ``os._exit``.
    """
    import atexit
    import runpy
    import threading
    import traceback

    sys.argv = ["-m", *argv]
    code = 0
    try:
        runpy.run_module("toolkit", run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        if exc.code is None:
            code = 0
        elif isinstance(exc.code, int):
            code = exc.code
        else:
            print(exc.code, file=sys.stderr)
            code = 1
    except BaseException:
        traceback.print_exc()
        code = 1
    threading._shutdown()
    atexit._run_exitfuncs()
    import gc

    gc.collect()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            code = 120
    os._exit(code & 0xFF)


if __name__ == "__main__":
    main()
