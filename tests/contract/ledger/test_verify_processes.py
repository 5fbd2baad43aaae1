"""verify over two processes finds exactly what one process finds: the same report for a sound
log, the same first bad sequence number and message for each kind of tampering, on every store.

Pieces are cut at one tile (256 rows) here, so a log of 1,100 entries is five pieces: the first
two always go to the worker process, later ones to whichever is free.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import Connection, Engine, text

from publisher.errors import LogIntegrityError
from publisher.ledger import merkle, rederive
from publisher.ledger.log import Ledger
from tests.contract.ledger.test_log import SIGNER, _drop_guards, _fill, _put, _row

SIZE = 1_100


@pytest.fixture(autouse=True)
def _small_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rederive, "PIECE", 256)


def _flip_body(seq: int) -> Callable[[Connection], None]:
    def attack(conn: Connection) -> None:
        kind, body, leaf, ts = _row(conn, seq)
        _put(conn, seq, kind, body.replace(b'"n":', b'"m":'), leaf, ts)

    return attack


def _flip_leaf(seq: int) -> Callable[[Connection], None]:
    def attack(conn: Connection) -> None:
        kind, body, leaf, ts = _row(conn, seq)
        _put(conn, seq, kind, body, bytes([leaf[0] ^ 1]) + leaf[1:], ts)

    return attack


def _forge(seq: int) -> Callable[[Connection], None]:
    """A careful forger: a new body with its own leaf hash, the tile left alone."""

    def attack(conn: Connection) -> None:
        kind, body, _, ts = _row(conn, seq)
        forged = body.replace(f'"n":{seq}'.encode(), f'"n":{seq + 1}'.encode())
        _put(conn, seq, kind, forged, merkle.leaf_hash(forged), ts)

    return attack


def _delete(*seqs: int) -> Callable[[Connection], None]:
    def attack(conn: Connection) -> None:
        for seq in seqs:
            conn.execute(text("DELETE FROM log_entries WHERE seq = :s"), {"s": seq})

    return attack


def _swap(a: int, b: int) -> Callable[[Connection], None]:
    def attack(conn: Connection) -> None:
        row_a, row_b = _row(conn, a), _row(conn, b)
        _put(conn, a, *row_b)
        _put(conn, b, *row_a)

    return attack


def _as_text(seq: int) -> Callable[[Connection], None]:
    """The body rewritten as text (SQLite keeps it as TEXT; PostgreSQL casts it to bytea)."""

    def attack(conn: Connection) -> None:
        conn.execute(text("UPDATE log_entries SET body = :b WHERE seq = :s"), {"b": '{"seq":400}', "s": seq})

    return attack


def _tile(k: int) -> Callable[[Connection], None]:
    def attack(conn: Connection) -> None:
        conn.execute(text("UPDATE log_tiles SET hash = :h WHERE seq = :s"), {"h": bytes(32), "s": k})

    return attack


ATTACKS: dict[str, Callable[[Connection], None]] = {
    "body in the first piece": _flip_body(100),
    "body in a late piece": _flip_body(1_000),
    "leaf hash": _flip_leaf(700),
    "forged entry under its tile": _forge(300),
    "forged entry in the unfinished tile": _forge(1_050),
    "last row of a piece deleted": _delete(511),
    "first row of a piece deleted": _delete(768),
    "rows swapped across pieces": _swap(200, 900),
    "tile": _tile(2),
    "body stored as text": _as_text(400),
    "tail deleted": _delete(1_099, 1_098),
}


def _both(*attacks: Callable[[Connection], None]) -> Callable[[Connection], None]:
    def attack(conn: Connection) -> None:
        for one in attacks:
            one(conn)

    return attack


ATTACKS["two problems, the earlier named"] = _both(_flip_body(1_000), _flip_leaf(260))


def _outcome(engine: Engine, processes: int) -> tuple[object, ...]:
    with engine.begin() as conn:
        try:
            report = Ledger(engine, SIGNER).verify(conn, processes=processes)
        except LogIntegrityError as exc:
            return ("refused", exc.seq, str(exc))
    return ("sound", report.size, report.root_hash, report.checkpoints_verified)


def _build(engine: Engine) -> None:
    ledger = Ledger(engine, SIGNER)
    with engine.begin() as conn:
        _fill(ledger, conn, 500)
        ledger.checkpoint(conn)
        _fill(ledger, conn, 250, start=500)
        ledger.checkpoint(conn)  # mid-tile, inside a piece
        _fill(ledger, conn, SIZE - 750, start=750)
        ledger.checkpoint(conn)


def test_a_sound_log_gives_the_same_report(engine: Engine) -> None:
    _build(engine)
    one, two = _outcome(engine, 1), _outcome(engine, 2)
    assert one == two and one[:2] == ("sound", SIZE) and one[3] == 3


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_tampering_is_named_the_same(engine: Engine, name: str) -> None:
    _build(engine)
    with engine.begin() as conn:
        _drop_guards(conn)
        ATTACKS[name](conn)
    one, two = _outcome(engine, 1), _outcome(engine, 2)
    assert one[0] == "refused", f"{name} went unnoticed"
    assert two == one
