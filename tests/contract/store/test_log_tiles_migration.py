"""Migration 0006 on every store: a database made before log_tiles gets the table, its
append-only rules and the tiles of the entries already logged; on a database that already has
them it changes nothing."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from publisher.ledger import log, merkle
from publisher.ledger.log import Ledger
from publisher.ledger.note import NoteSigner
from publisher.store import db
from tests.contract.ledger.test_tiles import _expected_tiles, _leaves, _raw_fill, _tiles

SIGNER = NoteSigner("trust.example/social-audit/v1", Ed25519PrivateKey.generate())


def _alembic(engine: sa.Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(db.MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def test_migration_0006_backfills_the_tiles_of_an_existing_log(database_url: str) -> None:
    engine = db.make_engine(database_url)
    cfg = _alembic(engine)
    command.upgrade(cfg, "0005")
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE log_tiles")  # as 0002 made databases before tiles
        _raw_fill(conn, 0, 700)  # a log of 2 whole tiles and a bit
    assert not sa.inspect(engine).has_table("log_tiles")
    db.migrate(engine)
    with engine.begin() as conn:
        assert _tiles(conn) == _expected_tiles(_leaves(conn))
        assert len(_tiles(conn)) == 2
    with engine.connect() as conn, pytest.raises(sa.exc.DBAPIError):
        conn.exec_driver_sql("DELETE FROM log_tiles")  # the append-only rules came with the table
    with engine.connect() as conn, pytest.raises(sa.exc.DBAPIError):
        conn.execute(sa.text("INSERT INTO log_tiles (seq, hash) VALUES (3, :h)"), {"h": bytes(32)})
    ledger = Ledger(engine, SIGNER)
    with engine.begin() as conn:
        for i in range(700, 770):
            ledger.append(conn, log.TAKEN_DOWN, {"n": i})
        ledger.checkpoint(conn)
        assert _tiles(conn) == _expected_tiles(_leaves(conn))
        assert len(_tiles(conn)) == 3
        assert Ledger(engine, SIGNER).verify(conn).size == 770
        before = _tiles(conn)
    command.stamp(cfg, "0005")
    command.upgrade(cfg, "0006")  # 0006 again, on a log whose tiles are all there: nothing to do
    with engine.begin() as conn:
        assert _tiles(conn) == before
    engine.dispose()


def test_a_new_database_gets_log_tiles_from_0002_and_0006_adds_none(database_url: str) -> None:
    engine = db.make_engine(database_url)
    db.migrate(engine)
    with engine.begin() as conn:
        assert _tiles(conn) == []
        ledger = Ledger(engine, SIGNER)
        for i in range(256):
            ledger.append(conn, log.TAKEN_DOWN, {"n": i})
        assert _tiles(conn) == [(0, merkle.root(_leaves(conn)))]
    engine.dispose()
