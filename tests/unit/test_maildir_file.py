"""A Maildir message file stored compressed (importers/maildir_file.py, docs/reliability.md M8)."""
from __future__ import annotations

import bz2
import gzip
import lzma
import os

import lz4.block
import pytest
import zstandard

from importers.maildir_file import MAX_PLAIN, MAX_RATIO, MAX_RATIO_AFTER, compression, decompressed, name_size, note
from toolkit.prepare import NotMail, Trimmed

MAIL = (b"From: a@example.org\nTo: b@example.org\nSubject: stored compressed\nMessage-ID: <c@example.org>\n"
        b"Date: Thu, 16 May 2019 08:16:00 +0200\n\n" + b"".join(b"line %d of the body\n" % i for i in range(4000)))


def dovecot_lz4(plain: bytes, chunk: int = 65536) -> bytes:
    """Dovecot's LZ4 framing (src/lib-compression/ostream-lz4.c): magic, chunk size, then length-prefixed blocks."""
    out = [b"Dovecot-LZ4\r\x2a\x9b\xc5", chunk.to_bytes(4, "big")]
    for i in range(0, len(plain), chunk):
        block = lz4.block.compress(plain[i:i + chunk], store_size=False)
        out += [len(block).to_bytes(4, "big"), block]
    return b"".join(out)


KINDS = {
    "gzip": gzip.compress,
    "bzip2": bz2.compress,
    "xz": lzma.compress,
    "zstd": lambda b: zstandard.ZstdCompressor().compress(b),
    "dovecot-lz4": dovecot_lz4,
}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_each_compression_gives_the_message_with_its_flags_and_the_note(kind):
    packed = KINDS[kind](MAIL)
    assert compression(packed) == kind
    got = decompressed(("\\Seen \\Answered",), None, packed)
    assert isinstance(got, Trimmed)
    assert got.raw == MAIL
    assert got.removed == len(packed) - len(MAIL)
    assert got.note == {"flags": (f"\\Seen \\Answered {note(kind)}",)}
    # a file without flags gets the note alone
    assert decompressed((), None, packed).note == {"flags": (note(kind),)}


def test_a_plain_message_is_left_as_it_is_even_when_it_opens_like_a_magic():
    assert decompressed(("\\Seen",), None, MAIL) is None
    assert decompressed((), None, b"BZh: a header that begins like bzip2\n\nbody\n") is None
    assert compression(b"BZh9 not a block") is None


