"""Re-deriving the log from its rows (the work behind ``Ledger.verify``), over several processes.

The rows are read once, in seq order, by the caller's connection: one statement, so one
snapshot (on PostgreSQL under READ COMMITTED the checkpoints and tiles are read by statements of
their own, before the rows; the tables are append-only, so rows read later only add). They are cut
into pieces of whole tiles; each piece is checked (``check_row``: dense seq, leaf hash, log JSON
naming its own seq, kind and ts) and its tiles hashed by ``scan``, here or in a worker process.
``Rederived`` then joins the pieces in order: each tile against the stored one, the frontier at
every checkpoint size against that checkpoint's root. A piece only says where its first bad row
is; the join raises the first problem in seq order, so the error is the one a single pass names.

Checking a row costs about 8 µs, most of it strict JSON parsing, so a 1,000,000-entry log
takes one core about 8 s; with a worker process on the second core it took 5.1 s here (this
process reads, hands pieces over and checks what the workers have no room for). The workers
are spawned (never forked from a process that may hold threads and connections) and see
only row tuples, never a connection or a key.
"""

from __future__ import annotations

import bisect
import multiprocessing
import os
from collections import deque
from collections.abc import Generator, Iterable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from publisher.errors import InvalidInput, LedgerError, LogIntegrityError
from publisher.ledger import canonical, merkle
from publisher.ledger.tiles import TILE_SIZE, join
from publisher.store import db

PIECE = 64 * TILE_SIZE  # rows per piece of work (about 9 MB of bodies)
PARALLEL_FROM = 100_000  # below this, starting a worker costs more than it saves
MAX_PROCESSES = 4  # the reading process feeds about three workers; each holds two pieces in hand


def check_row(seq: int, row: Sequence[Any]) -> None:
    """Raise LogIntegrityError unless stored row ``row`` (seq, kind, body, leaf_hash,
    created_at) is a sound entry ``seq``."""
    stored_seq, kind, raw, leaf, created_at = row
    if stored_seq != seq:
        raise LogIntegrityError(seq, f"entry is missing (the next stored entry is {stored_seq})")
    if type(raw) is not bytes or type(leaf) is not bytes:
        raise LogIntegrityError(seq, "entry body or leaf hash is not stored as bytes")
    if merkle.leaf_hash(raw) != leaf:
        raise LogIntegrityError(seq, "stored leaf hash does not match the entry body")
    try:
        doc = canonical.parse_object(raw)
    except (InvalidInput, canonical.CanonicalError) as exc:
        raise LogIntegrityError(seq, f"entry body is not valid log JSON ({exc})") from exc
    if doc.get("seq") != seq:
        raise LogIntegrityError(seq, f"entry body says seq {doc.get('seq')!r}: rows were moved")
    if doc.get("kind") != kind or doc.get("ts") != created_at:
        raise LogIntegrityError(seq, "kind or created_at column differs from the entry body")
    if doc.get("v") != canonical.SCHEMA_VERSION:
        raise LogIntegrityError(seq, f"unknown schema version {doc.get('v')!r}")


@dataclass(frozen=True)
class Piece:
    """What ``scan`` found in rows ``first``, ``first + 1``, ... (``first`` on a tile boundary)."""

    first: int
    end: int  # one past the last sound row
    tiles: list[bytes]  # the hashes of the tiles the sound rows complete, in order
    at: dict[int, tuple[bytes, ...]]  # per wanted size: the compact range of its unfinished tile
    inner: tuple[bytes, ...]  # the compact range of the unfinished tile at ``end``
    error: tuple[int, str] | None  # the first unsound row: its seq and what is wrong


def scan(first: int, rows: Iterable[Sequence[Any]], wanted: Sequence[int]) -> Piece:
    """Check ``rows`` as entries ``first``, ``first + 1``, ... up to the first unsound one,
    hashing their tiles and noting the unfinished tile's compact range at each ``wanted`` size."""
    if first % TILE_SIZE:
        raise ValueError(f"a piece starts on a tile boundary, not at {first}")
    done: list[bytes] = []
    at: dict[int, tuple[bytes, ...]] = {}
    marks = set(wanted)
    inner = merkle.CompactRange()
    seq, error = first, None
    for row in rows:
        try:
            check_row(seq, row)
        except LogIntegrityError as exc:
            error = (seq, exc.what)
            break
        inner.append(row[3])  # bytes: check_row made sure
        seq += 1
        if inner.size == TILE_SIZE:
            done.append(inner.root())
            inner = merkle.CompactRange()
        if seq in marks:
            at[seq] = inner.hashes
    return Piece(first, seq, done, at, inner.hashes, error)


