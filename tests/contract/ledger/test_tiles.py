"""Stored tiles on every store (SQLite; PostgreSQL with PUBLISHER_TEST_DATABASE_URL): appends
write them, fresh processes read them for the frontier, checkpoints and proofs, the database
keeps them append-only, tampering with them is caught, and a log without them heals."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.exc import DBAPIError

from publisher.errors import LogIntegrityError
from publisher.ledger import canonical, log, merkle
from publisher.ledger.log import Ledger, install, verify_entry_proof
from publisher.ledger.note import TlogProof
from publisher.ledger.tiles import TILE_SIZE
from tests.contract.ledger.test_log import SIGNER, _drop_guards, _fill

TS = "2026-11-24T09:00:00.000000Z"


def _leaves(conn: Connection) -> list[bytes]:
    return [bytes(r[0]) for r in conn.execute(text("SELECT leaf_hash FROM log_entries ORDER BY seq"))]


def _tiles(conn: Connection) -> list[tuple[int, bytes]]:
    return [(r[0], bytes(r[1])) for r in conn.execute(text("SELECT seq, hash FROM log_tiles ORDER BY seq"))]


def _expected_tiles(leaves: list[bytes]) -> list[tuple[int, bytes]]:
    return [
        (k, merkle.subtree_hash(leaves, k * TILE_SIZE, (k + 1) * TILE_SIZE)) for k in range(len(leaves) // TILE_SIZE)
    ]


def _raw_fill(conn: Connection, start: int, end: int) -> None:
    """Entries exactly as Ledger.append writes them, but no tiles (as the benchmarks once did)."""
    for seq in range(start, end):
        raw = canonical.encode_versioned({"n": seq, "seq": seq, "kind": log.POST_PUBLISHED, "ts": TS})
        conn.execute(
            text("INSERT INTO log_entries (seq, kind, body, leaf_hash, created_at) VALUES (:s, :k, :b, :h, :c)"),
            {"s": seq, "k": log.POST_PUBLISHED, "b": raw, "h": merkle.leaf_hash(raw), "c": TS},
        )


# ---------------------------------------------------------------- writing


def test_append_stores_each_tile_when_the_log_reaches_it(engine: Engine) -> None:
    ledger = Ledger(engine, SIGNER)
    with engine.begin() as conn:
        _fill(ledger, conn, 255)
        assert _tiles(conn) == []
        _fill(ledger, conn, 1, start=255)
        assert _tiles(conn) == _expected_tiles(_leaves(conn))
        assert len(_tiles(conn)) == 1
    with engine.begin() as conn:
        _fill(ledger, conn, 600 - 256, start=256)
    with engine.begin() as conn:
        assert _tiles(conn) == _expected_tiles(_leaves(conn))
        assert len(_tiles(conn)) == 2


def test_a_rolled_back_append_takes_its_tile_with_it(engine: Engine) -> None:
    ledger = Ledger(engine, SIGNER)
    with engine.begin() as conn:
        _fill(ledger, conn, 255)
    with engine.connect() as conn:
        ledger.append(conn, log.TAKEN_DOWN, {"post": "post:gone"})
        assert len(_tiles(conn)) == 1
        conn.rollback()
    with engine.begin() as conn:
        assert _tiles(conn) == []
        _fill(ledger, conn, 2, start=255)  # the same process goes on with a true frontier
        assert _tiles(conn) == _expected_tiles(_leaves(conn))
        ledger.checkpoint(conn)
        assert ledger.verify(conn).size == 257


# ---------------------------------------------------------------- reading, from a fresh process

SIZES = [0, 1, 255, 256, 257, 511, 512, 513, 1000, 1024, 1029]


def test_fresh_frontier_and_checkpoints_from_tiles_equal_the_all_leaves_root(engine: Engine) -> None:
    writer = Ledger(engine, SIGNER)
    size = 0
    for target in SIZES:
        with engine.begin() as conn:
            _fill(writer, conn, target - size, start=size)
            size = target
        with engine.begin() as conn:
            fresh = Ledger(engine, SIGNER)  # nothing cached: frontier from tiles + partial leaves
            assert fresh.head(conn) == (size, merkle.root(_leaves(conn)))
            if size:
                # a process that did not sign the last checkpoint proves the new one consistent from tiles
                Ledger(engine, SIGNER).checkpoint(conn)
    with engine.begin() as conn:
        report = Ledger(engine, SIGNER).verify(conn)
        assert (report.size, report.checkpoints_verified) == (1029, len(SIZES) - 1)
        assert report.root_hash == merkle.root(_leaves(conn))
        fresh = Ledger(engine, SIGNER)  # and appends on from a frontier made from tiles
        _fill(fresh, conn, 1100 - 1029, start=1029)
        assert fresh.head(conn) == (1100, merkle.root(_leaves(conn)))
        assert _tiles(conn) == _expected_tiles(_leaves(conn))


def test_proofs_from_a_fresh_ledger_verify(engine: Engine) -> None:
    writer = Ledger(engine, SIGNER)
    with engine.begin() as conn:
        _fill(writer, conn, 777)
        writer.checkpoint(conn)
        _fill(writer, conn, 3, start=777)  # not covered: the proofs are against size 777
    wanted = [0, 1, 200, 255, 256, 257, 300, 511, 512, 513, 700, 767, 768, 776]
    with engine.begin() as conn:
        proofs = Ledger(engine, SIGNER).prove_many(conn, wanted)
        leaves = _leaves(conn)[:777]
    for seq in wanted:
        proven = verify_entry_proof(proofs[seq], SIGNER.verifier.vkey)
        assert (proven.seq, proven.checkpoint.size, proven.body["n"]) == (seq, 777, seq)
        assert TlogProof.parse(proofs[seq]).proof == tuple(merkle.inclusion_proof(seq, leaves))


# ---------------------------------------------------------------- database guards


def _refused(engine: Engine, statement: str, params: dict[str, object] | None = None) -> None:
    with engine.connect() as conn:
        with pytest.raises(DBAPIError):
            conn.execute(text(statement), params or {})
        conn.rollback()


def test_database_refuses_changing_deleting_or_skipping_tiles(engine: Engine) -> None:
    ledger = Ledger(engine, SIGNER)
    with engine.begin() as conn:
        _fill(ledger, conn, 2 * TILE_SIZE + 5)
        before = _tiles(conn)
    h = {"h": bytes(32)}
    _refused(engine, "UPDATE log_tiles SET hash = :h WHERE seq = 0", h)
    _refused(engine, "DELETE FROM log_tiles WHERE seq = 1")
    _refused(engine, "DELETE FROM log_tiles")
    _refused(engine, "INSERT INTO log_tiles (seq, hash) VALUES (3, :h)", h)  # out of order: 2 comes first
    _refused(engine, "INSERT INTO log_tiles (seq, hash) VALUES (1, :h)", h)  # again
    if engine.dialect.name == "sqlite":
        _refused(engine, "INSERT OR REPLACE INTO log_tiles (seq, hash) VALUES (0, :h)", h)
    else:
        _refused(engine, "INSERT INTO log_tiles VALUES (0, :h) ON CONFLICT (seq) DO UPDATE SET hash = excluded.hash", h)
        _refused(engine, "TRUNCATE log_tiles")
        with engine.connect() as conn:
            conn.exec_driver_sql("SET session_replication_role = replica")
            with pytest.raises(DBAPIError, match="append-only"):
                conn.exec_driver_sql("DELETE FROM log_tiles")
            conn.rollback()
    with engine.begin() as conn:
        assert _tiles(conn) == before == _expected_tiles(_leaves(conn))


# ---------------------------------------------------------------- tampering


def _set_tile(engine: Engine, seq: int, value: bytes) -> None:
    with engine.begin() as conn:
        _drop_guards(conn)
        conn.execute(text("UPDATE log_tiles SET hash = :h WHERE seq = :s"), {"h": value, "s": seq})


def test_a_tampered_tile_is_named_by_verify_and_refused_by_prove_and_checkpoint(engine: Engine) -> None:
    ledger = Ledger(engine, SIGNER)
    with engine.begin() as conn:
        _fill(ledger, conn, 600)
        ledger.checkpoint(conn)
        true_tile = _tiles(conn)[1][1]
    _set_tile(engine, 1, merkle.leaf_hash(b"forged"))
    with engine.begin() as conn, pytest.raises(LogIntegrityError, match="tile 1") as caught:
        Ledger(engine, SIGNER).verify(conn)
    assert caught.value.seq == 256
    for prover in (ledger, Ledger(engine, SIGNER)):  # the writer too: proofs never come from its cache
        with engine.begin() as conn, pytest.raises(LogIntegrityError, match="checkpoint 600"):
            prover.prove_many(conn, [0, 300, 599])
    with engine.begin() as conn:
        fresh = Ledger(engine, SIGNER)
        _fill(fresh, conn, 10, start=600)
        with pytest.raises(LogIntegrityError, match="refusing to sign"):
            fresh.checkpoint(conn)  # its consistency proof is made from the tiles, and fails
    _set_tile(engine, 1, true_tile)
    with engine.begin() as conn:
        Ledger(engine, SIGNER).checkpoint(conn)  # with the true tile it signs
        assert Ledger(engine, SIGNER).verify(conn).size == 610
        assert verify_entry_proof(Ledger(engine, SIGNER).prove(conn, 300), SIGNER.verifier).seq == 300


def test_a_leaf_edited_under_its_tile_is_named_by_verify_and_refused_by_prove(engine: Engine) -> None:
    ledger = Ledger(engine, SIGNER)
    with engine.begin() as conn:
        _fill(ledger, conn, 600)
        ledger.checkpoint(conn)
    with engine.begin() as conn:
        _drop_guards(conn)
        body = bytes(conn.execute(text("SELECT body FROM log_entries WHERE seq = 300")).scalar_one())
        forged = body.replace(b'"n":300', b'"n":301')
        conn.execute(
            text("UPDATE log_entries SET body = :b, leaf_hash = :h WHERE seq = 300"),
            {"b": forged, "h": merkle.leaf_hash(forged)},
        )  # a careful forger, who leaves the tile alone
    with engine.begin() as conn, pytest.raises(LogIntegrityError) as caught:
        Ledger(engine, SIGNER).verify(conn)
    assert caught.value.seq is not None and caught.value.seq <= 300
    with engine.begin() as conn, pytest.raises(LogIntegrityError) as caught:
        Ledger(engine, SIGNER).prove_many(conn, [10, 300])
    assert caught.value.seq == 300


def test_a_tile_stored_past_the_log_is_named_by_verify(engine: Engine) -> None:
    ledger = Ledger(engine, SIGNER)
    with engine.begin() as conn:
        _fill(ledger, conn, 300)
        _drop_guards(conn)
        conn.execute(text("INSERT INTO log_tiles (seq, hash) VALUES (1, :h)"), {"h": bytes(32)})
    with engine.begin() as conn, pytest.raises(LogIntegrityError, match="tile 1 is stored") as caught:
        Ledger(engine, SIGNER).verify(conn)
    assert caught.value.seq == 256


@pytest.fixture(scope="module")
def tiled_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite log of 3 tiles and a bit, checkpointed; copied for each example."""
    path = tmp_path_factory.mktemp("tiled") / "log.db"
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        install(conn)
        ledger = Ledger(engine, SIGNER)
        _fill(ledger, conn, 3 * TILE_SIZE + 9)
        ledger.checkpoint(conn)
    engine.dispose()
    return path


