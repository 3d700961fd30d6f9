"""The printable key backup (docs/formats.md, docs/reliability.md "Printable key backup").

The 32-byte archive key is wrapped with AES-256-GCM under a key that
Argon2id derives from the user's password (default: RFC 9106 second
option, m = 64 MiB, t = 3, p = 4, 16-byte random salt). The result is a
short text that can be printed and typed back from paper::

    # ... instructions (lines starting with '#' are ignored) ...
    MAILARCHIVE KEY BACKUP v1
    archive: 5f0c...-...
    fingerprint: 1a2b-3c4d-...
    kdf: argon2id m=65536 t=3 p=4
    salt: XXXX XXXX XXXX XXXX XXXX XXXX XX  K
    created: 2024-05-01T12:00:00Z
    01: XXXX XXXX XXXX XXXX  K
    ...
    06: XXXX XXXX XXXX XXXX  K
    checksum: XXXX XXXX

Format decisions (pinned by the golden vector in the tests):

* Binary fields are Crockford base32: on input, case, spaces and dashes do
  not matter, ``O`` reads as ``0`` and ``I``/``L`` as ``1``; ``U`` is
  invalid. The hex of the ``archive`` and ``fingerprint`` lines reads
  ``O``, ``I`` and ``L`` the same way, as the printed instructions say.
* A typo on a checked line is named the way the paper names it: "line 03"
  for numbered data line 03, "the 'salt:' line", each followed by the line
  of the file in brackets (``KeyBackupFormatError.line``).
* The wrapped key (nonce 12 + ciphertext 32 + tag 16 = 60 bytes) is six
  numbered lines of 10 bytes (16 characters). Each numbered line and the
  salt line end in a check character over the line's number and content: a
  linear code over GF(32) with distinct weights, so *every* single-character
  substitution and every swap of two neighbouring characters on that line
  is caught and named by its (physical, 1-based) line number. The number is
  part of the check, so a line typed under the wrong number is caught; a
  missing or moved line is named by the number it carries.
* The ``checksum`` line is 40 bits of SHA-256 over all structured fields
  (version, archive, fingerprint, kdf, salt, created, wrapped key). It
  catches typos in the lines without a check character and any collision
  the per-line checks miss. It is not a MAC: an attacker can recompute it.
* The AEAD's associated data is the canonical header: magic and version,
  archive uuid, KDF name and parameters, salt. A wrong password and any
  change to those fields give the same :class:`WrongKeyError`.
* ``created`` is informational: it is covered by the checksum but not by
  the AEAD. ``fingerprint`` is not in the AAD either; import recomputes it
  from the unwrapped key and refuses a backup whose printed one differs.
* KDF parameters outside sane limits are refused while parsing, before any
  memory is allocated (docs/reliability.md G3). Import accepts any parameters
  within those limits (an attacker lowering them only breaks the AEAD);
  the default on export is the RFC 9106 second option.

Password policy (:func:`password_problem`, applied by every command that
sets a key backup password, before anything is written): at least
``MIN_PASSWORD_LENGTH`` (12) characters; not in the built-in list of common
passwords (``data/common_passwords.txt``, compared case-insensitively); not
a trivial pattern: one character repeated, a shorter piece repeated
("passwordpassword"), or a run along the digits, the alphabet or a keyboard
row. The low-level :func:`export_key_backup` does not apply it, so a
backup made with an older, weaker password can still be read and tested.
"""
from __future__ import annotations

import hashlib
import importlib.resources
import os
import re
import secrets as _secrets
import struct
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

from . import crypto, faults
from .errors import ForeignArchiveError, KeyBackupFormatError, StorageError, UsageError, WrongKeyError

MAGIC_LINE = "MAILARCHIVE KEY BACKUP v1"
KDF_NAME = "argon2id"
SALT_SIZE = 16
WRAPPED_SIZE = crypto.NONCE_SIZE + crypto.KEY_SIZE + crypto.TAG_SIZE  # 60
BYTES_PER_LINE = 10
DATA_LINES = WRAPPED_SIZE // BYTES_PER_LINE  # 6
CHECKSUM_BYTES = 5

_AAD_MAGIC = b"mailarchive/v1/key-backup\x00"
WRONG_KEY_MESSAGE = "wrong password or damaged key backup"

