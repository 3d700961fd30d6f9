"""The system's libzstd as ``verify --full`` uses it (toolkit/_zstdsys.c, ``toolkit.pack.system_decompress``): the
content of a frame that declares the size asked for, byte for byte as python-zstandard decodes it, and None for
anything else (another declared size, no declared size, a window above the limit, a cut or damaged frame, bytes or a
second frame after it, a skippable frame, random bytes), never an exception or a crash. On Debian (CI) the library is
always there (libzstd1 is required by dpkg): there a missing module fails instead of skipping."""
from __future__ import annotations

import os

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from toolkit.pack import MAX_WINDOW_SIZE, system_decompress

decompress = system_decompress()
if decompress is None and os.environ.get("CI") != "true":
    pytest.skip("toolkit._zstdsys not built or libzstd.so.1 not found", allow_module_level=True)

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "300"))


def test_loaded_in_ci():
    assert decompress is not None, "toolkit._zstdsys did not build or did not load libzstd.so.1 (apt-get install libzstd1)"
    from toolkit import _zstdsys

    assert _zstdsys.version() >= 10300


def _frame(data: bytes, level: int = 1, **kw) -> bytes:
    return zstandard.ZstdCompressor(level=level, write_content_size=True, **kw).compress(data)


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.binary(max_size=20000), st.integers(-5, 19), st.integers(1, 64))
def test_a_frame_decodes_as_python_zstandard_decodes_it(head, level, repeat):
    data = head * repeat
    frame = _frame(data, level)
    got = decompress(frame, len(data), MAX_WINDOW_SIZE)
    assert got == zstandard.ZstdDecompressor().decompress(frame) == data
    # another size than the one the frame declares
    assert decompress(frame, len(data) + 1, MAX_WINDOW_SIZE) is None
    if data:
        assert decompress(frame, len(data) - 1, MAX_WINDOW_SIZE) is None
    # cut, or followed by more bytes or a second frame
    assert decompress(frame[:-1], len(data), MAX_WINDOW_SIZE) is None
    assert decompress(frame + b"\x00", len(data), MAX_WINDOW_SIZE) is None
    if data:  # (two empty frames are as empty as one)
        assert decompress(frame + frame, len(data), MAX_WINDOW_SIZE) is None


def test_a_frame_without_its_size_or_not_a_frame():
    data = b"Subject: x\r\n\r\n" + b"line\r\n" * 500
    cobj = zstandard.ZstdCompressor(write_content_size=False).compressobj()
    assert decompress(cobj.compress(data) + cobj.flush(), len(data), MAX_WINDOW_SIZE) is None
    skippable = (0x184D2A50).to_bytes(4, "little") + (4).to_bytes(4, "little") + b"abcd"
    assert decompress(skippable, 0, MAX_WINDOW_SIZE) is None
    assert decompress(b"", 0, MAX_WINDOW_SIZE) is None
    assert decompress(_frame(b""), 0, MAX_WINDOW_SIZE) == b""


def test_a_window_above_the_limit():
    data = os.urandom(3000) * 4  # larger than the 1 KiB window: the header carries a window descriptor
    params = zstandard.ZstdCompressionParameters.from_level(1, window_log=10, write_content_size=True)
    frame = zstandard.ZstdCompressor(compression_params=params).compress(data)
    assert zstandard.get_frame_parameters(frame).window_size == 1024
    assert decompress(frame, len(data), 1024) == data
    assert decompress(frame, len(data), 1023) is None


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.binary(max_size=4000), st.integers(0, 1 << 16), st.data())
def test_damaged_or_random_bytes_never_raise(data, size, draw):
    frame = bytearray(_frame(data))
    for _ in range(draw.draw(st.integers(1, 4))):
        frame[draw.draw(st.integers(0, len(frame) - 1))] ^= draw.draw(st.integers(1, 255))
    for blob, n in ((bytes(frame), len(data)), (bytes(frame), size), (data, size)):
        got = decompress(blob, n, MAX_WINDOW_SIZE)
        if got is not None:  # where it decodes, it decodes as python-zstandard does, to the size asked for
            assert len(got) == n
            assert zstandard.ZstdDecompressor().decompress(blob, max_output_size=n + 1) == got


def test_threads_decode_at_once():
    """The GIL is released while a frame decodes and the one context is taken under its own lock: threads that
    decode at once each get their own frame's content."""
    from concurrent.futures import ThreadPoolExecutor

    datas = [os.urandom(5000) * (i + 1) + bytes([i]) * 300_000 for i in range(8)]
    frames = [_frame(d) for d in datas]

    def one(i: int) -> bool:
        return all(decompress(frames[i], len(datas[i]), MAX_WINDOW_SIZE) == datas[i] for _ in range(20))

    with ThreadPoolExecutor(4) as pool:
        assert all(pool.map(one, range(len(datas))))


_WITHOUT = r"""
import hashlib, sys
from uuid import UUID
sys.modules["toolkit._zstdsys"] = None  # as where the module is not built
from toolkit import pack
from toolkit.storage.local import LocalStorage
assert pack.system_decompress() is None
storage = LocalStorage(sys.argv[1])
w = pack.PackWriter(storage, bytes(32), UUID(int=1))
mails = [b"Subject: %d\r\n\r\n" % i + b"line\r\n" * (i * 50) for i in range(20)]
for m in mails:
    w.add(hashlib.sha256(m).digest(), m)
info = w.seal()
reader = pack.PackReader(storage, info.name, bytes(32), UUID(int=1))
assert [reader.read(e) for e in info.entries] == mails
assert all(exc is None for _e, exc in reader.check_all(info.entries))
print("ok")
"""


def test_without_the_module_python_zstandard_reads(tmp_path):
    """A process where ``toolkit._zstdsys`` is not built reads and checks packs with python-zstandard alone."""
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "-c", _WITHOUT, str(tmp_path)], capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout.strip() == "ok", p.stderr[-2000:]
