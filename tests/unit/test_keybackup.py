"""The printable key backup: format, typo detection, wrong password, tampering (docs/reliability.md G1-G4, B7, A8)."""
from __future__ import annotations

import base64
import os
import stat
import struct
import uuid
from dataclasses import replace
from datetime import datetime, timezone

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from hypothesis import given, settings
from hypothesis import strategies as st

from toolkit import crypto
from toolkit import keybackup as kb
from toolkit.errors import (
    ExitCode,
    ForeignArchiveError,
    KeyBackupFormatError,
    StorageError,
    UsageError,
    WrongKeyError,
)
from toolkit.keybackup import KdfParams, export_key_backup, import_key_backup, write_key_backup

CHEAP = KdfParams(memory_kib=8192, iterations=1, lanes=4)
TINY = KdfParams(memory_kib=32, iterations=1, lanes=1)

KEY = bytes(range(32))
UUID = uuid.UUID("12345678-1234-5678-1234-567812345678")
PASSWORD = b"correct horse battery staple"
SALT = bytes(range(100, 116))
CREATED = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)


def _nonce(n: int) -> bytes:
    return bytes(range(200, 200 + n))


# Physical (1-based) line numbers of the fields in an exported text.
MAGIC_LINE, ARCHIVE_LINE, FP_LINE, KDF_LINE, SALT_LINE, CREATED_LINE = 7, 8, 9, 10, 11, 12
DATA_LINES = list(range(13, 19))  # 01 .. 06
CHECKSUM_LINE = 19

GOLDEN = """\
# Key backup of a mailarchive archive. Keep it safe and apart from its password:
# together they open the whole archive. Without both, the archive cannot be read.
# To restore, type this text into a file and run: mailarchive key restore --from FILE
# Case, spaces and dashes do not matter; O reads as 0, I and L as 1.
# The last character of each numbered line checks that line; the checksum checks all.

MAILARCHIVE KEY BACKUP v1
archive: 12345678-1234-5678-1234-567812345678
fingerprint: 84aa-acf5-f155-4c26-8a09-d2fe-3c18-56c4
kdf: argon2id m=8192 t=1 p=4
salt: CHJP CSV8 D5N6 PV3D DSQQ 0WBJ EC  J
created: 2024-05-01T12:00:00Z
01: S34W NJYC SQ7C ZM6H  S
02: TB9T 8QPN SFZH N08W  Z
03: DVBT VK48 8BCY Y4PV  6
04: M3QF SK72 FQG6 0ZSV  P
05: 5A8R 7N9E QRFG B068  6
06: MFE5 05S0 3WCY CFRF  D
checksum: PB62 18CH
"""


@pytest.fixture(scope="module")
def golden_text() -> str:
    return export_key_backup(
        KEY, UUID, PASSWORD, salt=SALT, nonce_source=_nonce, created=CREATED, kdf_params=CHEAP
    )


def _lines(text: str) -> list[str]:
    return text.split("\n")


def _join(lines: list[str]) -> str:
    return "\n".join(lines)


def _set_line(text: str, lineno: int, new: str) -> str:
    lines = _lines(text)
    lines[lineno - 1] = new
    return _join(lines)


def _format_error(text: str) -> KeyBackupFormatError:
    """The structural error of ``text``; parsing alone, no KDF."""
    with pytest.raises(KeyBackupFormatError) as info:
        kb.parse_key_backup(text)
    return info.value


def _rewrite(text: str, **changes) -> str:
    """Re-render a parsed backup with some fields changed and a *valid* checksum (what an attacker can do)."""
    p = replace(kb.parse_key_backup(text), **changes)
    return kb._render(p.archive_uuid, p.fingerprint, p.kdf_params, p.salt, p.created, p.wrapped)


def _checked_positions(line: str) -> list[int]:
    """Indexes of the base32 characters (content and check character) after the label."""
    start = line.index(":") + 1
    return [i for i in range(start, len(line)) if line[i] not in " "]


# --- round trip and golden vector --------------------------------------------


def test_round_trip_returns_identical_key_uuid_and_fingerprint():
    key = crypto.new_archive_key()
    archive = uuid.uuid4()
    text = export_key_backup(key, archive, b"pw one", kdf_params=CHEAP)
    got = import_key_backup(text, b"pw one", expected_uuid=archive)
    assert got.key == key
    assert got.archive_uuid == archive
    assert got.fingerprint == crypto.fingerprint(key, archive)
    assert got.kdf_params == CHEAP
    assert key.hex() not in repr(got)  # the key never shows in a repr or log line