class Rederived:
    """The log's frontier rebuilt from pieces taken in order, every tile compared with the stored
    one (a tile not stored yet is no error: appends store it) and every checkpoint's root with
    the frontier at its size. Raises LogIntegrityError at the first problem in seq order."""

    def __init__(self, stored: Sequence[bytes], expected: dict[int, list[tuple[str, bytes]]]) -> None:
        self.stored = stored
        self.expected = expected
        self.over_tiles = merkle.CompactRange()
        self.inner: tuple[bytes, ...] = ()
        self.size = 0
        self.good = 0  # the size of the last checkpoint matched
        if 0 in expected:
            self._match(0, ())

    def take(self, piece: Piece) -> None:
        if piece.first != self.size:
            raise ValueError(f"piece at {piece.first} taken at size {self.size}")
        tiles = iter(piece.tiles)
        for size in sorted(piece.at):
            while self.over_tiles.size < size // TILE_SIZE:
                self._tile(next(tiles))
            self._match(size, piece.at[size])
        for tile in tiles:
            self._tile(tile)
        if piece.error is not None:
            raise LogIntegrityError(*piece.error)
        self.size, self.inner = piece.end, piece.inner

    def frontier(self) -> merkle.CompactRange:
        return join(self.over_tiles, merkle.CompactRange(self.size % TILE_SIZE, self.inner))

    def finish(self) -> None:
        """Refuse stored tiles past the log's last whole tile (their entries are gone)."""
        k = self.over_tiles.size
        if len(self.stored) > k:
            raise LogIntegrityError(
                k * TILE_SIZE,
                f"tile {k} is stored but entries {k * TILE_SIZE}..{k * TILE_SIZE + TILE_SIZE - 1} are not all in the log",
            )

    def _tile(self, tile: bytes) -> None:
        k = self.over_tiles.size
        if k < len(self.stored) and self.stored[k] != tile:
            first = k * TILE_SIZE
            raise LogIntegrityError(first, f"stored tile {k} does not match entries {first}..{first + TILE_SIZE - 1}")
        self.over_tiles.append(tile)

    def _match(self, size: int, inner: tuple[bytes, ...]) -> None:
        frontier = join(self.over_tiles, merkle.CompactRange(size % TILE_SIZE, inner))
        root_hash = frontier.root()
        for source, expected_root in self.expected[size]:
            if expected_root != root_hash:
                raise LogIntegrityError(
                    self.good, f"entries {self.good}..{size - 1} do not match the {source} checkpoint at size {size}"
                )
        self.good = size


def processes_for(size: int) -> int:
    """How many processes to verify a log of ``size`` entries with: one per usable core up to
    MAX_PROCESSES, or one when the log is small enough that a worker's start-up would cost more
    than it saves."""
    if size < PARALLEL_FROM:
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(cores, MAX_PROCESSES))


_ROWS_SQL = "SELECT seq, kind, body, leaf_hash, created_at FROM log_entries ORDER BY seq"


def pieces(conn: Connection) -> Generator[list[tuple[Any, ...]], None, None]:
    """Every log row in seq order, ``PIECE`` at a time, read in ``conn``'s transaction by the
    driver itself (plain tuples, ready to hand to a worker). PostgreSQL streams them from a
    server-side cursor; SQLite's cursor streams anyway."""
    with db.driver(conn, _ROWS_SQL, name="publisher_verify") as cursor:
        cursor.execute(_ROWS_SQL)
        while rows := cursor.fetchmany(PIECE):
            yield rows


def rederive(
    pieces: Iterable[Sequence[Sequence[Any]]],
    stored: Sequence[bytes],
    expected: dict[int, list[tuple[str, bytes]]],
    processes: int = 1,
) -> Rederived:
    """Check ``pieces`` (every entry in seq order, cut on tile boundaries) against the stored
    tiles and the checkpoints ``expected`` (size -> [(source, root)]) with this many processes;
    returns the joined frontier, ``finish`` not yet called. Raises LogIntegrityError at the
    first problem, LedgerError if a worker process died."""
    rederived = Rederived(stored, expected)
    marks = sorted(expected)
    if processes <= 1:
        for piece in pieces:
            rederived.take(scan(rederived.size, piece, _marks_in(marks, rederived.size, len(piece))))
        return rederived
    room = 2 * (processes - 1)  # pieces handed to workers and not yet back
    pending: deque[Future[Piece] | Piece] = deque()
    with ProcessPoolExecutor(processes - 1, mp_context=multiprocessing.get_context("spawn")) as pool:
        try:
            first = 0
            for piece in pieces:
                wanted = _marks_in(marks, first, len(piece))
                if sum(isinstance(p, Future) and not p.done() for p in pending) < room:
                    pending.append(pool.submit(scan, first, piece, wanted))
                else:  # the workers are busy: check this piece here
                    pending.append(scan(first, piece, wanted))
                first += len(piece)
                while pending and (isinstance(pending[0], Piece) or pending[0].done()):
                    rederived.take(_result(pending.popleft()))
            while pending:
                rederived.take(_result(pending.popleft()))
        except BrokenProcessPool as exc:  # from submit or from a result
            raise LedgerError(
                "a verify worker process stopped before it finished (out of memory, killed, or a script"
                " without an `if __name__ == '__main__':` guard); run 'publisher log verify --processes 1'"
            ) from exc
        finally:
            pool.shutdown(cancel_futures=True)
    return rederived


def _marks_in(marks: list[int], first: int, count: int) -> list[int]:
    """The sizes in ``marks`` (sorted) that fall after a row in ``[first, first + count)``."""
    return marks[bisect.bisect_right(marks, first) : bisect.bisect_right(marks, first + count)]


def _result(item: Future[Piece] | Piece) -> Piece:
    return item if isinstance(item, Piece) else item.result()
