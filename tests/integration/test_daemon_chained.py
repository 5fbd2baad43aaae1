"""An account's next delivery is begun (judged, its intent committed) in the transaction that
records the last one live: one write transaction per delivery instead of two. Tried through
the real connectors and the emulators."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from publisher.daemon import Daemon
from publisher.domain.limits import Platform
from publisher.domain.model import Scope
from publisher.queue.settings import QueueSettings
from publisher.queue.store import SqlAlchemyQueue
from publisher.queue.worker import Outcome, Publisher
from publisher.store import db, repo
from tests.contract.queue.world import deliveries, log_bodies

from .test_daemon_review import drain, running


def _three_posts(w: Any) -> list[str]:
    ids = [w.post(text=f"Newsletter {i}", accounts=["stmarys-x"]) for i in range(3)]
    time.sleep(1.1)
    return ids


def test_the_next_delivery_is_begun_with_the_record_of_the_last(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    begins: list[str] = []
    original = Publisher._begin

    def counted(self: Publisher, claim: Any) -> Any:
        begins.append(claim.delivery_id)
        return original(self, claim)

    monkeypatch.setattr(Publisher, "_begin", counted)
    with running(tmp_path) as (w, sb, p):
        xid = p.sandbox_account_id("stmarys-x")
        _three_posts(w)
        drain(w, p)
        rows = deliveries(w.svc)
        assert [(r.status, r.attempts) for r in rows] == [("live", 1)] * 3
        assert len(begins) == 1  # the other two were begun as the one before went live
        assert sb.created_count("x", xid) == 3
        published = log_bodies(w.svc, "post_published")
        assert len(published) == 3
        with db.reading(w.svc.engine) as s:  # each names the manifest its approval bound
            approvals = [repo.latest_approval(s, b["post"]) for b in published]
            assert [b["manifest_sha256"] for b in published] == [a.manifest_sha256 for a in approvals if a is not None]


def test_a_failure_judging_the_next_delivery_undoes_the_record_which_is_made_again_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The next delivery is begun in the record of the last: it is marked in flight, then
    judging fails; that transaction is undone and the record made again alone (it stands, once),
    and the next is begun again on its own and goes out once."""
    original = Publisher._intend
    calls: list[str] = []

    def fails_once_after_writing(self: Publisher, s: Any, claim: Any, register: Any = None) -> Any:
        calls.append(claim.delivery_id)
        result = original(self, s, claim, register)
        if len(calls) == 2:  # the first begun with the record of the one before
            s.flush()
            raise RuntimeError("a bug while judging")
        return result

    monkeypatch.setattr(Publisher, "_intend", fails_once_after_writing)
    with running(tmp_path) as (w, sb, p):
        xid = p.sandbox_account_id("stmarys-x")
        _three_posts(w)
        drain(w, p)
        assert len(calls) == 4  # the failed one was begun again
        assert [(r.status, r.attempts) for r in deliveries(w.svc)] == [("live", 1)] * 3
        assert sb.created_count("x", xid) == 3
        assert len(log_bodies(w.svc, "post_published")) == 3


def test_stopping_finishes_the_delivery_already_in_flight_and_gives_back_the_rest(tmp_path: Path) -> None:
    with running(tmp_path) as (w, sb, p):
        xid = p.sandbox_account_id("stmarys-x")
        _three_posts(w)
        with Daemon(w.svc, QueueSettings.load(w.config_path), p) as d:
            handle = d.publisher.handle

            def stop_after_the_first(claim: Any, then: Any = None, begun: Any = None) -> Outcome:
                outcome = handle(claim, then, begun)
                if outcome.then is not None:
                    d.stopping.set()  # SIGTERM arrives while the next is in flight
                return outcome

            d.publisher.handle = stop_after_the_first  # type: ignore[method-assign]
            d.dispatch()
            d.wait_idle(20)
        rows = deliveries(w.svc)
        assert sorted((r.status, r.lease_owner) for r in rows) == [("live", ""), ("live", ""), ("queued", "")]
        assert sb.created_count("x", xid) == 2