@settings(max_examples=20, deadline=None)
@given(key=st.binary(min_size=32, max_size=32), password=st.binary(min_size=1, max_size=40), u=st.uuids())
def test_round_trip_property(key, password, u):
    text = export_key_backup(key, u, password, kdf_params=TINY)
    assert import_key_backup(text, password, expected_uuid=u).key == key


def test_two_exports_differ_in_salt_and_nonce():
    a = export_key_backup(KEY, UUID, PASSWORD, kdf_params=TINY, created=CREATED)
    b = export_key_backup(KEY, UUID, PASSWORD, kdf_params=TINY, created=CREATED)
    assert a != b
    assert kb.parse_key_backup(a).salt != kb.parse_key_backup(b).salt


def test_golden_vector_pins_the_format(golden_text):
    """A change of one byte of the format must fail here (STYLE: write the format down, then pin it)."""
    assert golden_text == GOLDEN
    got = import_key_backup(GOLDEN, PASSWORD, expected_uuid=UUID)
    assert got.key == KEY
    assert got.fingerprint == "84aa-acf5-f155-4c26-8a09-d2fe-3c18-56c4"
    assert got.created == CREATED


def test_golden_vector_decrypts_with_an_independent_reading_of_the_spec():
    """Decode with the stdlib base32 and unwrap with plain Argon2id + AES-GCM, not through keybackup."""
    to_rfc4648 = str.maketrans("0123456789ABCDEFGHJKMNPQRSTVWXYZ", "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")

    def field(label: str) -> str:
        line = next(s for s in GOLDEN.splitlines() if s.startswith(label + ":"))
        return line.split(":", 1)[1]

    def data(value: str, with_check: bool = True) -> str:
        chars = value.replace(" ", "")
        return (chars[:-1] if with_check else chars).translate(to_rfc4648)

    salt_chars = data(field("salt"))
    salt = base64.b32decode(salt_chars + "=" * (-len(salt_chars) % 8))
    wrapped = b"".join(base64.b32decode(data(field(f"{i:02d}"))) for i in range(1, 7))
    assert salt == SALT
    assert len(wrapped) == 60 and wrapped[:12] == _nonce(12)

    wrap_key = Argon2id(salt=salt, length=32, iterations=1, lanes=4, memory_cost=8192).derive(PASSWORD)
    aad = b"mailarchive/v1/key-backup\x00" + UUID.bytes + b"argon2id" + struct.pack(">QQQ", 8192, 1, 4) + salt
    assert AESGCM(wrap_key).decrypt(wrapped[:12], wrapped[12:], aad) == KEY


def test_defaults_are_rfc9106_second_option_end_to_end():
    key = crypto.new_archive_key()
    archive = uuid.uuid4()
    text = export_key_backup(key, archive, PASSWORD)
    assert _lines(text)[KDF_LINE - 1] == "kdf: argon2id m=65536 t=3 p=4"
    got = import_key_backup(text, PASSWORD, expected_uuid=archive)
    assert got.key == key
    assert got.kdf_params == KdfParams(memory_kib=65536, iterations=3, lanes=4) == kb.RFC9106_LOW_MEMORY


# --- typos: every one named by its line (G4, B7) ------------------------------


@pytest.mark.parametrize("lineno", [SALT_LINE, *DATA_LINES])
def test_every_single_character_substitution_names_its_line(lineno):
    lines = _lines(GOLDEN)
    original = lines[lineno - 1]
    tried = 0
    for pos in _checked_positions(original):
        for sub in kb.ALPHABET:
            if sub == original[pos]:
                continue
            typo = original[:pos] + sub + original[pos + 1 :]
            err = _format_error(_set_line(GOLDEN, lineno, typo))
            assert err.line == lineno, (typo, str(err))
            label = "the 'salt:' line" if lineno == SALT_LINE else f"line {DATA_LINES.index(lineno) + 1:02d}"
            assert str(err).startswith(f"{label} (line {lineno} of the file): check character does not match")
            tried += 1
    assert tried == len(_checked_positions(original)) * 31


@pytest.mark.parametrize("lineno", [SALT_LINE, *DATA_LINES])
def test_every_swap_of_neighbouring_characters_names_its_line(lineno):
    original = _lines(GOLDEN)[lineno - 1]
    chars = _checked_positions(original)
    swaps = 0
    for a, b in zip(chars, chars[1:]):
        if original[a] == original[b]:
            continue
        s = list(original)
        s[a], s[b] = s[b], s[a]
        err = _format_error(_set_line(GOLDEN, lineno, "".join(s)))
        assert err.line == lineno
        swaps += 1
    assert swaps > 10


