"""JSON of a result that holds :class:`ProblemList`\\ s, written a chunk of problems at a time (docs/reliability.md K8).

``json.dumps`` of a result that lists a million skipped files would first make a list of a million dicts and then
one string of them all. :func:`write_json` dumps the result with a placeholder for each list (a random token no
string of the result holds), then writes the text up to each placeholder, the list's entries a chunk at a time, and
the rest. The bytes are those of ``json.dumps`` of the same result with every list whole, with and without
``indent``. The CLI's ``--json`` and the migration report use it.
"""
from __future__ import annotations

import json
import os
from typing import Any, Callable

from .problem_list import ProblemList

#: Problems written per ``write`` call.
CHUNK = 4096


def write_json(out, result: Any, default: Callable[[Any], Any], *, indent: int | None = None) -> None:
    """``json.dumps(result, default=default, ensure_ascii=False, indent=indent)`` and a newline, written to ``out``
    (anything with ``write(str)``), each :class:`ProblemList` in ``result`` a chunk of :data:`CHUNK` entries at a
    time."""
    lists: list[ProblemList] = []
    token = os.urandom(16).hex()

    def placeholder(o: Any):
        if isinstance(o, ProblemList):
            lists.append(o)
            return f"\x00{token}-{len(lists) - 1}\x00"  # a place to write the list at (no string of ours holds it)
        return default(o)

    text = json.dumps(result, default=placeholder, ensure_ascii=False, indent=indent)
    pos = 0
    for i, problems in enumerate(lists):
        mark = json.dumps(f"\x00{token}-{i}\x00")
        at = text.index(mark, pos)
        out.write(text[pos:at])
        _write_list(out, problems, indent, _line_indent(text, at))
        pos = at + len(mark)
    out.write(text[pos:] + "\n")


def _line_indent(text: str, at: int) -> str:
    """The spaces that open the line ``at`` is on: with ``indent``, a list's entries go one level deeper."""
    start = text.rfind("\n", 0, at) + 1
    end = start
    while end < at and text[end] == " ":
        end += 1
    return text[start:end]


def _write_list(out, problems: ProblemList, indent: int | None, pad: str) -> None:
    if not len(problems):
        out.write("[]")
        return
    if indent is None:
        out.write("[")
        for first in range(0, len(problems), CHUNK):
            chunk = problems[first:first + CHUNK]
            out.write((", " if first else "") + ", ".join(json.dumps(p, ensure_ascii=False) for p in chunk))
        out.write("]")
        return
    inner = pad + " " * indent
    # json.dumps writes a line break only between items and members: a string's own is escaped, so an entry dumped
    # on its own is moved one level deeper by indenting each of its lines
    sep = ",\n" + inner
    out.write("[\n" + inner)
    for first in range(0, len(problems), CHUNK):
        chunk = problems[first:first + CHUNK]
        text = sep.join(json.dumps(p, ensure_ascii=False, indent=indent).replace("\n", "\n" + inner) for p in chunk)
        out.write((sep if first else "") + text)
    out.write("\n" + pad + "]")
