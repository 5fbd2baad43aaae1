"""Stored subtree hashes ("tiles") over the log's leaves, so nothing has to read them all.

Tile k is the RFC 9162 hash of the 256 leaves [256k, 256k + 256): one level of the
transparency-dev tlog tiles (height 8), kept in the append-only table ``log_tiles`` under
``seq`` k. ``Ledger.append`` stores tile k in the append that brings the log to 256(k + 1)
entries. Tiles that are missing (a log built by raw inserts) are computed from the leaves: in
memory on reading paths, and stored by the next append, so the table heals itself.

With tiles, a fresh process rebuilds the frontier, proves a new checkpoint consistent with the
last one and makes inclusion proofs from n/256 stored hashes plus the leaves of a few tiles,
instead of reading all n leaves (and their hashes) every time.

Why a cache of hashes does not weaken the log. Tiles are derived data, never evidence:

* signing a new checkpoint still needs an RFC 9162 consistency proof (now made from tiles)
  against the last signed root, and refuses if it fails: every signed root extends the
  previous one, whatever the tiles say;
* a leaf edited without its tile is caught by ``Ledger.verify``, which re-derives everything
  from the entry bodies and never reads a tile to do so;
* a tile edited without its leaves is caught by ``verify`` (it recomputes every tile in its one
  pass and names the tile's first seq) and by ``Ledger.prove_many``, which checks each proof it
  makes against the signed root before handing it out.

Range hashes. Every range named by ``merkle.inclusion_ranges`` / ``consistency_ranges`` has
``lo`` aligned to the smallest power of two >= its length (the RFC 9162 recursion only splits
at powers of two). So a range of at least one tile starts on a tile boundary, and its hash is
the compact range over the tiles it covers extended with the leaves of its unfinished last
tile; a shorter range lies inside one tile, whose leaves are read. ``range_hash`` computes any
range of either shape.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from typing import Final

from sqlalchemy import Connection, func, insert, select

from publisher.errors import LogIntegrityError
from publisher.ledger import merkle
from publisher.ledger.tables import LOG_SIZE, log_entries, log_tiles
from publisher.store import db

TILE_HEIGHT: Final = 8
TILE_SIZE: Final = 1 << TILE_HEIGHT
_BATCH = 10_000
# Written once per 256 appends, on the append's own connection and transaction (see log.py).
_MAX_SQL: Final = "SELECT coalesce(max(seq) + 1, 0) FROM log_tiles"
_INSERT_SQL: Final = {
    "sqlite": "INSERT INTO log_tiles (seq, hash) VALUES (?, ?)",
    "postgresql": "INSERT INTO log_tiles (seq, hash) VALUES (%s, %s)",
}


# --------------------------------------------------------------------------- pure


def tile_hashes(leaves: Iterable[bytes], tile_size: int = TILE_SIZE) -> Iterator[bytes]:
    """The hash of each complete tile of ``leaves`` (a trailing partial tile is dropped)."""
    chunk: list[bytes] = []
    for leaf in leaves:
        chunk.append(leaf)
        if len(chunk) == tile_size:
            yield merkle.root(chunk)
            chunk = []


def frontier_from_tiles(
    tiles: Sequence[bytes], partial: Sequence[bytes], tile_size: int = TILE_SIZE
) -> merkle.CompactRange:
    """The compact range over leaves [0, t * tile_size + len(partial)) from the t tile hashes
    and the leaves of the unfinished tile: the set bits of t * tile_size are those of t moved
    up, so the compact range over the tiles is the one over their leaves."""
    if len(partial) >= tile_size:
        raise ValueError(f"a partial tile has fewer than {tile_size} leaves, not {len(partial)}")
    over_tiles = merkle.CompactRange()
    over_tiles.extend(tiles)
    frontier = merkle.CompactRange(len(tiles) * tile_size, over_tiles.hashes)
    frontier.extend(partial)
    return frontier


def join(
    over_tiles: merkle.CompactRange, inner: merkle.CompactRange, tile_size: int = TILE_SIZE
) -> merkle.CompactRange:
    """The compact range over all leaves from the one over whole tiles and the one over the
    leaves of the unfinished tile (``inner.size < tile_size``)."""
    return merkle.CompactRange(over_tiles.size * tile_size + inner.size, over_tiles.hashes + inner.hashes)


def range_hash(
    lo: int,
    hi: int,
    tiles: Sequence[bytes],
    leaves_of: Callable[[int], Sequence[bytes]],
    tile_size: int = TILE_SIZE,
) -> bytes:
    """The subtree hash of leaves [lo, hi) from tile hashes and the leaves of at most one tile.

    ``tiles[k]`` is tile k's hash (needed for the tiles inside [lo, hi)); ``leaves_of(k)`` gives
    the leaf hashes of tile k from its first leaf (needed at least up to ``hi``). The range must
    start on a tile boundary or lie inside one tile, as every proof range does; anything else
    is a ValueError.
    """
    if not 0 <= lo < hi:
        raise ValueError(f"[{lo}, {hi}) is not a range of leaves")
    first, offset = divmod(lo, tile_size)
    if offset == 0 and hi - lo >= tile_size:
        last, rest = divmod(hi, tile_size)
        if len(tiles) < last:
            raise ValueError(f"range [{lo}, {hi}) needs tile {last - 1}, only {len(tiles)} given")
        over_tiles = merkle.CompactRange()
        over_tiles.extend(tiles[first:last])
        frontier = merkle.CompactRange((last - first) * tile_size, over_tiles.hashes)
        if rest:
            frontier.extend(_prefix(leaves_of(last), rest, last * tile_size))
        return frontier.root()
    if (hi - 1) // tile_size != first:
        raise ValueError(f"range [{lo}, {hi}) neither starts on a tile boundary nor lies inside one tile")
    inside = _prefix(leaves_of(first), hi - first * tile_size, first * tile_size)
    return merkle.subtree_hash(inside, offset, len(inside))


def _prefix(leaves: Sequence[bytes], count: int, start: int) -> Sequence[bytes]:
    if len(leaves) < count:
        raise ValueError(f"leaves {start}..{start + count - 1} needed, only {len(leaves)} of them given")
    return leaves[:count]


# --------------------------------------------------------------------------- reading


def read_tiles(conn: Connection, count: int | None = None) -> list[bytes]:
    """The stored tile hashes with seq below ``count`` (all if None), in order."""
    query = select(log_tiles.c.seq, log_tiles.c.hash).order_by(log_tiles.c.seq)
    if count is not None:
        query = query.where(log_tiles.c.seq < count)
    out: list[bytes] = []
    with closing(conn.execute(query.execution_options(yield_per=_BATCH))) as result:
        for seq, value in result:
            if seq != len(out):
                raise LogIntegrityError(len(out) * TILE_SIZE, f"log_tiles has no tile {len(out)} but has tile {seq}")
            out.append(bytes(value))
    return out


def leaf_range(conn: Connection, start: int, end: int) -> list[bytes]:
    """The leaf hashes [start, end); LogIntegrityError if an entry is missing."""
    query = (
        select(log_entries.c.leaf_hash)
        .where(log_entries.c.seq >= start, log_entries.c.seq < end)
        .order_by(log_entries.c.seq)
    )
    leaves = [bytes(leaf) for (leaf,) in conn.execute(query)]
    if len(leaves) != end - start:
        raise LogIntegrityError(start + len(leaves), "entry is missing")
    return leaves


def computed_tiles(conn: Connection, first: int, end: int) -> list[bytes]:
    """Tiles [first, end) computed from the stored leaves, in one streaming pass."""
    if end <= first:
        return []
    query = (
        select(log_entries.c.leaf_hash)
        .where(log_entries.c.seq >= first * TILE_SIZE, log_entries.c.seq < end * TILE_SIZE)
        .order_by(log_entries.c.seq)
        .execution_options(yield_per=_BATCH)
    )
    with closing(conn.execute(query)) as result:  # a server-side cursor on PostgreSQL
        out = list(tile_hashes(bytes(leaf) for (leaf,) in result))
    if len(out) != end - first:
        raise LogIntegrityError((first + len(out)) * TILE_SIZE, "entry is missing (a tile's leaves are incomplete)")
    return out


def all_tiles(conn: Connection, count: int) -> tuple[list[bytes], int]:
    """Tiles [0, count): the stored ones, then the missing ones computed from the leaves
    (nothing is written); returns them with how many were stored."""
    stored = read_tiles(conn, count)
    return stored + computed_tiles(conn, len(stored), count), len(stored)


class TreeReader:
    """The tree over the first ``size`` entries, read from tiles and leaves as needed.

    For one call (one transaction): it caches the leaves of each tile it reads and each range
    hash it computes. Missing tiles are computed in memory; nothing is written.
    """

    def __init__(self, conn: Connection, size: int) -> None:
        self.size = size
        self.tiles, _ = all_tiles(conn, size // TILE_SIZE)
        self._conn = conn
        self._leaves: dict[int, list[bytes]] = {}
        self._ranges: dict[tuple[int, int], bytes] = {}

    def leaves_of(self, tile: int) -> list[bytes]:
        """The leaf hashes of tile ``tile`` that are inside the tree."""
        found = self._leaves.get(tile)
        if found is None:
            start = tile * TILE_SIZE
            found = self._leaves[tile] = leaf_range(self._conn, start, min(start + TILE_SIZE, self.size))
        return found

    def leaf(self, seq: int) -> bytes:
        return self.leaves_of(seq // TILE_SIZE)[seq % TILE_SIZE]

    def range_hash(self, lo: int, hi: int) -> bytes:
        found = self._ranges.get((lo, hi))
        if found is None:
            found = self._ranges[lo, hi] = range_hash(lo, hi, self.tiles, self.leaves_of)
        return found

    def root(self) -> bytes:
        return self.range_hash(0, self.size) if self.size else merkle.EMPTY_ROOT


# --------------------------------------------------------------------------- appending


@dataclass
class Tip:
    """What appending needs beside the frontier: the leaves of the unfinished tile, how many
    tiles ``log_tiles`` holds, and the finished tiles it does not hold yet (in order)."""

    partial: list[bytes]
    stored: int
    pending: list[bytes] = field(default_factory=list)

    def add(self, leaf: bytes) -> None:
        """Account for one appended leaf; a finished tile becomes pending."""
        partial = self.partial
        partial.append(leaf)
        if len(partial) == TILE_SIZE:
            self.pending.append(merkle.root(partial))
            self.partial = []

    def flush(self, conn: Connection) -> None:
        """Insert the pending tiles, on the driver connection under ``conn`` (its transaction)."""
        with db.driver(conn, _MAX_SQL) as cursor:
            cursor.execute(_MAX_SQL)
            present = cursor.fetchone()[0]
        if present < self.stored:  # rows cannot be deleted; someone dropped the guards
            raise LogIntegrityError(present * TILE_SIZE, f"log_tiles lost its tiles from {present} on")
        rows = [(self.stored + i, h) for i, h in enumerate(self.pending) if self.stored + i >= present]
        if rows:
            insert = _INSERT_SQL[conn.dialect.name]
            with db.driver(conn, insert, rows, many=True) as cursor:
                cursor.executemany(insert, rows)
        self.stored += len(self.pending)
        self.pending = []


def load(conn: Connection, size: int) -> tuple[merkle.CompactRange, Tip]:
    """The frontier of the log's first ``size`` entries and its tip, from tiles and the
    leaves of the unfinished tile (missing tiles computed from leaves, left pending)."""
    count = size // TILE_SIZE
    tiles, stored = all_tiles(conn, count)
    partial = leaf_range(conn, count * TILE_SIZE, size)
    return frontier_from_tiles(tiles, partial), Tip(partial, stored, tiles[stored:])


def backfill(conn: Connection) -> int:
    """Store every missing tile of the log (one streaming pass over the leaves it needs);
    returns how many were written. For migrations and repair; appends heal on their own."""
    size = conn.execute(LOG_SIZE).scalar_one()
    stored = conn.execute(select(func.count()).select_from(log_tiles)).scalar_one()
    missing = computed_tiles(conn, stored, size // TILE_SIZE)
    for start in range(0, len(missing), 1000):
        chunk = missing[start : start + 1000]
        conn.execute(insert(log_tiles), [{"seq": stored + start + i, "hash": h} for i, h in enumerate(chunk)])
    return len(missing)
