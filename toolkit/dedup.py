"""The dedup decision of every arrival (docs/dedup.md), as a pure function of keys.

:class:`DedupDecider` is given an arrival's keys and what the catalog holds
for them, and answers with a decision and a *target*: ``("new", i)`` for the
i-th message stored since the last commit, ``("old", msg_id)`` for an
archived one. It keeps the keys of the messages decided since the last
commit (a later copy in the same chunk or commit finds the first one) and the
recipients and envelopes each target is known to have, which decide whether a
journal report brings something new. It reads no catalog and writes nothing:
the caller looks the keys up and stores what was decided.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

NEW, EXACT, DUPLICATE, ID_CONFLICT, JOURNAL_MERGE = "new", "exact-duplicate", "duplicate", "id-conflict", "journal-merge"
CONVERTED_TWIN = "converted-twin"
DECISIONS = (NEW, EXACT, DUPLICATE, ID_CONFLICT, JOURNAL_MERGE, CONVERTED_TWIN)


def conversion_of(via: str | None) -> tuple[str, str] | None:
    """(source kind, converter) of a mail that a converter built (via ``pst:mapi2mime/1``,
    ``msg:mapi2mime/1``, ``tnef:mapi2mime/1``, ``pst:readpst``); None for MIME received as it was."""
    if not via or ":" not in via:
        return None
    kind, converter = via.split(":", 1)
    return (kind, converter) if kind and converter else None


class Keys(NamedTuple):
    """An arrival's identity: blob id and dedup key (hex), normalised Message-ID (None when unusable).
    (A named tuple, as :class:`Placement`: one of each per mail, several times cheaper to make than a
    frozen dataclass.)"""

    blob_id: str
    dedup_key: str
    message_id: str | None
    converted: bool = False  # built by a converter (an Outlook item), not MIME received as it was


@dataclass
class Known:
    """What the catalog holds for a chunk's keys: the lowest msg_id per blob id, dedup key and Message-ID."""

    blobs: dict[str, int] = field(default_factory=dict)
    keys: dict[str, int] = field(default_factory=dict)
    mids: dict[str, int] = field(default_factory=dict)
    #: converted mail is looked up apart: ``keys`` then holds MIME received as it was, ``converted_keys``
    #: the converted messages, and ``converted`` which msg_ids of ``mids`` are converted mail
    converted_keys: dict[str, int] = field(default_factory=dict)
    converted: set[int] = field(default_factory=set)


class Placement(NamedTuple):
    """Where an arrival goes: its decision before any journal evidence, its target, for an
    id-conflict the target whose Message-ID it shares (that one gets flagged too), and for a
    converted-twin the target of the same mail from the other kind of source."""

    decision: str
    target: tuple[str, int]
    conflict_with: tuple[str, int] | None = None
    twin_of: tuple[str, int] | None = None


