"""importers/stream_end.py: a compressed stream cut short or damaged gives every byte its file holds, then ends,
saying why; an I/O error of the file itself is still raised."""
from __future__ import annotations

import bz2
import errno
import gzip
import io
import lzma
import random
import zlib

import pytest

from importers.stream_end import CHECKSUM, DAMAGED, TRUNCATED, EndOfData

DATA = b"".join(b"From a@b Mon Jan  1 00:00:00 2024\nSubject: %d\n\n%s\n" % (i, bytes(random.Random(i).choices(
    b"abcdefghij \n", k=3000))) for i in range(400))


def read_all(stream: EndOfData, n: int) -> bytes:
    """Every read of ``n`` bytes until the end (also the fuzz target's)."""
    out = []
    while True:
        chunk = stream.read(n)
        if not chunk:
            return b"".join(out)
        out.append(chunk)


def _gzip_prefix(blob: bytes) -> bytes:
    """What zcat prints of a (cut) gzip file: a streaming decompressor fed every byte."""
    return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(blob)


@pytest.mark.parametrize("cut", [30, 5_000, 200_001, 400_000])
@pytest.mark.parametrize("n", [1 << 20, 4096])
def test_a_gzip_cut_short_gives_what_zcat_gives(cut, n):
    blob = gzip.compress(DATA)[:cut]
    end = EndOfData(gzip.GzipFile(fileobj=io.BytesIO(blob)))
    got = read_all(end, n)
    assert got == _gzip_prefix(blob) and end.given == len(got) and DATA.startswith(got)
    assert end.stop == TRUNCATED and end.cut and "end-of-stream" in end.detail
    assert end.read(10) == b""


def test_xz_and_bzip2_cut_short_end_with_the_blocks_they_decoded():
    blob = lzma.compress(DATA, preset=1)
    end = EndOfData(lzma.LZMAFile(io.BytesIO(blob[:len(blob) // 2])))
    got = read_all(end, 1 << 20)
    assert DATA.startswith(got) and end.stop == TRUNCATED
    blob = bz2.compress(DATA * 3, 1)  # 100 KB blocks: the first ones decode whole
    end = EndOfData(bz2.BZ2File(io.BytesIO(blob[:len(blob) * 2 // 3])))
    got = read_all(end, 1 << 20)
    assert len(got) >= 100_000 and (DATA * 3).startswith(got) and end.stop == TRUNCATED


def test_damage_ends_the_data_and_a_gzip_checksum_is_told_apart():
    blob = bytearray(bz2.compress(DATA * 3, 1))
    for i in range(len(blob) * 2 // 3, len(blob) * 2 // 3 + 64):
        blob[i] ^= 0x5A
    end = EndOfData(bz2.BZ2File(io.BytesIO(bytes(blob))))
    got = read_all(end, 1 << 20)
    assert (DATA * 3).startswith(got) and len(got) >= 100_000 and end.stop == DAMAGED and end.cut
    blob = bytearray(gzip.compress(DATA))
    blob[-6] ^= 1  # the stored CRC-32: every byte of data is given, then the check fails
    end = EndOfData(gzip.GzipFile(fileobj=io.BytesIO(bytes(blob))))
    assert read_all(end, 1 << 20) == DATA and end.stop == CHECKSUM and not end.cut


def test_an_io_error_of_the_file_is_raised_not_taken_for_an_end():
    class Failing(io.RawIOBase):
        def __init__(self, data):
            self.data, self.pos = data, 0

        def readable(self):
            return True

        def readinto(self, b):
            if self.pos > 20_000:
                raise OSError(errno.EIO, "Input/output error")
            n = min(len(b), 4096, len(self.data) - self.pos)
            b[:n] = self.data[self.pos:self.pos + n]
            self.pos += n
            return n

    end = EndOfData(gzip.GzipFile(fileobj=io.BufferedReader(Failing(gzip.compress(DATA)))))
    with pytest.raises(OSError) as info:
        read_all(end, 1 << 16)
    assert info.value.errno == errno.EIO and end.stop is None
