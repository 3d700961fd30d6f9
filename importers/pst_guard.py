"""Reading a PST/OST store in a child process, so that libpff cannot hang or crash the import (docs/reliability.md M5).

libpff is C: while it walks a damaged store, no Python code runs, so the per-mail SIGALRM watchdog
(``toolkit.prepare``) cannot stop it, and a crash in it would end the whole import. So
:func:`guarded_scan_store` runs :func:`importers.pst.scan_store` in a forked child and receives its
items through a pipe. Before each step that calls into libpff the child says where it is (a *place*:
the store's folder tree, a folder's item list, an item, the address directory's first pass, readpst).

When the child sends nothing for ``stall_limit`` seconds (``READPST_WAIT`` while readpst runs, which
has its own time limit), or dies (a crash of libpff), the child is killed, the place is reported as a
problem naming the store, folder and item position, and a new child reads the store on from the last
item handed on, leaving that place alone. Nothing read before is handed on twice (the items that carry
no cursor and the warnings are remembered). A stall in the folder tree itself ends the store: nothing
of it can be found without the tree.

The child holds no lock of its own and dies with the process that started it (``PR_SET_PDEATHSIG``),
so a child stuck in libpff never outlives a killed import and its inherited descriptors (the archive's
flock) are closed first thing.
"""
from __future__ import annotations

import base64
import multiprocessing
import os
import signal
from typing import Any, Callable, Iterator

from toolkit import faults, mapi
from toolkit.process_guard import die_with_parent, forbid_core_dumps
from toolkit.reporter import Reporter
from toolkit.source import SourceItem, SourceProblem

from . import pst_embedded

#: seconds the child may stay silent inside libpff before the place is given up (an item's conversion
#: has its own watchdog of ``2 × mapi.CONVERT_LIMIT`` at most, so this is well above it)
STALL_LIMIT = 300.0
_stall_limit = STALL_LIMIT
#: seconds the child may stay silent while readpst runs (it has its own limit)
READPST_WAIT = pst_embedded.READPST_TIMEOUT + 60.0


def set_stall_limit(seconds: float) -> None:
    """The stall limit of every store read from now on (a test hook of the command line:
    ``MAILARCHIVE_PST_STALL_LIMIT``, toolkit/cli/environment.py)."""
    global _stall_limit
    _stall_limit = seconds


def guarded_scan_store(path: bytes, ref: str, rel: bytes, inner: dict | None, reporter: Reporter,
                       cursor_wrap: Callable[[Any], Any] = lambda c: c, identity: str | None = None,
                       convert_limit: float | None = mapi.CONVERT_LIMIT,
                       stall_limit: float | None = None) -> Iterator[SourceItem]:
    """:func:`importers.pst.scan_store`'s items, read in a child process (see the module docstring)."""
    stall_limit = stall_limit or _stall_limit
    avoid: set[tuple] = set()
    handed: set[tuple[str, str]] = set()  # items without a cursor, and warnings, already handed on
    start = inner
    while True:
        reader = _Reader(path, ref, rel, start, identity, convert_limit, frozenset(avoid))
        try:
            for kind, value in reader.messages(stall_limit):
                if kind == "warn":
                    if ("warn", value) not in handed:
                        handed.add(("warn", value))
                        reporter.warn(value)
                    continue
                item = value
                if item.cursor is not None:
                    if isinstance(item.cursor, dict) and "pos" in item.cursor:
                        start = dict(item.cursor)
                    item.cursor = cursor_wrap(item.cursor)
                elif (key := (type(item).__name__, item.ref + "\0" + str(getattr(item, "message", "")))) in handed:
                    continue
                else:
                    handed.add(key)
                yield item
        finally:
            reader.stop()
        if reader.failure is None:
            return
        place = reader.place
        yield SourceProblem(_place_ref(ref, place), _place_problem(place, reader.failure),
                            cursor_wrap({"path_b64": reader.key, "done": True}) if place[0] == "tree" else None)
        if place[0] == "tree":
            return
        avoid.add(place)


