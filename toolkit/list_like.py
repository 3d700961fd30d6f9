"""A sequence held in some compact form that compares, hashes and prints as the list of its items does.

The columns that stand in for long lists of small objects (importers/walk_table.py ``Walk``,
toolkit/problem_list.py ``ProblemList``; docs/reliability.md K8) are equal to any sequence of the same items, as the
lists they replace were, and unhashable like them.
"""
from __future__ import annotations

from collections.abc import Sequence


class ListLike(Sequence):
    """Equality with any sequence of the same items (not with a str or bytes), no hash, the list's repr."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, (str, bytes)):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other))

    __hash__ = None  # type: ignore[assignment]  # compared by content, like a list

    def __repr__(self) -> str:
        return f"{type(self).__name__}({list(self)!r})"
