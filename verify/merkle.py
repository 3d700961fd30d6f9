"""The RFC 6962 Merkle tree of a stamp batch (docs/timestamps.md).

Leaves are hashed with a 0x00 prefix, inner nodes with 0x01, so a leaf can
never pass for an inner node. For n > 1 leaves the tree splits at k, the
largest power of two below n: MTH(D[n]) = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n])).
The functions here take the leaf *hashes* (already prefixed with 0x00).
"""
from __future__ import annotations

import hashlib


def _sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def leaf_hash_message(blob_id: bytes) -> bytes:
    """SHA-256(0x00 || blob_id): the leaf of one archived message."""
    return _sha(b"\x00" + blob_id)


def leaf_hash_envelope(envelope_sha256: bytes, blob_id: bytes) -> bytes:
    """SHA-256(0x00 || 'envelope' || SHA-256(envelope text) || blob_id): a journal envelope learned for a message."""
    return _sha(b"\x00" + b"envelope" + envelope_sha256 + blob_id)


def leaf_hash_event(event_sha256: bytes) -> bytes:
    """SHA-256(0x00 || 'event' || SHA-256(the event's canonical JSON)): a stamped event (a step of a deletion)."""
    return _sha(b"\x00" + b"event" + event_sha256)


def _node(left: bytes, right: bytes) -> bytes:
    return _sha(b"\x01" + left + right)


def merkle_levels(leaves: list[bytes]) -> list[list[bytes]]:
    """Every level of the tree, leaves first, root last.

    Pairing adjacent nodes level by level and carrying an odd last node up
    unchanged builds exactly the RFC 6962 split-at-power-of-two tree.
    """
    if not leaves:
        raise ValueError("a Merkle tree needs at least one leaf")
    levels = [list(leaves)]
    while len(levels[-1]) > 1:
        level = levels[-1]
        nxt = [_node(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        levels.append(nxt)
    return levels


def merkle_root(leaves: list[bytes]) -> bytes:
    """RFC 6962 Merkle Tree Hash over leaf hashes; an empty batch has no root (ValueError)."""
    return merkle_levels(leaves)[-1][0]


def path_in_levels(levels: list[list[bytes]], index: int) -> list[bytes]:
    """The audit path of leaf ``index`` from the levels of :func:`merkle_levels` (the tree built once, a path
    made when it is asked for: a batch's levels are ~2 hashes a leaf, every path of it ~log2(n) each)."""
    path = []
    for level in levels[:-1]:
        sibling = index ^ 1
        if sibling < len(level):  # else: the odd last node, carried up without a sibling
            path.append(level[sibling])
        index >>= 1
    return path


def inclusion_path(leaves: list[bytes], index: int) -> list[bytes]:
    """The RFC 6962 audit path of leaf ``index``: sibling hashes from the leaf up to the root."""
    n = len(leaves)
    if not 0 <= index < n:
        raise ValueError(f"leaf index {index} outside a tree of {n} leaves")
    return path_in_levels(merkle_levels(leaves), index)


def inclusion_paths(leaves: list[bytes]) -> list[list[bytes]]:
    """The audit paths of every leaf, building the tree once (for exporting a whole batch)."""
    levels = merkle_levels(leaves)
    return [path_in_levels(levels, i) for i in range(len(leaves))]


def root_from_path(leaf: bytes, index: int, size: int, path: list[bytes]) -> bytes:
    """The root implied by a leaf hash, its index, the tree size and its audit path (RFC 9162 §2.1.3.2)."""
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} outside a tree of {size} leaves")
    fn, sn = index, size - 1
    r = leaf
    for p in path:
        if sn == 0:
            raise ValueError("audit path longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = _node(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = _node(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ValueError("audit path shorter than the tree is deep")
    return r