class DedupDecider:
    """Decisions for the arrivals of one commit (see the module doc); :meth:`reset` after each commit."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.new_count = 0
        self._blobs: dict[str, int] = {}
        self._keys: dict[tuple[str, bool], int] = {}  # (dedup key, converted) -> new message
        self._mids: dict[tuple[str, bool], tuple[str, int]] = {}  # (Message-ID, converted) -> target
        self._converted: set[int] = set()  # the new messages of this commit that are converted mail
        self._recipients: dict[tuple, dict[tuple[str, str], None]] = {}  # target -> its pairs (an ordered set)
        self._envelopes: dict[tuple, set[str]] = {}

    def place(self, keys: Keys, known: Known) -> Placement:
        """Decide an arrival by its keys: the same bytes first, then the same dedup key, then a Message-ID
        shared with different content; otherwise it is new. A new one is registered at once.

        A converted mail and MIME received as it was are never merged: when the dedup key or the
        Message-ID matches a message of the other kind, both are kept as a converted-twin."""
        if keys.blob_id in self._blobs:
            return Placement(EXACT, ("new", self._blobs[keys.blob_id]))
        if keys.blob_id in known.blobs:
            return Placement(EXACT, ("old", known.blobs[keys.blob_id]))
        twin = None
        mine, other = (known.converted_keys, known.keys) if keys.converted else (known.keys, known.converted_keys)
        k = keys.dedup_key
        if (k, keys.converted) in self._keys:
            return Placement(DUPLICATE, ("new", self._keys[(k, keys.converted)]))
        if k in mine:
            return Placement(DUPLICATE, ("old", mine[k]))
        if (k, not keys.converted) in self._keys:
            twin = ("new", self._keys[(k, not keys.converted)])
        elif k in other:
            twin = ("old", other[k])
        conflict = None
        mid, conv = keys.message_id, keys.converted
        if mid and twin is None:
            old = ("old", known.mids[mid]) if mid in known.mids else None
            if (mid, conv) in self._mids:
                conflict = self._mids[(mid, conv)]
            elif old is not None and self._is_converted(old, known) == conv:
                conflict = old
            else:
                twin = self._mids.get((mid, not conv)) or old
        target = ("new", self.new_count)
        self.new_count += 1
        self._blobs[keys.blob_id] = target[1]
        self._keys[(keys.dedup_key, keys.converted)] = target[1]
        if keys.converted:
            self._converted.add(target[1])
        if mid:
            self._mids.setdefault((mid, conv), target)
        if twin is not None:
            return Placement(CONVERTED_TWIN, target, twin_of=twin)
        return Placement(NEW if conflict is None else ID_CONFLICT, target, conflict)

    def _is_converted(self, target: tuple[str, int], known: Known) -> bool:
        kind, ref = target
        return ref in self._converted if kind == "new" else ref in known.converted

    def add_recipients(self, target: tuple, pairs) -> list[tuple[str, str]]:
        """Record (kind, address) pairs for a target; returns those it did not have yet, in order."""
        have = self._recipients.get(target)
        if have is None:  # a target seen first (every new mail): its pairs without repeats, in order
            have = self._recipients[target] = dict.fromkeys(pairs)
            return list(have)
        added = []
        for pair in pairs:
            if pair not in have:
                have[pair] = None
                added.append(pair)
        return added

    def add_envelope(self, target: tuple, sha256: str) -> bool:
        """Record an envelope (by its hash) for a target; False when the target has it already."""
        have = self._envelopes.setdefault(target, set())
        if sha256 in have:
            return False
        have.add(sha256)
        return True

    def evidence_wanted(self, targets) -> list[int]:
        """The archived msg_ids among ``targets`` whose stored recipients and envelopes are not known yet."""
        return sorted({t[1] for t in targets if t[0] == "old" and (t not in self._recipients or t not in self._envelopes)})

    def take_evidence(self, msg_ids: list[int], recipients, envelope_hashes) -> None:
        """What the catalog stores for these archived messages: (msg_id, kind, address), (msg_id, sha256)."""
        for msg_id in msg_ids:
            self._recipients.setdefault(("old", msg_id), {})
            self._envelopes.setdefault(("old", msg_id), set())
        for msg_id, kind, address in recipients:
            self._recipients[("old", msg_id)][(kind, address)] = None
        for msg_id, sha in envelope_hashes:
            self._envelopes[("old", msg_id)].add(sha)

    def settle(self, placement: Placement, envelope_recipients, envelope_sha256: str
               ) -> tuple[str, list[tuple[str, str]], bool]:
        """A journal envelope for a placed arrival: (final decision, recipients it adds, whether the envelope
        is new for the target). A copy of a known mail that brings new recipients is a journal-merge."""
        added = self.add_recipients(placement.target, envelope_recipients)
        new_envelope = self.add_envelope(placement.target, envelope_sha256)
        decision = placement.decision
        if added and decision in (EXACT, DUPLICATE):
            decision = JOURNAL_MERGE
        return decision, added, new_envelope
