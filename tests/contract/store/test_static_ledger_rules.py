"""The log's insert rules on PostgreSQL (migration 0008): static SQL naming the schema the tables
are in, instead of a query built from the trigger's schema and table and planned at every insert.
They keep the log dense and its checkpoints growing; a database with the old rules gets the new
ones; they go in the tables' schema whatever comes first on the search_path; and a rule fired on
a table of another schema (a schema renamed, a copy restored under another name) checks that
table, the slower way, rather than the wrong one."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from alembic import command
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from publisher.errors import LedgerError
from publisher.ledger import log
from publisher.ledger.log import Ledger, install
from publisher.ledger.note import NoteSigner
from publisher.store import db
from tests.conftest import on_search_path, postgres_base_url
from tests.contract.store.test_log_tiles_migration import _alembic

SIGNER = NoteSigner("trust.example/social-audit/v1", Ed25519PrivateKey.generate())
ROW = {"k": "x", "b": b"{}", "h": bytes(32), "c": "now"}

# The rules as 0002 to 0007 installed them (verbatim), for a database made before 0008.
_OLD_RULES = [
    """CREATE OR REPLACE FUNCTION ledger_dense_seq() RETURNS trigger
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
$$""",
    """CREATE OR REPLACE FUNCTION ledger_checkpoint_grows() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE last_size bigint; log_size bigint;
BEGIN
  EXECUTE 'SELECT coalesce(max(size), -1) FROM '
    || quote_ident(TG_TABLE_SCHEMA) || '.' || quote_ident(TG_TABLE_NAME) INTO last_size;
  EXECUTE 'SELECT coalesce(max(seq) + 1, 0) FROM '
    || quote_ident(TG_TABLE_SCHEMA) || '.log_entries' INTO log_size;
  IF NEW.size <= last_size OR NEW.size > log_size THEN
    RAISE EXCEPTION USING MESSAGE = TG_TABLE_NAME || '.size must grow and not pass the log';
  END IF;
  RETURN NEW;
