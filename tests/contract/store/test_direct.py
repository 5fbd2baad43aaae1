"""db.Direct: a Core statement run on the driver's cursor gives what SQLAlchemy's own execute
gives, on every store: the same rows, through the same column types, with the statement's
literal values and parameters in their places. Every statement run on the driver's cursor
(db.driver: Direct's, the register's and the log's locked reads, the log's appends and tiles,
verify's stream) fails as SQLAlchemy's execute would: DBAPIError, a lost connection invalidated."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    bindparam,
    create_engine,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, StatementError

from publisher.ledger import log, rederive, tiles
from publisher.ledger.note import NoteSigner
from publisher.store import db
from publisher.store.models import UtcDateTime

meta = MetaData()
things = Table(
    "direct_things",
    meta,
    Column("id", String(8), primary_key=True),
    Column("at", UtcDateTime, nullable=True),
    Column("doc", JSON, nullable=False),
    Column("flag", Boolean, nullable=False),
    Column("n", Integer, nullable=False),
    Column("note", String(20), nullable=False),
    Column("price", Numeric(8, 2), nullable=True),
)
T = things.c
_ADD = insert(things).values(
    id=bindparam("b_id"), at=bindparam("b_at"), doc=bindparam("b_doc"), flag=bindparam("b_flag"), n=3, note="new"
)
# literal values (a JSON list, a boolean, an empty string, NULL) among bound ones, the bound
# ones named in the opposite order to their places in the SQL (SQLite's are positional)
_EDIT = (
    update(things)
    .where(T.id == bindparam("b_id"), T.n < bindparam("b_below"))
    .values(doc=[], flag=True, note="", at=None, n=T.n + bindparam("b_step"))
)
_READ = select(things, (T.n * 2).label("twice")).where(T.id == bindparam("b_id"))
_PRICE = update(things).where(T.id == bindparam("b_id")).values(price=bindparam("b_price")).returning(T.id, T.price)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = db.make_engine(database_url)
    meta.create_all(engine)
    with engine.begin() as conn:
        log.install(conn)
    yield engine
    engine.dispose()


def test_rows_and_changes_are_those_sqlalchemy_gives(engine: Engine) -> None:
    at = datetime(2027, 5, 10, 9, 30, 15, 123456, tzinfo=timezone(timedelta(hours=1)))
    with db.transaction(engine) as s:
        conn = s.connection()
        assert db.Direct(_ADD).run(conn, {"b_id": "a", "b_at": at, "b_doc": {"k": [1, "é"]}, "b_flag": False}) == 1
        s.execute(_ADD, {"b_id": "b", "b_at": at, "b_doc": {"k": [1, "é"]}, "b_flag": False})
        read = db.Direct(_READ)
        direct, theirs = read.first(conn, {"b_id": "a"}), s.execute(_READ, {"b_id": "b"}).one()
        assert tuple(direct)[1:] == tuple(theirs)[1:] == (at, {"k": [1, "é"]}, False, 3, "new", None, 6)
        assert direct.at.tzinfo is UTC and direct.at == at and direct.twice == 6 and direct.flag is False
        assert read.first(conn, {"b_id": "none"}) is None

        edit = db.Direct(_EDIT)
        assert edit.run(conn, {"b_step": 4, "b_below": 3, "b_id": "a"}) == 0  # n is 3: not below 3
        assert edit.run(conn, {"b_step": 4, "b_below": 4, "b_id": "a"}) == 1
        s.execute(_EDIT, {"b_step": 4, "b_below": 4, "b_id": "b"})
        assert tuple(read.first(conn, {"b_id": "a"}))[1:] == tuple(s.execute(_READ, {"b_id": "b"}).one())[1:]
        assert tuple(read.first(conn, {"b_id": "a"}))[1:] == (None, [], True, 7, "", None, 14)

        priced = db.Direct(_PRICE).first(conn, {"b_id": "a", "b_price": Decimal("12.50")})  # RETURNING, Numeric
        assert priced == ("a", Decimal("12.50")) and priced.price == s.execute(_READ, {"b_id": "a"}).one().price


def test_it_joins_the_callers_transaction(engine: Engine) -> None:
    def add_then_fail() -> None:
        with db.transaction(engine) as s:
            db.Direct(_ADD).run(s.connection(), {"b_id": "gone", "b_at": None, "b_doc": {}, "b_flag": True})
            raise RuntimeError("roll back")

    with pytest.raises(RuntimeError):
        add_then_fail()
    with db.reading(engine) as s:
        assert db.Direct(_READ).first(s.connection(), {"b_id": "gone"}) is None


def test_the_column_types_check_what_is_bound(engine: Engine) -> None:
    with db.transaction(engine) as s, pytest.raises(StatementError, match="naive datetime"):
        db.Direct(_ADD).run(s.connection(), {"b_id": "c", "b_at": datetime(2027, 5, 10), "b_doc": {}, "b_flag": True})


def test_a_list_parameter_is_refused_when_first_run(engine: Engine) -> None:
    listed = db.Direct(select(T.id).where(T.id.in_(bindparam("b_ids", expanding=True))))
    with db.reading(engine) as s, pytest.raises(ValueError, match="expanding"):
        listed.first(s.connection(), {"b_ids": ["a"]})


def test_a_driver_error_is_raised_as_sqlalchemys(engine: Engine) -> None:
    add = db.Direct(_ADD)
    with db.transaction(engine) as s:
        add.run(s.connection(), {"b_id": "d", "b_at": None, "b_doc": {}, "b_flag": True})
    with db.transaction(engine) as s, pytest.raises(IntegrityError) as raised:
        add.run(s.connection(), {"b_id": "d", "b_at": None, "b_doc": {}, "b_flag": True})
    assert not raised.value.connection_invalidated and "direct_things" in str(raised.value.statement)
    with db.reading(engine) as s:  # the pooled connection still serves
        assert db.Direct(_READ).first(s.connection(), {"b_id": "d"}).note == "new"
    assert "'d'" in str(raised.value)  # SQLAlchemy shows the parameters, unless the engine hides them
    hiding = create_engine(engine.url, hide_parameters=True)
    try:
        with hiding.begin() as conn, pytest.raises(IntegrityError) as hidden:
            add.run(conn, {"b_id": "d", "b_at": None, "b_doc": {}, "b_flag": True})
        assert "'d'" not in str(hidden.value) and "hide_parameters" in str(hidden.value)
    finally:
        hiding.dispose()


def test_a_failing_read_after_lock_is_raised_as_sqlalchemys(engine: Engine) -> None:
    lock = "SELECT pg_advisory_xact_lock(7)" if engine.dialect.name == "postgresql" else None
    with db.transaction(engine) as s, pytest.raises(DBAPIError) as raised:
        db.read_after_lock(s.connection(), lock, "SELECT nothing FROM nowhere")
    assert not raised.value.connection_invalidated and "nowhere" in str(raised.value.statement)
    with db.reading(engine) as s:  # the pooled connection still serves
        assert db.read_after_lock(s.connection(), None, "SELECT count(*) FROM direct_things") == (0,)


_SIGNER = NoteSigner("trust.example/social-audit/v1", Ed25519PrivateKey.generate())
Lose = Callable[[], None]


def _log_insert(engine: Engine, conn: Connection, lose: Lose) -> object:
    """The log's INSERT, the connection lost after its lock and head read (the ledger's clock
    is read between the two)."""

    def clock() -> datetime:
        lose()
        return datetime.now(UTC)

    return log.Ledger(engine, _SIGNER, now=clock).append(conn, log.POST_PUBLISHED, {"post": "p"})


def _direct(_engine: Engine, conn: Connection, lose: Lose) -> object:
    lose()
    return db.Direct(_READ).first(conn, {"b_id": "a"})


def _read_after_lock(_engine: Engine, conn: Connection, lose: Lose) -> object:
    lose()
    return db.read_after_lock(conn, "SELECT 1", "SELECT 2")


def _log_lock_and_head(engine: Engine, conn: Connection, lose: Lose) -> object:
    lose()
    return log.Ledger(engine, _SIGNER).append(conn, log.POST_PUBLISHED, {})


def _log_tile(_engine: Engine, conn: Connection, lose: Lose) -> object:
    lose()
    tiles.Tip([], 0, [bytes(32)]).flush(conn)
    return None


class _LosingWhenRead(list[bytes]):
    """Pending tiles that lose the connection when the insert reads them (after the count)."""

    def __init__(self, lose: Lose, tiles: list[bytes]) -> None:
        super().__init__(tiles)
        self.lose = lose

    def __iter__(self) -> Iterator[bytes]:
        self.lose()
        return super().__iter__()


def _log_tile_insert(_engine: Engine, conn: Connection, lose: Lose) -> object:
    tiles.Tip([], 0, _LosingWhenRead(lose, [bytes(32), bytes(32)])).flush(conn)
    return None


def _verify_stream(_engine: Engine, conn: Connection, lose: Lose) -> object:
    lose()
    return list(rederive.pieces(conn))


# each loses the connection, then runs on the driver's cursor; and what the error must name
_ON_THE_DRIVER: dict[str, tuple[Callable[[Engine, Connection, Lose], object], str]] = {
    "Direct": (_direct, "direct_things"),
    "read_after_lock": (_read_after_lock, "SELECT 2"),
    "log lock and head": (_log_lock_and_head, "pg_advisory_xact_lock"),
    "log insert": (_log_insert, "INSERT INTO log_entries"),
    "log tile count": (_log_tile, "FROM log_tiles"),
    "log tile insert": (_log_tile_insert, "INSERT INTO log_tiles"),
    "verify's stream": (_verify_stream, "FROM log_entries"),
}


class _Losable:
    """A connection in a transaction, what makes the server end its session, and whether the
    connection was invalidated when the transaction's block was left."""

    def __init__(self, engine: Engine, conn: Connection) -> None:
        self.engine, self.conn, self.invalidated = engine, conn, False
        self.pid = int(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())

    def lose(self) -> None:
        with self.engine.connect() as other:
            other.exec_driver_sql(f"SELECT pg_terminate_backend({self.pid})")
            other.commit()


