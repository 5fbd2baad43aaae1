"""RFC 9162 (RFC 6962) Merkle tree hashing, proofs and their verification.

Pure: standard library only, no I/O. Leaves are SHA-256(0x00 || data), inner nodes
SHA-256(0x01 || left || right); the tree over n leaves splits at the largest power of two
below n. ``CompactRange`` keeps only the roots of the perfect subtrees covering [0, n)
(one per set bit of n), so appending is O(1) amortised and computing the root is O(log n).

Proofs are produced in two steps: ``inclusion_ranges`` / ``consistency_ranges`` name the
leaf ranges whose subtree hashes make up the proof (O(log n) ranges, disjoint, ordered as
in the proof), and ``range_hashes`` computes those hashes in one streaming pass over the
leaf hashes, so a proof over a database-held log needs O(log n) memory.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

_LEAF = b"\x00"
_NODE = b"\x01"
_sha256 = hashlib.sha256


class ProofError(ValueError):
    """A Merkle proof did not verify (or its arguments were impossible)."""


def leaf_hash(data: bytes) -> bytes:
    """SHA-256(0x00 || data)."""
    return _sha256(_LEAF + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right)."""
    return _sha256(_NODE + left + right).digest()


class CompactRange:
    """The roots of the perfect subtrees covering leaves [0, size): the log's "frontier".

    ``hashes[i]`` covers the i-th set bit of ``size`` counted from the most significant.
    """

    __slots__ = ("_hashes", "_size")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        if size < 0 or len(hashes) != size.bit_count():
            raise ValueError("a compact range needs one hash per set bit of its size")
        self._size = size
        self._hashes = list(hashes)

    @property
    def size(self) -> int:
        return self._size

    @property
    def hashes(self) -> tuple[bytes, ...]:
        return tuple(self._hashes)

    def copy(self) -> CompactRange:
        return CompactRange(self._size, self._hashes)

    def append(self, leaf: bytes) -> None:
        """Add one leaf hash at index ``size``."""
        stack = self._hashes
        n = self._size
        h = leaf
        while n & 1:
            h = _sha256(_NODE + stack.pop() + h).digest()
            n >>= 1
        stack.append(h)
        self._size += 1

    def extend(self, leaves: Iterable[bytes]) -> None:
        """Add many leaf hashes (the same as ``append`` in a loop, with less overhead)."""
        stack = self._hashes
        pop = stack.pop
        push = stack.append
        size = self._size
        sha = _sha256
        node = _NODE
        for h in leaves:
            n = size
            while n & 1:
                h = sha(node + pop() + h).digest()
                n >>= 1
            push(h)
            size += 1
        self._size = size

    def root(self) -> bytes:
        """The RFC 9162 tree head over leaves [0, size)."""
        if not self._hashes:
            return EMPTY_ROOT
        return fold(self._hashes)


def fold(hashes: Sequence[bytes]) -> bytes:
    """Combine subtree roots of decreasing size, right to left, into one subtree root."""
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = _sha256(_NODE + h + acc).digest()
    return acc


def root(leaf_hashes: Iterable[bytes]) -> bytes:
    """The tree head over a list (or any iterable) of leaf hashes."""
    cr = CompactRange()
    cr.extend(leaf_hashes)
    return cr.root()


def _split(n: int) -> int:
    """The largest power of two strictly smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The leaf ranges whose hashes form PATH(index, D[0:size]), leaf sibling first."""
    if not 0 <= index < size:
        raise ProofError(f"index {index} is outside a tree of size {size}")
    out: list[tuple[int, int]] = []
    lo, hi, m = 0, size, index
    while hi - lo > 1:
        k = _split(hi - lo)
        if m < k:
            out.append((lo + k, hi))
            hi = lo + k
        else:
            out.append((lo, lo + k))
            lo, m = lo + k, m - k
    out.reverse()
    return out


def consistency_ranges(size1: int, size2: int) -> list[tuple[int, int]]:
    """The leaf ranges whose hashes form PROOF(size1, D[0:size2]) (RFC 9162 2.1.4.1)."""
    if not 0 < size1 <= size2:
        raise ProofError(f"no consistency proof from size {size1} to size {size2}")
    out: list[tuple[int, int]] = []
    lo, hi, m, whole = 0, size2, size1, True
    while m != hi - lo:
        k = _split(hi - lo)
        if m <= k:
            out.append((lo + k, hi))
            hi = lo + k
        else:
            out.append((lo, lo + k))
            lo, m, whole = lo + k, m - k, False
    if not whole:
        out.append((lo, hi))
    out.reverse()
    return out


