"""The ledger's store fixture: SQLite (always) and PostgreSQL (PUBLISHER_TEST_DATABASE_URL),
one fresh database or schema per test with the ledger's tables and rules installed."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine

from publisher.ledger.log import install


def _postgres_url() -> str:
    url = os.environ.get("PUBLISHER_TEST_DATABASE_URL")
    if not url:
        if os.environ.get("PUBLISHER_REQUIRE_POSTGRES") == "1":
            pytest.fail("PUBLISHER_REQUIRE_POSTGRES=1 but PUBLISHER_TEST_DATABASE_URL is not set")
        pytest.skip("PUBLISHER_TEST_DATABASE_URL is not set")
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        eng = create_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
        with eng.begin() as conn:
            install(conn)
        yield eng
        eng.dispose()
        return
    url = _postgres_url()
    schema = "ledger_test_" + secrets.token_hex(6)
    admin = create_engine(url)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    eng = create_engine(url, connect_args={"options": f"-csearch_path={schema}"})
    try:
        with eng.begin() as conn:
            install(conn)
        yield eng
    finally:
        eng.dispose()
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()
