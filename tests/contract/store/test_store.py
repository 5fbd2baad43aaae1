"""The store's contract, run on SQLite and on PostgreSQL (PUBLISHER_TEST_DATABASE_URL)."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from publisher import config as cfgmod
from publisher.approvals import keys
from publisher.domain.limits import Platform
from publisher.domain.model import Role, Scope, SubjectKind
from publisher.errors import InvalidInput, NotFound, StoreUnavailable
from publisher.service import Service
from publisher.store import db
from publisher.store import models as m
from tests.conftest import make_workspace, wait_for_a_waiting_advisory_lock

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
PW = "a long test passphrase"


@pytest.fixture
def svc(tmp_path: Path, database_url: str) -> Iterator[Service]:
    ws = make_workspace(tmp_path / "ws", database_url)
    (ws.dir / "var").mkdir()
    service = Service.open(cfgmod.load(ws.config), "Sam Teacher", now=lambda: NOW, migrate=True)
    service.trust_init(PW)
    service.config = dataclasses.replace(cfgmod.load(ws.config), approval_max_days=400)
    yield service
    service.close()


def test_migrations_are_idempotent_and_complete(svc: Service) -> None:
    db.migrate(svc.engine)
    names = set(sa.inspect(svc.engine).get_table_names())
    assert {
        "schools",
        "accounts",
        "subjects",
        "consent_events",
        "posts",
        "media",
        "approvals",
        "deliveries",
        "approver_certificates",
        "revocations",
        "devices",
    } <= names


def test_the_migrated_schema_is_the_one_the_models_describe(svc: Service) -> None:
    """Tables, columns and indexes made by the migrations are those of the models (the register's,
    the SAR and takedown tables, the log's), and no more: an index dropped from a model but not
    by a migration (or the reverse) fails here."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    import publisher.sar.models  # noqa: F401 (registers its tables on the register's Base)
    from publisher.ledger import tables

    described = sa.MetaData()
    for table in [*m.Base.metadata.tables.values(), *tables.metadata.tables.values()]:
        table.to_metadata(described)
    with svc.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), described) == []
        indexes = {ix["name"] for ix in sa.inspect(conn).get_indexes("deliveries")}
    assert "ix_deliveries_post_id" not in indexes  # served by the unique (post_id, account)


def test_sqlite_runs_wal_full_with_foreign_keys(svc: Service) -> None:
    if svc.engine.dialect.name != "sqlite":
        pytest.skip("SQLite pragmas")
    with svc.engine.connect() as c:
        assert c.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert c.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        assert c.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_a_reading_unit_of_work_does_not_wait_for_a_writer(svc: Service) -> None:
    """`db.reading` never takes SQLite's write lock (BEGIN, not BEGIN IMMEDIATE), so the gate
    and `status` read while the daemon writes. Broken, this waits out the busy timeout and fails."""
    with svc.engine.connect() as writer:
        writer.begin()  # SQLite: BEGIN IMMEDIATE, the write lock held until rollback
        writer.execute(sa.update(m.PostRow).where(m.PostRow.id == "none").values(text="x"))
        with db.reading(svc.engine) as s:
            assert s.scalar(sa.select(sa.func.count()).select_from(m.PostRow)) == 0
        writer.rollback()


def test_foreign_keys_are_enforced(svc: Service) -> None:
    with pytest.raises(sa.exc.IntegrityError), db.transaction(svc.engine) as s:
        s.add(m.ConsentEventRow(subject_id="S-NONE", platform="x", scope="image", action="grant", at=NOW, actor="a"))


def test_round_trip_of_a_post_with_approval(svc: Service, tmp_path: Path) -> None:
    sid = svc.subject_add("Amelia Jones", SubjectKind.PUPIL, ["Millie"])
    for p in Platform:
        for sc in Scope:
            svc.consent_grant(sid, p, sc, "SMA-1")
    kid, key = svc.approver_add("Jane Head", Role.HEADTEACHER, ["stmarys"], PW, PW, out=tmp_path / "k.pem")
    pid = svc.post_draft(
        "Millie's art", ["stmarys-x", "stmarys-facebook"], "2027-03-28 09:00", featured=[f"{sid}:image+name"]
    )
    screened = svc.screen(pid)
    assert screened.post.scheduled_at == datetime(2027, 3, 28, 8, 0, tzinfo=UTC)
    assert {f.code for f in screened.blocking} == {"APPROVAL_MISSING"}
    svc.actor = "Jane Head"
    row = svc.approve(pid, key, PW)
    assert row.not_before.tzinfo is not None and row.key_id == kid
    assert svc.screen(pid).blocking == []
    assert [p.status for p in svc.posts()] == ["approved"]


def test_consent_is_derived_from_events(svc: Service) -> None:
    sid = svc.subject_add("Oliver Smith", SubjectKind.PUPIL)
    svc.consent_grant(sid, Platform.X, Scope.IMAGE, "SMA-2")
    svc.now = lambda: NOW + timedelta(minutes=1)
    svc.consent_withdraw(sid, Platform.X, Scope.IMAGE)
    rows = svc.consent_rows(sid)
    assert [(r.action, r.platform) for r in rows] == [("grant", "x"), ("withdraw", "x")]
    assert rows[0].expires is not None and rows[0].expires.isoformat() == "2027-08-31"
    assert all(r.at.tzinfo is not None for r in rows)


