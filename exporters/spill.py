"""Rows an export lists at its end, kept on disk while it runs (docs/reliability.md K8).

An export of a million mails made a dict per manifest row (and ``export eml --zip`` a ``ZipInfo`` per member)
and held them all to the end: ~1–2 GB. :class:`Spill` keeps a sequence of picklable items in an unnamed
temporary file beside the export's output (``tempfile.TemporaryFile``: no name in the directory, gone when it
is closed or the process ends, even when killed), a block of :data:`BLOCK` items at a time; :class:`SortedRows`
sorts such rows by a key as ``sorted`` would (stable), in runs of :data:`RUN` rows merged when read back. Only
a block per run is held while they are read; an export small enough for one run never touches the disk.

The file holds what the export writes anyway (manifest rows, member names) and is readable by its owner only.
"""
from __future__ import annotations

import heapq
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

#: Items per pickled block of a spill file.
BLOCK = 1_000
#: Rows sorted in memory before they go to disk as one run of a :class:`SortedRows`.
RUN = 50_000


class _File:
    """An unnamed temporary file in ``directory`` written at its end and read at given places (pwrite/pread)."""

    def __init__(self, directory: Path):
        self._f = tempfile.TemporaryFile(dir=directory)
        self.end = 0

    def put(self, data: bytes) -> tuple[int, int]:
        fd, at = self._f.fileno(), self.end
        view = memoryview(data)
        while view:
            n = os.pwrite(fd, view, self.end)
            self.end += n
            view = view[n:]
        return at, len(data)

    def get(self, place: tuple[int, int]) -> bytes:
        at, length = place
        out = bytearray()
        while len(out) < length:
            chunk = os.pread(self._f.fileno(), length - len(out), at + len(out))
            if not chunk:
                raise OSError(f"a spill file of the export ended early ({at + len(out)} of {at + length})")
            out += chunk
        return bytes(out)

    def close(self) -> None:
        self._f.close()


class Spill:
    """An append-only sequence of picklable items, in memory up to a block, then on disk; read back in order
    (as often as needed). Its file is made in ``directory`` at the first full block."""

    def __init__(self, directory: Path, block: int | None = None):
        self.directory = Path(directory)
        self.block = int(block or BLOCK)
        self._file: _File | None = None
        self._blocks: list[tuple[int, int]] = []
        self._pending: list = []
        self._count = 0

    def append(self, item: Any) -> None:
        self._pending.append(item)
        self._count += 1
        if len(self._pending) >= self.block:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            if self._file is None:
                self._file = _File(self.directory)
            self._blocks.append(self._file.put(pickle.dumps(self._pending, pickle.HIGHEST_PROTOCOL)))
            self._pending = []

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[Any]:
        for place in list(self._blocks):
            yield from pickle.loads(self._file.get(place))
        yield from list(self._pending)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._blocks, self._pending = [], []


class SortedRows:
    """Rows given in any order, read back sorted by ``key`` (stable: rows with equal keys in the order they came,
    as ``sorted(rows, key=key)``); runs of ``run`` rows sorted in memory, spilled, merged when read."""

    def __init__(self, directory: Path, key: Callable[[Any], Any], run: int | None = None, block: int | None = None):
        self.directory = Path(directory)
        self.key = key
        self.run = int(run or RUN)
        self.block = block
        self._rows: list = []
        self._runs: list[Spill] = []
        self._count = 0

    def add(self, row: Any) -> None:
        self._rows.append(row)
        self._count += 1
        if len(self._rows) >= self.run:
            self._spill_run()

    def _spill_run(self) -> None:
        self._rows.sort(key=self.key)
        spill = Spill(self.directory, self.block)
        for row in self._rows:
            spill.append(row)
        spill._flush()
        self._runs.append(spill)
        self._rows = []

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[Any]:
        self._rows.sort(key=self.key)  # the last rows, fewer than a run: the last (newest) of the merged runs
        if not self._runs:
            return iter(list(self._rows))
        return heapq.merge(*self._runs, list(self._rows), key=self.key)

    def close(self) -> None:
        for spill in self._runs:
            spill.close()
        self._runs, self._rows = [], []
