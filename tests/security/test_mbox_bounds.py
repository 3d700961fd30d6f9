"""Mbox reading is linear in time and bounded in memory.

* a long line costs linear time (no repeated concatenation of a growing buffer);
* ``--max-message-size``: a message over it is never read whole, is listed as an error with its file,
  offset and size (exit 1), the messages after it are imported, and a rerun with a larger cap takes it;
* a compressed input that expands past the ratio guard is stopped, named, and never eats the memory.
"""
from __future__ import annotations

import bz2
import gzip
import io
import lzma
import time
import tracemalloc
import zlib

import pytest

from importers.mbox import OVERSIZED, MboxImporter, MboxSplitter
from tests.cli import mailarchive
from tests.security.child_rusage import mailarchive_measured
from toolkit.cli.commands.import_mbox import ByteSize
from toolkit.reporter import ListReporter
from toolkit.source import SourceMail, SourceProblem

pytestmark = pytest.mark.security

F = b"From alice@example.com Mon Jan  7 09:15:00 2019\n"


def _msg(n: int, body: bytes = b"Hello.\n") -> bytes:
    return f"Subject: m{n}\nMessage-ID: <bounds-{n}@example.com>\n\n".encode() + body


def _split_seconds(line_bytes: int, block: int) -> float:
    """CPU seconds of this thread (not wall time: a core taken by another process must not stretch one side
    of a ratio; a worker-less splitter does all its work in this thread)."""
    data = F + _msg(0, b"a" * line_bytes + b"\n")
    t = time.thread_time()
    out = list(MboxSplitter(io.BytesIO(data), block=block))
    took = time.thread_time() - t
    assert len(out) == 1 and len(out[0].raw) == len(data) - len(F)
    return took


def test_a_long_line_costs_the_same_in_small_blocks():
    """The quadratic cost came from re-copying the line for every block read: an 8 MiB line read in
    8,192 blocks of 1 KiB must cost about what it costs in 8 blocks of 1 MiB (min of 3 runs each;
    measured 1.3 times; the old splitter took over 100 times)."""
    big_blocks = min(_split_seconds(8 << 20, 1 << 20) for _ in range(3))
    small_blocks = min(_split_seconds(8 << 20, 1 << 10) for _ in range(3))
    assert small_blocks < 4 * max(big_blocks, 0.005), (big_blocks, small_blocks)


def test_a_long_line_costs_linear_time():
    """8 times the line, well under 32 times the time (min of 3 runs; measured about 12 times, where
    fresh pages of the larger buffers cost extra; the old splitter took about 56 times)."""
    small = min(_split_seconds(4 << 20, 64 << 10) for _ in range(3))
    large = min(_split_seconds(32 << 20, 64 << 10) for _ in range(3))
    assert large < 32 * max(small, 0.002), (small, large)


def _regions_tile(data: bytes, out, sp) -> None:
    assert sp.prefix_length + sum(m.end_offset - m.offset for m in out) == len(data)
    for m in out:
        region = data[m.offset:m.end_offset]
        assert zlib.crc32(region) == m.crc32


def test_the_splitter_streams_past_an_oversized_message():
    big_lines = b"line of a big message\n" * 500             # 11,000 bytes in lines
    one_line = b"x" * 50_000 + b"\n"                          # one line over the cap
    msgs = [_msg(1), _msg(2, big_lines), _msg(3), _msg(4, one_line), _msg(5)]
    data = b"".join(F + m + b"\n" for m in msgs)
    sp = MboxSplitter(io.BytesIO(data), max_message=1000, block=4096)
    out = list(sp)
    _regions_tile(data, out, sp)
    assert [m.oversized for m in out] == [False, True, False, True, False]
    assert [m.raw for m in out if not m.oversized] == [msgs[0], msgs[2], msgs[4]]
    assert [m.stored_length for m in out] == [len(m) for m in msgs]
    assert all(OVERSIZED in m.flags for m in out if m.oversized)


def test_an_oversized_message_honours_a_consistent_content_length():
    """From_ lines inside the body that a consistent Content-Length covers do not split it."""
    body = (b"intro\n\n" + F + b"Subject: quoted, not a message\n\nquoted\n") * 50
    big = f"Subject: big\nContent-Length: {len(body)}\n\n".encode() + body
    data = F + _msg(1) + b"\n" + F + big + b"\n" + F + _msg(3)
    sp = MboxSplitter(io.BytesIO(data), max_message=500, block=4096)
    out = list(sp)
    _regions_tile(data, out, sp)
    assert [m.oversized for m in out] == [False, True, False]
    assert out[1].stored_length == len(big) and out[2].raw == _msg(3)


def test_an_oversized_line_is_never_held_whole():
    """A 64 MiB line with a 1 MiB cap: the splitter's peak allocation stays a few blocks."""
    line = 64 << 20

    class Zeros(io.RawIOBase):     # the stream itself holds nothing
        def __init__(self):
            self.parts = [F, _msg(1, b""), None, b"\n\n", F, _msg(2)]
            self.left = line

        def readable(self):
            return True

        def read(self, n=-1):
            while self.parts:
                head = self.parts[0]
                if head is None:
                    if self.left:
                        k = min(n, self.left)
                        self.left -= k
                        return b"a" * k
                    self.parts.pop(0)
                    continue
                self.parts.pop(0)
                return head
            return b""

    tracemalloc.start()
    try:
        out = list(MboxSplitter(Zeros(), max_message=1 << 20))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [m.oversized for m in out] == [True, False] and out[1].raw == _msg(2)
    assert out[0].stored_length == len(_msg(1, b"")) + line + 1
    assert peak < 16 << 20, peak   # a few blocks and the cap, not the 64 MiB line


