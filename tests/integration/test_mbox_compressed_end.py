"""A compressed mbox cut short or damaged (docs/reliability.md L10): the messages its file still holds are archived
byte for byte, the last one flagged ``source-truncated`` when it may be cut short, and the run ends with an error
naming the file; a whole copy imported later adds the message the cut one lacked."""
from __future__ import annotations

import gzip
import lzma
import random
import zlib

from tests.cli import mailarchive


def _mbox(n: int) -> tuple[bytes, list[bytes]]:
    """An mbox of ``n`` messages of ~4 KB of words (compressible like text, not like runs of one byte), and each
    message as it is archived (without its From_ line)."""
    rnd = random.Random(5)
    words = [bytes(rnd.choices(b"abcdefghijklmnopqrstuvwxyz", k=rnd.randint(2, 9))) for _ in range(3000)]
    mails = []
    for i in range(n):
        body = b"\n".join(b" ".join(rnd.choices(words, k=12)) for _ in range(60))
        mails.append(b"From: s%d@example.org\nTo: r@example.org\nSubject: m%d\nMessage-ID: <m%d@example.org>\n"
                     b"Date: Tue, 1 Oct 2024 10:00:00 +0000\n\n%s\n" % (i, i, i, body))
    return b"".join(b"From s@example.org Tue Oct  1 10:00:00 2024\n" + m + b"\n" for m in mails), mails


def _archived(home, tmp_path, name) -> dict[str, bytes]:
    out = tmp_path / name
    mailarchive(home, "export", "eml", str(out))
    return {p.name: p.read_bytes() for p in out.rglob("*.eml")}


def _flagged(home) -> list[str]:
    rows = mailarchive(home, "sql", "SELECT source_ref FROM sightings WHERE flags LIKE '%source-truncated%'",
                       json_out=True).result
    return [r["source_ref"] for r in rows]


def test_a_gzip_mbox_cut_short_keeps_what_it_holds_and_a_whole_copy_adds_the_rest(tmp_path):
    data, mails = _mbox(60)
    blob = gzip.compress(data)
    cut = tmp_path / "old.mbox.gz"
    cut.write_bytes(blob[:len(blob) * 3 // 5])
    held = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(cut.read_bytes())  # what zcat prints of it
    whole = held.count(b"\nFrom s@example.org ") + 1  # messages that start in it; the last one may be cut
    assert 5 < whole < 60

    home = tmp_path / "home"
    mailarchive(home, "init", "--kdf-profile", "test", "--key-backup", str(tmp_path / "kb.txt"))
    r = mailarchive(home, "import", "mbox", str(cut), json_out=True, check=1).result
    assert r["seen"] == whole and r["archived"] == whole and r["errors"] == 1
    problem = r["sources"][0]["problems"][-1]
    assert problem["ref"] == "old.mbox.gz" and "ends before its end-of-stream marker" in problem["message"]
    assert f"the {whole} messages" in problem["message"] and "source-truncated" in problem["message"]
    assert any("may be cut short" in w for w in r["warnings"])
    got = set(_archived(home, tmp_path, "out1").values())
    assert set(mails[:whole - 1]) <= got  # every message before the last: byte for byte
    last = next(g for g in got if g not in set(mails))
    assert mails[whole - 1].startswith(last.rstrip(b"\n")) and len(last) < len(mails[whole - 1])
    assert len(_flagged(home)) == 1

    # the same file again: nothing new, the same error; then a whole copy: what the cut one lacked
    again = mailarchive(home, "import", "mbox", str(cut), json_out=True, check=1).result
    assert again["archived"] == 0 and again["errors"] == 1
    full = tmp_path / "old-whole.mbox.gz"
    full.write_bytes(blob)
    r = mailarchive(home, "import", "mbox", str(full), json_out=True).result
    assert r["errors"] == 0 and r["archived"] == 60 - (whole - 1)
    assert set(mails) <= set(_archived(home, tmp_path, "out2").values())


def test_damaged_xz_and_a_failed_gzip_checksum_are_errors_that_keep_what_was_read(tmp_path):
    data, mails = _mbox(40)
    home = tmp_path / "home"
    mailarchive(home, "init", "--kdf-profile", "test", "--key-backup", str(tmp_path / "kb.txt"))

    xz = bytearray(lzma.compress(data, format=lzma.FORMAT_XZ, filters=[{"id": lzma.FILTER_LZMA2, "preset": 1,
                                                                        "dict_size": 1 << 16}]))
    mid = len(xz) // 2
    xz[mid:mid + 32] = bytes(b ^ 0x5A for b in xz[mid:mid + 32])
    (tmp_path / "d.mbox.xz").write_bytes(bytes(xz))
    r = mailarchive(home, "import", "mbox", str(tmp_path / "d.mbox.xz"), json_out=True, check=1).result
    assert r["errors"] == 1 and "damaged from some point on" in r["sources"][0]["problems"][-1]["message"]
    kept = set(_archived(home, tmp_path, "out1").values())
    # xz checks each block, so what it gave decoded whole: every message but the last is one of the originals
    assert r["archived"] >= 1 and len(kept - set(mails)) <= 1

    gz = bytearray(gzip.compress(data))
    gz[-6] ^= 1  # the stored CRC-32: all data given, then the check fails
    (tmp_path / "c.mbox.gz").write_bytes(bytes(gz))
    r = mailarchive(home, "import", "mbox", str(tmp_path / "c.mbox.gz"), json_out=True, check=1).result
    assert r["seen"] == 40 and r["errors"] == 1 and len(_flagged(home)) <= 1
    assert "may hold damaged bytes" in r["sources"][0]["problems"][-1]["message"]
    assert set(mails) <= set(_archived(home, tmp_path, "out2").values())


def test_a_tar_or_a_zstd_file_given_as_an_mbox_is_refused_naming_it(tmp_path):
    """``import mbox`` of a hoster's tar of mail (plain or gzipped) or of a zstd-compressed mbox: exit 3 with what the
    file is and how to unpack it, instead of "N bytes before the first From_ line are not a message"."""
    import io
    import tarfile

    import zstandard

    mbox, _mails = _mbox(3)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("export/inbox.mbox")
        info.size = len(mbox)
        tar.addfile(info, io.BytesIO(mbox))
    (tmp_path / "mail.tar").write_bytes(buf.getvalue())
    (tmp_path / "mail.tar.gz").write_bytes(gzip.compress(buf.getvalue()))
    (tmp_path / "inbox.mbox.zst").write_bytes(zstandard.ZstdCompressor().compress(mbox))
    home = tmp_path / "home"
    mailarchive(home, "init", "--kdf-profile", "test", "--key-backup", str(tmp_path / "kb.txt"))
    for name, what in (("mail.tar", "a tar archive (its first member 'export/inbox.mbox'), not an mbox"),
                       ("mail.tar.gz", "a gzip-compressed tar archive (its first member 'export/inbox.mbox')"),
                       ("inbox.mbox.zst", "zstd-compressed file: not supported as an mbox")):
        p = mailarchive(home, "import", "mbox", str(tmp_path / name), check=3)
        assert f"{name}: {what}" in " ".join(p.stderr.split())
    assert mailarchive(home, "sql", "SELECT count(*) AS n FROM messages", json_out=True).result == [{"n": 0}]