# Hard limits, checked before any KDF call (G3).
MAX_MEMORY_KIB = 4 * 1024 * 1024  # 4 GiB
MAX_ITERATIONS = 100
MAX_LANES = 64

INSTRUCTIONS = (
    "# Key backup of a mailarchive archive. Keep it safe and apart from its password:",
    "# together they open the whole archive. Without both, the archive cannot be read.",
    "# To restore, type this text into a file and run: mailarchive key restore --from FILE",
    "# Case, spaces and dashes do not matter; O reads as 0, I and L as 1.",
    "# The last character of each numbered line checks that line; the checksum checks all.",
)


@dataclass(frozen=True)
class KdfParams:
    """Argon2id parameters: memory in KiB, iterations (t), lanes (p)."""

    memory_kib: int = 65536
    iterations: int = 3
    lanes: int = 4

    def text(self) -> str:
        return f"{KDF_NAME} m={self.memory_kib} t={self.iterations} p={self.lanes}"

    def problem(self) -> str | None:
        """Why these parameters are refused, or None if they are within limits."""
        if not 1 <= self.lanes <= MAX_LANES:
            return f"lanes p={self.lanes} is out of range (1 to {MAX_LANES})"
        if not 1 <= self.iterations <= MAX_ITERATIONS:
            return f"iterations t={self.iterations} is out of range (1 to {MAX_ITERATIONS})"
        if not 8 * self.lanes <= self.memory_kib <= MAX_MEMORY_KIB:
            return f"memory m={self.memory_kib} KiB is out of range ({8 * self.lanes} to {MAX_MEMORY_KIB} KiB)"
        return None


RFC9106_LOW_MEMORY = KdfParams(memory_kib=65536, iterations=3, lanes=4)

#: The key-backup KDF profiles an archive can be created with (``init --kdf-profile``), recorded in
#: its configuration so that later backups use the same one. ``strong`` is the default and the only
#: one for real archives; ``test`` (Argon2id with 8 KiB, one pass) exists so that test suites that
#: create hundreds of throwaway archives do not spend most of an ``init`` in the KDF: a backup
#: written under it falls to a password guess at once. docs/formats.md, "Key backup".
KDF_PROFILES = {"strong": RFC9106_LOW_MEMORY, "test": KdfParams(memory_kib=8, iterations=1, lanes=1)}
DEFAULT_KDF_PROFILE = "strong"


def kdf_profile_params(profile: str) -> KdfParams:
    """The Argon2id parameters of a key-backup KDF profile (an unknown name is a usage error)."""
    try:
        return KDF_PROFILES[profile]
    except KeyError:
        raise UsageError(f"unknown key-backup KDF profile {profile!r} (known: {', '.join(KDF_PROFILES)})") from None


@dataclass(frozen=True)
class RecoveredKey:
    key: bytes = field(repr=False)
    archive_uuid: uuid.UUID
    fingerprint: str
    kdf_params: KdfParams
    created: datetime


@dataclass(frozen=True)
class ParsedKeyBackup:
    archive_uuid: uuid.UUID
    fingerprint: str
    kdf_params: KdfParams
    salt: bytes
    created: datetime
    wrapped: bytes
    line_of: dict[str, int] = field(repr=False)  # field name -> physical line number


# --- password policy ---------------------------------------------------------

MIN_PASSWORD_LENGTH = 12
_RUNS = ("0123456789" * 4, "abcdefghijklmnopqrstuvwxyz", "qwertyuiopasdfghjklzxcvbnm", "qwertzuiopasdfghjklyxcvbnm", "azertyuiopqsdfghjklmwxcvbn")


def _common_passwords() -> frozenset[str]:
    text = importlib.resources.files("toolkit").joinpath("data/common_passwords.txt").read_text(encoding="utf-8")
    return frozenset(line.strip().lower() for line in text.splitlines() if line.strip() and not line.startswith("#"))