@pytest.mark.parametrize("bad", ["U", "*", "Ø"])
def test_a_character_outside_the_alphabet_names_its_line(bad):
    lineno = DATA_LINES[2]
    line = _lines(GOLDEN)[lineno - 1]
    err = _format_error(_set_line(GOLDEN, lineno, line[:6] + bad + line[7:]))
    assert err.line == lineno
    assert "not a valid character" in str(err)


def test_a_dropped_or_doubled_character_names_its_line():
    lineno = DATA_LINES[4]
    line = _lines(GOLDEN)[lineno - 1]
    for typo in (line[:5] + line[6:], line[:5] + line[5] + line[5:]):
        err = _format_error(_set_line(GOLDEN, lineno, typo))
        assert err.line == lineno
        assert "character missing or doubled" in str(err)


@pytest.mark.parametrize("missing", range(6))
def test_a_missing_data_line_is_named(missing):
    lines = _lines(GOLDEN)
    del lines[DATA_LINES[missing] - 1]
    err = _format_error(_join(lines))
    # The line now standing where the missing one belonged (the next data line, or the checksum line).
    assert err.line == DATA_LINES[missing]
    assert f"{missing + 1:02d}" in str(err)


def test_two_swapped_lines_are_named():
    lines = _lines(GOLDEN)
    i, j = DATA_LINES[1] - 1, DATA_LINES[4] - 1  # 02 and 05
    lines[i], lines[j] = lines[j], lines[i]
    err = _format_error(_join(lines))
    assert err.line == DATA_LINES[1]
    assert "found data line 05 where 02 belongs" in str(err)


def test_a_line_typed_under_the_wrong_number_is_named():
    """The content of line 03 typed under the label 02: the number is part of the check."""
    lines = _lines(GOLDEN)
    content_03 = lines[DATA_LINES[2] - 1].split(":", 1)[1]
    lines[DATA_LINES[1] - 1] = "02:" + content_03
    err = _format_error(_join(lines))
    assert err.line == DATA_LINES[1]
    assert "check character does not match" in str(err)


def test_truncated_file_names_the_line_after_the_end():
    lines = _lines(GOLDEN)[: DATA_LINES[2]]  # ends after 03
    err = _format_error(_join(lines))
    assert err.line == DATA_LINES[3]
    assert "ends before data line 04" in str(err)


def test_whole_file_checksum_catches_a_double_typo_the_line_check_misses():
    """A 1-in-32 collision of the per-line check: two typos on one line that keep it consistent."""
    lineno = DATA_LINES[0]
    line = _lines(GOLDEN)[lineno - 1]
    p1, p2 = _checked_positions(line)[0], _checked_positions(line)[1]
    for a in kb.ALPHABET:
        for b in kb.ALPHABET:
            if (a, b) == (line[p1], line[p2]):
                continue
            typo = line[:p1] + a + b + line[p2 + 1 :]
            text = _set_line(GOLDEN, lineno, typo)
            try:
                kb.parse_key_backup(text)
            except KeyBackupFormatError as err:
                if err.line == lineno:
                    continue  # caught by the line check
                assert err.line == CHECKSUM_LINE
                assert "checksum does not match" in str(err)
                return
            pytest.fail("a changed data line passed every check")
    pytest.fail("found no line-check collision to test with")


@pytest.mark.parametrize(
    "lineno, old, new",
    [
        (ARCHIVE_LINE, "12345678-1234", "12345679-1234"),
        (FP_LINE, "84aa", "84ab"),
        (CREATED_LINE, "12:00:00", "12:00:01"),
        (KDF_LINE, "m=8192", "m=8190"),  # memory lowered within the sane range
        (CHECKSUM_LINE, "PB62", "PB63"),
    ],
)
def test_a_typo_in_a_line_without_check_character_fails_the_checksum(lineno, old, new):
    line = _lines(GOLDEN)[lineno - 1]
    assert old in line
    err = _format_error(_set_line(GOLDEN, lineno, line.replace(old, new)))
    assert err.line == CHECKSUM_LINE
    assert "checksum does not match" in str(err)


# --- what a person typing it back may do --------------------------------------


