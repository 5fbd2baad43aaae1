"""On PostgreSQL the migration grants the application role INSERT and SELECT only on the log:
it cannot update, delete, truncate or drop the append-only triggers, even if asked to."""

from __future__ import annotations

import secrets

import pytest
import sqlalchemy as sa

from publisher.ledger import log
from publisher.ledger.log import Ledger
from publisher.store import db
from tests.conftest import postgres_base_url, postgres_schema


def test_the_app_role_can_append_and_read_but_never_rewrite() -> None:
    base = postgres_base_url()
    if base is None:
        pytest.skip("PUBLISHER_TEST_DATABASE_URL not set")
    role = "app_" + secrets.token_hex(4)
    admin = sa.create_engine(base)
    with admin.begin() as c:
        c.exec_driver_sql(f'CREATE ROLE "{role}" NOLOGIN')
    try:
        with postgres_schema(base) as url:
            engine = db.make_engine(url)
            db.migrate(engine, app_role=role)
            schema = url.rsplit("%3D", 1)[1]
            with engine.begin() as c:
                c.exec_driver_sql(f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"')
            ledger = Ledger(engine)
            with engine.begin() as c:
                c.exec_driver_sql(f'SET LOCAL ROLE "{role}"')
                for i in range(257):  # the 256th append stores the first tile
                    ledger.append(c, log.CONSENT_GRANTED, {"platform": "x", "i": i})
                assert c.exec_driver_sql("SELECT count(*) FROM log_entries").scalar() == 257
                assert c.exec_driver_sql("SELECT count(*) FROM log_tiles").scalar() == 1
            for sql in (
                "UPDATE log_entries SET kind = 'x'",
                "DELETE FROM log_entries",
                "TRUNCATE log_entries",
                "DROP TRIGGER log_entries_no_change ON log_entries",
                "ALTER TABLE log_entries DISABLE TRIGGER ALL",
                "UPDATE log_checkpoints SET note = ''",
                "UPDATE log_tiles SET hash = hash",
                "DELETE FROM log_tiles",
                "TRUNCATE log_tiles",
                "ALTER TABLE log_tiles DISABLE TRIGGER ALL",
            ):
                with engine.connect() as c, c.begin():
                    c.exec_driver_sql(f'SET LOCAL ROLE "{role}"')
                    with pytest.raises(sa.exc.ProgrammingError, match=r"permission denied|must be owner"):
                        c.exec_driver_sql(sql)
            engine.dispose()
    finally:
        with admin.begin() as c:
            c.exec_driver_sql(f'DROP OWNED BY "{role}"')
            c.exec_driver_sql(f'DROP ROLE "{role}"')
        admin.dispose()