@contextmanager
def _losable(engine: Engine) -> Iterator[_Losable]:
    if engine.dialect.name != "postgresql":
        pytest.skip("a SQLite file cannot be disconnected")
    with db.transaction(engine) as s:
        losable = _Losable(engine, s.connection())
        try:
            yield losable
        finally:
            losable.invalidated = losable.conn.invalidated


@pytest.mark.parametrize("case", _ON_THE_DRIVER.values(), ids=_ON_THE_DRIVER)
def test_a_lost_connection_is_invalidated_as_sqlalchemy_would(
    engine: Engine, case: tuple[Callable[[Engine, Connection, Lose], object], str]
) -> None:
    run, named = case
    with pytest.raises(DBAPIError) as raised, _losable(engine) as lost:
        run(engine, lost.conn, lost.lose)
    assert raised.value.connection_invalidated and lost.invalidated
    assert named in str(raised.value.statement)  # the statement that met the loss
    with db.reading(engine) as s:  # the pool gave the dead connection up: a new one works
        assert db.Direct(_READ).first(s.connection(), {"b_id": "a"}) is None


def _three_entries(engine: Engine) -> None:
    with db.transaction(engine) as s:
        ledger = log.Ledger(engine, _SIGNER)
        for n in range(3):
            ledger.append(s.connection(), log.POST_PUBLISHED, {"n": n})