def test_crockford_aliases_case_spacing_and_crlf_are_tolerated():
    """Decision: O reads as 0, I and L as 1, case/spaces/dashes do not matter; U is invalid (tested above)."""
    lines = _lines(GOLDEN)
    for n in [SALT_LINE, *DATA_LINES, CHECKSUM_LINE]:
        label, value = lines[n - 1].split(":", 1)
        value = value.lower().replace("0", "o").replace("1", "l")
        lines[n - 1] = f"{label}:{value}"
    assert "o" in _join(lines[SALT_LINE - 1 :]) and "l" in _join(lines[SALT_LINE - 1 :])
    lines[DATA_LINES[0] - 1] = "1: " + lines[DATA_LINES[0] - 1][4:].replace(" ", "-")  # "1:" for "01:", dashes
    lines[SALT_LINE - 1] = "SALT:" + lines[SALT_LINE - 1][5:].replace(" ", "")  # no spaces at all
    lines[MAGIC_LINE - 1] = "mailarchive  key backup V1"
    text = "\r\n".join(lines)  # typed on Windows
    got = import_key_backup(text, PASSWORD, expected_uuid=UUID)
    assert got.key == KEY


def test_capital_i_and_o_read_as_one_and_zero():
    text = _set_line(GOLDEN, CHECKSUM_LINE, "checksum: PB62 I8CH")
    lineno = DATA_LINES[4]
    text = _set_line(text, lineno, _lines(GOLDEN)[lineno - 1].replace("B068", "BO68"))
    assert import_key_backup(text, PASSWORD).key == KEY
    # and the letter U, which Crockford leaves out, is not taken for V
    err = _format_error(_set_line(GOLDEN, DATA_LINES[5], _lines(GOLDEN)[DATA_LINES[5] - 1].replace("CFRF", "CFRU")))
    assert err.line == DATA_LINES[5]


def test_comments_and_blank_lines_may_be_left_out_and_lines_are_counted_as_typed():
    lines = [s for s in _lines(GOLDEN) if s and not s.startswith("#")]
    text = _join(lines)
    assert import_key_backup(text, PASSWORD).key == KEY
    # Without the 6 instruction lines, data line 01 is physical line 7.
    first = lines[6]
    assert first.startswith("01:")
    typo = first[:4] + ("A" if first[4] != "A" else "B") + first[5:]
    lines[6] = typo
    err = _format_error(_join(lines))
    assert err.line == 7
    assert str(err).startswith("line 01 (line 7 of the file): ")


def test_text_that_is_not_a_key_backup():
    assert _format_error("hello\nworld\n").line == 1
    assert _format_error("").line == 1
    assert _format_error(GOLDEN.replace("v1", "v2")).line == MAGIC_LINE


def test_text_after_the_checksum_is_refused():
    err = _format_error(GOLDEN + "07: AAAA AAAA AAAA AAAA  A\n")
    assert err.line == CHECKSUM_LINE + 1


# --- wrong password, tampering, absurd parameters (G1, G3) ---------------------


def test_wrong_password_gives_wrong_key_error():
    with pytest.raises(WrongKeyError) as info:
        import_key_backup(GOLDEN, b"correct horse battery stapler")
    assert str(info.value) == "wrong password or damaged key backup"
    assert info.value.exit_code == ExitCode.WRONG_KEY


@pytest.mark.parametrize(
    "change",
    [
        # memory lowered within the sane range, checksum recomputed: the AEAD over the header fails
        {"kdf_params": KdfParams(memory_kib=4096, iterations=1, lanes=4)},
        {"kdf_params": KdfParams(memory_kib=8192, iterations=1, lanes=2)},
        {"archive_uuid": uuid.UUID("12345678-1234-5678-1234-567812345679")},
        {"salt": bytes(16)},
        {"wrapped": bytes(60)},
    ],
    ids=["memory", "lanes", "uuid", "salt", "wrapped"],
)
def test_consistent_tampering_with_the_header_is_the_same_error_as_a_wrong_password(change):
    """Without the checksum to catch it (an attacker recomputes it), the AEAD does."""
    tampered = _rewrite(GOLDEN, **change)
    kb.parse_key_backup(tampered)  # structurally valid
    with pytest.raises(WrongKeyError, match="^wrong password or damaged key backup$"):
        import_key_backup(tampered, PASSWORD)


def test_a_changed_fingerprint_is_refused_after_unwrapping():
    tampered = _rewrite(GOLDEN, fingerprint="0000-0000-0000-0000-0000-0000-0000-0000")
    with pytest.raises(KeyBackupFormatError) as info:
        import_key_backup(tampered, PASSWORD)
    assert info.value.line == FP_LINE
    assert "fingerprint" in str(info.value)


def test_created_is_informational_and_outside_the_aead():
    later = datetime(2030, 1, 1, tzinfo=timezone.utc)
    got = import_key_backup(_rewrite(GOLDEN, created=later), PASSWORD)
    assert got.key == KEY and got.created == later


