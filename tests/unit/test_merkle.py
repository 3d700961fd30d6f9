"""RFC 6962 Merkle tree of stamp batches (DESIGN §8): vectors, audit paths, tamper (I2)."""
from __future__ import annotations

import hashlib

import pytest

from verify.merkle import (
    inclusion_path,
    inclusion_paths,
    leaf_hash_envelope,
    leaf_hash_message,
    merkle_root,
    root_from_path,
)


def H(b: bytes) -> bytes:
    return hashlib.sha256(b).digest()


def N(left: bytes, right: bytes) -> bytes:
    return H(b"\x01" + left + right)


LEAVES = [leaf_hash_message(bytes([i]) * 32) for i in range(20)]


def reference_root(leaves):
    """RFC 6962 §2.1 recursive definition, written independently of the module."""
    n = len(leaves)
    if n == 1:
        return leaves[0]
    k = 1
    while k * 2 < n:
        k *= 2
    return N(reference_root(leaves[:k]), reference_root(leaves[k:]))


def test_leaf_hashes_are_domain_separated():
    blob = bytes(range(32))
    env = H(b"Sender: a@example.org\r\nTo: b@example.org\r\n")
    assert leaf_hash_message(blob) == H(b"\x00" + blob)
    assert leaf_hash_envelope(env, blob) == H(b"\x00envelope" + env + blob)
    assert leaf_hash_envelope(env, blob) != leaf_hash_message(blob)


def test_known_vectors_by_hand():
    a, b, c, d, e, f, g, h = LEAVES[:8]
    assert merkle_root([a]) == a
    assert merkle_root([a, b]) == N(a, b)
    assert merkle_root([a, b, c]) == N(N(a, b), c)
    assert merkle_root([a, b, c, d, e]) == N(N(N(a, b), N(c, d)), e)
    assert merkle_root([a, b, c, d, e, f, g, h]) == N(N(N(a, b), N(c, d)), N(N(e, f), N(g, h)))
    # A fixed value, so a change of hashing rules cannot pass unnoticed.
    assert merkle_root([leaf_hash_message(b"\x00" * 32)]).hex() == H(b"\x00" + b"\x00" * 32).hex()


@pytest.mark.parametrize("n", range(1, 21))
def test_root_matches_recursive_definition(n):
    assert merkle_root(LEAVES[:n]) == reference_root(LEAVES[:n])


@pytest.mark.parametrize("n", range(1, 21))
def test_every_inclusion_path_verifies(n):
    leaves = LEAVES[:n]
    root = merkle_root(leaves)
    all_paths = inclusion_paths(leaves)
    for i in range(n):
        path = inclusion_path(leaves, i)
        assert path == all_paths[i]
        assert root_from_path(leaves[i], i, n, path) == root


def test_changed_leaf_or_path_fails():
    leaves = LEAVES[:13]
    root = merkle_root(leaves)
    path = inclusion_path(leaves, 6)
    wrong_leaf = leaf_hash_message(b"\xff" * 32)
    assert root_from_path(wrong_leaf, 6, 13, path) != root
    bad_path = list(path)
    bad_path[1] = bytes([bad_path[1][0] ^ 1]) + bad_path[1][1:]
    assert root_from_path(leaves[6], 6, 13, bad_path) != root
    assert root_from_path(leaves[6], 7, 13, path) != root  # the wrong position
    # I2: one changed leaf changes the root.
    changed = list(leaves)
    changed[3] = wrong_leaf
    assert merkle_root(changed) != root


def test_malformed_inputs():
    with pytest.raises(ValueError):
        merkle_root([])
    with pytest.raises(ValueError):
        inclusion_path(LEAVES[:3], 3)
    with pytest.raises(ValueError):
        root_from_path(LEAVES[0], 0, 5, inclusion_path(LEAVES[:5], 0)[:-1])  # too short
    with pytest.raises(ValueError):
        root_from_path(LEAVES[0], 0, 2, inclusion_path(LEAVES[:5], 0))  # too long
