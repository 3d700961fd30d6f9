"""Which keys the catalog may hold, answered from memory during an import run (docs/dedup.md)."""
from __future__ import annotations

import bisect
import hashlib
from array import array


class KnownKeys:
    """Which keys the catalog may hold, without asking it for every chunk.

    What the catalog held when the run started is kept as sorted 60-bit
    prefixes (8 bytes a key): a key that misses there cannot be in the
    catalog from before the run. What this run committed is kept exactly
    (key -> first msg_id) up to ``RUN_KEYS_LIMIT`` messages (~30 MB); beyond that the
    run's keys move into prefix arrays too, and their hits are looked up in
    the catalog like the old ones. A fresh migration thus asks the catalog
    nothing, however many duplicates it holds.
    """

    RUN_KEYS_LIMIT = 50_000

    def __init__(self, blobs: list[int], keys: list[int], mids: list[int]):
        self._sets = [array("Q", sorted(x)) for x in (blobs, keys, mids)]
        self.run_blobs: dict[str, int] = {}
        self.run_keys: dict[str, int] = {}
        self.run_mids: dict[str, int] = {}

    @classmethod
    def from_sorted(cls, blob_prefixes: array, key_prefixes: array, mid_hashes: array) -> "KnownKeys":
        """From sorted arrays (what :func:`toolkit.catalog.ingest_rows.known_at_start` gives), taken as they are."""
        known = cls([], [], [])
        known._sets = [blob_prefixes, key_prefixes, mid_hashes]
        return known

    @classmethod
    def from_catalog(cls, blob_prefixes: list[int], key_prefixes: list[int], message_ids: list[str]) -> "KnownKeys":
        """From what the catalog holds: 60-bit prefixes of blob ids and dedup keys, distinct Message-IDs."""
        return cls(blob_prefixes, key_prefixes, [mid_hash(m) for m in message_ids])

    def add(self, blobs: dict[str, int], keys: dict[str, int], mids: dict[str, int]) -> None:
        """Take in what a commit of this run added (key -> msg_id)."""
        self.run_blobs.update(blobs)
        self.run_keys.update(keys)
        for mid, msg_id in mids.items():
            self.run_mids.setdefault(mid, msg_id)
        if len(self.run_blobs) > self.RUN_KEYS_LIMIT:
            self._spill()

    def _spill(self) -> None:
        """Bound memory: the run's exact keys become prefixes (their hits go to the catalog)."""
        for i, new in enumerate((
            [int(b[:15], 16) for b in self.run_blobs],
            [int(k[:15], 16) for k in self.run_keys],
            [mid_hash(m) for m in self.run_mids],
        )):
            if new:
                self._sets[i] = merged(self._sets[i], sorted(new))
        self.run_blobs, self.run_keys, self.run_mids = {}, {}, {}

    @staticmethod
    def _has(arr: array, value: int) -> bool:
        i = bisect.bisect_left(arr, value)
        return i < len(arr) and arr[i] == value

    @property
    def prefixes_empty(self) -> bool:
        """True while no key is kept as a prefix (the catalog held none when the run started, and none was
        spilled): :meth:`may_hold` is then False for every key, and need not be asked mail by mail."""
        return not any(self._sets)

    def may_hold(self, blob_id: str, dedup_key: str, message_id: str | None) -> bool:
        """True when the catalog must be asked about one of these keys."""
        b, k, m = self._sets
        return (
            self._has(b, int(blob_id[:15], 16))
            or self._has(k, int(dedup_key[:15], 16))
            or (message_id is not None and self._has(m, mid_hash(message_id)))
        )


def merged(old: array, new: list[int]) -> array:
    """The sorted array of ``old`` (a sorted array) and ``new`` (a sorted list): what
    ``array("Q", sorted([*old, *new]))`` gives, built from slices of ``old`` so that its values never become
    Python ints. That list held a 36-byte int for every prefix, about 40 MB per million mails at each spill of a
    large run: the main process's peak grew with the catalog (docs/reliability.md K8)."""
    out = array("Q")
    start = 0
    for value in new:
        end = bisect.bisect_right(old, value, start)
        out += old[start:end]
        out.append(value)
        start = end
    out += old[start:]
    return out


def mid_hash(message_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(message_id.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "big")
