#!/usr/bin/env python3
"""The top of a py-spy profile of a whole process tree, as a Markdown table.

Reads the collapsed stacks that ``py-spy record --subprocesses --format raw`` writes (one line per
stack: ``process PID:"cmd";frame;frame COUNT``, a child's stack starting with its parent's
``process`` entry and then its own) and prints, for the main process and the worker processes
together, the functions with the most samples of their own (the leaf frame)
and the share of all samples that pass through a few named functions (inclusive).

    python bench/profile_top.py PROFILE.raw [--top 15] [--function prepare --function scan ...]
"""
from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_LINE_NO = re.compile(r":\d+\)$")
_PROCESS = re.compile(r'process \d+:"[^"]*";?')  # the command line may hold ";" itself
DEFAULT_FUNCTIONS = ["prepare", "unwrap", "scan", "split_mail", "split_offsets", "normalise_body", "_body_sha256",
                     "seal_record",
                     "_commit", "commit", "append_rows", "append_columns", "rows_table", "_store_new", "_settle",
                     "_apply", "_head"]


def _frame(frame: str) -> str:
    """'name (file.py:12)' -> 'name (file.py)': samples of one function add up over its lines."""
    return _LINE_NO.sub(")", frame)


def read(path: Path) -> tuple[Counter, Counter, dict[str, Counter], int]:
    """(own samples per function, inclusive samples per function name, samples per role, total)."""
    own: Counter = Counter()
    inclusive: Counter = Counter()
    roles: dict[str, Counter] = {"main": Counter(), "workers": Counter()}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        role = "workers" if len(_PROCESS.findall(stack)) > 1 else "main"
        frames = _PROCESS.sub("", stack).split(";")
        leaf = _frame(frames[-1])
        own[(role, leaf)] += n
        roles[role][leaf] += n
        for name in {f.split(" (", 1)[0] for f in frames}:
            inclusive[(role, name)] += n
        total += n
    return own, inclusive, roles, total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("profile", type=Path)
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--function", action="append", help="report the inclusive share of this function name")
    args = ap.parse_args()
    own, inclusive, roles, total = read(args.profile)
    main_n, workers_n = sum(roles["main"].values()), sum(roles["workers"].values())
    print(f"{total} samples: main process {main_n} ({100 * main_n / total:.0f} %), "
          f"workers {workers_n} ({100 * workers_n / total:.0f} %)\n")
    print("| own samples | % of all | process | function |\n|---:|---:|---|---|")
    for (role, frame), n in own.most_common(args.top):
        print(f"| {n} | {100 * n / total:.1f} | {role} | `{frame}` |")
    print("\n| function (inclusive) | main % | workers % |\n|---|---:|---:|")
    for name in args.function or DEFAULT_FUNCTIONS:
        m, w = inclusive[("main", name)], inclusive[("workers", name)]
        if m or w:
            print(f"| `{name}` | {100 * m / total:.1f} | {100 * w / total:.1f} |")


if __name__ == "__main__":
    main()