def password_problem(password: str) -> str | None:
    """Why ``password`` is too weak for a key backup, or None if it is acceptable."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"the key backup password is too short: {len(password)} < {MIN_PASSWORD_LENGTH} characters"
    folded = password.casefold()
    if folded in _common_passwords():
        return "the key backup password is in the list of common passwords; choose another"
    if len(set(folded)) == 1:
        return "the key backup password is one character repeated; choose another"
    n = len(folded)
    for size in range(1, n // 2 + 1):
        if n % size == 0 and folded[:size] * (n // size) == folded:
            return "the key backup password is a short piece repeated (like 'passwordpassword'); choose another"
    if any(folded in run or folded in run[::-1] for run in _RUNS):
        return "the key backup password is a simple run of keys or digits; choose another"
    return None


def check_password(password: str) -> None:
    """Raise :class:`UsageError` (exit 2) naming why ``password`` is refused."""
    problem = password_problem(password)
    if problem:
        raise UsageError(problem)


# --- Crockford base32 and the per-line check character --------------------

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_VALUE = {c: i for i, c in enumerate(ALPHABET)}
_VALUE.update({"O": 0, "I": 1, "L": 1})


def _b32encode(data: bytes) -> str:
    nbits = len(data) * 8
    nchars = -(-nbits // 5)
    n = int.from_bytes(data, "big") << (nchars * 5 - nbits)
    return "".join(ALPHABET[(n >> (5 * (nchars - 1 - i))) & 31] for i in range(nchars))


def _b32decode(values: list[int], nbytes: int) -> bytes | None:
    """Bytes from 5-bit values; None if the padding bits are not zero."""
    n = 0
    for v in values:
        n = (n << 5) | v
    pad = len(values) * 5 - nbytes * 8
    if pad < 0 or n & ((1 << pad) - 1):
        return None
    return (n >> pad).to_bytes(nbytes, "big")


def _gf32_mul(a: int, b: int) -> int:
    r = 0
    while b:
        if b & 1:
            r ^= a
        b >>= 1
        a <<= 1
        if a & 0x20:
            a ^= 0x25  # x^5 + x^2 + 1, primitive
    return r


_ALPHA_POW = [1]
for _ in range(30):
    _ALPHA_POW.append(_gf32_mul(_ALPHA_POW[-1], 2))


def _check_value(index: int, values: list[int]) -> int:
    """Check symbol c with c + sum(alpha^(i+1) * s_i) = 0 over GF(32), s = [index] + values.

    The check symbol itself has weight alpha^0; all weights are distinct
    (at most 31 symbols), so any single substitution and any swap of two
    neighbouring different symbols changes the sum.
    """
    symbols = [index & 31] + values
    if len(symbols) > 30:
        raise ValueError("line too long for its check character")
    c = 0
    for i, s in enumerate(symbols):
        c ^= _gf32_mul(_ALPHA_POW[i + 1], s)
    return c


def _groups(s: str) -> str:
    return " ".join(s[i : i + 4] for i in range(0, len(s), 4))


def _checked_line(index: int, data: bytes) -> str:
    chars = _b32encode(data)
    check = ALPHABET[_check_value(index, [_VALUE[c] for c in chars])]
    return f"{_groups(chars)}  {check}"


# --- canonical byte strings -----------------------------------------------


def _aad(archive_uuid: uuid.UUID, params: KdfParams, salt: bytes) -> bytes:
    return (
        _AAD_MAGIC
        + archive_uuid.bytes
        + KDF_NAME.encode("ascii")
        + struct.pack(">QQQ", params.memory_kib, params.iterations, params.lanes)
        + salt
    )


def _created_text(created: datetime) -> str:
    return created.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _checksum(archive_uuid: uuid.UUID, fp: str, params: KdfParams, salt: bytes, created: datetime, wrapped: bytes) -> str:
    parts = [
        MAGIC_LINE.encode("ascii"),
        str(archive_uuid).encode("ascii"),
        fp.encode("ascii"),
        params.text().encode("ascii"),
        salt,
        _created_text(created).encode("ascii"),
        wrapped,
    ]
    h = hashlib.sha256(b"".join(len(p).to_bytes(4, "big") + p for p in parts)).digest()
    return _groups(_b32encode(h[:CHECKSUM_BYTES]))


def _derive_wrap_key(password: bytes, salt: bytes, params: KdfParams) -> bytes:
    return Argon2id(
        salt=salt,
        length=crypto.KEY_SIZE,
        iterations=params.iterations,
        lanes=params.lanes,
        memory_cost=params.memory_kib,
    ).derive(password)


# --- export ------------------------------------------------------------------


def _render(archive_uuid: uuid.UUID, fp: str, params: KdfParams, salt: bytes, created: datetime, wrapped: bytes) -> str:
    lines = list(INSTRUCTIONS)
    lines += [
        "",
        MAGIC_LINE,
        f"archive: {archive_uuid}",
        f"fingerprint: {fp}",
        f"kdf: {params.text()}",
        f"salt: {_checked_line(0, salt)}",
        f"created: {_created_text(created)}",
    ]
    for i in range(DATA_LINES):
        chunk = wrapped[i * BYTES_PER_LINE : (i + 1) * BYTES_PER_LINE]
        lines.append(f"{i + 1:02d}: {_checked_line(i + 1, chunk)}")
    lines.append(f"checksum: {_checksum(archive_uuid, fp, params, salt, created, wrapped)}")
    return "\n".join(lines) + "\n"


def export_key_backup(
    key: bytes,
    archive_uuid: uuid.UUID,
    password: bytes,
    *,
    salt: bytes | None = None,
    nonce_source: crypto.NonceSource = os.urandom,
    created: datetime | None = None,
    kdf_params: KdfParams | None = None,
) -> str:
    """The printable backup text of ``key``, wrapped under ``password``."""
    if len(key) != crypto.KEY_SIZE:
        raise ValueError("archive key must be 32 bytes")
    if not password:
        raise UsageError("the key backup password is empty; give a password")
    params = kdf_params or RFC9106_LOW_MEMORY
    problem = params.problem()
    if problem:
        raise UsageError(f"key backup KDF parameters refused: {problem}")
    salt = os.urandom(SALT_SIZE) if salt is None else salt
    if len(salt) != SALT_SIZE:
        raise ValueError("salt must be 16 bytes")
    if created is None:
        created = datetime.now(timezone.utc)
    if created.tzinfo is None:
        raise ValueError("created must be timezone-aware")
    created = created.replace(microsecond=0)
    wrap_key = _derive_wrap_key(password, salt, params)
    wrapped = crypto.aead_seal(wrap_key, key, _aad(archive_uuid, params, salt), nonce_source)
    assert len(wrapped) == WRAPPED_SIZE
    return _render(archive_uuid, crypto.fingerprint(key, archive_uuid), params, salt, created, wrapped)


# --- import ------------------------------------------------------------------

_LABELS = ("archive", "fingerprint", "kdf", "salt", "created")
_DIGITS = re.compile(r"[0-9]{1,3}")
_KDF_TOKEN = re.compile(r"([mtp])=([0-9]+)")


def _fail(line: int, message: str, label: str | None = None) -> KeyBackupFormatError:
    """``label``: how the printed text names the line ("line 03" for a numbered data line), said first;
    the line of the file follows in brackets. Without one, the line of the file."""
    where = f"{label} (line {line} of the file)" if label else f"line {line}"
    return KeyBackupFormatError(f"{where}: {message}", line=line)


def _symbols(lineno: int, raw: str, label: str | None = None) -> list[int]:
    values = []
    for c in raw.upper():
        if c in " \t-":
            continue
        v = _VALUE.get(c)
        if v is None:
            raise _fail(lineno, f"{c!r} is not a valid character — a typo on this line?", label)
        values.append(v)
    return values


def _read_checked(lineno: int, index: int, raw: str, nbytes: int, what: str) -> bytes:
    nchars = -(-nbytes * 8 // 5)
    label = f"line {index:02d}" if index else "the 'salt:' line"
    values = _symbols(lineno, raw, label)
    if len(values) != nchars + 1:
        raise _fail(
            lineno,
            f"{what} needs {nchars} characters and a check character, found {len(values)}"
            " — a character missing or doubled?",
            label,
        )
    *body, check = values
    data = _b32decode(body, nbytes)
    if _check_value(index, body) != check or data is None:
        raise _fail(lineno, "check character does not match — a typo on this line?", label)
    return data


def _parse_kdf(lineno: int, value: str) -> KdfParams:
    tokens = value.lower().split()
    if not tokens or tokens[0] != KDF_NAME:
        raise _fail(lineno, f"unknown key derivation {tokens[0] if tokens else ''!r}; expected {KDF_NAME}")
    found: dict[str, int] = {}
    for tok in tokens[1:]:
        m = _KDF_TOKEN.fullmatch(tok)
        if not m or m.group(1) in found:
            raise _fail(lineno, f"cannot read KDF parameter {tok!r}")
        if len(m.group(2)) > 12:
            raise _fail(lineno, f"KDF parameter {tok!r} is out of range; the backup is damaged or tampered")
        found[m.group(1)] = int(m.group(2))
    if set(found) != {"m", "t", "p"}:
        raise _fail(lineno, "the kdf line needs m=, t= and p=")
    params = KdfParams(memory_kib=found["m"], iterations=found["t"], lanes=found["p"])
    problem = params.problem()
    if problem:
        raise _fail(lineno, f"KDF {problem}; the backup is damaged or tampered")
    return params


def _parse_header_value(lineno: int, label: str, value: str):
    if label == "archive":
        try:
            return uuid.UUID(value.strip().translate(_HEX_LOOKALIKES))
        except ValueError:
            raise _fail(lineno, "cannot read the archive uuid — a typo on this line?") from None
    if label == "fingerprint":
        digits = re.sub(r"[\s-]", "", value).translate(_HEX_LOOKALIKES).lower()
        if not re.fullmatch(r"[0-9a-f]{32}", digits):
            raise _fail(lineno, "the fingerprint needs 32 hex digits — a typo on this line?")
        return "-".join(digits[i : i + 4] for i in range(0, 32, 4))
    if label == "kdf":
        return _parse_kdf(lineno, value)
    if label == "salt":
        return _read_checked(lineno, 0, value, SALT_SIZE, "the salt")
    if label == "created":
        try:
            created = datetime.fromisoformat(value.strip())
        except ValueError:
            created = None
        if created is None or created.tzinfo is None:
            raise _fail(lineno, "cannot read the created time (like 2024-05-01T12:00:00Z) — a typo on this line?")
        return created
    raise AssertionError(label)


#: In the hex of the archive and fingerprint lines too, O reads as 0 and I and L as 1 (none is a hex digit).
_HEX_LOOKALIKES = str.maketrans("OoIiLl", "001111")


def _split(lineno: int, line: str) -> tuple[str, str]:
    label, sep, value = line.partition(":")
    if not sep:
        raise _fail(lineno, f"cannot read {line.strip()[:40]!r}; expected 'name: value'")
    return label.strip().lower(), value


def parse_key_backup(text: str) -> ParsedKeyBackup:
    """All structural checks: line checks, order, KDF limits, whole-file checksum. No KDF call."""
    lines = [(n, s.rstrip("\r")) for n, s in enumerate(text.split("\n"), 1)]
    content = [(n, s) for n, s in lines if s.strip() and not s.lstrip().startswith("#")]
    end = len(lines) + 1 if lines[-1][1].strip() else len(lines)
    it = iter(content)

    first = next(it, None)
    if first is None:
        raise _fail(1, "no key backup found in this text")
    if " ".join(first[1].split()).upper() != MAGIC_LINE.upper():
        raise _fail(first[0], f"expected {MAGIC_LINE!r} — not a key backup, or another version")

    values: dict = {}
    line_of: dict[str, int] = {"magic": first[0]}
    for label in _LABELS:
        item = next(it, None)
        if item is None:
            raise _fail(end, f"the file ends before the '{label}:' line")
        lineno, line = item
        found, value = _split(lineno, line)
        if found != label:
            raise _fail(lineno, f"expected the '{label}:' line, found '{found}:' — a line missing or out of order?")
        values[label] = _parse_header_value(lineno, label, value)
        line_of[label] = lineno

    wrapped = b""
    for index in range(1, DATA_LINES + 1):
        item = next(it, None)
        if item is None:
            raise _fail(end, f"the file ends before data line {index:02d}")
        lineno, line = item
        found, value = _split(lineno, line)
        if not _DIGITS.fullmatch(found):
            raise _fail(lineno, f"expected data line {index:02d}, found '{found}:' — data line {index:02d} is missing?")
        number = int(found)
        chunk = _read_checked(lineno, number, value, BYTES_PER_LINE, f"data line {found}")
        if number != index:
            raise _fail(
                lineno,
                f"found data line {number:02d} where {index:02d} belongs — a line missing, or two lines swapped?",
            )
        wrapped += chunk
        line_of[f"{index:02d}"] = lineno

    item = next(it, None)
    if item is None:
        raise _fail(end, "the file ends before the 'checksum:' line")
    lineno, line = item
    found, value = _split(lineno, line)
    if found != "checksum":
        raise _fail(lineno, f"expected the 'checksum:' line, found '{found}:'")
    line_of["checksum"] = lineno
    typed = _symbols(lineno, value)
    expected = _checksum(
        values["archive"], values["fingerprint"], values["kdf"], values["salt"], values["created"], wrapped
    )
    if typed != [_VALUE[c] for c in expected.replace(" ", "")]:
        raise _fail(
            lineno,
            "the checksum does not match — a typo in the archive, fingerprint, kdf or created line,"
            " or in the checksum itself?",
        )
    extra = next(it, None)
    if extra is not None:
        raise _fail(extra[0], "unexpected text after the checksum line")

    return ParsedKeyBackup(
        archive_uuid=values["archive"],
        fingerprint=values["fingerprint"],
        kdf_params=values["kdf"],
        salt=values["salt"],
        created=values["created"],
        wrapped=wrapped,
        line_of=line_of,
    )


def import_key_backup(text: str, password: bytes, expected_uuid: uuid.UUID | None = None) -> RecoveredKey:
    """The archive key from a backup text. Exact inverse of :func:`export_key_backup`."""
    parsed = parse_key_backup(text)
    if expected_uuid is not None and parsed.archive_uuid != expected_uuid:
        raise ForeignArchiveError(
            f"this key backup belongs to archive {parsed.archive_uuid}, not to this archive {expected_uuid}"
        )
    wrap_key = _derive_wrap_key(password, parsed.salt, parsed.kdf_params)
    try:
        key = crypto.aead_open(wrap_key, parsed.wrapped, _aad(parsed.archive_uuid, parsed.kdf_params, parsed.salt))
    except InvalidTag:
        raise WrongKeyError(WRONG_KEY_MESSAGE) from None
    fp = crypto.fingerprint(key, parsed.archive_uuid)
    if fp != parsed.fingerprint:
        line = parsed.line_of["fingerprint"]
        raise KeyBackupFormatError(
            f"line {line}: the printed fingerprint {parsed.fingerprint} does not match the key ({fp});"
            " the backup was changed",
            line=line,
        )
    return RecoveredKey(
        key=key,
        archive_uuid=parsed.archive_uuid,
        fingerprint=fp,
        kdf_params=parsed.kdf_params,
        created=parsed.created,
    )


# --- file ----------------------------------------------------------------------


def write_key_backup(
    path: Path,
    key: bytes,
    archive_uuid: uuid.UUID,
    password: bytes,
    *,
    kdf_params: KdfParams | None = None,
    created: datetime | None = None,
) -> None:
    """Write the backup to ``path`` (mode 0600) atomically, and return only after it reads back.

    The text goes to a temp file in the same directory, is fsynced, imported
    again from disk and compared with ``key``; only then is it renamed over
    ``path`` (docs/reliability.md A8). On any failure the temp file is removed and
    nothing is left under the final name.
    """
    path = Path(path)
    text = export_key_backup(key, archive_uuid, password, kdf_params=kdf_params, created=created)
    tmp = path.with_name(f".{path.name}.{_secrets.token_hex(6)}.tmp")
    try:
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.fchmod(fd, 0o600)
                data = text.encode("ascii")
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            faults.hit("key_backup_temp_written")
            written = tmp.read_text(encoding="ascii")
        except OSError as exc:
            raise StorageError(f"writing the key backup {path}: {exc.strerror or exc}") from None
        recovered = import_key_backup(written, password, expected_uuid=archive_uuid)
        if recovered.key != key:
            raise StorageError(f"the key backup written to {path} did not read back identically; nothing was kept")
        faults.hit("key_backup_before_rename")
        try:
            os.replace(tmp, path)
            dfd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError as exc:
            raise StorageError(f"writing the key backup {path}: {exc.strerror or exc}") from None
    except BaseException:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        raise
