"""The terminal's view of an import's skips and errors: counted by reason, one example each.

The full list (every ref with its reason) goes to ``--json`` and to the run log.
"""
from __future__ import annotations

from collections import Counter


def problem_lines(problems: list[dict], logged: bool) -> list[str]:
    """One line per (kind, reason): its count and the first ref; then where the full list is."""
    counts: Counter = Counter((p["kind"], p["message"]) for p in problems)
    first: dict = {}
    for p in problems:
        first.setdefault((p["kind"], p["message"]), p["ref"])
    lines = [f"  {kind} {n}× {reason} (e.g. {first[(kind, reason)]})" if n > 1 else f"  {kind}: {first[(kind, reason)]}: {reason}"
             for (kind, reason), n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    if any(n > 1 for n in counts.values()):
        lines.append("  every file with its reason: " + ("in the log file" if logged else "--json or --log-file FILE"))
    return lines
