"""Shared pieces of the fuzz targets: settings, seed corpora, mutations, the linear-time check.

Every target runs ``FUZZ_EXAMPLES`` examples (default 150) derandomized, so CI runs the
same inputs each time; a developer runs them longer with, for example::

    FUZZ_EXAMPLES=200000 .venv/bin/python -m pytest tests/fuzz

Seeds are real files from the shared corpora (tests/corpora.py); each example is a seed
cut, spliced, duplicated or sprinkled with bytes that parsers find hard.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from tests.corpora import corpora_dir

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES") or 150)
FUZZ = settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))

# bytes and fragments that mail parsers treat specially
TOKENS = [b"\n", b"\r\n", b"\r", b" ", b"\t", b":", b",", b";", b'"', b"\\", b"<", b">", b"(", b")", b"[", b"]",
          b"@", b".", b"=?", b"?=", b"=?utf-8?q?", b"\n\n", b"From ", b"\nFrom ", b">From ", b"--", b"\x00",
          b"\xef\xbb\xbf", b"\xff", b"To: ", b"Content-Length: 5\n", b"boundary=", b'x@host."tld\\]"']


def seed_files(sub: str, *, limit: int = 60, max_bytes: int = 256 * 1024, pick=None) -> list[bytes]:
    """Up to ``limit`` files below corpora/``sub`` (sorted, evenly spaced), each at most ``max_bytes``."""
    root = corpora_dir() / sub
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.stat().st_size <= max_bytes
                   and (pick is None or pick(p)))
    step = max(1, len(files) // limit)
    return [p.read_bytes() for p in files[::step][:limit]]


def seed_names(sub: str, *, limit: int = 200) -> list[str]:
    root = corpora_dir() / sub
    return sorted({p.name for p in root.rglob("*")})[:limit]


@st.composite
def mutated(draw, seeds: list[bytes], max_extra: int = 64) -> bytes:
    """A seed (or nothing) changed by a few cuts, duplications and insertions."""
    data = draw(st.sampled_from(seeds)) if seeds and draw(st.integers(0, 9)) else draw(st.binary(max_size=512))
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.integers(0, 4))
        i = draw(st.integers(0, len(data)))
        j = draw(st.integers(i, min(len(data), i + 4096)))
        if op == 0:      # cut a slice out
            data = data[:i] + data[j:]
        elif op == 1:    # duplicate a slice a few times
            data = data[:j] + data[i:j] * draw(st.integers(1, 8)) + data[j:]
        elif op == 2:    # insert a special token, possibly repeated
            data = data[:i] + draw(st.sampled_from(TOKENS)) * draw(st.integers(1, 40)) + data[i:]
        elif op == 3:    # insert random bytes
            data = data[:i] + draw(st.binary(max_size=max_extra)) + data[i:]
        else:            # keep a prefix only
            data = data[:i]
    return data


def amplified(data: bytes | str, size: int = 64 * 1024):
    """``data`` repeated to at least ``size`` bytes/characters (empty stays empty)."""
    if not data:
        return data
    return data * (size // len(data) + 1)


def assert_linear(fn, data, *, fixed: float = 1.0, per_unit: float = 20e-6) -> None:
    """``fn(data)`` finishes within ``fixed`` + ``per_unit`` * len(data) seconds: a generous linear
    budget (about 2.3 s for 64 KiB) that any quadratic or worse behaviour on the amplified inputs
    blows through, while a loaded machine stays well inside it (best of up to 3 runs)."""
    budget = fixed + per_unit * len(data)
    elapsed = float("inf")
    # CPU time of this thread, best of up to 3 runs: waiting for a core on a loaded machine is not counted
    for _ in range(3):
        t = time.thread_time()
        fn(data)
        elapsed = min(elapsed, time.thread_time() - t)
        if elapsed < budget:
            return
    raise AssertionError(f"{elapsed:.2f} s for {len(data)} units (budget {budget:.2f} s): {data[:80]!r}")