def test_a_failed_command_leaves_nothing_behind(svc: Service) -> None:
    svc.subject_add("Amelia Jones", SubjectKind.PUPIL)
    with pytest.raises(NotFound):
        svc.post_draft("hi", ["stmarys-x"], "2027-06-01 10:00", featured=["S-UNKNOWN"])
    with pytest.raises(InvalidInput):
        svc.post_draft("hi", ["stmarys-x"], "2020-06-01 10:00")
    with db.transaction(svc.engine) as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(m.PostRow)) == 0
        assert s.scalar(sa.select(sa.func.count()).select_from(m.PostAccountRow)) == 0


def test_approver_key_file_is_0600_and_encrypted(svc: Service, tmp_path: Path) -> None:
    _, key = svc.approver_add("Jane Head", Role.HEADTEACHER, ["stmarys"], PW, PW, out=tmp_path / "k.pem")
    assert key.stat().st_mode & 0o777 == 0o600
    assert svc.config.root_key_file.stat().st_mode & 0o777 == 0o600
    assert b"ENCRYPTED PRIVATE KEY" in key.read_bytes()
    assert isinstance(keys.read_private_key(key, PW), Ed25519PrivateKey)


def test_a_pooled_connection_is_pinged_only_after_resting_and_replaced_if_dead(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite has no server to lose")
    engine = db.make_engine(database_url)
    pings: list[bool] = []
    ping = engine.dialect.do_ping

    def counted(dbapi_conn: object) -> bool:
        pings.append(True)
        return ping(dbapi_conn)  # type: ignore[arg-type]

    monkeypatch.setattr(engine.dialect, "do_ping", counted)
    backend = sa.text("SELECT pg_backend_pid()")
    try:
        with engine.connect() as c:
            first = c.scalar(backend)
        with engine.connect() as c:  # in steady use: no ping, the same connection
            assert c.scalar(backend) == first and pings == []

        def kill(pid: int) -> None:
            with sa.create_engine(database_url, poolclass=sa.pool.NullPool).connect() as admin:
                assert admin.scalar(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid})

        with engine.connect() as c, engine.connect() as d:  # two in the pool
            pooled = {c.scalar(backend), d.scalar(backend)}
        for pid in pooled:
            kill(pid)
        monkeypatch.setattr(db, "PING_AFTER_IDLE", 0.0)  # they have rested long enough
        with engine.connect() as c, engine.connect() as d:  # one ping finds a dead one: both replaced
            second, other = c.scalar(backend), d.scalar(backend)
        assert {second, other}.isdisjoint(pooled) and pings == [True]
        kill(second)
        kill(other)
        monkeypatch.setattr(db, "PING_AFTER_IDLE", 3600.0)  # not rested: not pinged, so the use fails
        with pytest.raises(sa.exc.OperationalError), engine.connect() as c:
            c.scalar(backend)
        with engine.connect() as c:  # and the pool starts afresh
            assert c.scalar(backend) not in (*pooled, second)
    finally:
        engine.dispose()


@pytest.mark.parametrize("how", ["register_version", "one statement"])
def test_the_register_version_read_with_its_lock_sees_what_committed_while_it_waited(svc: Service, how: str) -> None:
    """A publisher takes the register lock and reads the version in one round trip
    (db.read_after_lock): a withdrawal that held the lock and bumped the version must be seen
    once it commits. As one statement (lock function and read together) the read would keep the
    snapshot taken before the wait, and judge on the old register: the second case shows the
    race this test sets up is real."""
    if svc.engine.dialect.name != "postgresql":
        pytest.skip("SQLite's write lock is taken at BEGIN, before any read")
    from publisher.store import repo

    def read() -> int:
        with db.transaction(svc.engine) as s:
            if how == "register_version":
                return repo.register_version(s, lock=True)
            lock_and_read = sa.text(
                "SELECT pg_advisory_xact_lock_shared(hashtext(current_schema() || '.register_version')),"
                " (SELECT value FROM control WHERE key = 'register_version')"
            )
            return int(s.execute(lock_and_read).one()[1])

    with db.reading(svc.engine) as s:
        before = repo.register_version(s)
    got: list[int] = []
    with db.transaction(svc.engine) as change:
        repo.bump_register_version(change, NOW, "DFO")  # holds the register lock exclusively
        change.flush()
        reader = threading.Thread(target=lambda: got.append(read()))
        reader.start()
        wait_for_a_waiting_advisory_lock(svc.engine)
    reader.join(10)
    assert got == ([before + 1] if how == "register_version" else [before])


def test_a_postgresql_url_runs_on_psycopg_3_read_committed_and_anything_else_is_refused(database_url: str) -> None:
    """The reads after a lock rely on psycopg 3 (two statements in one round trip) and READ
    COMMITTED (a snapshot per statement): a plain postgresql:// URL is taken as psycopg 3, and
    the isolation level is set, whatever the server's default."""
    for url in ("postgresql+psycopg2://publisher:s3cret@db/trust", "mysql://publisher:s3cret@db/trust"):
        with pytest.raises(StoreUnavailable, match=r"use sqlite:///PATH, or postgresql\+psycopg://") as refused:
            db.make_engine(url)
        assert "s3cret" not in str(refused.value)
    assert db.make_engine("postgresql://publisher@db/trust").dialect.driver == "psycopg"
    if not database_url.startswith("postgresql"):
        return
    engine = db.make_engine(database_url)
    try:
        with engine.connect() as conn:  # as a server (or role) whose default a DBA changed
            conn.exec_driver_sql("SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE")
            conn.commit()
            assert conn.exec_driver_sql("SHOW transaction_isolation").scalar() == "read committed"
    finally:
        engine.dispose()