def _place_ref(ref: str, place: tuple) -> str:
    if place[0] == "item":
        return f"{ref}#{place[3] or ''}/{place[2]}"
    if place[0] == "folder":
        return f"{ref}#{place[2] or ''}"
    return ref


def _place_problem(place: tuple, failure: str) -> str:
    what = {
        "tree": "the store's folder tree: nothing of this store could be read",
        "folder": f"the item list of folder nid={place[1]}: its mails were not archived, the rest of the store was read",
        "item": f"item {place[2]} of the folder: it was not archived, the rest of the store was read",
        "directory": "the store's address directory (a first pass over all items): X.500 sender and recipient "
                     "addresses are kept as they are, the mails were read",
        "readpst": "the embedded messages with readpst: the mails were archived without them",
    }.get(place[0], str(place))
    return (f"libpff {failure} while reading {what}. Repair a copy of the store with Outlook's scanpst.exe "
            "and import that copy")


class _Reader:
    """One child reading the store; :meth:`messages` gives its ("warn", text) and ("item", item) messages
    until it ends, stalls or dies (then ``failure`` says how and ``place`` where)."""

    def __init__(self, path, ref, rel, start, identity, convert_limit, avoid):
        self.key = base64.b64encode(rel).decode("ascii")
        ctx = multiprocessing.get_context("fork")
        self._receive, send = ctx.Pipe(duplex=False)
        self._child = ctx.Process(target=_child_main, daemon=True, name="pst-reader",
                                  args=(send, path, ref, rel, start, identity, convert_limit, avoid,
                                        dict(faults.ACTIVE)))
        self._child.start()
        send.close()
        self.place: tuple = ("tree",)
        self.failure: str | None = None

    def messages(self, stall_limit: float) -> Iterator[tuple[str, Any]]:
        while True:
            limit = READPST_WAIT if self.place[0] == "readpst" else stall_limit
            if not self._receive.poll(limit):
                self.failure = f"gave no answer within {limit:g} s"
                return
            try:
                kind, value = self._receive.recv()
            except (EOFError, OSError):
                self._child.join(5)
                code = self._child.exitcode
                self.failure = (f"crashed (signal {-code})" if code is not None and code < 0
                                else f"ended without a result (exit code {code})")
                return
            if kind == "at":
                self.place = value
            elif kind == "end":
                return
            else:
                yield kind, value

    def stop(self) -> None:
        if self._child.is_alive():
            self._child.kill()
        self._child.join()
        self._receive.close()


class _PipeReporter:
    """The child's reporter: its warnings go to the parent, which reports them."""

    def __init__(self, send):
        self._send = send

    def warn(self, text: str) -> None:
        self._send.send(("warn", text))

    def __getattr__(self, name):  # progress calls: the parent shows its own
        return lambda *a, **k: None


def _child_main(send, path, ref, rel, start, identity, convert_limit, avoid, fault_settings) -> None:
    """The child: read the store and send what it finds; nothing else of the parent is touched."""
    keep = send.fileno()
    os.closerange(3, keep)
    os.closerange(keep + 1, 1 << 16)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C is the parent's to handle
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    die_with_parent()
    forbid_core_dumps()  # a fork holds the parent's memory, the archive key with it
    faults.configure(**fault_settings)
    from .pst import scan_store

    def at(place: tuple) -> None:
        send.send(("at", place))

    try:
        for item in scan_store(path, ref, rel, start, _PipeReporter(send), identity=identity,
                               convert_limit=convert_limit, at=at, avoid=avoid):
            send.send(("item", item))
        send.send(("end", None))
    except BrokenPipeError:  # the parent stopped reading
        pass
    except Exception as exc:  # an unforeseen error: one problem naming the store, never a traceback
        send.send(("item", SourceProblem(ref, f"the store could not be read on: {type(exc).__name__}: {exc}")))
        send.send(("end", None))
