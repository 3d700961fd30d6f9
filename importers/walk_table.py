"""A walk of a source tree: its entries, and the whole walk held in columns (docs/reliability.md K8).

``import eml``, ``maildir``, ``msg``, ``pst`` and ``share`` walk the whole tree before they read it, sorted by
path so that a rerun resumes after a path (importers/walk.py). A list of one object per file costs ~190–230
bytes a file (the object, its path, size and time): a tree of a million files held ~234 MB in the main process
before anything was read. :class:`Walk` keeps the same entries sorted in columns (the paths one after another in
one bytes object per block of 16,384, where each ends, the sizes, the times, and the few reasons to skip by
position): the length of the path plus 24 bytes a file (the ends as 64-bit numbers: a block of deep paths, which
a walk by directory descriptors allows past PATH_MAX, cannot overflow them); a scan that reads it once lets it go
block by block (:meth:`Walk.consume`). It reads like the list it replaces (length, iteration, indexing, equality
with a list of the same entries); each :class:`FileEntry` is made when it is read.
"""
from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import accumulate

from toolkit.list_like import ListLike
from toolkit.process_guard import give_back_freed_memory


@dataclass(frozen=True, slots=True)
class FileEntry:
    rel: bytes            # relative path below the root, '/'-separated
    size: int
    mtime: float
    skip_reason: str | None = None   # set for entries that are listed but not read


#: Entries per block of a :class:`Walk`: the unit a scan releases once it has passed it.
BLOCK = 1 << 14
#: Blocks let go between two requests to give freed memory back (``malloc_trim``: a few ms each).
TRIM_EVERY = 8


class Walk(ListLike):
    """Entries sorted by path (bytes order), in columns (see the module doc), in blocks of :data:`BLOCK`. Build with
    :meth:`sorted_from` or :meth:`of`.

    :meth:`consume` reads the entries once and, where :attr:`releasable`, lets each block go once it is read: a scan
    that reads its walk once holds less and less of it while the run goes on (a million files: 64 MB at the start,
    none at the end, when the catalog holds the most). Reading an entry of a released block raises."""

    __slots__ = ("_blocks", "_n", "_reasons", "releasable")

    def __init__(self, blocks: list, n: int, reasons: dict[int, str]) -> None:
        self._blocks, self._n, self._reasons = blocks, n, reasons
        #: whether :meth:`consume` lets blocks go (False while the walk is kept for another scan: importers/walk.py
        #: ``keep_walk``)
        self.releasable = True

    @classmethod
    def sorted_from(cls, rels: list[bytes], sizes: array, mtimes: array, reasons: dict[int, str]) -> Walk:
        """The walk of the entries given as columns in any order (``reasons``: skip reason by position), sorted by
        path; ``rels`` is emptied (its paths are copied into one bytes object per block)."""
        n = len(rels)
        order = sorted(range(n), key=rels.__getitem__)  # stable: equal paths keep their order
        blocks = []
        for first in range(0, n, BLOCK):
            part = order[first:first + BLOCK]
            blocks.append((b"".join([rels[i] for i in part]), array("Q", accumulate(len(rels[i]) for i in part)),
                           array("q", (sizes[i] for i in part)), array("d", (mtimes[i] for i in part))))
        rels.clear()
        new_reasons: dict[int, str] = {}
        if reasons:
            for position, i in enumerate(order):
                if i in reasons:
                    new_reasons[position] = reasons[i]
        return cls(blocks, n, new_reasons)

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
        return self._n

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._n))]
        if index < 0:
            index += self._n
        if not 0 <= index < self._n:
            raise IndexError("walk index out of range")
        b, j = divmod(index, BLOCK)
        paths, ends, sizes, mtimes = self._block(b)
        start = ends[j - 1] if j else 0
        return FileEntry(paths[start:ends[j]], sizes[j], mtimes[j], self._reasons.get(index))

    def _block(self, b: int):
        block = self._blocks[b]
        if block is None:
            raise RuntimeError("this walk was read by a scan that let its entries go; walk the tree again")
        return block

    def _entries_of(self, b: int) -> Iterator[FileEntry]:
        paths, ends, sizes, mtimes = self._block(b)
        reasons, base, start = self._reasons, b * BLOCK, 0
        for j, end in enumerate(ends):
            yield FileEntry(paths[start:end], sizes[j], mtimes[j], reasons.get(base + j))
            start = end

    def __iter__(self) -> Iterator[FileEntry]:
        for b in range(len(self._blocks)):
            yield from self._entries_of(b)

    def consume(self) -> Iterator[FileEntry]:
        """Every entry once, in order; each block is let go once read when the walk is :attr:`releasable`, and after
        every :data:`TRIM_EVERY` blocks glibc is asked to give the freed pages back (they lie between the run's
        other allocations, where the heap keeps them otherwise)."""
        for b in range(len(self._blocks)):
            yield from self._entries_of(b)
            if self.releasable:
                self._blocks[b] = None
                if b % TRIM_EVERY == TRIM_EVERY - 1:
                    give_back_freed_memory()