@pytest.mark.parametrize("text,value", [("500M", 500 << 20), ("2G", 2 << 30), ("1.5GiB", 3 << 29), ("64k", 65536),
                                        ("1048576", 1 << 20), ("2 GB", 2 << 30)])
def test_sizes_take_units(text, value):
    assert ByteSize().convert(text, None, None) == value


def _init(tmp_path):
    home = tmp_path / "home"
    mailarchive(home, "init", "--medium", str(tmp_path / "medium"), "--key-backup", str(tmp_path / "kb.txt"))
    return home


def test_import_mbox_lists_an_oversized_message_and_a_rerun_with_a_larger_cap_takes_it(tmp_path):
    home = _init(tmp_path)
    big = _msg(2, b"y" * 20_000 + b"\n")
    parts = [F + _msg(1) + b"\n", F + big + b"\n", F + _msg(3)]
    src = tmp_path / "big.mbox"
    src.write_bytes(b"".join(parts))
    offset = len(parts[0])
    p = mailarchive(home, "import", "mbox", str(src), "--max-message-size", "10K", json_out=True, check=1)
    r = p.result
    assert r["archived"] == 2 and r["errors"] == 1, r
    (problem,) = r["sources"][0]["problems"]
    assert problem["ref"] == f"big.mbox@{offset}"
    for part in ("big.mbox", f"byte {offset}", f"{len(big)} bytes", "--max-message-size"):
        assert part in problem["message"], problem
    again = mailarchive(home, "import", "mbox", str(src), "--max-message-size", "1M", json_out=True).result
    assert again["archived"] == 1 and again["duplicates"] == 2 and again["errors"] == 0, again


def test_import_share_applies_the_cap_to_its_mboxes(tmp_path):
    home = _init(tmp_path)
    src = tmp_path / "tree"
    src.mkdir()
    (src / "a.mbox").write_bytes(F + _msg(1, b"z" * 5000 + b"\n") + b"\n" + F + _msg(2))
    r = mailarchive(home, "import", "share", str(src), "--max-message-size", "1K", json_out=True, check=1).result
    assert r["archived"] == 1 and r["errors"] == 1, r
    assert "a.mbox" in r["sources"][0]["problems"][0]["message"]


def _bomb(path, expanded: int) -> None:
    """A gzip mbox: one From_ line and header, then ``expanded`` zero bytes (gzip members of 16 MiB)."""
    member = gzip.compress(b"\0" * (16 << 20), compresslevel=9)
    with open(path, "wb") as f:
        f.write(gzip.compress(F + b"Subject: bomb\n\n"))
        for _ in range(expanded // (16 << 20)):
            f.write(member)


def test_a_decompression_bomb_is_stopped_named_and_bounded(tmp_path):
    home = _init(tmp_path)
    bomb = tmp_path / "bomb.mbox.gz"
    _bomb(bomb, 2 << 30)                       # 2 GiB of zeros in about 2 MB
    assert bomb.stat().st_size < 4 << 20
    good = tmp_path / "good.mbox"
    good.write_bytes(F + _msg(1) + b"\n" + F + _msg(2))
    m = mailarchive_measured(home, "import", "mbox", str(bomb), str(good), "--max-expansion-after", "32M")
    assert m.returncode == 1, m.stderr
    r = m.result
    # the bomb's error, and the finding that its source gave no mail at all
    assert r["archived"] == 2 and r["errors"] == 2, r
    assert "no mail found" in r["sources"][0]["problems"][-1]["message"], r["sources"][0]["problems"]
    problem = r["sources"][0]["problems"][0]
    assert problem["ref"] == "bomb.mbox.gz" and "decompression stopped" in problem["message"], problem
    assert m.maxrss_mib < 400, m.maxrss_mib     # the bomb expands to 2 GiB; the guard stops it at ~32 MiB

    share = tmp_path / "share"
    share.mkdir()
    bomb.rename(share / "old.gz")
    m = mailarchive_measured(home, "import", "share", str(share), "--max-expansion-after", "32M")
    assert m.returncode == 1 and "old.gz" in m.stdout, m.stdout
    assert m.maxrss_mib < 400, m.maxrss_mib


@pytest.mark.parametrize("compress", [bz2.compress, lzma.compress], ids=["bzip2", "xz"])
def test_the_guard_stops_bzip2_and_xz_too(tmp_path, compress):
    path = tmp_path / "bomb.mbox.z"
    path.write_bytes(compress(F + b"Subject: bomb\n\n" + b"\0" * (32 << 20)))
    items = list(MboxImporter(str(path), max_ratio_after=4 << 20).scan(None, ListReporter()))
    assert len(items) == 1 and isinstance(items[0], SourceProblem), items
    assert items[0].ref == "bomb.mbox.z" and "decompression stopped" in items[0].message
    # raised past the guard, the same file is one message
    items = list(MboxImporter(str(path), max_ratio_after=64 << 20).scan(None, ListReporter()))
    assert [type(i) for i in items] == [SourceMail] and len(items[0].raw) == len(b"Subject: bomb\n\n") + (32 << 20)
