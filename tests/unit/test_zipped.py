"""The zip reader of ``import share``/``import eml`` (RELIABILITY K7): caps counted on the bytes
actually decompressed, damaged and encrypted members reported by name, the other members still read."""
from __future__ import annotations

import io
import zipfile

from importers.share import member_items
from importers.zipped import ZipLimits, folder_parts, label, scan_zip
from toolkit.source import SourceMail, SourceProblem


def _eml(n: int) -> bytes:
    return f"From: a{n}@example.com\r\nSubject: m{n}\r\nMessage-ID: <m{n}@x>\r\n\r\nbody {n}\r\n".encode()


def _zip(members: dict[str, bytes], method=zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _scan(data: bytes, **limits):
    return list(scan_zip(io.BytesIO(data), "z.zip", "z.zip", None, ZipLimits(**limits), member_items))


def _by_ref(items):
    return {i.ref: i for i in items}


def test_total_cap_stops_the_container_and_names_the_member():
    data = _zip({"a.eml": _eml(1) + b"x" * 5000, "b.eml": _eml(2) + b"y" * 5000, "c.eml": _eml(3)})
    items = _by_ref(_scan(data, max_total=8000))
    assert isinstance(items["z.zip!a.eml"], SourceMail)
    assert isinstance(items["z.zip!b.eml"], SourceProblem) and "expand past 8000 bytes" in items["z.zip!b.eml"].message
    assert "z.zip!c.eml" not in items


def test_member_cap_skips_only_that_member():
    data = _zip({"big.eml": _eml(1) + b"x" * 10_000, "small.eml": _eml(2)})
    items = _by_ref(_scan(data, max_member=4096))
    assert "larger than 4096 bytes" in items["z.zip!big.eml"].message
    assert items["z.zip!small.eml"].raw == _eml(2)


def test_ratio_cap_stops_a_bomb_early():
    items = _by_ref(_scan(_zip({"bomb.eml": _eml(1) + b"\0" * (8 << 20), "ok.eml": _eml(2)}),
                          max_ratio=50, max_ratio_after=1 << 20))
    assert "zip bomb: expands past" in items["z.zip!bomb.eml"].message
    assert "z.zip!ok.eml" not in items  # the rest of a bomb's container is not read


def test_a_lying_declared_size_is_a_problem_naming_the_member():
    bomb = _eml(1) + b"\0" * (4 << 20)
    data = bytearray(_zip({"bomb.eml": bomb, "ok.eml": _eml(2)}))
    for sig, off in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):  # declared uncompressed size: 100 bytes
        at = data.find(sig)
        data[at + off:at + off + 4] = (100).to_bytes(4, "little")
    items = _by_ref(_scan(bytes(data)))
    assert isinstance(items["z.zip!bomb.eml"], SourceProblem) and "not readable" in items["z.zip!bomb.eml"].message
    assert items["z.zip!ok.eml"].raw == _eml(2)


def test_damaged_member_is_a_problem_and_the_rest_is_read():
    good = _eml(2)
    data = bytearray(_zip({"bad.eml": _eml(1), "good.eml": good}, zipfile.ZIP_STORED))
    at = data.find(b"body 1")
    data[at] ^= 0xFF  # the stored bytes no longer match the CRC-32
    items = _by_ref(_scan(bytes(data)))
    assert "not readable" in items["z.zip!bad.eml"].message and "CRC" in items["z.zip!bad.eml"].message
    assert items["z.zip!good.eml"].raw == good


def test_not_a_zip_and_encrypted_members():
    assert "zip file not readable" in _scan(b"PK\x03\x04garbage")[0].message
    data = bytearray(_zip({"secret.eml": _eml(1)}))
    for sig, off in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = data.find(sig)
        data[at + off] |= 0x01  # the encryption flag
    (item,) = _scan(bytes(data))
    assert "encrypted" in item.message


def test_member_names_are_labels_only():
    assert label("a\x01b\x7f.eml") == "a\\x01b\\x7f.eml"
    assert folder_parts("../../etc/passwd") == ["etc"]
    assert folder_parts("/abs/x/../y.eml") == ["abs", "x"]
    assert folder_parts("a\\..\\b\\c.eml") == ["a", "b"]
    assert folder_parts("ctl\x01/x.eml") == []
