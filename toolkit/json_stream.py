"""JSON of a result whose long lists are written as they are read (docs/reliability.md K8).

``json.dumps`` of a result that lists a million skipped files (a :class:`ProblemList`) or every mail of a retention
report (a :class:`Streamed` query) would first make a list of them all and then one string of them all.
:func:`write_json` dumps the result with a placeholder for each such list (a random token no string of the result
holds), then writes the text up to each placeholder, the list's items a chunk at a time, and the rest. The bytes are
those of ``json.dumps`` of the same result with every list whole, with and without ``indent``. The CLI's ``--json``,
the retention report and the migration report use it.
"""
from __future__ import annotations

import json
import os
from itertools import islice
from typing import Any, Callable, Iterable

from .problem_list import ProblemList

#: Problems of a :class:`ProblemList` written per ``write`` call.
CHUNK = 4096


class Streamed:
    """Items (an iterator, read once) written into the JSON as a list, one ``write`` per item: rows of a query read
    by pages, each larger than a problem."""

    __slots__ = ("items",)

    def __init__(self, items: Iterable[Any]):
        self.items = items


def write_json(out, result: Any, default: Callable[[Any], Any], *, indent: int | None = None) -> None:
    """``json.dumps(result, default=default, ensure_ascii=False, indent=indent)`` and a newline, written to ``out``
    (anything with ``write(str)``), each :class:`ProblemList` in ``result`` a chunk of :data:`CHUNK` entries at a
    time, each :class:`Streamed` an item at a time."""
    lists: list[ProblemList | Streamed] = []
    token = os.urandom(16).hex()

    def placeholder(o: Any):
        if isinstance(o, (ProblemList, Streamed)):
            lists.append(o)
            return f"\x00{token}-{len(lists) - 1}\x00"  # a place to write the list at (no string of ours holds it)
        return default(o)

    text = json.dumps(result, default=placeholder, ensure_ascii=False, indent=indent)
    pos = 0
    for i, items in enumerate(lists):
        mark = json.dumps(f"\x00{token}-{i}\x00")
        at = text.index(mark, pos)
        out.write(text[pos:at])
        if isinstance(items, Streamed):
            _write_list(out, iter(items.items), 1, default, indent, _line_indent(text, at))
        else:
            _write_list(out, iter(items), CHUNK, default, indent, _line_indent(text, at))
        pos = at + len(mark)
    out.write(text[pos:] + "\n")


def _line_indent(text: str, at: int) -> str:
    """The spaces that open the line ``at`` is on: with ``indent``, a list's entries go one level deeper."""
    start = text.rfind("\n", 0, at) + 1
    end = start
    while end < at and text[end] == " ":
        end += 1
    return text[start:end]


def _write_list(out, items, chunk: int, default, indent: int | None, pad: str) -> None:
    """``items`` as a JSON list, ``chunk`` of them per ``write``, laid out as ``json.dumps`` lays out a list at the
    depth ``pad`` opens."""
    if indent is None:
        opening, sep, closing = "[", ", ", "]"
    else:
        inner = pad + " " * indent
        # json.dumps writes a line break only between items and members (a string's own is escaped), so an item
        # dumped on its own is moved one level deeper by indenting each of its lines
        opening, sep, closing = "[\n" + inner, ",\n" + inner, "\n" + pad + "]"
    first = True
    while part := list(islice(items, chunk)):
        texts = (json.dumps(p, default=default, ensure_ascii=False, indent=indent) for p in part)
        if indent is not None:
            texts = (t.replace("\n", "\n" + inner) for t in texts)
        out.write((opening if first else sep) + sep.join(texts))
        first = False
    out.write("[]" if first else closing)
