"""The key derivation on the standard library's HMAC gives exactly the keys of ``cryptography``'s HKDF
(every archive's subkeys, labels and catalog key depend on it; docs/formats.md)."""
from __future__ import annotations

import os
import uuid

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from toolkit import crypto


def _reference(key: bytes, salt: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(key)


def test_derive_key_and_subkey_equal_cryptography_hkdf():
    for _ in range(50):
        key, u = os.urandom(32), uuid.uuid4()
        for purpose in crypto.PURPOSES:
            assert crypto.derive_key(key, u, purpose) == _reference(key, u.bytes, b"mailarchive/v1/" + purpose.encode())
        ident = os.urandom(16)
        assert crypto.derive_subkey(key, u, "pack", ident) == _reference(key, u.bytes, b"mailarchive/v1/pack/" + ident)


def test_sealing_still_round_trips_and_detects_a_change():
    key = os.urandom(32)
    blob = crypto.seal_blob(key, b"secret", b"ctx")
    assert crypto.open_blob(key, blob, b"ctx") == b"secret"
    damaged = blob[:-1] + bytes([blob[-1] ^ 1])
    try:
        crypto.open_blob(key, damaged, b"ctx")
    except crypto.IntegrityError:
        pass
    else:
        raise AssertionError("a changed sealed blob opened")