def _count_kdf_calls(monkeypatch) -> list:
    """Record every key derivation: a check that must come before the KDF asserts none ran
    (counting calls instead of a wall-clock limit, which flakes on a loaded machine)."""
    calls: list = []
    real = kb._derive_wrap_key

    def counting(*args, **kwargs):
        calls.append(args[2] if len(args) > 2 else kwargs.get("params"))
        return real(*args, **kwargs)

    monkeypatch.setattr(kb, "_derive_wrap_key", counting)
    return calls


@pytest.mark.parametrize(
    "kdf",
    [
        "argon2id m=1099511627776 t=1 p=4",  # 2^40 KiB
        "argon2id m=8192 t=1000000000 p=4",  # t = 10^9
        "argon2id m=4194305 t=3 p=4",  # just above 4 GiB
        "argon2id m=8192 t=101 p=4",
        "argon2id m=8192 t=1 p=65",
        "argon2id m=8192 t=0 p=4",
        "argon2id m=16 t=1 p=4",  # below Argon2's 8 KiB per lane
        "argon2id m=99999999999999999999999 t=1 p=4",
        "scrypt m=8192 t=1 p=4",
        "argon2id m=8192 t=1",
    ],
)
def test_absurd_kdf_parameters_are_refused_before_any_kdf_call(kdf, monkeypatch):
    text = _set_line(GOLDEN, KDF_LINE, f"kdf: {kdf}")
    calls = _count_kdf_calls(monkeypatch)
    with pytest.raises(KeyBackupFormatError) as info:
        import_key_backup(text, PASSWORD)
    assert calls == []  # refused before any memory was allocated for the KDF
    assert info.value.line == KDF_LINE


def test_structural_checks_come_before_the_kdf(monkeypatch):
    """A backup with the most expensive sane parameters (4 GiB, t=100) fails fast on a foreign uuid."""
    heavy = _rewrite(GOLDEN, kdf_params=KdfParams(memory_kib=kb.MAX_MEMORY_KIB, iterations=100, lanes=4))
    other = uuid.UUID("87654321-4321-8765-4321-876543218765")
    calls = _count_kdf_calls(monkeypatch)
    with pytest.raises(ForeignArchiveError):
        import_key_backup(heavy, PASSWORD, expected_uuid=other)
    assert calls == []


# --- foreign archive (G2) -------------------------------------------------------


def test_foreign_archive_names_both_uuids():
    other = uuid.UUID("87654321-4321-8765-4321-876543218765")
    with pytest.raises(ForeignArchiveError) as info:
        import_key_backup(GOLDEN, PASSWORD, expected_uuid=other)
    assert str(UUID) in str(info.value) and str(other) in str(info.value)


# --- export refuses bad input ----------------------------------------------------


def test_export_refuses_bad_input():
    with pytest.raises(UsageError):
        export_key_backup(KEY, UUID, b"", kdf_params=TINY)
    with pytest.raises(UsageError):
        export_key_backup(KEY, UUID, PASSWORD, kdf_params=KdfParams(memory_kib=2**40, iterations=1, lanes=1))
    with pytest.raises(ValueError):
        export_key_backup(KEY[:31], UUID, PASSWORD, kdf_params=TINY)
    with pytest.raises(ValueError):
        export_key_backup(KEY, UUID, PASSWORD, kdf_params=TINY, salt=b"short")
    with pytest.raises(ValueError):
        export_key_backup(KEY, UUID, PASSWORD, kdf_params=TINY, created=datetime(2024, 1, 1))


# --- writing the file (A8) ------------------------------------------------------


def test_write_key_backup_is_0600_leaves_no_temp_and_reads_back(tmp_path):
    key = crypto.new_archive_key()
    archive = uuid.uuid4()
    target = tmp_path / "archive-key.txt"
    write_key_backup(target, key, archive, PASSWORD, kdf_params=CHEAP)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["archive-key.txt"]
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
    got = import_key_backup(target.read_text(), PASSWORD, expected_uuid=archive)
    assert got.key == key


def test_write_key_backup_replaces_an_older_backup_whole(tmp_path):
    target = tmp_path / "key.txt"
    target.write_text("old\n")
    os.chmod(target, 0o644)
    write_key_backup(target, KEY, UUID, PASSWORD, kdf_params=TINY)
    assert import_key_backup(target.read_text(), PASSWORD).key == KEY
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["key.txt"]


def test_write_key_backup_failure_leaves_nothing(tmp_path):
    missing_dir = tmp_path / "no-such-dir" / "key.txt"
    with pytest.raises(StorageError):
        write_key_backup(missing_dir, KEY, UUID, PASSWORD, kdf_params=TINY)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(UsageError):
        write_key_backup(tmp_path / "key.txt", KEY, UUID, b"", kdf_params=TINY)
    assert list(tmp_path.iterdir()) == []
