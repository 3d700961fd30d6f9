"""Key derivation and sealing (docs/formats.md).

Every key is derived from the 32-byte archive key with HKDF-SHA256
(salt = archive uuid bytes, info = ``mailarchive/v1/<purpose>``). Sealed
blobs are AES-256-GCM with a random 96-bit nonce; the caller's context
bytes are bound as associated data so a blob cannot be replayed elsewhere.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import uuid
from typing import Callable

from .errors import IntegrityError

KEY_SIZE = 32
NONCE_SIZE = 12
TAG_SIZE = 16
SEAL_OVERHEAD = NONCE_SIZE + TAG_SIZE
SEALED_MAGIC = b"MASEAL01"

PURPOSES = ("pack", "index", "catalog", "backup", "config", "medium-mac", "fingerprint")

NonceSource = Callable[[int], bytes]


def new_archive_key() -> bytes:
    import secrets as _secrets  # stdlib; never `random`

    return _secrets.token_bytes(KEY_SIZE)


def hkdf_sha256(key_material: bytes, salt: bytes, info: bytes) -> bytes:
    """HKDF-SHA256 (RFC 5869) of 32 bytes: one extract, one expand block. The standard library's HMAC
    (the key derivation needs no AES, so a command that seals nothing does not load ``cryptography``;
    tests/unit/test_crypto_hkdf.py checks it against ``cryptography``'s HKDF)."""
    prk = hmac.new(salt, key_material, hashlib.sha256).digest()
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()


def derive_key(archive_key: bytes, archive_uuid: uuid.UUID, purpose: str) -> bytes:
    """The subkey for one purpose, e.g. ``derive_key(k, u, "catalog")``."""
    if len(archive_key) != KEY_SIZE:
        raise ValueError("archive key must be 32 bytes")
    return hkdf_sha256(archive_key, archive_uuid.bytes, b"mailarchive/v1/" + purpose.encode("ascii"))


def derive_subkey(parent_key: bytes, archive_uuid: uuid.UUID, purpose: str, ident: bytes) -> bytes:
    """A subkey of a purpose key, e.g. one key per pack id."""
    return hkdf_sha256(parent_key, archive_uuid.bytes, b"mailarchive/v1/" + purpose.encode("ascii") + b"/" + ident)


def fingerprint(archive_key: bytes, archive_uuid: uuid.UUID) -> str:
    """A short, non-secret name of the key: 16 bytes of a derived key, hex, in groups of 4."""
    digest = derive_key(archive_key, archive_uuid, "fingerprint")[:16].hex()
    return "-".join(digest[i : i + 4] for i in range(0, len(digest), 4))


def aead_seal(key: bytes, plaintext: bytes, aad: bytes, nonce_source: NonceSource = os.urandom) -> bytes:
    """nonce || ciphertext || tag."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = nonce_source(NONCE_SIZE)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def aead_open(key: bytes, sealed: bytes, aad: bytes) -> bytes:
    """Inverse of :func:`aead_seal`; raises ``cryptography``'s ``InvalidTag`` on any change."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    if len(sealed) < SEAL_OVERHEAD:
        raise InvalidTag()
    view = memoryview(sealed)  # the ciphertext is not copied out of ``sealed`` (a backup's is ~100 MB: K8)
    return AESGCM(key).decrypt(bytes(view[:NONCE_SIZE]), view[NONCE_SIZE:], aad)


def seal_blob(key: bytes, plaintext: bytes, context: bytes, nonce_source: NonceSource = os.urandom) -> bytes:
    """A self-describing sealed object: ``MASEAL01 || nonce || ct || tag``; AAD = magic || context."""
    return SEALED_MAGIC + aead_seal(key, plaintext, SEALED_MAGIC + context, nonce_source)


def open_blob(key: bytes, sealed: bytes, context: bytes, what: str = "sealed object") -> bytes:
    from cryptography.exceptions import InvalidTag

    if not sealed.startswith(SEALED_MAGIC):
        raise IntegrityError(f"{what}: not a sealed object (bad magic)")
    try:
        return aead_open(key, memoryview(sealed)[len(SEALED_MAGIC):], SEALED_MAGIC + context)
    except InvalidTag:
        raise IntegrityError(f"{what}: authentication failed (changed, truncated, or sealed under another key)") from None


def mac(key: bytes, data: bytes) -> str:
    return hmac.new(key, data, hashlib.sha256).hexdigest()


def mac_ok(key: bytes, data: bytes, tag: str) -> bool:
    return hmac.compare_digest(mac(key, data), tag)


# --------------------------------------------------------------- large sealed objects, a piece at a time

#: The pieces the streamed seal and open encrypt and decrypt at a time (docs/formats.md "Sealed objects").
STREAM_CHUNK = 1 << 20


class SealWriter:
    """The bytes of :func:`seal_blob` (``MASEAL01 || nonce || ct || tag``, AAD = magic || context) handed to
    ``write`` a piece at a time, so neither the plaintext nor the sealed object is ever held whole: give the
    plaintext to :meth:`write` in any pieces, then :meth:`finish` writes the tag. The same nonce gives the
    same bytes as :func:`seal_blob` (tests/unit/test_seal_stream.py)."""

    def __init__(self, key: bytes, context: bytes, write: Callable[[bytes], object],
                 nonce_source: NonceSource = os.urandom):
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

        nonce = nonce_source(NONCE_SIZE)
        self._enc = Cipher(algorithms.AES(key), modes.GCM(nonce)).encryptor()
        self._enc.authenticate_additional_data(SEALED_MAGIC + context)
        self._write = write
        self._buf = bytearray(STREAM_CHUNK + 15)  # update_into's room: the input plus a block less one
        self._out = memoryview(self._buf)
        self._write(SEALED_MAGIC + nonce)
        self.length = len(SEALED_MAGIC) + NONCE_SIZE

    def write(self, data) -> int:
        """Encrypt ``data`` (bytes-like) and write its ciphertext; returns ``len(data)``."""
        view = memoryview(data).cast("B")
        for at in range(0, len(view), STREAM_CHUNK):
            n = self._enc.update_into(view[at : at + STREAM_CHUNK], self._buf)
            self._write(self._out[:n])
            self.length += n
        return len(view)

    def finish(self) -> int:
        """Write the tag; returns the sealed object's length in bytes."""
        tail = self._enc.finalize()  # GCM holds nothing back: empty
        self._write(tail + self._enc.tag)
        self.length += len(tail) + TAG_SIZE
        return self.length


def _read_full(read: Callable[[int], bytes], n: int) -> bytes:
    """``n`` bytes from ``read``, fewer only at its end."""
    out = b""
    while len(out) < n:
        got = read(n - len(out))
        if not got:
            break
        out += got
    return out


class BlobReader:
    """Opens a sealed object read front to back with ``read(n)`` (a file's, a storage reader's): :meth:`read`
    gives the plaintext as it is decrypted, a piece at a time, for a caller that checks or stores it as it goes.

    **Nothing read is authentic until** :meth:`verify` **has returned**: the tag is the object's last 16 bytes
    and is checked only when the end is reached (:meth:`read` then raises IntegrityError at the end of a changed,
    truncated or foreign object, and :meth:`verify` reads what is left and checks it). A caller accepts a verdict
    or output drawn from the plaintext only after :meth:`verify` (docs/formats.md "Sealed objects"): a check
    gives its result after it, a restore commits its rows after it, a file made of the plaintext is renamed into
    place after it."""

    def __init__(self, key: bytes, read: Callable[[int], bytes], context: bytes, what: str = "sealed object"):
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

        self._read, self.what = read, what
        head = _read_full(read, len(SEALED_MAGIC) + NONCE_SIZE)
        if not head.startswith(SEALED_MAGIC):
            raise IntegrityError(f"{what}: not a sealed object (bad magic)")
        if len(head) < len(SEALED_MAGIC) + NONCE_SIZE:
            raise self._failed()
        nonce = head[len(SEALED_MAGIC):]
        self._dec = Cipher(algorithms.AES(key), modes.GCM(nonce)).decryptor()
        self._dec.authenticate_additional_data(SEALED_MAGIC + context)
        self._held = b""  # the last bytes read: the tag, once the end is reached
        self.verified = False
        self._ended = False

    def _failed(self) -> IntegrityError:
        return IntegrityError(f"{self.what}: authentication failed (changed, truncated, or sealed under another key)")

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes of plaintext (``STREAM_CHUNK`` when ``size`` < 1); b"" only at the end, after
        the tag has been checked. Unverified until :meth:`verify` (see the class)."""
        want = size if size and size > 0 else STREAM_CHUNK
        while not self._ended:
            data = self._read(want)
            if not data:
                self._end()
                break
            buf = self._held + data if self._held else data
            if len(buf) <= TAG_SIZE:
                self._held = buf
                continue
            self._held = buf[-TAG_SIZE:]
            out = self._dec.update(memoryview(buf)[:-TAG_SIZE])
            if out:
                return out
        return b""

    def readable(self) -> bool:
        return True

    def _end(self) -> None:
        from cryptography.exceptions import InvalidTag

        self._ended = True
        if len(self._held) < TAG_SIZE:
            raise self._failed()
        try:
            self._dec.finalize_with_tag(self._held)
        except InvalidTag:
            raise self._failed() from None
        self.verified = True

    def verify(self) -> None:
        """Read (and decrypt, unused) what is left and check the tag: IntegrityError if the object was changed,
        truncated or sealed under another key or context. After it returns, every byte :meth:`read` gave is
        authentic."""
        while not self._ended:
            self.read(STREAM_CHUNK)
        if not self.verified:
            raise self._failed()
