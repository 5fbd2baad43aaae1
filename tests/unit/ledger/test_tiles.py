"""Tiles: every proof range, root and frontier made from stored subtree hashes plus the leaves of
one tile equals the one made from all the leaves (and the transparency-dev vectors)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from publisher.ledger import merkle, tiles

VECTORS = Path(__file__).parents[3].parent / "shared" / "specs" / "merkle" / "testdata"
# The leaves of transparency-dev/merkle testonly/constants.go: the vectors' tree.
LEAF_INPUTS = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]
VECTOR_LEAVES = [merkle.leaf_hash(bytes.fromhex(x)) for x in LEAF_INPUTS]


def _leaves(n: int) -> list[bytes]:
    return [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(n)]


BIG = _leaves(3 * 256 + 77)  # 3 whole tiles and a partial one


def _tree(
    leaves: Sequence[bytes], tile_size: int = tiles.TILE_SIZE
) -> tuple[list[bytes], Callable[[int], Sequence[bytes]]]:
    return list(tiles.tile_hashes(leaves, tile_size)), lambda k: leaves[k * tile_size : (k + 1) * tile_size]


def _proof_ranges(size: int) -> set[tuple[int, int]]:
    """Every range any inclusion or consistency proof in a tree of ``size`` leaves names."""
    found: set[tuple[int, int]] = set()
    for m in range(size):
        found.update(merkle.inclusion_ranges(m, size))
        found.update(merkle.consistency_ranges(m + 1, size))
    return found


def test_tile_hashes_are_the_subtree_hashes_of_whole_tiles() -> None:
    assert list(tiles.tile_hashes(BIG)) == [merkle.subtree_hash(BIG, k * 256, k * 256 + 256) for k in range(3)]
    assert list(tiles.tile_hashes(BIG[:255])) == []


@pytest.mark.parametrize("size", [1, 2, 255, 256, 257, 300, 511, 512, 513, 600, 768, 769, len(BIG)])
def test_every_proof_range_from_tiles_equals_the_subtree_hash(size: int) -> None:
    leaves = BIG[:size]
    tile_list, leaves_of = _tree(leaves)
    for lo, hi in sorted(_proof_ranges(size)):
        assert tiles.range_hash(lo, hi, tile_list, leaves_of) == merkle.subtree_hash(leaves, lo, hi), (lo, hi)


@pytest.mark.parametrize("tile_size", [1, 2, 4, 8, 16])
def test_every_tile_shaped_range_equals_the_subtree_hash(tile_size: int) -> None:
    leaves = BIG[:70]
    tile_list, leaves_of = _tree(leaves, tile_size)
    for lo in range(70):
        for hi in range(lo + 1, 71):
            aligned = lo % tile_size == 0 or (hi - 1) // tile_size == lo // tile_size
            if aligned:
                got = tiles.range_hash(lo, hi, tile_list, leaves_of, tile_size)
                assert got == merkle.subtree_hash(leaves, lo, hi), (lo, hi)
            else:
                with pytest.raises(ValueError, match="tile"):
                    tiles.range_hash(lo, hi, tile_list, leaves_of, tile_size)


def test_range_hash_reads_tiles_not_leaves_for_whole_tiles() -> None:
    tile_list, _ = _tree(BIG)

    def no_leaves(k: int) -> Sequence[bytes]:
        raise AssertionError(f"read the leaves of tile {k}")

    assert tiles.range_hash(0, 512, tile_list, no_leaves) == merkle.subtree_hash(BIG, 0, 512)
    assert tiles.range_hash(512, 768, tile_list, no_leaves) == merkle.subtree_hash(BIG, 512, 768)
    wrong = [tile_list[0], bytes(32), tile_list[2]]
    assert tiles.range_hash(0, 512, wrong, no_leaves) != merkle.subtree_hash(BIG, 0, 512)


def test_range_hash_refuses_what_it_cannot_compute() -> None:
    tile_list, leaves_of = _tree(BIG)
    with pytest.raises(ValueError, match="not a range"):
        tiles.range_hash(5, 5, tile_list, leaves_of)
    with pytest.raises(ValueError, match="tile 3"):
        tiles.range_hash(0, 1024, tile_list, leaves_of)  # only 3 tiles
    with pytest.raises(ValueError, match="only 77"):
        tiles.range_hash(768, 1000, tile_list, leaves_of)  # leaves past the tree


def _b64(value: str) -> bytes:
    return base64.b64decode(value) if value else b""


def _happy(kind: str) -> list[dict[str, Any]]:
    files = sorted(VECTORS.glob(f"{kind}/*/happy-path.json"))
    assert files, f"no {kind} vectors under {VECTORS}"
    return [json.loads(f.read_text()) for f in files]


@pytest.mark.parametrize("tile_size", [1, 2, 4, 8])
def test_proofs_from_tiles_equal_the_transparency_dev_vectors(tile_size: int) -> None:
    checked = 0
    for v in _happy("inclusion"):
        index, size = v["leafIdx"], v["treeSize"]
        tile_list, leaves_of = _tree(VECTOR_LEAVES[:size], tile_size)
        proof = [
            tiles.range_hash(lo, hi, tile_list, leaves_of, tile_size) for lo, hi in merkle.inclusion_ranges(index, size)
        ]
        assert proof == [_b64(p) for p in v["proof"] or []]
        root = tiles.range_hash(0, size, tile_list, leaves_of, tile_size)
        assert root == _b64(v["root"])
        checked += 1
    for v in _happy("consistency"):
        size1, size2 = v["size1"], v["size2"]
        if not 0 < size1 < size2:
            continue
        tile_list, leaves_of = _tree(VECTOR_LEAVES[:size2], tile_size)
        ranges = merkle.consistency_ranges(size1, size2)
        proof = [tiles.range_hash(lo, hi, tile_list, leaves_of, tile_size) for lo, hi in ranges]
        assert proof == [_b64(p) for p in v["proof"] or []]
        assert tiles.range_hash(0, size2, tile_list, leaves_of, tile_size) == _b64(v["root2"])
        checked += 1
    assert checked >= 8


@pytest.mark.parametrize("size", [0, 1, 255, 256, 257, 511, 512, 513, 768, 1000, len(BIG)])
def test_frontier_from_tiles_equals_the_frontier_over_all_leaves(size: int) -> None:
    leaves = BIG[:size]
    whole = size // 256
    frontier = tiles.frontier_from_tiles(list(tiles.tile_hashes(leaves)), leaves[whole * 256 :])
    expected = merkle.CompactRange()
    expected.extend(leaves)
    assert (frontier.size, frontier.hashes) == (expected.size, expected.hashes)
    assert frontier.root() == merkle.root(leaves)
    frontier.append(BIG[-1])  # and it keeps growing like the real one
    expected.append(BIG[-1])
    assert frontier.root() == expected.root()


def test_frontier_from_tiles_refuses_a_whole_tile_as_partial() -> None:
    with pytest.raises(ValueError, match="partial tile"):
        tiles.frontier_from_tiles([], BIG[:256])


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 2 * 64 + 20), tile_height=st.integers(0, 5))
def test_frontier_and_root_from_tiles_at_any_size_and_tile_height(n: int, tile_height: int) -> None:
    tile_size = 1 << tile_height
    leaves = BIG[:n]
    tile_list = list(tiles.tile_hashes(leaves, tile_size))
    frontier = tiles.frontier_from_tiles(tile_list, leaves[len(tile_list) * tile_size :], tile_size)
    assert frontier.root() == merkle.root(leaves)


def test_tip_turns_every_256th_leaf_into_a_pending_tile() -> None:
    tip = tiles.Tip([], 0)
    for leaf in BIG[:255]:
        tip.add(leaf)
    assert tip.pending == [] and len(tip.partial) == 255
    tip.add(BIG[255])
    assert tip.pending == [merkle.subtree_hash(BIG, 0, 256)] and tip.partial == []
    for leaf in BIG[256:600]:
        tip.add(leaf)
    assert tip.pending == [merkle.subtree_hash(BIG, 0, 256), merkle.subtree_hash(BIG, 256, 512)]
    assert tip.partial == BIG[512:600]
