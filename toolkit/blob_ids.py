"""The blob ids of a batch of mails: the SHA-256 of each mail's bytes (docs/formats.md "Hashes"), by the
faster of two engines on this machine (docs/architecture.md, "Multi-buffer SHA-256").

* ``hashlib``: OpenSSL's SHA-256, one buffer at a time (with the CPU's SHA extensions where OpenSSL uses
  them, ~1.7 GB/s; without, ~0.5 GB/s with its AVX2 code).
* the multi-buffer engine of the optional compiled module ``toolkit._sha256mb``: 8 mails at once, one
  per 32-bit lane of an AVX2 vector (with AVX-512VL's rotates and three-input logic where the CPU has
  them), ~1.5 GB/s (AVX2) to ~2.6 GB/s (AVX-512VL) on a batch of a few MiB of mail.

The digests are the same either way; only the speed differs, and which is faster depends on the CPU and
on what OpenSSL makes of it (a CPU with SHA extensions can have them hidden from OpenSSL: OPENSSL_ia32cap).
So the choice follows what hashlib achieves in this process: the first :func:`sha256_many` of a process
times both engines on the same few buffers (:func:`measure`, a few ms) and keeps the faster one for the
process's life. :func:`use` sets the engine instead (tests, benches)."""
from __future__ import annotations

import hashlib
import time
from typing import Sequence

try:
    from . import _sha256mb
except ImportError:  # not built (no C compiler), or not this platform's: hashlib does it all
    _sha256mb = None

HASHLIB = "hashlib"

#: the multi-buffer engine's lanes: a batch of fewer mails leaves lanes idle, and goes to hashlib
LANES = 8

#: the calibration: this many buffers of this size (256 KiB in all), each engine timed this often, the
#: best time of each compared; the multi-buffer engine is chosen when hashlib takes MARGIN times as long
#: (a batch of real mails of unequal lengths keeps its lanes ~95% busy: bench/bench_sha256mb.py)
_SAMPLE_COUNT, _SAMPLE_SIZE, _REPEAT = 16, 16 * 1024, 5
MARGIN = 1.15

_CHOSEN: list = []  # per process: (the engine in use, its speed over hashlib's), once chosen


def multi_buffer_levels() -> list[str]:
    """The multi-buffer engines this CPU runs, fastest first; empty where the module is absent or the CPU
    has no AVX2 (an ARM CPU, an old x86-64)."""
    return list(_sha256mb.levels()) if _sha256mb is not None else []


def sha256_hashlib(buffers: Sequence) -> list[bytes]:
    return [hashlib.sha256(b).digest() for b in buffers]


def sha256_multi(buffers: Sequence, level: str | None = None) -> list[bytes]:
    """The multi-buffer engine (``level``: one of :func:`multi_buffer_levels`, None the fastest); the GIL is
    released while it hashes. Raises RuntimeError where none runs."""
    if _sha256mb is None:
        raise RuntimeError("the multi-buffer SHA-256 module (toolkit._sha256mb) is not built")
    return _sha256mb.sha256_many(buffers, level)


def measure(level: str | None = None) -> tuple[float, float]:
    """(hashlib's, the multi-buffer engine's) best time in seconds of hashing the same sample buffers."""
    sample = [bytes([i]) * _SAMPLE_SIZE for i in range(_SAMPLE_COUNT)]
    best_h = best_m = float("inf")
    for _ in range(_REPEAT):  # alternating: a slow moment of the machine costs both alike
        t0 = time.perf_counter()
        sha256_hashlib(sample)
        t1 = time.perf_counter()
        sha256_multi(sample, level)
        t2 = time.perf_counter()
        best_h, best_m = min(best_h, t1 - t0), min(best_m, t2 - t1)
    return best_h, best_m


def choose() -> str:
    """The engine this process uses: chosen (and timed) once, on the first call."""
    if not _CHOSEN:
        levels = multi_buffer_levels()
        engine, speedup = HASHLIB, 1.0
        if levels:
            t_hashlib, t_multi = measure(levels[0])
            if t_hashlib > MARGIN * t_multi:
                engine, speedup = levels[0], t_hashlib / t_multi
        _CHOSEN[:] = [engine, speedup]
    return _CHOSEN[0]


def use(engine: str | None) -> None:
    """Use this engine in this process from now on (``hashlib``, or one of :func:`multi_buffer_levels`);
    None: choose again by timing at the next call."""
    if engine is not None and engine != HASHLIB and engine not in multi_buffer_levels():
        raise ValueError(f"no SHA-256 engine {engine!r} on this machine (hashlib or one of {multi_buffer_levels()})")
    if engine is None or engine == HASHLIB:
        _CHOSEN[:] = [] if engine is None else [HASHLIB, 1.0]
        return
    t_hashlib, t_multi = measure(engine)
    _CHOSEN[:] = [engine, t_hashlib / t_multi]


def multi_buffer_chosen() -> bool:
    """Does :func:`sha256_many` run the multi-buffer engine in this process (a caller batches only then)?"""
    return choose() != HASHLIB


def sha256_many(buffers: Sequence) -> list[bytes]:
    """The 32-byte SHA-256 digest of each buffer (bytes, bytearray, C-contiguous memoryview), in order."""
    engine = choose()
    if engine == HASHLIB or len(buffers) < LANES:
        return sha256_hashlib(buffers)
    alone = _alone(buffers, _CHOSEN[1])
    if not alone:
        return _sha256mb.sha256_many(buffers, engine)
    out: list = [None] * len(buffers)
    for i in alone:
        out[i] = hashlib.sha256(buffers[i]).digest()
    rest = [i for i in range(len(buffers)) if out[i] is None]
    for i, d in zip(rest, _sha256mb.sha256_many([buffers[i] for i in rest], engine)):
        out[i] = d
    return out


def _alone(buffers: Sequence, speedup: float) -> list[int]:
    """The mails of a batch that hashlib hashes faster than the lanes would: those so long that they would
    run on in their lane after the others' lanes ran dry. The engine takes (in the time one lane takes for
    a byte) about max(longest, total / LANES) for a batch, hashlib ``speedup / LANES`` per byte; the longest
    mails go to hashlib while that costs less than it saves (a batch of ~8 MiB of the 40 KB corpus keeps
    all its mails in the lanes, one 500 KB mail among a hundred small ones does not)."""
    lengths = [len(b) for b in buffers]  # (only the split depends on them, never a digest)
    total = sum(lengths)
    if max(lengths) * LANES <= total:  # the lanes end together: nothing to gain (the usual batch)
        return []
    sizes = sorted(zip(lengths, range(len(lengths))), reverse=True)
    alone = []
    for k, (n, i) in enumerate(sizes):
        if len(sizes) - k <= LANES:
            break
        rest = total - n
        if n * speedup / LANES + max(sizes[k + 1][0], rest / LANES) >= max(n, total / LANES):
            break
        alone.append(i)
        total = rest
    return alone