def test_a_server_cursor_closed_on_a_lost_connection_fails_as_sqlalchemys(engine: Engine) -> None:
    """A named cursor's close is a round trip (CLOSE): meeting the loss there is a DBAPIError
    and invalidates the connection, as a statement's would."""
    _three_entries(engine)

    def stream_then_lose(lost: _Losable) -> None:
        with db.driver(lost.conn, "SELECT seq FROM log_entries", name="a_stream") as cursor:
            cursor.execute("SELECT seq FROM log_entries")
            assert len(cursor.fetchmany(1)) == 1
            lost.lose()

    with pytest.raises(DBAPIError) as raised, _losable(engine) as lost:
        stream_then_lose(lost)
    assert raised.value.connection_invalidated and lost.invalidated


def test_a_paused_stream_abandoned_by_a_failing_reader_lets_the_readers_error_through(engine: Engine) -> None:
    """Verify's stream paused between pieces, the connection lost, then the reader fails and
    closes the stream: the reader's own error comes out, the connection invalidated."""
    _three_entries(engine)

    def read_then_fail(lost: _Losable) -> None:
        with closing(rederive.pieces(lost.conn)) as pieces:
            assert len(next(pieces)) == 3
            lost.lose()
            raise LookupError("the reader's own error")

    with pytest.raises(LookupError, match="own error"), _losable(engine) as lost:
        read_then_fail(lost)
    assert lost.invalidated
    with db.reading(engine) as s:
        assert db.Direct(_READ).first(s.connection(), {"b_id": "a"}) is None


def test_a_lost_server_replaces_the_pools_older_connections_as_sqlalchemy_would(engine: Engine) -> None:
    """A connection that finds the server gone invalidates the pool's others made before it
    (they went with the server), so the next transaction gets a new connection and works."""
    if engine.dialect.name != "postgresql":
        pytest.skip("a SQLite file cannot be disconnected")
    with engine.connect() as one, engine.connect() as two:  # two pooled connections, both in use
        pids = [int(c.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()) for c in (one, two)]
        one.rollback()
        two.rollback()
    other = db.make_engine(engine.url.render_as_string(hide_password=False))
    with other.begin() as killer:
        for pid in pids:
            killer.exec_driver_sql(f"SELECT pg_terminate_backend({pid})")
    other.dispose()
    with pytest.raises(DBAPIError) as raised, db.reading(engine) as s:
        db.Direct(_READ).first(s.connection(), {"b_id": "a"})
    assert raised.value.connection_invalidated
    with db.reading(engine) as s:  # the other pooled connection rested under PING_AFTER_IDLE: not pinged
        assert db.Direct(_READ).first(s.connection(), {"b_id": "a"}) is None


def test_an_interrupted_statement_gives_up_its_connection(engine: Engine) -> None:
    """Interrupted mid-statement (Ctrl-C), the connection's state is unknown: it is invalidated,
    never handed out again by the pool, and the interrupt goes on."""
    invalidated: list[bool] = []
    used: list[object] = []

    def interrupted_read() -> None:
        with db.reading(engine) as s:
            conn = s.connection()
            used.append(conn.connection.dbapi_connection)
            try:
                with db.driver(conn, "SELECT 1") as cursor:
                    cursor.execute("SELECT 1")
                    raise KeyboardInterrupt  # as the signal would, in the driver's wait
            finally:
                invalidated.append(conn.invalidated)

    with pytest.raises(KeyboardInterrupt):
        interrupted_read()
    assert invalidated == [True]
    with db.reading(engine) as s:
        assert s.connection().connection.dbapi_connection is not used[0]  # the pool made a new one
        assert db.Direct(_READ).first(s.connection(), {"b_id": "a"}) is None
