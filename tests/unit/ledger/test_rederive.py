"""Re-deriving the log from its rows (publisher.ledger.rederive): pieces joined in order name
the same first problem as the plain row-by-row pass verify made before, whatever the cut."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from publisher.errors import LedgerError, LogIntegrityError
from publisher.ledger import canonical, merkle, rederive, tiles
from publisher.ledger.rederive import Piece, Rederived

TS = "2026-11-26T09:00:00.000000Z"
BIG = [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(3 * 256 + 77)]  # 3 whole tiles and a partial one


def _piece(first: int, end: int, wanted: Sequence[int] = ()) -> Piece:
    """What scan reports for leaves BIG[first:end], built from the leaves alone."""
    inner, done, at = merkle.CompactRange(), [], {}
    for seq in range(first, end):
        inner.append(BIG[seq])
        if inner.size == 256:
            done.append(inner.root())
            inner = merkle.CompactRange()
        if seq + 1 in wanted:
            at[seq + 1] = inner.hashes
    return Piece(first, end, done, at, inner.hashes, None)


def test_rederived_joins_pieces_into_the_leaf_frontier_and_names_a_wrong_tile() -> None:
    good = list(tiles.tile_hashes(BIG))
    for cut in (256, 512, 768):  # two pieces, cut on a tile boundary
        rederived = Rederived(good[:2], {})  # a tile not stored yet is no error
        rederived.take(_piece(0, cut))
        rederived.take(_piece(cut, len(BIG)))
        expected = merkle.CompactRange()
        expected.extend(BIG)
        assert rederived.frontier().hashes == expected.hashes and rederived.size == len(BIG)
        rederived.finish()
    bad = Rederived([good[0], bytes(32)], {})
    with pytest.raises(LogIntegrityError, match=r"stored tile 1 does not match entries 256\.\.511") as caught:
        bad.take(_piece(0, 512))
    assert caught.value.seq == 256
    beyond = Rederived([*good, bytes(32)], {})
    beyond.take(_piece(0, len(BIG)))
    with pytest.raises(LogIntegrityError, match="tile 3 is stored") as caught:
        beyond.finish()
    assert caught.value.seq == 768


def test_rederived_checks_each_checkpoint_at_its_size_across_pieces() -> None:
    sizes = [0, 1, 255, 256, 300, 512, 600, 845]
    roots = {n: merkle.root(BIG[:n]) for n in sizes}
    expected = {n: [("stored", roots[n])] for n in sizes}
    rederived = Rederived([], expected)
    rederived.take(_piece(0, 512, sizes))
    rederived.take(_piece(512, len(BIG), sizes))
    assert rederived.good == 845
    wrong = {**expected, 600: [("stored", roots[600]), ("exported", roots[300])]}
    rederived = Rederived([], wrong)
    rederived.take(_piece(0, 512, sizes))
    with pytest.raises(LogIntegrityError, match=r"entries 512\.\.599 do not match the exported checkpoint at size 600"):
        rederived.take(_piece(512, len(BIG), sizes))


# -- against the row-by-row pass ------------------------------------------------------------
N = 3 * 256 + 40


def _row(seq: int) -> tuple[Any, ...]:
    raw = canonical.encode_versioned({"n": seq, "seq": seq, "kind": "post_published", "ts": TS})
    return (seq, "post_published", raw, merkle.leaf_hash(raw), TS)


ROWS = [_row(i) for i in range(N)]
TILES = list(tiles.tile_hashes(r[3] for r in ROWS))
CHECKPOINTS = [0, 1, 255, 256, 257, 511, 512, 600, 767, 768, 769, N]


def _reference(rows: Sequence[tuple[Any, ...]], stored: Sequence[bytes], expected: dict[int, Any]) -> Any:
    """The pass verify made before: a frontier grown leaf by leaf, every tile compared as it is
    finished, every checkpoint as its size is reached. Returns (size, root) or the error."""
    over, inner, good = merkle.CompactRange(), merkle.CompactRange(), 0

    def match(size: int) -> None:
        nonlocal good
        root = tiles.join(over, inner).root()
        for source, want in expected[size]:
            if want != root:
                raise LogIntegrityError(
                    good, f"entries {good}..{size - 1} do not match the {source} checkpoint at size {size}"
                )
        good = size

    try:
        if 0 in expected:
            match(0)
        for seq, row in enumerate(rows):
            rederive.check_row(seq, row)
            inner.append(row[3])
            if inner.size == 256:
                k = over.size
                if k < len(stored) and stored[k] != inner.root():
                    raise LogIntegrityError(
                        k * 256, f"stored tile {k} does not match entries {k * 256}..{k * 256 + 255}"
                    )
                over.append(inner.root())
                inner = merkle.CompactRange()
            if seq + 1 in expected:
                match(seq + 1)
        if len(stored) > over.size:
            k = over.size
            raise LogIntegrityError(
                k * 256, f"tile {k} is stored but entries {k * 256}..{k * 256 + 255} are not all in the log"
            )
    except LogIntegrityError as exc:
        return ("refused", exc.seq, str(exc))
    return ("sound", len(rows), tiles.join(over, inner).root())


def _rederived(rows: Sequence[tuple[Any, ...]], stored: Sequence[bytes], expected: dict[int, Any], cut: int) -> Any:
    try:
        pieces = [rows[i : i + cut] for i in range(0, len(rows), cut)]
        r = rederive.rederive(pieces, stored, expected, processes=1)
        r.finish()
    except LogIntegrityError as exc:
        return ("refused", exc.seq, str(exc))
    return ("sound", r.size, r.frontier().root())


attacks = st.lists(
    st.tuples(
        st.sampled_from(["body", "leaf", "delete", "swap", "kind", "tile", "checkpoint", "extra tile"]),
        st.integers(0, N - 1),
        st.integers(0, N - 1),
    ),
    max_size=3,
)


@settings(max_examples=300, deadline=None)
@given(attacks=attacks, cut=st.sampled_from([256, 512, 768, 1024]))
def test_pieces_name_what_the_row_by_row_pass_names(attacks: list[tuple[str, int, int]], cut: int) -> None:
    rows, stored = list(ROWS), list(TILES)
    expected: dict[int, list[tuple[str, bytes]]] = {
        n: [("stored", merkle.root([r[3] for r in ROWS[:n]]))] for n in CHECKPOINTS
    }
    for name, a, b in attacks:
        a, b = min(a, len(rows) - 1), min(b, len(rows) - 1)
        if name == "body":
            seq, kind, raw, leaf, ts = rows[a]
            rows[a] = (seq, kind, raw.replace(b'"n":', b'"m":'), leaf, ts)
        elif name == "leaf":
            seq, kind, raw, leaf, ts = rows[a]
            rows[a] = (seq, kind, raw, bytes([leaf[0] ^ 1]) + leaf[1:], ts)
        elif name == "delete":
            del rows[a]
        elif name == "swap":
            rows[a], rows[b] = rows[b], rows[a]
        elif name == "kind":
            seq, _, raw, leaf, ts = rows[a]
            rows[a] = (seq, "taken_down", raw, leaf, ts)
        elif name == "tile":
            stored[a % len(stored)] = bytes(32)
        elif name == "checkpoint":
            size = CHECKPOINTS[a % len(CHECKPOINTS)]
            expected[size] = [*expected[size], ("exported", merkle.leaf_hash(b"forged"))]
        else:
            stored.append(bytes(32))
    assert _rederived(rows, stored, expected, cut) == _reference(rows, stored, expected)


# -- a worker that dies ------------------------------------------------------------------------
def test_a_worker_killed_mid_way_is_a_one_line_error_naming_the_way_round() -> None:
    def pieces() -> Iterator[list[tuple[Any, ...]]]:
        yield ROWS[:256]
        for child in multiprocessing.active_children():  # the pool's worker, spawned for the first
            os.kill(child.pid, signal.SIGKILL)  # type: ignore[arg-type]
        time.sleep(0.5)
        yield from (ROWS[i : i + 256] for i in range(256, N, 256))

    with pytest.raises(LedgerError, match=r"worker process stopped.*run 'publisher log verify --processes 1'"):
        rederive.rederive(pieces(), TILES, {}, processes=2)


def test_small_logs_are_verified_by_one_process_and_large_ones_by_a_few() -> None:
    cores = len(os.sched_getaffinity(0))
    assert rederive.processes_for(rederive.PARALLEL_FROM - 1) == 1
    assert rederive.processes_for(rederive.PARALLEL_FROM) == min(cores, rederive.MAX_PROCESSES)