def range_hashes(ranges: Sequence[tuple[int, int]], leaves: Iterable[bytes]) -> list[bytes]:
    """Subtree hashes of ``ranges`` (as named by ``*_ranges``), in the same order.

    A list is sliced directly; any other iterable is streamed from index 0 once (the ranges
    must then be disjoint), read only as far as the highest range end, in O(log n) memory.
    """
    if isinstance(leaves, Sequence):
        return [subtree_hash(leaves, lo, hi) for lo, hi in ranges]
    order = sorted(range(len(ranges)), key=lambda i: ranges[i][0])
    out: list[bytes] = [b""] * len(ranges)
    if not ranges:
        return out
    it = iter(leaves)
    pos = 0
    for i in order:
        lo, hi = ranges[i]
        while pos < lo:
            next(it)
            pos += 1
        cr = CompactRange()
        cr.extend(_take(it, hi - lo))
        if cr.size != hi - lo:
            raise ProofError(f"only {pos + cr.size} leaves available, range [{lo}, {hi}) needed")
        pos = hi
        out[i] = cr.root()
    return out


def subtree_hash(leaves: Sequence[bytes], lo: int, hi: int) -> bytes:
    """The hash of the subtree over leaves [lo, hi) of an in-memory list."""
    if not 0 <= lo < hi <= len(leaves):
        raise ProofError(f"range [{lo}, {hi}) is outside {len(leaves)} leaves")
    cr = CompactRange()
    cr.extend(leaves[lo:hi])
    return cr.root()


def _take(it: Iterable[bytes], n: int) -> Iterable[bytes]:
    for _, h in zip(range(n), it, strict=False):
        yield h


def inclusion_proof(index: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """PATH(index, D[0:len(leaf_hashes)])."""
    return range_hashes(inclusion_ranges(index, len(leaf_hashes)), leaf_hashes)


def consistency_proof(size1: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """PROOF(size1, D[0:len(leaf_hashes)])."""
    if size1 == len(leaf_hashes):
        return []
    return range_hashes(consistency_ranges(size1, len(leaf_hashes)), leaf_hashes)


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root implied by an inclusion proof (RFC 9162 2.1.3.2 steps 1-4)."""
    if not 0 <= index < size:
        raise ProofError(f"index {index} is outside a tree of size {size}")
    if len(leaf) != HASH_SIZE:
        raise ProofError(f"a leaf hash has {HASH_SIZE} bytes, not {len(leaf)}")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ProofError("inclusion proof is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("inclusion proof is too short")
    return r


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], root_hash: bytes) -> None:
    """Raise ProofError unless ``proof`` shows leaf ``index`` is in the tree ``root_hash``."""
    if root_from_inclusion(index, size, leaf, proof) != root_hash:
        raise ProofError(f"inclusion proof for index {index} does not lead to the root of size {size}")


def verify_consistency(size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes) -> None:
    """Raise ProofError unless ``proof`` shows tree (size1, root1) is a prefix of (size2, root2).

    Follows RFC 9162 2.1.4.2 and the transparency-dev vectors: an empty first tree is refused
    (such a check proves nothing), equal sizes need an empty proof and equal roots.
    """
    if size2 < size1:
        raise ProofError(f"size2 ({size2}) is smaller than size1 ({size1})")
    if size1 == 0:
        raise ProofError("a consistency check from the empty tree proves nothing")
    if size1 == size2:
        if proof:
            raise ProofError("equal sizes need an empty consistency proof")
        if root1 != root2:
            raise ProofError("equal sizes but different roots")
        return
    path = list(proof)
    if not path:
        raise ProofError("empty consistency proof")
    if size1 & (size1 - 1) == 0:
        path.insert(0, root1)
    fr, sr = _consistency_roots(size1, size2, path)
    if fr != root1:
        raise ProofError(f"consistency proof does not lead to the root of size {size1}")
    if sr != root2:
        raise ProofError(f"consistency proof does not lead to the root of size {size2}")


def _consistency_roots(size1: int, size2: int, path: Sequence[bytes]) -> tuple[bytes, bytes]:
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("consistency proof is too short")
    return fr, sr