def test_concatenated_streams_are_read_on_as_their_tools_read_them():
    assert decompressed((), None, gzip.compress(MAIL[:100]) + gzip.compress(MAIL[100:])).raw == MAIL
    assert decompressed((), None, bz2.compress(MAIL[:100]) + bz2.compress(MAIL[100:])).raw == MAIL
    z = zstandard.ZstdCompressor()
    assert decompressed((), None, z.compress(MAIL[:100]) + z.compress(MAIL[100:])).raw == MAIL
    assert decompressed((), None, gzip.compress(MAIL) + b"\0" * 8).raw == MAIL  # zero padding after the stream


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_file_cut_short_or_damaged_is_an_error_never_a_partial_message(kind):
    packed = KINDS[kind](MAIL)
    for cut in sorted({len(packed) - 1, len(packed) - 5, len(packed) // 2, 20, 16}):
        got = decompressed((), None, packed[:cut])
        assert isinstance(got, NotMail) and got.error, (kind, cut, got)
        assert f"{kind}-compressed message file" in got.reason and "not archived" in got.reason
        assert "cut short" in got.reason or "damaged" in got.reason
    flipped = bytearray(packed)
    flipped[len(packed) // 2] ^= 0xFF
    got = decompressed((), None, bytes(flipped))
    # a flipped byte is damage, or (lz4 and zstd frames carry no checksum here) a changed message: never the original
    assert (isinstance(got, NotMail) and got.error) or got.raw != MAIL


def test_trailing_junk_after_a_stream_is_damage():
    got = decompressed((), None, gzip.compress(MAIL) + b"junk after the stream")
    assert isinstance(got, NotMail) and got.error and "damaged" in got.reason


@pytest.mark.parametrize("kind", ["gzip", "bzip2", "zstd", "dovecot-lz4"])
def test_a_decompression_bomb_stops_at_the_cap_in_bounded_memory(kind):
    zeros = bytes(4 * MAX_RATIO_AFTER)
    packed = KINDS[kind](zeros)
    cap = min(MAX_PLAIN, max(MAX_RATIO_AFTER, MAX_RATIO * len(packed)))
    assert cap < len(zeros)
    got = decompressed((), None, packed)
    assert isinstance(got, NotMail) and got.error
    assert f"expands past {cap} bytes from {len(packed)}" in got.reason


def test_random_data_behind_a_magic_never_raises():
    for magic in (b"\x1f\x8b\x08", b"BZh91AY&SY", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd", b"Dovecot-LZ4\r\x2a\x9b\xc5"):
        for n in range(40):
            got = decompressed(("\\Seen",), None, magic + os.urandom(n * 7))
            assert isinstance(got, (NotMail, Trimmed))
            if isinstance(got, NotMail):
                assert got.error


def test_the_size_a_dovecot_name_gives_must_be_the_message_size():
    assert name_size(b"1796492931.M383083P10208.vm,S=118,W=125") == 118
    assert name_size(b"1796492931.M383083P10208.vm,S=118:2,RS") == 118
    assert name_size(b"1549353600_0.4204.host,U=7,FMD5=abc:2,S") is None
    assert name_size(b"1549353600.M1.host:2,S=5") is None  # a flag letter S after the info, not a size
    chunks = dovecot_lz4(MAIL, chunk=4096)
    whole_chunks = chunks[:chunks.index(lz4.block.compress(MAIL[8192:12288], store_size=False)) - 4]
    # Dovecot's LZ4 framing has no end marker: a file cut after its second chunk decodes to a shorter message,
    # which only the name's size tells
    assert decompressed((), None, whole_chunks).raw == MAIL[:8192]
    got = decompressed((), len(MAIL), whole_chunks)
    assert isinstance(got, NotMail) and got.error and f"decompresses to 8192 bytes, its name says S={len(MAIL)}" in got.reason
    assert decompressed((), len(MAIL), chunks).raw == MAIL


def test_a_plain_file_not_the_size_its_name_gives_is_archived_as_it_is_noted_and_warned_about():
    assert decompressed(("\\Seen",), len(MAIL), MAIL) is None  # the size the name gives: nothing to say
    got = decompressed(("\\Seen",), len(MAIL) + 500, MAIL)
    assert isinstance(got, Trimmed) and got.raw == MAIL and got.removed == 0
    assert got.note["flags"] == ("\\Seen size-differs-from-name",)
    assert f"holds {len(MAIL)} bytes, its name says S={len(MAIL) + 500} (cut short by a copy?)" in got.note["warning"]
    assert "changed since its delivery?" in decompressed((), 10, MAIL).note["warning"]


def test_a_large_maildir_file_that_vanished_or_is_compressed_takes_the_usual_ways(tmp_path, monkeypatch):
    """A file above LARGE_MAIL is streamed; one that vanished after the listing is the usual skip (not a crash), and
    a compressed one is read and decompressed where the others are."""
    from importers import walk
    from importers.maildir import MaildirImporter
    from importers.walk import FileEntry
    from toolkit.source import SourceMail, SourceSkip

    monkeypatch.setattr(walk, "LARGE_MAIL", 10)
    root = tmp_path / "Maildir"
    (root / "cur").mkdir(parents=True)
    (root / "cur" / "1727776800.M1P1.host,S=999:2,S").write_bytes(MAIL)
    (root / "cur" / "1727776801.M2P1.host:2,S").write_bytes(gzip.compress(MAIL))
    imp = MaildirImporter(str(root))
    gone = imp._item(FileEntry(b"cur/1727776802.M3P1.host:2,S", 100, 0.0), None, local_root=bytes(root))
    assert isinstance(gone, SourceSkip) and "vanished" in gone.reason
    big = imp._item(FileEntry(b"cur/1727776800.M1P1.host,S=999:2,S", len(MAIL), 0.0), None, local_root=bytes(root))
    assert isinstance(big, SourceMail) and big.opener is not None and big.path is None
    assert big.folder == "INBOX" and big.flags == ("\\Seen size-differs-from-name",) and "S=999" in big.warning
    with big.opener() as f:
        assert f.read() == MAIL
    packed = imp._item(FileEntry(b"cur/1727776801.M2P1.host:2,S", 50, 0.0), None, local_root=bytes(root))
    assert packed.path is not None and packed.opener is None and packed.envelope_cut(gzip.compress(MAIL)).raw == MAIL


def test_the_notes_beside_a_maildir_file_s_flags_are_never_exported_as_flags():
    from exporters.layout import mail_flags

    from importers.maildir_file import SIZE_DIFFERS

    for kind in sorted(KINDS):
        field = decompressed(("\\Seen $Work",), None, KINDS[kind](MAIL)).note["flags"][0]
        assert mail_flags(field, "maildir") == ("$Work", "\\Seen") == mail_flags(field, "share")
    field = decompressed(("\\Flagged",), 1, MAIL).note["flags"][0]
    assert SIZE_DIFFERS in field and mail_flags(field, "maildir") == ("\\Flagged",)
