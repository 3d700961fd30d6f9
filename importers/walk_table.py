"""A walk of a source tree: its entries, and the whole walk held in columns (docs/reliability.md K8).

``import eml``, ``maildir``, ``msg``, ``pst`` and ``share`` walk the whole tree before they read it, sorted by
path so that a rerun resumes after a path (importers/walk.py). A list of one object per file costs ~190–230
bytes a file (the object, its path, size and time): a tree of a million files held ~234 MB in the main process
before anything was read. :class:`Walk` keeps the same entries sorted in columns (the paths one after another in
one bytes object, where each ends, the sizes, the times, and the few reasons to skip by position): the length of
the path plus 24 bytes a file. It reads like the list it replaces (length, iteration, indexing, equality with a
list of the same entries); each :class:`FileEntry` is made when it is read.
"""
from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import accumulate


@dataclass(frozen=True, slots=True)
class FileEntry:
    rel: bytes            # relative path below the root, '/'-separated
    size: int
    mtime: float
    skip_reason: str | None = None   # set for entries that are listed but not read


class Walk(Sequence):
    """Entries sorted by path (bytes order), in columns (see the module doc). Build with :meth:`sorted_from` or
    :meth:`of`."""

    __slots__ = ("_paths", "_ends", "_sizes", "_mtimes", "_reasons")

    def __init__(self, paths: bytes, ends: array, sizes: array, mtimes: array, reasons: dict[int, str]) -> None:
        self._paths, self._ends, self._sizes, self._mtimes, self._reasons = paths, ends, sizes, mtimes, reasons

    @classmethod
    def sorted_from(cls, rels: list[bytes], sizes: array, mtimes: array, reasons: dict[int, str]) -> Walk:
        """The walk of the entries given as columns in any order (``reasons``: skip reason by position), sorted by
        path; ``rels`` is emptied (its paths are copied into one bytes object)."""
        order = sorted(range(len(rels)), key=rels.__getitem__)  # stable: equal paths keep their order
        paths = b"".join([rels[i] for i in order])
        ends = array("Q", accumulate(len(rels[i]) for i in order))
        rels.clear()
        new_sizes = array("q", (sizes[i] for i in order))
        new_mtimes = array("d", (mtimes[i] for i in order))
        new_reasons: dict[int, str] = {}
        if reasons:
            for position, i in enumerate(order):
                if i in reasons:
                    new_reasons[position] = reasons[i]
        return cls(paths, ends, new_sizes, new_mtimes, new_reasons)

    @classmethod
    def of(cls, entries: Iterable[FileEntry]) -> Walk:
        """The walk of ``entries`` (any order), sorted by path."""
        rels: list[bytes] = []
        sizes, mtimes = array("q"), array("d")
        reasons: dict[int, str] = {}
        for e in entries:
            if e.skip_reason is not None:
                reasons[len(rels)] = e.skip_reason
            rels.append(e.rel)
            sizes.append(e.size)
            mtimes.append(e.mtime)
        return cls.sorted_from(rels, sizes, mtimes, reasons)

    def __len__(self) -> int:
        return len(self._ends)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        n = len(self._ends)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError("walk index out of range")
        start = self._ends[index - 1] if index else 0
        return FileEntry(self._paths[start:self._ends[index]], self._sizes[index], self._mtimes[index],
                         self._reasons.get(index))

    def __iter__(self) -> Iterator[FileEntry]:
        paths, sizes, mtimes, reasons = self._paths, self._sizes, self._mtimes, self._reasons
        start = 0
        for i, end in enumerate(self._ends):
            yield FileEntry(paths[start:end], sizes[i], mtimes[i], reasons.get(i))
            start = end

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, (str, bytes)):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other))

    __hash__ = None  # type: ignore[assignment]  # compared by content, like the list it replaces

    def __repr__(self) -> str:
        return f"Walk({list(self)!r})"
