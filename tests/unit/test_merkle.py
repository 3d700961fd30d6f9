"""RFC 6962 Merkle tree of stamp batches (docs/timestamps.md): vectors, audit paths, tamper (I2)."""
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


# The published Certificate Transparency test data (also used for RFC 9162 trees): eight
# leaf inputs of varying length and the tree heads of their first 1..8 leaves. The roots are
# fixed hex values from that data set, not computed here, so a change of the hashing rules
# (prefix bytes, split point, odd-node handling) cannot pass unnoticed.
CT_LEAF_INPUTS = ["", "00", "10", "2021", "3031", "40414243",
                  "5051525354555657", "606162636465666768696a6b6c6d6e6f"]
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


@pytest.mark.parametrize("n", range(1, 9))
def test_certificate_transparency_vectors(n):
    leaves = [H(b"\x00" + bytes.fromhex(x)) for x in CT_LEAF_INPUTS[:n]]
    assert merkle_root(leaves).hex() == CT_ROOTS[n - 1]
    # every audit path of the published tree leads back to its published root
    for i in range(n):
        assert root_from_path(leaves[i], i, n, inclusion_path(leaves, i)).hex() == CT_ROOTS[n - 1]


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


def test_event_leaf_is_domain_separated():
    """An event leaf (docs/timestamps.md) never equals a message or envelope leaf over the same bytes."""
    import hashlib

    from verify.merkle import leaf_hash_envelope, leaf_hash_event, leaf_hash_message

    h = hashlib.sha256(b'{"event_id":1}').digest()
    assert leaf_hash_event(h) == hashlib.sha256(b"\x00event" + h).digest()
    assert leaf_hash_event(h) not in (leaf_hash_message(h), leaf_hash_envelope(h, b""), leaf_hash_envelope(b"", h))