@settings(max_examples=30, deadline=None)
@given(tile=st.integers(0, 2), position=st.integers(0, 31), mask=st.integers(1, 255))
def test_any_flipped_tile_byte_is_caught(
    tiled_log: Path, tmp_path_factory: pytest.TempPathFactory, tile: int, position: int, mask: int
) -> None:
    path = tmp_path_factory.mktemp("flip") / "log.db"
    shutil.copy(tiled_log, path)
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        value = bytearray(dict(_tiles(conn))[tile])
    value[position] ^= mask
    _set_tile(engine, tile, bytes(value))
    with engine.begin() as conn, pytest.raises(LogIntegrityError) as caught:
        Ledger(engine, SIGNER).verify(conn)
    assert caught.value.seq == tile * TILE_SIZE
    with engine.begin() as conn, pytest.raises(LogIntegrityError):
        Ledger(engine, SIGNER).prove(conn, 5)
    engine.dispose()


# ---------------------------------------------------------------- missing tiles


def test_a_log_without_tiles_proves_and_heals_on_the_next_append(engine: Engine) -> None:
    with engine.begin() as conn:
        _raw_fill(conn, 0, 700)
    with engine.begin() as conn:
        reader = Ledger(engine, SIGNER)
        assert reader.head(conn) == (700, merkle.root(_leaves(conn)))  # tiles computed in memory
        reader.checkpoint(conn)
        proofs = reader.prove_many(conn, [0, 299, 699])
        assert _tiles(conn) == []  # reading paths write nothing
    assert [verify_entry_proof(p, SIGNER.verifier).seq for p in proofs.values()] == [0, 299, 699]
    with engine.begin() as conn:
        Ledger(engine, SIGNER).append(conn, log.TAKEN_DOWN, {"post": "post:1"})  # a fresh writer heals
        assert _tiles(conn) == _expected_tiles(_leaves(conn))
        assert len(_tiles(conn)) == 2
    with engine.begin() as conn:
        _raw_fill(conn, 701, 1100)  # tiles 2..3 missing again, behind a cached frontier
        reader.append(conn, log.TAKEN_DOWN, {"post": "post:2"})  # the same Ledger notices and heals
        assert _tiles(conn) == _expected_tiles(_leaves(conn))
        assert len(_tiles(conn)) == 4
        reader.checkpoint(conn)
        assert reader.verify(conn).size == 1101