END
$$""",
]


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@pytest.fixture
def schemas() -> Iterator[tuple[str, sa.Engine, str]]:
    """Two fresh schemas with mixed-case names (the rules quote them); returns the first, an
    engine whose search_path is that one alone, and the second, empty."""
    base = postgres_base_url()
    if base is None:
        pytest.skip("PUBLISHER_TEST_DATABASE_URL not set")
    home, other = f"Trust_{secrets.token_hex(4)}", f"Copy_{secrets.token_hex(4)}"
    admin = sa.create_engine(base)
    with admin.begin() as conn:
        for name in (home, other):
            conn.exec_driver_sql(f"CREATE SCHEMA {_ident(name)}")
    engine = db.make_engine(on_search_path(base, home))
    try:
        yield home, engine, other
    finally:
        engine.dispose()
        with admin.begin() as conn:
            for name in (home, other):
                conn.exec_driver_sql(f"DROP SCHEMA {_ident(name)} CASCADE")
        admin.dispose()


def _sources(conn: sa.Connection, schema: str) -> dict[str, str]:
    rows = conn.execute(
        sa.text(
            "SELECT p.proname, p.prosrc FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname = :s AND p.proname IN ('ledger_dense_seq', 'ledger_checkpoint_grows')"
        ),
        {"s": schema},
    )
    return {name: src for name, src in rows}


def _static(schema: str) -> str:
    return f"INTO expected FROM {_ident(schema)}.log_entries"


def _refusals(engine: sa.Engine, size: int, table: str = "") -> None:
    """Gaps, repeats and checkpoints that do not grow, or pass the log, are refused."""
    prefix = f"{_ident(table)}." if table else ""
    entry, checkpoint = f"INSERT INTO {prefix}log_entries VALUES", f"INSERT INTO {prefix}log_checkpoints VALUES"
    for statement, match in [
        (f"{entry} ({size + 1}, :k, :b, :h, :c)", f"max\\(seq\\) \\+ 1 = {size}"),
        (f"{entry} ({size - 1}, :k, :b, :h, :c)", f"max\\(seq\\) \\+ 1 = {size}"),
        (f"{checkpoint} ({size + 1}, :h, 'n', :c)", "must grow and not pass"),
    ]:
        with engine.connect() as conn, pytest.raises(sa.exc.DBAPIError, match=match):
            conn.execute(sa.text(statement), ROW)


def test_0008_replaces_the_old_rules_and_the_log_stays_dense(schemas: tuple[str, sa.Engine, str]) -> None:
    home, engine, _ = schemas
    command.upgrade(_alembic(engine), "0007")
    with engine.begin() as conn:
        for statement in _OLD_RULES:
            conn.exec_driver_sql(statement)
        assert all(f"{_ident(home)}." not in src for src in _sources(conn, home).values())
    ledger = Ledger(engine, SIGNER)
    with engine.begin() as conn:
        for i in range(3):
            ledger.append(conn, log.TAKEN_DOWN, {"n": i})
        ledger.checkpoint(conn)
    db.migrate(engine)
    with engine.begin() as conn:
        sources = _sources(conn, home)
        indexes = {ix["name"] for ix in sa.inspect(conn).get_indexes("deliveries")}
    assert _static(home) in sources["ledger_dense_seq"]
    assert f"INTO log_size FROM {_ident(home)}.log_entries" in sources["ledger_checkpoint_grows"]
    assert "ix_deliveries_post_id" not in indexes
    with engine.begin() as conn:
        for i in range(3, 300):  # past a whole tile: log_tiles' rule too
            ledger.append(conn, log.TAKEN_DOWN, {"n": i})
        ledger.checkpoint(conn)
    _refusals(engine, 300)
    for statement, match in [
        ("INSERT INTO log_tiles (seq, hash) VALUES (5, :h)", "max\\(seq\\) \\+ 1 = 1"),
        ("INSERT INTO log_checkpoints VALUES (300, :h, 'n', :c)", "must grow"),
    ]:
        with engine.connect() as conn, pytest.raises(sa.exc.DBAPIError, match=match):
            conn.execute(sa.text(statement), ROW)
    with engine.begin() as conn:
        assert Ledger(engine, SIGNER).verify(conn).size == 300


def test_the_rules_go_where_the_tables_are_whatever_the_search_path(schemas: tuple[str, sa.Engine, str]) -> None:
    home, engine, other = schemas
    with engine.begin() as conn:
        install(conn)
    base = postgres_base_url()
    assert base is not None
    elsewhere = db.make_engine(on_search_path(base, other, home))  # an empty schema first on the path
    try:
        with elsewhere.begin() as conn:
            install(conn)  # as 0008 run by a role whose path starts elsewhere
            assert _sources(conn, other) == {}
            assert _static(home) in _sources(conn, home)["ledger_dense_seq"]
        ledger = Ledger(elsewhere, SIGNER)
        with elsewhere.begin() as conn:
            for i in range(5):
                ledger.append(conn, log.TAKEN_DOWN, {"n": i})
            ledger.checkpoint(conn)
        _refusals(elsewhere, 5)
    finally:
        elsewhere.dispose()


def test_a_rule_fired_on_another_schemas_table_checks_that_table(schemas: tuple[str, sa.Engine, str]) -> None:
    home, engine, other = schemas
    ledger = Ledger(engine, SIGNER)
    with engine.begin() as conn:
        install(conn)
        for i in range(4):
            ledger.append(conn, log.TAKEN_DOWN, {"n": i})
        ledger.checkpoint(conn)
        for table, rule in [("log_entries", "ledger_dense_seq"), ("log_checkpoints", "ledger_checkpoint_grows")]:
            conn.exec_driver_sql(f"CREATE TABLE {_ident(other)}.{table} (LIKE {table})")
            conn.exec_driver_sql(
                f"CREATE TRIGGER borrowed BEFORE INSERT ON {_ident(other)}.{table} "
                f"FOR EACH ROW EXECUTE FUNCTION {_ident(home)}.{rule}()"
            )
    with engine.begin() as conn:  # the copy's own next seq is 0, not the home log's 4
        conn.execute(sa.text(f"INSERT INTO {_ident(other)}.log_entries VALUES (0, :k, :b, :h, :c)"), ROW)  # noqa: S608
        conn.execute(sa.text(f"INSERT INTO {_ident(other)}.log_checkpoints VALUES (1, :h, 'n', :c)"), ROW)  # noqa: S608
    _refusals(engine, 1, table=other)
    _refusals(engine, 4)


def test_any_schema_name_is_quoted_and_unwritable_ones_refused() -> None:
    ddl = "\n".join(log.append_only_ddl("postgresql", 'Trust "A"\'s-log'))
    assert 'FROM "Trust ""A""\'s-log".log_entries' in ddl
    assert "TG_TABLE_SCHEMA = 'Trust \"A\"''s-log'" in ddl
    for bad in ("a$$b", "50%", "a:b", ""):
        with pytest.raises(LedgerError, match="cannot be written"):
            log.append_only_ddl("postgresql", bad)
    with pytest.raises(LedgerError, match="need the schema"):
        log.append_only_ddl("postgresql")
