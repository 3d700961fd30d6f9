"""An import run's skipped and failed entries, held in a few columns (docs/reliability.md K8).

Every entry an import skips or cannot read is listed in its summary as ``{"ref", "kind", "message"}`` (the
terminal counts them by reason, ``--json`` and the run log list them all; the catalog's error rows hold them too).
A dict per entry costs ~280 bytes with its ref: a share of a million files that are not mail held ~280 MB for its
list while the run went on. :class:`ProblemList` keeps the refs, a byte for the kind and the index of the message
in a table of the distinct messages (most repeat: "not mail: binary", "empty file"): the ref plus ~13 bytes. It
reads like the list of dicts it replaces (append, length, iteration, indexing, equality with such a list), and
:meth:`to_list` gives that list for JSON.
"""
from __future__ import annotations

from array import array
from collections.abc import Iterator

from .list_like import ListLike


_KEYS = frozenset(("ref", "kind", "message"))


class ProblemList(ListLike):
    """``{"ref", "kind", "message"}`` dicts, made when read (see the module doc)."""

    __slots__ = ("_refs", "_kinds", "_message_ids", "_messages", "_message_index", "_kind_names", "_kind_index")

    def __init__(self, problems=()) -> None:
        self._refs: list[str] = []
        self._kinds = bytearray()
        self._message_ids = array("I")
        self._messages: list[str] = []
        self._message_index: dict[str, int] = {}
        self._kind_names: list[str] = []
        self._kind_index: dict[str, int] = {}
        for p in problems:
            self.append(p)

    def append(self, problem: dict) -> None:
        """Add ``{"ref": …, "kind": …, "message": …}`` (exactly those keys)."""
        if problem.keys() != _KEYS:
            raise ValueError(f"a problem has the keys ref, kind and message, not {sorted(problem)}")
        kind, message = problem["kind"], problem["message"]
        k = self._kind_index.get(kind)
        if k is None:
            k = self._kind_index[kind] = len(self._kind_names)
            self._kind_names.append(kind)
        m = self._message_index.get(message)
        if m is None:
            m = self._message_index[message] = len(self._messages)
            self._messages.append(message)
        self._refs.append(problem["ref"])
        self._kinds.append(k)
        self._message_ids.append(m)

    def __len__(self) -> int:
        return len(self._refs)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        ref = self._refs[index]  # IndexError as a list's, negative indices as a list's
        if index < 0:
            index += len(self._refs)
        return {"ref": ref, "kind": self._kind_names[self._kinds[index]],
                "message": self._messages[self._message_ids[index]]}

    def __iter__(self) -> Iterator[dict]:
        kinds, messages = self._kind_names, self._messages
        for ref, k, m in zip(self._refs, self._kinds, self._message_ids):
            yield {"ref": ref, "kind": kinds[k], "message": messages[m]}

    def to_list(self) -> list[dict]:
        """The problems as a list of dicts (for JSON)."""
        return list(self)

    def __getstate__(self):
        return self._refs, bytes(self._kinds), self._message_ids.tobytes(), self._messages, self._kind_names

    def __setstate__(self, state) -> None:
        refs, kinds, message_ids, messages, kind_names = state
        self._refs, self._kinds, self._messages, self._kind_names = refs, bytearray(kinds), messages, kind_names
        self._message_ids = array("I")
        self._message_ids.frombytes(message_ids)
        self._message_index = {m: i for i, m in enumerate(messages)}
        self._kind_index = {k: i for i, k in enumerate(kind_names)}
