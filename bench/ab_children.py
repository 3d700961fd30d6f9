"""This checkout against another one (``--base``), each side's measurement run in a child process of its own,
the order alternating per pair: the harness of bench/bench_pack_task.py and bench/bench_seal_write.py.

A child is ``python -c CHILD PATHS_JSON ROUNDS`` started in the side's checkout (with it first on PYTHONPATH)
and prints one JSON object on its last line."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bytecode import compile_checkout  # noqa: E402


def parser(description: str, rounds: int) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--base", required=True, help="the other checkout (the code before)")
    ap.add_argument("--new", help="the checkout to compare (default: this one)")
    ap.add_argument("--tree", default="/work/bench40k/eml")
    ap.add_argument("--mails", type=int, default=1600)
    ap.add_argument("--rounds", type=int, default=rounds)
    ap.add_argument("--pairs", type=int, default=3)
    return ap


def run_pairs(child: str, args) -> tuple[list[str], dict[str, list[dict]]]:
    """(the mails' paths, each side's JSON results: ``base`` and ``new``, one per pair)."""
    paths = sorted(str(p) for p in Path(args.tree).rglob("*") if p.is_file())[: args.mails]
    sides = {"base": Path(args.base).resolve(), "new": Path(args.new or Path(__file__).resolve().parents[1])}
    compile_checkout(*sides.values())  # bench/bytecode.py: neither side compiles its modules in every run
    got: dict[str, list[dict]] = {k: [] for k in sides}
    for i in range(args.pairs):
        for name in (list(sides) if i % 2 == 0 else list(reversed(sides))):
            env = {**os.environ, "PYTHONPATH": str(sides[name])}
            p = subprocess.run([sys.executable, "-c", child, json.dumps(paths), str(args.rounds)], cwd=sides[name],
                               capture_output=True, text=True, env=env)
            if p.returncode:
                raise SystemExit(p.stderr)
            got[name].append(json.loads(p.stdout.strip().splitlines()[-1]))
    return paths, got
