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
