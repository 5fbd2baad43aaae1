"""Migration 0008 on PostgreSQL: a database whose log rules ran dynamic SQL (built from the
trigger's schema and table, planned at every insert) gets rules in static SQL naming its schema;
they still keep the log dense and growing, and a rule that fires on a table of another schema
refuses the insert rather than check the wrong table."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from publisher.errors import LedgerError
from publisher.ledger import log
from publisher.ledger.log import Ledger
from publisher.ledger.note import NoteSigner
from publisher.store import db
from tests.conftest import postgres_base_url, postgres_schema

SIGNER = NoteSigner("trust.example/social-audit/v1", Ed25519PrivateKey.generate())

# The rule as 0002 to 0007 installed it (verbatim), for a database made before 0008.
_DYNAMIC_DENSE_SEQ = """CREATE OR REPLACE FUNCTION ledger_dense_seq() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE expected bigint;
BEGIN
  EXECUTE 'SELECT coalesce(max(seq) + 1, 0) FROM '
    || quote_ident(TG_TABLE_SCHEMA) || '.' || quote_ident(TG_TABLE_NAME) INTO expected;
  IF NEW.seq IS DISTINCT FROM expected THEN
    RAISE EXCEPTION USING MESSAGE = TG_TABLE_NAME || '.seq must be max(seq) + 1 = ' || expected;
  END IF;
  RETURN NEW;
END
$$"""


@pytest.fixture
def engine() -> Iterator[sa.Engine]:
    """A fresh PostgreSQL schema (SQLite's rules were always static SQL)."""
    base = postgres_base_url()
    if base is None:
        pytest.skip("PUBLISHER_TEST_DATABASE_URL not set")
    with postgres_schema(base) as url:
        eng = db.make_engine(url)
        yield eng
        eng.dispose()


def _sources(conn: sa.Connection) -> dict[str, str]:
    rows = conn.execute(
        sa.text(
            "SELECT proname, prosrc FROM pg_proc WHERE pronamespace = current_schema()::regnamespace "
            "AND proname IN ('ledger_dense_seq', 'ledger_checkpoint_grows')"
        )
    )
    return {name: src for name, src in rows}


def test_0008_replaces_the_dynamic_rules_and_the_log_stays_dense(engine: sa.Engine) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(db.MIGRATIONS))
    cfg.attributes["engine"] = engine
    command.upgrade(cfg, "0007")
    with engine.begin() as conn:
        conn.exec_driver_sql(_DYNAMIC_DENSE_SEQ)
        assert "EXECUTE" in _sources(conn)["ledger_dense_seq"]
    ledger = Ledger(engine, SIGNER)
    with engine.begin() as conn:
        for i in range(3):
            ledger.append(conn, log.TAKEN_DOWN, {"n": i})
    db.migrate(engine)
    with engine.begin() as conn:
        schema = conn.exec_driver_sql("SELECT current_schema()").scalar()
        sources = _sources(conn)
    assert set(sources) == {"ledger_dense_seq", "ledger_checkpoint_grows"}
    for src in sources.values():
        assert "EXECUTE" not in src
        assert f'FROM "{schema}".log_entries' in src
    with engine.begin() as conn:
        for i in range(3, 300):  # past a whole tile: log_tiles' rule too
            ledger.append(conn, log.TAKEN_DOWN, {"n": i})
        ledger.checkpoint(conn)
    row = {"k": "x", "b": b"{}", "h": bytes(32), "c": "now"}
    for statement, match in [
        ("INSERT INTO log_entries VALUES (301, :k, :b, :h, :c)", "max\\(seq\\) \\+ 1 = 300"),
        ("INSERT INTO log_entries VALUES (299, :k, :b, :h, :c)", "max\\(seq\\) \\+ 1 = 300"),
        ("INSERT INTO log_tiles (seq, hash) VALUES (5, :h)", "max\\(seq\\) \\+ 1 = 1"),
        ("INSERT INTO log_checkpoints VALUES (300, :h, 'n', :c)", "must grow"),
        ("INSERT INTO log_checkpoints VALUES (301, :h, 'n', :c)", "must grow and not pass"),
    ]:
        with engine.connect() as conn, pytest.raises(sa.exc.DBAPIError, match=match):
            conn.execute(sa.text(statement), row)
    with engine.begin() as conn:
        assert Ledger(engine, SIGNER).verify(conn).size == 300


def test_a_rule_fired_on_another_schemas_table_refuses_the_insert(engine: sa.Engine) -> None:
    db.migrate(engine)
    with engine.begin() as conn:
        home = conn.exec_driver_sql("SELECT current_schema()").scalar()
        other = f"{home}_copy"
        conn.exec_driver_sql(f'CREATE SCHEMA "{other}"')
        try:
            conn.exec_driver_sql(f'CREATE TABLE "{other}".log_entries (LIKE log_entries)')
            conn.exec_driver_sql(
                f'CREATE TRIGGER borrowed BEFORE INSERT ON "{other}".log_entries '
                f'FOR EACH ROW EXECUTE FUNCTION "{home}".ledger_dense_seq()'
            )
            insert = f'INSERT INTO "{other}".log_entries VALUES (0, :k, :b, :h, now())'  # noqa: S608 (our names)
            with pytest.raises(sa.exc.DBAPIError, match=f"is not in schema {home}"), conn.begin_nested():
                conn.execute(sa.text(insert), {"k": "x", "b": b"{}", "h": bytes(32)})
        finally:
            conn.exec_driver_sql(f'DROP SCHEMA "{other}" CASCADE')


def test_only_a_plain_schema_name_is_written_into_the_rules() -> None:
    assert any('FROM "Trust_2".log_entries' in s for s in log.append_only_ddl("postgresql", "Trust_2"))
    for bad in ('x"; DROP TABLE log_entries; --', "", "a-b", "x'y"):
        with pytest.raises(LedgerError, match="not a plain name"):
            log.append_only_ddl("postgresql", bad)
