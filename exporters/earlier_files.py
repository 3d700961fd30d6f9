"""The files an earlier ``export maildir`` run left in one ``cur/`` directory, held in a few bytes each (K8).

A rerun must recognise a message it wrote before by the file's name before ``:2,`` (its stem:
``<time>.M<msg id>_<blob id prefix>.mailarchive,S=<size>``), whatever info letters follow, and
must not write it again (exporters/maildir.py). A dict of stem → name costs about 260 bytes a file
(two strings and a table slot): 260 MB for a million mails in one folder, on top of the export's
own memory (docs/reliability.md K8, docs/architecture.md "Memory of an export rerun").

:class:`EarlierFiles` keeps, per file, its msg id, the hash of its stem and the index of its
suffix (everything after the stem: ``:2,`` and the letters, or nothing) in a table of the distinct
suffixes, in three arrays sorted by msg id: 20 bytes a file. A lookup gives the same name back
(stem + suffix) for the message's own stem; a name whose stem does not follow the exporter's
pattern cannot equal a stem this exporter makes, so it is not kept.
"""
from __future__ import annotations

import os
import re
from array import array
from bisect import bisect_left

import pyarrow as pa
import pyarrow.compute as pc

#: The start of every stem ``file_stem`` makes (a time before 1970 is negative); the group is the msg id.
_OURS = re.compile(r"-?\d+\.M(\d+)_")
_INT64_MAX = (1 << 63) - 1


class EarlierFiles:
    """The earlier run's files of one ``cur/`` (see the module doc); :meth:`name_of` finds one by its stem."""

    __slots__ = ("_ids", "_hashes", "_suffix_of", "_suffixes")

    def __init__(self, cur: str | os.PathLike) -> None:
        ids, hashes, suffix_of = array("q"), array("q"), array("I")
        index: dict[str, int] = {}
        with os.scandir(cur) as entries:
            for entry in entries:
                name = entry.name
                m = _OURS.match(name)
                if m is None or (msg_id := int(m.group(1))) > _INT64_MAX:
                    continue  # another writer's name (or a dot file): no stem of ours equals it
                stem = name.split(":2,", 1)[0]
                ids.append(msg_id)
                hashes.append(hash(stem))
                suffix_of.append(index.setdefault(name[len(stem):], len(index)))
        self._suffixes = list(index)
        self._ids, self._hashes, self._suffix_of = _sorted_by_first(ids, hashes, suffix_of)

    def __len__(self) -> int:
        return len(self._ids)

    def name_of(self, msg_id: int, stem: str) -> str | None:
        """The name in ``cur/`` of the earlier file whose stem is ``stem`` (of message ``msg_id``), or None."""
        ids = self._ids
        i = bisect_left(ids, msg_id)
        h = hash(stem)
        while i < len(ids) and ids[i] == msg_id:
            if self._hashes[i] == h:
                return stem + self._suffixes[self._suffix_of[i]]
            i += 1
        return None


def _sorted_by_first(keys: array, *others: array) -> tuple[array, ...]:
    """``keys`` and ``others`` reordered by ``keys`` (stable), sorted in Arrow without a Python object per entry."""
    n = len(keys)
    if n < 2:
        return (keys, *others)
    order = pc.sort_indices(_arrow_view(keys))
    return tuple(_as_array(pc.take(_arrow_view(a), order), a.typecode) for a in (keys, *others))


_ARROW_TYPE = {"q": pa.int64(), "I": pa.uint32()}


def _arrow_view(a: array) -> pa.Array:
    return pa.Array.from_buffers(_ARROW_TYPE[a.typecode], len(a), [None, pa.py_buffer(a)])


def _as_array(column: pa.Array, typecode: str) -> array:
    out = array(typecode)
    width = out.itemsize
    data = column.buffers()[1]
    out.frombytes(memoryview(data)[column.offset * width:(column.offset + len(column)) * width])
    return out
