"""SqlAlchemyQueue on every store (SQLite and PostgreSQL): leases, skip-locked claims, crash
recovery and release."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError

from publisher.errors import DaemonError
from publisher.queue.lock import DaemonLock
from publisher.queue.store import RECONCILE, Load, SqlAlchemyQueue
from publisher.store import db, repo

from .world import FakeClock, World, build_world, deliveries

LEASE = timedelta(seconds=60)


@pytest.fixture
def world(tmp_path: Path, database_url: str) -> Iterator[tuple[World, FakeClock]]:
    clock = FakeClock(datetime(2027, 5, 10, 8, 0, tzinfo=UTC))
    w = build_world(tmp_path / "w", database_url=database_url if "postgres" in database_url else "", now=clock)
    for _ in range(6):
        w.post(accounts=["stmarys-x", "stmarys-facebook"])
    clock.advance(seconds=5)
    yield w, clock
    w.svc.close()


@contextmanager
def driver_statements(conn: Connection) -> Iterator[list[str]]:
    """Every statement the driver is sent on this connection while inside, whether SQLAlchemy
    or the caller's own cursor (db.Direct) sends it."""
    raw: Any = conn.connection.driver_connection
    sent: list[str] = []
    if conn.dialect.name == "sqlite":
        raw.set_trace_callback(sent.append)
        try:
            yield sent
        finally:
            raw.set_trace_callback(None)
        return
    import psycopg

    execute = psycopg.Cursor.execute

    def counted(cursor: psycopg.Cursor[Any], query: Any, *rest: Any, **kw: Any) -> Any:
        if cursor.connection is raw:
            sent.append(str(query))
        return execute(cursor, query, *rest, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(psycopg.Cursor, "execute", counted)
        yield sent


def q(w: World, owner: str) -> SqlAlchemyQueue:
    return SqlAlchemyQueue(w.svc.engine, owner, LEASE)


def test_claims_are_leases_that_nobody_else_gets_until_they_lapse(world: tuple[World, FakeClock]) -> None:
    w, clock = world
    a, b = q(w, "a"), q(w, "b")
    assert set(a.due_accounts(clock())) == {"stmarys-x", "stmarys-facebook"}
    got = a.claim(clock(), "stmarys-x", 4)
    assert len(got) == 4
    assert {c.delivery_id for c in b.claim(clock(), "stmarys-x", 10)}.isdisjoint({c.delivery_id for c in got})
    clock.advance(seconds=61)
    again = b.claim(clock(), "stmarys-x", 10)
    assert {c.delivery_id for c in got} <= {c.delivery_id for c in again}


def test_concurrent_claims_never_hand_one_delivery_to_two_owners(world: tuple[World, FakeClock]) -> None:
    w, clock = world
    results: dict[str, list[str]] = {}

    def grab(owner: str) -> None:
        mine: list[str] = []
        for _ in range(12):
            mine += [c.delivery_id for c in q(w, owner).claim(clock(), "stmarys-facebook", 1)]
        results[owner] = mine

    threads = [threading.Thread(target=grab, args=(f"o{i}",)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    claimed = [d for ds in results.values() for d in ds]
    assert len(claimed) == len(set(claimed)) == 6


def test_a_dead_daemons_in_flight_delivery_is_put_in_doubt_not_requeued(world: tuple[World, FakeClock]) -> None:
    w, clock = world
    a = q(w, "dead")
    (claim,) = a.claim(clock(), "stmarys-x", 1)
    with db.transaction(w.svc.engine) as s:
        held = a.hold(s, claim.delivery_id)
        assert held is not None
        a.start(s, held, clock())
    assert q(w, "other").recover(clock()) == 0  # lease still running
    assert "stmarys-x" not in q(w, "x").due_accounts(clock())  # in flight: its queued ones wait
    assert q(w, "other").claim(clock(), "stmarys-x", 10) == []
    clock.advance(seconds=61)
    assert q(w, "other").recover(clock()) == 1
    row = next(r for r in deliveries(w.svc) if r.id == claim.delivery_id)
    assert row.status == RECONCILE and row.lease_owner == "" and row.attempts == 1
    # in doubt: nothing else is published on that account until it is settled
    assert set(q(w, "x").due_accounts(clock())) == {"stmarys-x", "stmarys-facebook"}  # (its look-up is due)
    nxt = q(w, "other").claim(clock(), "stmarys-x", 10)
    assert [c.delivery_id for c in nxt] == [claim.delivery_id] and nxt[0].reconcile
    assert q(w, "x").due_accounts(clock()) == ["stmarys-facebook"]


def test_release_gives_back_claims_and_puts_unanswered_calls_in_doubt(world: tuple[World, FakeClock]) -> None:
    w, clock = world
    a = q(w, "me")
    claims = a.claim(clock(), "stmarys-x", 3)
    with db.transaction(w.svc.engine) as s:
        held = a.hold(s, claims[0].delivery_id)
        assert held is not None
        a.start(s, held, clock())
    assert a.release() == 3
    rows = {r.id: r for r in deliveries(w.svc)}
    assert rows[claims[0].delivery_id].status == RECONCILE
    assert all(r.lease_owner == "" for r in rows.values())


def test_go_live_records_only_a_delivery_in_flight_or_in_doubt_and_returns_it(world: tuple[World, FakeClock]) -> None:
    """PostgreSQL does it in one statement, SQLite reads the row first: the same. Its post is
    published with it, and only with it."""
    w, clock = world
    a = q(w, "me")
    first, second = a.claim(clock(), "stmarys-x", 2)
    with db.transaction(w.svc.engine) as s:
        held = a.hold(s, first.delivery_id)
        assert held is not None
        a.start(s, held, clock())
        assert a.go_live(s, second.delivery_id, "p2", "https://x/2", clock()) is None  # still queued
        live = a.go_live(s, first.delivery_id, "p1", "https://x/1", clock())
    assert live is not None
    assert (live.id, live.post_id, live.account, live.jti, live.attempts) == (
        held.id, held.post_id, held.account, held.jti, 1,
    )  # fmt: skip
    assert (live.status, live.lease_owner, live.lease_expires) == ("live", "", None)
    with db.transaction(w.svc.engine) as s:
        assert a.go_live(s, first.delivery_id, "again", "https://x/again", clock()) is None  # recorded already
    rows = {r.id: r for r in deliveries(w.svc)}
    assert (rows[first.delivery_id].status, rows[first.delivery_id].platform_id) == ("live", "p1")
    assert rows[first.delivery_id].lease_owner == "" and rows[second.delivery_id].status == "queued"
    assert first.post_id != second.post_id
    with db.reading(w.svc.engine) as s:
        assert [repo.get_post(s, c.post_id).status for c in (first, second)] == ["published", "approved"]


def test_one_daemon_per_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "daemon.lock"
    with DaemonLock(path), pytest.raises(DaemonError, match=r"pid \d+ on "):
        DaemonLock(path).acquire()
    DaemonLock(path).acquire().release()  # free again


def test_the_daemons_log_size_is_the_entry_count_and_the_signed_size_the_last_checkpoint(
    world: tuple[World, FakeClock],
) -> None:
    """The daemon reads the log's size after every dispatch tick as max(seq) + 1 (an index
    step, not a count of every entry): it must equal the count, before and after a checkpoint."""
    from sqlalchemy import func, select

    from publisher.ledger.tables import log_entries
    from publisher.queue.status import last_checkpoint_size

    w, _ = world

    def count() -> int:
        with db.reading(w.svc.engine) as s:
            return int(s.scalar(select(func.count()).select_from(log_entries)) or 0)

    size = last_checkpoint_size(w.svc)[0]
    assert size == count() > 6  # six approvals and everything before them
    with db.writer_lock(w.svc.engine), w.svc.engine.begin() as conn:
        w.svc.audit.ledger.checkpoint(conn, w.svc.log_signer())
    w.post(accounts=["stmarys-x"])
    assert last_checkpoint_size(w.svc) == (count(), size) and count() > size


def test_status_sets_are_written_into_the_sql_and_only_status_names_are_taken() -> None:
    from sqlalchemy.dialects import postgresql, sqlite

    from publisher.queue import store
    from publisher.store import repo

    for dialect in (sqlite.dialect(), postgresql.dialect()):
        sql = str(store._LOAD_SELECT.compile(dialect=dialect))
        assert "IN ('live', 'taken_down', 'inflight', 'reconcile')" in sql and "POSTCOMPILE" not in sql
    with pytest.raises(ValueError, match="status names"):
        repo.one_of(store.T.c.status, ("live", "x') OR ('1'='1"))


def test_the_gate_reads_a_post_in_one_statement_as_it_is_stored(world: tuple[World, FakeClock]) -> None:
    """repo.gate_read: the post, its token, accounts, approvals used, media in the post's order
    and featured subjects, each as the store has them (read as JSON: unordered until sorted)."""
    from publisher.domain.limits import Platform
    from publisher.domain.model import Featured, Scope

    from .world import jpeg

    w, clock = world
    photos = []
    for i, colour in enumerate([(200, 30, 30), (30, 200, 30), (30, 30, 200), (90, 90, 90)]):
        path = w.dir / f"photo{i}.jpg"
        path.write_bytes(jpeg(colour))
        photos.append(path)
    first = w.as_("Sam Teacher").post_draft("Art week", ["stmarys-x"], "2027-05-10 09:30:00", photos, [])
    with db.reading(w.svc.engine) as s:  # the hashes as stored (drafting strips the metadata)
        stored = dict(zip(photos, [md.sha256 for md in repo.post_media(s, first)], strict=True))
    photos.sort(key=stored.__getitem__, reverse=True)  # not in the order of their hashes (the media's key)
    for platform in (Platform.X, Platform.FACEBOOK):
        w.svc.consent_grant(w.oliver, platform, Scope.NAME, "SMA-2")
    w.svc.consent_grant(w.oliver, Platform.X, Scope.IMAGE, "SMA-2")
    pid = w.as_("Sam Teacher").post_draft(
        "Art week", ["stmarys-x", "stmarys-facebook"], "2027-05-10 09:30:00", photos,
        [f"{w.oliver}:image+name", f"{w.amelia}:image"],
    )  # fmt: skip
    w.approve(pid)
    clock.advance(seconds=3600)
    a = q(w, "me")
    claims = [c for c in a.claim(clock(), "stmarys-x", 100) if c.post_id == pid]
    with db.transaction(w.svc.engine) as s:
        held = a.hold(s, claims[0].delivery_id)
        assert held is not None
        a.start(s, held, clock())
        assert a.go_live(s, held.id, "p1", "https://x/1", clock()) is not None
    with db.reading(w.svc.engine) as s:
        with driver_statements(s.connection()) as statements:  # after BEGIN
            g = repo.gate_read(s, pid)
        token = repo.latest_approval(s, pid).token  # type: ignore[union-attr]
        stored_media = repo.post_media(s, pid)
    assert len(statements) == 1
    assert (g.post.id, g.post.text, g.post.status, g.post.token) == (pid, "Art week", "published", token)
    assert [(name, acc.platform.value if acc else None) for name, acc in g.accounts.items()] == [
        ("stmarys-facebook", "facebook"), ("stmarys-x", "x"),
    ]  # fmt: skip
    assert g.used == {(held.jti, "stmarys-x")}
    assert [md.sha256 for md in g.media] == [stored[p] for p in photos]
    assert g.media == stored_media and g.media[0].width == 640 and g.media[0].camera_make == "Apple"
    assert g.featured == tuple(
        sorted(
            [Featured(w.oliver, frozenset({Scope.IMAGE, Scope.NAME})), Featured(w.amelia, frozenset({Scope.IMAGE}))],
            key=lambda f: f.subject_id,
        )
    )


def test_the_intent_reads_the_accounts_load_with_the_gates_read_in_one_statement(
    world: tuple[World, FakeClock],
) -> None:
    """load_and_gate_read: how much of the account's daily budget is used (live in the window,
    or possibly live now), the oldest publish time in the window, whether another delivery is in
    flight or in doubt there; and the post as repo.gate_read reads it; one statement."""
    w, clock = world
    a = q(w, "me")
    first, second, third = a.claim(clock(), "stmarys-x", 3)
    published = clock()
    with db.transaction(w.svc.engine) as s:
        held = a.hold(s, first.delivery_id)
        assert held is not None
        a.start(s, held, published)
        assert a.go_live(s, held.id, "p1", "https://x/1", published) is not None
    clock.advance(seconds=600)
    with db.transaction(w.svc.engine) as s:
        going = a.hold(s, second.delivery_id)
        assert going is not None
        a.start(s, going, clock())  # in flight: possibly live now
    with db.transaction(w.svc.engine) as s:
        row = a.hold(s, third.delivery_id, account_too=True)
        assert row is not None and going is not None
        with driver_statements(s.connection()) as statements:
            load, read = a.load_and_gate_read(s, row, clock() - timedelta(days=1))
        assert len(statements) == 1
        assert load == Load(busy=True, used=2, oldest=published)
        alone, fields = (
            repo.gate_read(s, third.post_id),
            ("id", "school_id", "author", "text", "scheduled_at", "status", "token"),
        )
        assert [getattr(read.post, f) for f in fields] == [getattr(alone.post, f) for f in fields]
        assert read.post.id == third.post_id and read.post.token and replace(read, post=alone.post) == alone
        assert a.load_and_gate_read(s, row, published + timedelta(seconds=1))[0] == Load(True, 1, None)
        assert a.load_and_gate_read(s, going, published)[0] == Load(False, 2, published)  # not busy with itself
        assert a.load_and_gate_read(s, replace(row, account="stmarys-facebook"), published)[0] == Load(False, 0, None)


def test_renew_skips_a_row_another_transaction_holds(world: tuple[World, FakeClock]) -> None:
    """The lease keeper renews every running call in one UPDATE; a row held by, say, a consent
    withdrawal (which locks several deliveries in its own order) is skipped, not waited for, so
    the renewal can neither deadlock with it nor hold up the other calls' leases."""
    w, clock = world
    if w.svc.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time: there is no row lock to skip")
    a = q(w, "me")
    first, second = (c.delivery_id for c in a.claim(clock(), "stmarys-x", 2))
    before = {r.id: r.lease_expires for r in deliveries(w.svc)}
    clock.advance(seconds=10)
    done = threading.Event()
    renewing = threading.Thread(target=lambda: (a.renew([first, second], clock()), done.set()))
    with db.transaction(w.svc.engine) as s:
        assert a.lock(s, first) is not None  # held meanwhile, as by a withdrawal
        renewing.start()
        assert done.wait(10)  # returned without waiting for the held row
    renewing.join(10)
    after = {r.id: r.lease_expires for r in deliveries(w.svc)}
    assert after[first] == before[first]
    assert after[second] is not None and before[second] is not None and after[second] > before[second]


def test_holding_an_account_blocks_other_daemons_but_not_its_foreign_keys(world: tuple[World, FakeClock]) -> None:
    """The intent's transaction locks the delivery and its account (PostgreSQL: FOR NO KEY
    UPDATE): another daemon's hold on the same account waits, as it must, but a row that only
    refers to the account (a new post's delivery: its foreign-key check takes KEY SHARE) does
    not wait for the gate to finish judging."""
    w, clock = world
    if w.svc.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time")
    first, second = (c.delivery_id for c in q(w, "a").claim(clock(), "stmarys-x", 2))
    with db.transaction(w.svc.engine) as s:
        assert q(w, "a").hold(s, first, account_too=True) is not None
        with w.svc.engine.connect() as other:
            other.exec_driver_sql("SET lock_timeout = '2s'")
            key_share = "SELECT name FROM accounts WHERE name = 'stmarys-x' FOR KEY SHARE"
            assert other.exec_driver_sql(key_share).scalar() == "stmarys-x"  # no wait
            other.rollback()
            with pytest.raises(OperationalError, match="lock timeout"):
                _hold_within_200ms(q(w, "b"), second)


def _hold_within_200ms(queue: SqlAlchemyQueue, delivery_id: str) -> None:
    with db.transaction(queue.engine) as s:
        s.execute(text("SET LOCAL lock_timeout = '200ms'"))
        queue.hold(s, delivery_id, account_too=True)
