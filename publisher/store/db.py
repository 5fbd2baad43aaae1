"""Engine, sessions and migrations. SQLite by default (WAL, synchronous=FULL, foreign keys on);
PostgreSQL by URL."""

from __future__ import annotations

import contextlib
import functools
import threading
import time
import weakref
from collections import namedtuple
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn, cast

from sqlalchemy import URL, create_engine, event, inspect, make_url
from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.exc import DBAPIError, InvalidatePoolError, OperationalError, StatementError
from sqlalchemy.orm import Session
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

from publisher.errors import StoreUnavailable

MIGRATIONS = Path(__file__).parent / "migrations"
_READING = "publisher_reading"
PING_AFTER_IDLE = 2.0  # seconds a pooled PostgreSQL connection may rest before it is pinged
_RESTED_SINCE = "publisher_rested_since"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # SQLAlchemy emits BEGIN itself (below)
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def _begin_immediate(conn: Any) -> None:
    # Take the write lock at the start: a read transaction that later writes can otherwise
    # fail at once with SQLITE_BUSY instead of waiting its turn. `reading()` opts out.
    conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(_READING) else "BEGIN IMMEDIATE")


def make_engine(url: str) -> Engine:
    """An engine for url; SQLite files get WAL, synchronous=FULL and foreign keys."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            parent = Path(path).parent
            if not parent.is_dir():
                raise StoreUnavailable(f"Database folder {parent} does not exist: run 'publisher init'")
        engine = create_engine(url, connect_args={"timeout": 10})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _begin_immediate)
        return engine
    engine = create_engine(_psycopg(url), isolation_level="READ COMMITTED")  # see read_after_lock
    event.listen(engine, "checkin", _rested)
    event.listen(engine, "checkout", functools.partial(_ping_if_rested, engine.dialect))
    return engine


def _psycopg(url: str) -> URL:
    """A PostgreSQL URL on psycopg 3, the driver the project is built and tested on (a
    `postgresql://` URL means it; SQLAlchemy 2.0 would pick psycopg2). Anything else is refused
    in one line that does not repeat the URL, which may hold a password."""
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        return parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername != "postgresql+psycopg":
        raise StoreUnavailable(
            f"database_url names {parsed.drivername!r}: use sqlite:///PATH, or postgresql+psycopg://... for PostgreSQL"
        )
    return parsed


def _rested(_dbapi_conn: Any, record: Any) -> None:
    record.info[_RESTED_SINCE] = time.monotonic()


def _ping_if_rested(dialect: Dialect, dbapi_conn: Any, record: Any, _proxy: Any) -> None:
    """pool_pre_ping, only for a connection that rested PING_AFTER_IDLE or longer in the pool
    (a server restart meanwhile would have closed it): a dead one is replaced by a new one. A
    connection in steady use is not pinged: a ping on every checkout cost PostgreSQL a round
    trip per transaction (about 1.4 per delivery). Should the server drop a connection while
    it is in use, the transaction fails and the pool is emptied, as it would be anyway."""
    rested = record.info.get(_RESTED_SINCE)
    if rested is None or time.monotonic() - rested < PING_AFTER_IDLE:
        return
    try:
        dialect.do_ping(dbapi_conn)
    except Exception as exc:
        # As pool_pre_ping: this connection and every one pooled before it are replaced.
        raise InvalidatePoolError(f"a pooled connection was dead ({type(exc).__name__})") from exc


def _alembic_config(engine: Engine) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def migrate(engine: Engine, app_role: str = "") -> None:
    """Bring the schema to the newest migration (idempotent). On PostgreSQL, app_role is the
    runtime role that gets INSERT and SELECT only on the log tables."""
    from alembic import command

    cfg = _alembic_config(engine)
    cfg.attributes["app_role"] = app_role
    try:
        command.upgrade(cfg, "head")
    except (OperationalError, DBAPIError) as exc:
        raise StoreUnavailable(
            f"Database cannot be opened or migrated ({type(exc.orig).__name__}): check database_url in config.toml"
        ) from None


def is_initialised(engine: Engine) -> bool:
    try:
        return inspect(engine).has_table("posts")
    except (OperationalError, DBAPIError) as exc:
        raise StoreUnavailable(
            f"Database cannot be opened ({type(exc.orig).__name__}): check database_url in config.toml"
        ) from None


_writers: weakref.WeakKeyDictionary[Engine, threading.RLock] = weakref.WeakKeyDictionary()
_writers_guard = threading.Lock()
BUSY_SECONDS = 10.0  # as SQLite's busy_timeout


@contextmanager
def writer_lock(engine: Engine) -> Iterator[None]:
    """SQLite has one writer at a time. Threads of this process take turns on a Python lock,
    held from BEGIN IMMEDIATE until after COMMIT, instead of meeting in SQLite's busy handler,
    which sleeps 1, 2, 5, 10 ... ms between tries and so leaves the database idle under load.
    (Other processes still meet in the busy handler.) PostgreSQL needs no such turn-taking."""
    if engine.dialect.name != "sqlite":
        yield
        return
    with _writers_guard:
        lock = _writers.get(engine)
        if lock is None:
            lock = _writers[engine] = threading.RLock()
    if not lock.acquire(timeout=BUSY_SECONDS):
        raise StoreUnavailable(f"The database stayed busy for {BUSY_SECONDS:.0f} s: try again")
    try:
        yield
    finally:
        lock.release()


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """One unit of work: everything commits together or nothing does."""
    # A Session, not a sessionmaker: a sessionmaker builds a class, costing more than a query.
    with writer_lock(engine), Session(engine, expire_on_commit=False) as session, session.begin():
        yield session


@contextmanager
def reading(engine: Engine) -> Iterator[Session]:
    """A unit of work that only reads: on SQLite it does not take the write lock, so readers
    (the gate, status) never queue behind writers or each other. Writing in it is a bug."""
    with Session(engine, expire_on_commit=False) as session, session.begin():
        session.connection(execution_options={_READING: True})  # before BEGIN: see _begin_immediate
        yield session


@contextmanager
def driver(
    conn: Connection, statement: str, params: Any = None, name: str | None = None, many: bool = False
) -> Iterator[Any]:
    """A DB-API cursor on the connection under ``conn``, in its transaction (begun here if need
    be, as SQLAlchemy's autobegin would: the driver's cursor bypasses it), closed at the end.
    For the statements run for every delivery or log entry, where SQLAlchemy's per-statement
    machinery would cost more than the statement. Errors come as SQLAlchemy's execute raises
    them (its handle_error events aside, which this project does not use): see `_failed`;
    `statement` and `params` (a list of parameter sets if `many`) name what the cursor runs.
    `name`: a named, server-side cursor (PostgreSQL), which streams its rows (SQLite's cursors
    stream anyway) and whose closing is a round trip, so it may fail too: as the statements'
    errors, unless the reader abandoned a paused stream (GeneratorExit), perhaps because it is
    failing itself, when nothing new is raised over it."""
    if not conn.in_transaction():
        conn.begin()
    dbapi = cast(Any, conn.connection.driver_connection)
    cursor = dbapi.cursor(name=name) if name is not None and conn.dialect.name == "postgresql" else dbapi.cursor()
    failed = functools.partial(_failed, conn, cursor, statement, params, many)
    try:
        yield cursor
    except GeneratorExit:
        with contextlib.suppress(DBAPIError):
            _close(cursor, failed)
        raise
    except BaseException as exc:
        failed(exc)
    _close(cursor, failed)


def _close(cursor: Any, failed: Callable[[BaseException], NoReturn]) -> None:
    try:
        cursor.close()
    except BaseException as exc:
        failed(exc)


def _failed(conn: Connection, cursor: Any, statement: str, params: Any, many: bool, exc: BaseException) -> NoReturn:
    """As Connection._handle_dbapi_exception: a driver error is raised as DBAPIError (its
    subclass for the error: IntegrityError...); on a lost connection this connection and every
    one the pool made before it are invalidated; an interrupt (Ctrl-C) leaves the connection in
    an unknown state, so it is invalidated too. The cursor is closed as _safe_close_cursor does."""
    dialect = conn.dialect
    gone = isinstance(exc, dialect.loaded_dbapi.Error) and dialect.is_disconnect(
        exc, conn.connection.dbapi_connection, cursor
    )
    if gone:
        conn.engine.pool._invalidate(conn.connection, exc)
        conn.invalidate(exc)
    elif isinstance(exc, (KeyboardInterrupt, SystemExit)):
        conn.invalidate()
    with contextlib.suppress(Exception):  # SQLite's refuses once its connection is closed
        cursor.close()
    if not isinstance(exc, dialect.loaded_dbapi.Error):
        raise exc
    raise DBAPIError.instance(
        statement,
        params,
        exc,
        dialect.loaded_dbapi.Error,
        hide_parameters=conn.engine.hide_parameters,
        connection_invalidated=gone,
        dialect=dialect,
        ismulti=many,
    ) from exc


def read_after_lock(conn: Connection, lock: str | None, read: str) -> Any:
    """The first row of `read`, run once `lock` is granted, in the caller's transaction: both
    plain SQL with no parameters. PostgreSQL (psycopg 3: see make_engine) gets them in one round
    trip, as two statements: in READ COMMITTED (set by make_engine) each statement takes its
    snapshot when it starts, so the read sees all that committed while the lock was waited for
    (a single statement calling the lock function and reading would not). `lock` None: nothing
    to wait for (SQLite, whose write lock the transaction holds already), only the read is run.
    On SQLite, a connection with no transaction yet begins one, and so takes the write lock."""
    sql = read if lock is None else f"{lock}; {read}"  # no parameters: psycopg sends both in one simple query
    with driver(conn, sql) as cursor:
        cursor.execute(sql)
        if lock is not None:
            cursor.nextset()
        return cursor.fetchone()


class Direct:
    """A Core statement run on the driver's cursor in the caller's transaction (`driver`),
    compiled once per dialect: for the statements every delivery runs, where SQLAlchemy's own
    execute costs as much CPU as the statement (a row lock by id on PostgreSQL: 0.23 ms through
    the Session, 0.11 ms here; on SQLite 0.10 and 0.02). Parameters and rows go through the
    columns' types as SQLAlchemy's would (UtcDateTime, JSON, Boolean, Numeric), literal values
    in the statement included; a row is a named tuple of its selected (or RETURNING) columns.
    Errors are SQLAlchemy's: a parameter its type refuses raises StatementError, a driver error
    DBAPIError, and a lost connection is invalidated (see `driver`). Unlike Session.execute it does not flush pending ORM changes:
    flush first if the statement must see them. Expanding (IN list) parameters are refused."""

    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement
        # per engine's dialect, kept no longer than its engine; a race compiles twice, harmlessly
        self._plans: weakref.WeakKeyDictionary[Dialect, _Plan] = weakref.WeakKeyDictionary()

    def first(self, conn: Connection, params: Mapping[str, Any]) -> Any:
        """The first row, or None."""
        plan = self._plan(conn.dialect)
        bound = plan.parameters(params)
        with driver(conn, plan.sql, bound) as cursor:
            cursor.execute(plan.sql, bound)
            row = cursor.fetchone()
            return None if row is None else plan.row(row, cursor.description)

    def run(self, conn: Connection, params: Mapping[str, Any]) -> int:
        """Execute; the number of rows it changed."""
        plan = self._plan(conn.dialect)
        bound = plan.parameters(params)
        with driver(conn, plan.sql, bound) as cursor:
            cursor.execute(plan.sql, bound)
            return int(cursor.rowcount or 0)

    def _plan(self, dialect: Dialect) -> _Plan:
        plan = self._plans.get(dialect)
        if plan is None:
            plan = self._plans[dialect] = _Plan(self.statement, dialect)
        return plan


class _Plan:
    """One dialect's SQL for a Direct statement, and its types' bind and result processors."""

    def __init__(self, statement: ClauseElement, dialect: Dialect) -> None:
        compiled = cast(SQLCompiler, statement.compile(dialect=dialect))
        if "POSTCOMPILE" in compiled.string:
            raise ValueError("Direct statements cannot take expanding (IN list) parameters")
        self.sql = compiled.string
        self._compiled, self._dialect = compiled, dialect
        self._order = tuple(compiled.positiontup or ()) if dialect.positional else None
        self._binds = {
            name: process
            for bind, name in compiled.bind_names.items()
            if (process := bind.type.dialect_impl(dialect).bind_processor(dialect)) is not None
        }
        self._columns = list(getattr(statement, "exported_columns", ()))  # a SELECT's, or RETURNING's
        self._results: list[tuple[int, Callable[[Any], Any]]] | None = None  # at the first row: see row
        self._row = namedtuple("Row", [c.key or f"c{i}" for i, c in enumerate(self._columns)], rename=True)  # type: ignore[misc]

    def parameters(self, given: Mapping[str, Any]) -> Any:
        """The driver's parameters; a value its type refuses (a naive datetime) raises
        StatementError, as SQLAlchemy's execute would."""
        try:
            values = self._compiled.construct_params(dict(given)) or {}
            for name, process in self._binds.items():
                values[name] = process(values[name])
        except Exception as exc:
            raise StatementError(str(exc), self.sql, dict(given), exc) from exc
        return values if self._order is None else tuple(values[name] for name in self._order)

    def row(self, raw: Any, description: Any) -> Any:
        results = self._results
        if results is None:  # the driver's type codes, which some processors need (Numeric on psycopg)
            results = self._results = [
                (i, process)
                for i, column in enumerate(self._columns)
                if (
                    process := column.type.dialect_impl(self._dialect).result_processor(
                        self._dialect, description[i][1]
                    )
                )
                is not None
            ]
        if results:
            raw = list(raw)
            for i, process in results:
                raw[i] = process(raw[i])
        return self._row(*raw)
