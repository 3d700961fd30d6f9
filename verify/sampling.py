"""Sampled full verification: which packs a ``verify --subset`` run reads (docs/verification.md, docs/reliability.md F6).

A subset run reads only some packs, chosen so that repeated runs cover the
whole archive: the packs read least recently come first (never read before
counts as least recent), and packs that tie are put in a seeded, stable
order (the BLAKE2b hash of the seed and the pack id), so the same state and
seed always give the same choice. Every full or subset run records which
packs it read in the verify state file of the home (``HOME/verify-state.json``):
per pack, the number of the run that last read it and when. So k runs of
``--subset 1/k`` (e.g. ``--subset 25%`` four times) read every pack once.

The state is a hint, never evidence: a missing or unreadable state file
means "nothing read yet" (and the next write replaces it).
"""
from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

from toolkit.errors import UsageError

STATE_VERSION = 1

_SPEC = re.compile(r"^\s*(?:(?P<pct>\d+(?:\.\d+)?)\s*%|(?P<num>\d+)\s*/\s*(?P<den>\d+)|(?P<frac>0?\.\d+)|(?P<n>\d+))\s*$")


@dataclass(frozen=True)
class Subset:
    """``--subset``: a fraction of the packs (``10%``, ``0.1``, ``1/10``) or a number of packs (``5``)."""
    text: str
    fraction: float | None = None
    count: int | None = None

    def size(self, total: int) -> int:
        """How many of ``total`` packs one run reads: a fraction rounds up (at least one pack)."""
        if total <= 0:
            return 0
        if self.count is not None:
            return min(self.count, total)
        return min(total, max(1, math.ceil(self.fraction * total - 1e-9)))


def parse_subset(text: str) -> Subset:
    """``10%``, ``0.25``, ``1/4`` (fractions of the packs, above 0 and at most 1) or ``5`` (packs)."""
    m = _SPEC.match(text or "")
    if not m:
        raise UsageError(f"subset {text}: give a fraction of the packs (10%, 0.1 or 1/10) or a number of packs (5)")
    if m["n"] is not None:
        n = int(m["n"])
        if n < 1:
            raise UsageError(f"subset {text}: the number of packs must be at least 1")
        return Subset(text=text, count=n)
    if m["pct"] is not None:
        frac = float(m["pct"]) / 100
    elif m["den"] is not None:
        if int(m["den"]) == 0:
            raise UsageError(f"subset {text}: division by zero")
        frac = int(m["num"]) / int(m["den"])
    else:
        frac = float(m["frac"])
    if not 0 < frac <= 1:
        raise UsageError(f"subset {text}: a fraction must be above 0 and at most 100%")
    return Subset(text=text, fraction=frac)


def _tie_order(seed: int, pack_id: str) -> bytes:
    return hashlib.blake2b(f"{seed}:{pack_id}".encode(), digest_size=16).digest()


def choose(tasks: list[dict], subset: Subset, seed: int, state: dict) -> list[dict]:
    """The tasks (one per pack, keyed ``pack_id``) a subset run reads: least recently read first, ties by seed."""
    packs = state.get("packs") or {}

    def key(t: dict):
        last = packs.get(t["pack_id"]) or {}
        return (int(last.get("run") or 0), _tie_order(seed, t["pack_id"]))

    return sorted(tasks, key=key)[: subset.size(len(tasks))]


def load_state(path: Path, archive_uuid: str) -> dict:
    """The verify state of the home; empty when there is none, it is unreadable, or it is another archive's."""
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"packs": {}, "runs": 0}
    if not isinstance(state, dict) or state.get("archive") != archive_uuid or not isinstance(state.get("packs"), dict):
        return {"packs": {}, "runs": 0}
    return state


def record_reads(path: Path, archive_uuid: str, read: list[str], known: set[str], at: dt.datetime) -> int:
    """Add one run that read the packs ``read`` to the state file; drops packs the catalog no longer lists.

    Read again just before the write and replaced in one rename, so a verify beside another loses
    at most the other's run (those packs are then simply read again sooner). Returns the run number.
    """
    state = load_state(path, archive_uuid)
    run = int(state.get("runs") or 0) + 1
    packs = {p: v for p, v in state["packs"].items() if p in known}
    stamp = at.astimezone(dt.timezone.utc).isoformat(timespec="seconds")
    for p in read:
        packs[p] = {"run": run, "read_at": stamp}
    out = {"version": STATE_VERSION, "archive": archive_uuid, "runs": run, "packs": packs}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(out, indent=0, sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return run
