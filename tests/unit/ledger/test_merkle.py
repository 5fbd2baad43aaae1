"""RFC 9162 Merkle hashing against the transparency-dev known-answer vectors."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from publisher.ledger import merkle

VECTORS = Path(__file__).parents[3].parent / "shared" / "specs" / "merkle" / "testdata"

# The leaves of transparency-dev/merkle testonly/constants.go; their tree is the vectors' tree.
LEAF_INPUTS = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]
LEAVES = [merkle.leaf_hash(bytes.fromhex(x)) for x in LEAF_INPUTS]


def _b64(value: str) -> bytes:
    return base64.b64decode(value) if value else b""


def _vectors(kind: str) -> list[Any]:
    files = sorted(VECTORS.glob(f"{kind}/**/*.json"))
    assert files, f"no {kind} vectors under {VECTORS}"
    return [pytest.param(json.loads(f.read_text()), id=str(f.relative_to(VECTORS))) for f in files]


@pytest.mark.parametrize("vector", _vectors("inclusion"))
def test_inclusion_vector(vector: dict[str, Any]) -> None:
    proof = [_b64(p) for p in vector["proof"] or []]
    args = (vector["leafIdx"], vector["treeSize"], _b64(vector["leafHash"]), proof, _b64(vector["root"]))
    if vector["wantErr"]:
        with pytest.raises(merkle.ProofError):
            merkle.verify_inclusion(*args)
    else:
        merkle.verify_inclusion(*args)


@pytest.mark.parametrize("vector", _vectors("consistency"))
def test_consistency_vector(vector: dict[str, Any]) -> None:
    proof = [_b64(p) for p in vector["proof"] or []]
    args = (vector["size1"], vector["size2"], proof, _b64(vector["root1"]), _b64(vector["root2"]))
    if vector["wantErr"]:
        with pytest.raises(merkle.ProofError):
            merkle.verify_consistency(*args)
    else:
        merkle.verify_consistency(*args)


def _happy(kind: str) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(VECTORS.glob(f"{kind}/[0-9]/happy-path.json"))]


def test_roots_match_vectors() -> None:
    assert base64.b64encode(merkle.root(LEAVES)).decode() == "XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg="
    assert merkle.root([]) == merkle.EMPTY_ROOT
    for v in _happy("consistency"):
        assert merkle.root(LEAVES[: v["size1"]]) == _b64(v["root1"])
        assert merkle.root(LEAVES[: v["size2"]]) == _b64(v["root2"])


def test_generated_proofs_equal_vectors() -> None:
    for v in _happy("inclusion"):
        expected = [_b64(p) for p in v["proof"] or []]
        assert merkle.inclusion_proof(v["leafIdx"], LEAVES[: v["treeSize"]]) == expected
    for v in _happy("consistency"):
        expected = [_b64(p) for p in v["proof"] or []]
        assert merkle.consistency_proof(v["size1"], LEAVES[: v["size2"]]) == expected


def test_every_proof_up_to_size_40_verifies_and_streaming_agrees() -> None:
    leaves = [merkle.leaf_hash(bytes([i])) for i in range(40)]
    for n in range(1, 41):
        head = merkle.root(leaves[:n])
        for i in range(n):
            proof = merkle.inclusion_proof(i, leaves[:n])
            merkle.verify_inclusion(i, n, leaves[i], proof, head)
            assert merkle.range_hashes(merkle.inclusion_ranges(i, n), iter(leaves)) == proof
        for m in range(1, n + 1):
            proof = merkle.consistency_proof(m, leaves[:n])
            merkle.verify_consistency(m, n, proof, merkle.root(leaves[:m]), head)
            if m < n:
                assert merkle.range_hashes(merkle.consistency_ranges(m, n), iter(leaves)) == proof


@settings(max_examples=50, deadline=None)
@given(n=st.integers(2, 300), data=st.data())
def test_wrong_leaf_or_index_fails(n: int, data: st.DataObject) -> None:
    leaves = [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(n)]
    i = data.draw(st.integers(0, n - 1))
    j = data.draw(st.integers(0, n - 1).filter(lambda x: x != i))
    proof = merkle.inclusion_proof(i, leaves)
    head = merkle.root(leaves)
    with pytest.raises(merkle.ProofError):
        merkle.verify_inclusion(i, n, leaves[j], proof, head)
    with pytest.raises(merkle.ProofError):
        merkle.verify_inclusion(j, n, leaves[i], proof, head)


def test_compact_range_matches_root_at_every_size() -> None:
    leaves = [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(100)]
    cr = merkle.CompactRange()
    for n, leaf in enumerate(leaves, start=1):
        cr.append(leaf)
        assert cr.size == n
        assert len(cr.hashes) == n.bit_count()
        assert cr.root() == merkle.root(leaves[:n])
    copy = cr.copy()
    copy.append(leaves[0])
    assert cr.size == 100


def test_leaf_and_node_are_domain_separated() -> None:
    a, b = merkle.leaf_hash(b"a"), merkle.leaf_hash(b"b")
    # An inner node can never be presented as a leaf of the same bytes.
    assert merkle.node_hash(a, b) != merkle.leaf_hash(a + b)