def test_stopping_during_a_call_begins_nothing_more(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGTERM while a delivery's platform call is under way: its result is recorded, and the
    next is not begun (it could outlast the grace period and be released while in flight)."""
    with running(tmp_path) as (w, sb, p):
        xid = p.sandbox_account_id("stmarys-x")
        _three_posts(w)
        with Daemon(w.svc, QueueSettings.load(w.config_path), p) as d:
            original = Publisher._record_live

            def stop_first(self: Publisher, *args: Any, **kw: Any) -> Outcome:
                d.stopping.set()  # the call has returned; the daemon was told to stop meanwhile
                return original(self, *args, **kw)

            monkeypatch.setattr(Publisher, "_record_live", stop_first)
            d.dispatch()
            d.wait_idle(20)
        rows = deliveries(w.svc)
        assert sorted((r.status, r.lease_owner) for r in rows) == [("live", ""), ("queued", ""), ("queued", "")]
        assert sb.created_count("x", xid) == 1


def test_a_withdrawal_while_the_next_delivery_is_judged_waits_and_takes_down_what_went_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str
) -> None:
    """A withdrawal arriving as the next delivery is judged inside the record of the last: it
    waits for that transaction (PostgreSQL: the register lock, taken first by both; SQLite: the
    write lock), never deadlocks, and takes down both posts that went out; the third is blocked.
    (With the register taken after the rows, PostgreSQL aborted one side as a deadlock.)"""
    original = Publisher._intend_within
    withdrawal: list[threading.Thread] = []
    waited: list[bool] = []
    errors: list[str] = []

    def withdraw_while_judging_the_next(self: Publisher, s: Any, then: Any, register: Any) -> Any:
        if not withdrawal:

            def withdraw() -> None:
                try:
                    w.as_("DFO").consent_withdraw(w.amelia, Platform.X, Scope.IMAGE, "parent phoned")
                except Exception as exc:  # a deadlock surfaces here (or in the daemon's record)
                    errors.append(repr(exc))

            withdrawal.append(threading.Thread(target=withdraw))
            withdrawal[0].start()
            withdrawal[0].join(0.5)
            waited.append(withdrawal[0].is_alive())
        return original(self, s, then, register)

    monkeypatch.setattr(Publisher, "_intend_within", withdraw_while_judging_the_next)
    with running(tmp_path, database_url=database_url) as (w, sb, p):
        xid = p.sandbox_account_id("stmarys-x")
        _three_posts(w)
        drain(w, p)
        withdrawal[0].join(15)
        assert errors == [] and waited == [True]
        drain(w, p)  # the takedowns the withdrawal queued
        rows = deliveries(w.svc)
        assert sorted(r.status for r in rows) == ["blocked", "taken_down", "taken_down"]
        assert sb.created_count("x", xid) == 2 and sb.live("x", xid) == []
        assert [b["reconciled"] for b in log_bodies(w.svc, "post_published")] == [False, False]


def test_a_post_recorded_on_two_accounts_at_once_while_the_next_is_blocked_never_deadlocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str
) -> None:
    """Post P goes to X and Facebook; X's next delivery (Q) is blocked as P is recorded, so that
    record writes a log entry mid-way. Every record takes P's row (marking it published) before
    any log entry: the X record holds the log while Facebook's record waits for P's row, never
    the other way round too (PostgreSQL aborted one of them as a deadlock when the post row was
    updated after the blocked entry). The hooks hold X's record open for up to 3 s with the log
    taken, and let Facebook's record run meanwhile."""
    x_holds_the_log, fb_marked = threading.Event(), threading.Event()
    original_within, original_record, original_go_live = (
        Publisher._intend_within,
        Publisher._record_live,
        SqlAlchemyQueue.go_live,
    )

    def within(self: Publisher, s: Any, then: Any, register: Any) -> Any:
        out = original_within(self, s, then, register)
        if then.account == "stmarys-x":  # Q was blocked: its entry is written, the log held
            x_holds_the_log.set()
            fb_marked.wait(3)
        return out

    def record(self: Publisher, claim: Any, *args: Any, **kw: Any) -> Any:
        if claim.account == "stmarys-facebook":
            x_holds_the_log.wait(5)
        return original_record(self, claim, *args, **kw)

    def go_live(self: SqlAlchemyQueue, s: Any, *args: Any) -> Any:  # the delivery's row, then its post's
        out = original_go_live(self, s, *args)
        if x_holds_the_log.is_set():
            fb_marked.set()
        return out

    monkeypatch.setattr(Publisher, "_intend_within", within)
    monkeypatch.setattr(Publisher, "_record_live", record)
    monkeypatch.setattr(SqlAlchemyQueue, "go_live", go_live)
    with running(tmp_path, database_url=database_url) as (w, _sb, p):
        local = w.svc.now().astimezone(ZoneInfo("Europe/London"))
        at = [(local + timedelta(seconds=d)).strftime("%Y-%m-%d %H:%M:%S") for d in (1, 2)]
        first = w.post(text="Harvest festival", accounts=["stmarys-x", "stmarys-facebook"], at=at[0], featured=[])
        blocked = w.post(text="Harvest festival photos", accounts=["stmarys-x"], at=at[1])
        w.as_("DFO").consent_withdraw(w.amelia, Platform.X, Scope.IMAGE, "parent phoned")
        time.sleep(2.1)
        drain(w, p)
        assert x_holds_the_log.is_set()  # the hooks ran: X's record held the log mid-way
        status = {(r.post_id, r.account): r.status for r in deliveries(w.svc)}
        assert status == {
            (first, "stmarys-x"): "live",
            (first, "stmarys-facebook"): "live",
            (blocked, "stmarys-x"): "blocked",
        }
        assert [b["reconciled"] for b in log_bodies(w.svc, "post_published")] == [False, False]


def test_a_pause_made_after_the_daemon_cached_the_register_stops_its_next_delivery(tmp_path: Path) -> None:
    """The daemon's register snapshot carries the pause flag and is kept while the register
    version stands: pausing (from another process's Service) moves the version, so the
    gate sees it in the daemon's next judgement (before, a separate query read it each time)."""
    from publisher.takedown import pause

    with running(tmp_path) as (w, sb, p):
        xid = p.sandbox_account_id("stmarys-x")
        later = (w.svc.now() + timedelta(seconds=3)).astimezone(ZoneInfo("Europe/London"))
        w.post(text="Sports day", accounts=["stmarys-x"])
        w.post(text="Sports day, more photos", accounts=["stmarys-x"], at=later.strftime("%Y-%m-%d %H:%M:%S"))
        time.sleep(1.1)
        drain(w, p)  # the first; the daemon's Service has now cached the register, not paused
        assert sb.created_count("x", xid) == 1
        assert pause(w.as_("Jane Head"), "wrong photo went out")
        time.sleep(2.1)  # the second is due; the daemon dispatches nothing while paused, so
        with Daemon(w.svc, QueueSettings.load(w.config_path), p) as d:  # judge it as a worker would
            [claim] = d.queue.claim(w.svc.now(), "stmarys-x", 8)
            assert d.publisher.handle(claim).state == "paused"
        assert sb.created_count("x", xid) == 1
        assert sorted(r.status for r in deliveries(w.svc)) == ["live", "queued"]
        assert [r.last_error for r in deliveries(w.svc) if r.status == "queued"] == ["publishing is paused"]


def test_dispatch_signs_a_checkpoint_after_publishing_at_most_once_a_gap(tmp_path: Path) -> None:
    """Each dispatch tick (4 a second) used to sign a checkpoint while anything was published;
    now at most one every CHECKPOINT_GAP, and `drain` still signs at once."""
    from publisher.daemon import CHECKPOINT_GAP
    from publisher.queue.status import last_checkpoint_size

    with running(tmp_path) as (w, _sb, p), Daemon(w.svc, QueueSettings.load(w.config_path), p) as d:
        w.post(accounts=["stmarys-x"])
        time.sleep(1.1)
        d.drain(until=w.svc.now(), timeout=10)
        assert [r.status for r in deliveries(w.svc)] == ["live"]
        size, signed = last_checkpoint_size(w.svc)
        assert size == signed  # drain signs what it published at once
        later = (w.svc.now() + timedelta(hours=1)).astimezone(ZoneInfo("Europe/London"))
        w.post(accounts=["stmarys-x"], at=f"{later:%Y-%m-%d %H:%M:%S}")  # the log grows; nothing falls due
        d._dirty, d._last_checkpoint = True, time.monotonic()
        d.dispatch()
        assert last_checkpoint_size(w.svc)[1] == signed  # inside the gap: not yet
        d._last_checkpoint -= CHECKPOINT_GAP
        d.dispatch()
        grown, now_signed = last_checkpoint_size(w.svc)
        assert grown > size and now_signed == grown


def test_dispatch_with_every_worker_busy_asks_the_store_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker moves on to the next account by itself, so a tick with no worker free has
    nothing to hand out: it must not run the due-accounts query (27 ms on PostgreSQL with
    10,000 due, four times a second through a burst). With a worker free it does."""
    from concurrent.futures import Future

    asked: list[int] = []
    original = SqlAlchemyQueue.due_accounts

    def counted(self: SqlAlchemyQueue, *args: Any, **kw: Any) -> list[str]:
        asked.append(1)
        return original(self, *args, **kw)

    monkeypatch.setattr(SqlAlchemyQueue, "due_accounts", counted)
    with running(tmp_path) as (w, _sb, p), Daemon(w.svc, QueueSettings.load(w.config_path), p) as d:
        w.post(accounts=["stmarys-x"])
        time.sleep(1.1)
        busy: Future[None] = Future()
        d._busy = {f"busy-{i}": busy for i in range(d.settings.workers)}  # every worker on another account
        assert d.dispatch() == 0 and asked == []
        d._busy.popitem()
        assert d.dispatch() == 1 and asked == [1]  # the free worker takes the due account
        with d._lock:
            for placeholder in [a for a in d._busy if a.startswith("busy-")]:
                del d._busy[placeholder]  # (they hold no task)
        d.wait_idle(10)
        assert [r.status for r in deliveries(w.svc)] == ["live"]


def test_the_gate_reads_which_accounts_have_used_the_approval(tmp_path: Path) -> None:
    """The gate's one read of a post's accounts also finds each account's live delivery's jti
    (APPROVAL_ALREADY_USED for that account, and only that one). Also seen by `post show`."""
    from sqlalchemy import update

    from publisher.domain import gate
    from publisher.store import db
    from publisher.store import models as m

    with running(tmp_path) as (w, _sb, p):
        pid = w.post(accounts=["stmarys-x", "stmarys-facebook"])
        time.sleep(1.1)
        drain(w, p)
        assert sorted(r.status for r in deliveries(w.svc)) == ["live", "live"]
        with db.transaction(w.svc.engine) as s:  # as if the Facebook one had never gone out
            s.execute(update(m.DeliveryRow).where(m.DeliveryRow.account == "stmarys-facebook").values(status="queued"))
        found = w.svc.screen(pid, gate.Stage.PUBLISH).findings
        assert "APPROVAL_ALREADY_USED" in {f.code for f in found["stmarys-x"]}
        assert "APPROVAL_ALREADY_USED" not in {f.code for f in found["stmarys-facebook"]}


def test_a_delivery_found_by_a_look_up_is_recorded_live_with_its_doubts_cleared(tmp_path: Path) -> None:
    """The record (one UPDATE on the table) clears what the look-ups left on the row: findings,
    last error, next try and lease; the attempt count stays that of the one call made."""
    with running(tmp_path, reconcile_attempts=5, backoff_base=0.5, backoff_max=0.5) as (w, sb, p):
        xid = p.sandbox_account_id("stmarys-x")
        w.post(text="Choir tonight", accounts=["stmarys-x"])
        time.sleep(1.1)
        sb.inject("x", "create", "accept_drop", times=1)  # posted, but the answer never came
        sb.inject("x", "user_tweets", "500", times=1)  # and the first look-up cannot say
        drain(w, p, timeout=15)
        [row] = deliveries(w.svc)
        assert row.status == "live" and row.platform_id == str(sb.live("x", xid)[0]["id"])
        assert (row.findings, row.last_error, row.next_try_at) == ([], "", None)
        assert (row.lease_owner, row.lease_expires, row.attempts) == ("", None, 1)
        [body] = log_bodies(w.svc, "post_published")
        assert body["reconciled"] is True
        with db.reading(w.svc.engine) as s:  # described from the store: its approval's manifest
            approval = repo.latest_approval(s, row.post_id)
            assert approval is not None and body["manifest_sha256"] == approval.manifest_sha256
        assert sb.created_count("x", xid) == 1
