"""Reading local source files in the pipeline (workers read EML/Maildir files themselves): the same
N1 guarantees as the importers' own reads — no symlink followed, no FIFO or device read."""
from __future__ import annotations

import errno
import os
import threading

import pytest

from toolkit.source import read_regular_file, will_read


def test_reads_a_regular_file_exactly(tmp_path):
    p = tmp_path / "m.eml"
    p.write_bytes(b"Subject: x\r\n\r\nbody\x00\xff")
    assert read_regular_file(os.fsencode(p)) == b"Subject: x\r\n\r\nbody\x00\xff"


def test_a_symlink_swapped_in_is_not_followed(tmp_path):
    secret = tmp_path / "outside"
    secret.write_bytes(b"not yours")
    link = tmp_path / "m.eml"
    link.symlink_to(secret)
    with pytest.raises(OSError) as exc:
        read_regular_file(os.fsencode(link))
    assert exc.value.errno == errno.ELOOP


def test_a_fifo_swapped_in_is_never_read(tmp_path):
    fifo = tmp_path / "m.eml"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match="no longer a regular file"):
        read_regular_file(os.fsencode(fifo))     # would block forever if it were opened for a read


def test_a_vanished_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_regular_file(os.fsencode(tmp_path / "gone"))


def test_the_read_hint_never_blocks_and_never_raises(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "elsewhere")
    plain = tmp_path / "plain"
    plain.write_bytes(b"x" * 10000)
    done = threading.Event()

    def hint_all():
        for p in (fifo, link, tmp_path / "missing", plain):
            will_read(os.fsencode(p))
        done.set()

    threading.Thread(target=hint_all, daemon=True).start()
    assert done.wait(5), "will_read blocked (a FIFO opened without O_NONBLOCK?)"
