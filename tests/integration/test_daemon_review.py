"""Paths found in review that could publish twice, publish after a takedown, or leave a
takedown undone: each tried through the real connectors and the emulators."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest

from publisher.connectors import ConnectorSettings
from publisher.daemon import Daemon
from publisher.errors import PublisherError
from publisher.platforms import Platforms
from publisher.queue import store as q
from publisher.queue.settings import QueueSettings
from publisher.queue.worker import Outcome, Publisher
from publisher.sandbox import Sandbox
from publisher.takedown import open_takedowns, process_pending_takedowns, request_takedown
from tests.contract.queue.world import World, build_world, deliveries, log_bodies

CS = ConnectorSettings(timeout=3.0, instagram_pause=0.0, instagram_request_delay=0.0)


@contextmanager
def running(base: Path, database_url: str = "", **daemon: float) -> Iterator[tuple[World, Sandbox, Platforms]]:
    """A world (SQLite under `base`, or a PostgreSQL database_url) with the emulators running."""
    w = build_world(base, database_url, daemon=daemon or None)
    try:
        with (
            Sandbox(w.svc.config.data_dir / "sandbox") as sb,
            Platforms(w.svc.config, w.svc.vault(), CS, sandbox=sb) as p,
        ):
            yield w, sb, p
    finally:
        w.svc.close()


def drain(w: World, p: Platforms, timeout: float = 20) -> None:
    with Daemon(w.svc, QueueSettings.load(w.config_path), p) as d:
        d.drain(until=w.svc.now(), timeout=timeout)


def test_two_posts_with_the_same_text_are_never_taken_for_each_other(tmp_path: Path) -> None:
    with running(tmp_path) as (w, sb, p):
        fb = p.sandbox_account_id("stmarys-facebook")
        first = w.post(text="Reminder: school closes at 1pm today", accounts=["stmarys-facebook"])
        time.sleep(1.1)
        drain(w, p)
        second = w.post(text="Reminder: school closes at 1pm today", accounts=["stmarys-facebook"])
        time.sleep(1.1)
        sb.inject("facebook", "photos", "500", times=1)  # not created; the outcome is unknown to us
        drain(w, p)
        rows = {r.post_id: r for r in deliveries(w.svc)}
        assert rows[first].status == rows[second].status == "live"
        assert rows[first].platform_id != rows[second].platform_id
        assert sb.created_count("facebook", fb) == 2
        assert {str(x["id"]) for x in sb.live("facebook", fb)} == {rows[first].platform_id, rows[second].platform_id}


def test_a_takedown_requested_while_the_outcome_is_unknown_cancels_it(tmp_path: Path) -> None:
    with running(tmp_path, reconcile_attempts=30, backoff_base=2.0, backoff_max=2.0) as (w, sb, p):
        xid = p.sandbox_account_id("stmarys-x")
        pid = w.post(text="Trip photos", accounts=["stmarys-x"])
        time.sleep(1.1)
        sb.inject("x", "create", "500", times=1)  # not created; we cannot know
        sb.inject("x", "user_tweets", "500", times=1)  # and the look-up cannot say yet
        with Daemon(w.svc, QueueSettings.load(w.config_path), p) as d:
            d.drain(None, timeout=5)
        assert [r.status for r in deliveries(w.svc)] == ["reconcile"]
        req = request_takedown(w.svc, pid, "parent asked", "Mrs Jones")
        process_pending_takedowns(w.svc, p, w.svc.now(), only=req.queued)
        time.sleep(2.2)
        drain(w, p)
        assert [r.status for r in deliveries(w.svc)] == ["cancelled"]
        assert sb.live("x", xid) == [] and sb.created_count("x", xid) == 0
        assert log_bodies(w.svc, "post_published") == []


def test_the_daemon_finishes_a_takedown_the_platform_refused_for_a_while(tmp_path: Path) -> None:
    with running(tmp_path) as (w, sb, p):
        xid = p.sandbox_account_id("stmarys-x")
        pid = w.post(text="Sports day", accounts=["stmarys-x"])
        time.sleep(1.1)
        drain(w, p)
        assert len(sb.live("x", xid)) == 1
        sb.inject("x", "delete", "503", times=1)
        req = request_takedown(w.svc, pid, "parent asked", "Mrs Jones")
        attempts = process_pending_takedowns(w.svc, p, w.svc.now(), only=req.queued)
        assert [a.outcome for a in attempts] == ["pending"]
        assert len(sb.live("x", xid)) == 1
        with Daemon(w.svc, QueueSettings.load(w.config_path), p) as d:
            deadline = time.monotonic() + 120
            while open_takedowns(w.svc) and time.monotonic() < deadline:
                d.takedowns()  # what the daemon's takedown job runs every few seconds
                time.sleep(0.5)
        assert open_takedowns(w.svc) == []
        assert sb.live("x", xid) == []
        assert [r.status for r in deliveries(w.svc)] == ["taken_down"]
        assert len(log_bodies(w.svc, "taken_down")) == 1


def test_a_publish_that_could_not_be_recorded_is_looked_up_not_repeated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = Publisher._record_live
    failures = []

    def record_fails_once(self: Publisher, claim: object, ref: object, *, reconciled: bool, **kw: object) -> object:
        if not reconciled and not failures:
            failures.append(claim)
            raise RuntimeError("database is locked")  # the platform took the post; the store did not
        return original(self, claim, ref, reconciled=reconciled, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(Publisher, "_record_live", record_fails_once)
    with running(tmp_path) as (w, sb, p):
        fb = p.sandbox_account_id("stmarys-facebook")
        for i in range(3):
            w.post(text=f"News item {i}", accounts=["stmarys-facebook"])
        time.sleep(1.1)
        drain(w, p)
        assert failures, "the failure was not injected"
        assert [r.status for r in deliveries(w.svc)] == ["live"] * 3
        assert sb.created_count("facebook", fb) == 3
        assert len(log_bodies(w.svc, "post_published")) == 3


def test_an_unconfirmed_delivery_is_settled_by_a_person(tmp_path: Path) -> None:
    from publisher.queue.resolve import resolve

    with running(tmp_path, reconcile_attempts=1) as (w, sb, p):
        xid = p.sandbox_account_id("stmarys-x")
        w.post(text="Concert tonight", accounts=["stmarys-x"])
        time.sleep(1.1)
        sb.inject("x", "create", "accept_drop", times=1)  # posted, but the answer never came
        sb.inject("x", "user_tweets", "500", times=10)  # and the look-up cannot say
        drain(w, p, timeout=10)
        [row] = deliveries(w.svc)
        assert row.status == "unconfirmed"
        sb.clear_faults()
        drain(w, p, timeout=3)
        assert [r.status for r in deliveries(w.svc)] == ["unconfirmed"]  # never re-published on its own
        assert sb.created_count("x", xid) == 1
        with pytest.raises(PublisherError, match="not a live post"):
            resolve(w.svc, p, row.id, "1234")
        live_id = str(sb.live("x", xid)[0]["id"])
        assert resolve(w.svc, p, row.id, live_id) == "live"
        [row] = deliveries(w.svc)
        assert row.status == "live" and row.platform_id == live_id
        assert [b["reconciled"] for b in log_bodies(w.svc, "post_published")] == [True]


def test_unreadable_credentials_fail_the_delivery_and_flag_the_account(tmp_path: Path) -> None:
    from publisher.queue.status import queue_status

    with running(tmp_path) as (w, sb, p):
        p.sandbox_account_id("stmarys-x")
        w.svc.vault().set("account/stmarys-x", b"this is not a credentials object")
        w.post(text="Assembly", accounts=["stmarys-x"])
        time.sleep(1.1)
        with Platforms(w.svc.config, w.svc.vault(), CS, sandbox=sb) as fresh:
            drain(w, fresh, timeout=5)
        assert [r.status for r in deliveries(w.svc)] == ["failed"]
        status = queue_status(w.svc)
        assert [a["account"] for a in status["accounts_needing_attention"]] == ["stmarys-x"]
        assert "this is not a credentials object" not in str(status)


def test_consent_withdrawn_while_the_gate_was_judging_waits_then_takes_the_post_down(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Judgement and intent share one transaction holding the register version: a withdrawal
    made while the gate judges cannot commit between the two (the post would go out on a
    consent already withdrawn, with nothing to take it down). It waits, then finds the
    delivery in flight and queues its takedown."""
    import threading

    from publisher.domain.limits import Platform
    from publisher.domain.model import Scope

    original = Publisher._decide
    withdrawal: list[threading.Thread] = []
    waited: list[bool] = []

    def withdraw_while_judging(self: Publisher, *args: object) -> object:
        if not withdrawal:
            t = threading.Thread(
                target=lambda: w.as_("DFO").consent_withdraw(w.amelia, Platform.X, Scope.IMAGE, "parent phoned")
            )
            withdrawal.append(t)
            t.start()
            t.join(0.5)
            waited.append(t.is_alive())
        return original(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(Publisher, "_decide", withdraw_while_judging)
    with running(tmp_path) as (w, sb, p):
        xid = p.sandbox_account_id("stmarys-x")
        w.post(text="Sports day", accounts=["stmarys-x"])
        time.sleep(1.1)
        drain(w, p)
        withdrawal[0].join(15)
        assert waited == [True]  # the withdrawal could not commit while the gate judged
        drain(w, p)  # the daemon works the takedown the withdrawal queued
        assert [r.status for r in deliveries(w.svc)] == ["taken_down"]
        assert sb.created_count("x", xid) == 1 and sb.live("x", xid) == []
        assert len(log_bodies(w.svc, "taken_down")) == 1


@pytest.mark.parametrize("how", ["cancel", "takedown"])
def test_cancelling_while_the_gate_judges_never_overwrites_a_delivery_in_flight(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str, how: str
) -> None:
    """A cancellation or takedown made while a daemon judges the delivery waits for the intent,
    then sees it in flight: `post cancel` refuses (nothing half-cancelled), a takedown takes the
    post down. Neither may overwrite the in-flight row as cancelled (on PostgreSQL a lost update
    left a live post with no record)."""
    import threading

    original = Publisher._decide
    attempt: list[threading.Thread] = []
    outcome: list[str] = []

    def cancel_while_judging(self: Publisher, *args: object) -> object:
        if not attempt:

            def cancel() -> None:
                try:
                    if how == "cancel":
                        w.as_("Jane Head").post_cancel(pid, "wrong photo")
                    else:
                        request_takedown(w.as_("DPO"), pid, "wrong photo", "parent")
                    outcome.append("done")
                except PublisherError as exc:
                    outcome.append(str(exc))

            attempt.append(threading.Thread(target=cancel))
            attempt[0].start()
            time.sleep(0.3)  # the cancellation is now waiting for this transaction
        return original(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(Publisher, "_decide", cancel_while_judging)
    with running(tmp_path, database_url=database_url) as (w, sb, p):
        xid = p.sandbox_account_id("stmarys-x")
        pid = w.post(text="Sports day", accounts=["stmarys-x"])
        time.sleep(1.1)
        drain(w, p)
        attempt[0].join(15)
        drain(w, p)  # and any takedown queued
        [row] = deliveries(w.svc)
        if how == "cancel":
            assert outcome and "being published on stmarys-x right now" in outcome[0]
            assert row.status == "live" and len(sb.live("x", xid)) == 1
            assert len(log_bodies(w.svc, "post_published")) == 1
        else:
            assert outcome == ["done"]
            assert row.status == "taken_down" and sb.live("x", xid) == []
            assert len(log_bodies(w.svc, "post_published")) == 1
            assert len(log_bodies(w.svc, "taken_down")) == 1


def test_a_worker_that_fails_gives_back_its_claims(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker whose publish raised (the store failed, say) releases the deliveries it had
    claimed, so they are not stuck behind a lease for minutes."""
    from publisher.errors import StoreUnavailable

    def store_down(self: Publisher, claim: object) -> object:
        raise StoreUnavailable("The database stayed busy for 10 s: try again")

    monkeypatch.setattr(Publisher, "handle", store_down)
    with running(tmp_path) as (w, _sb, p):
        for i in range(3):
            w.post(text=f"Notice {i}", accounts=["stmarys-x"])
        time.sleep(1.1)
        with Daemon(w.svc, QueueSettings.load(w.config_path), p) as d:
            d.dispatch()
            d.wait_idle(10)
            assert [(r.status, r.lease_owner) for r in deliveries(w.svc)] == [("queued", "")] * 3


def _two_claimants(w: World, p: Platforms) -> tuple[list[Publisher], list[q.Claim]]:
    """Two posts on one account, due; two daemons' publishers, each holding a claim on one of
    them (both claimed before either is in flight)."""
    for i in range(2):
        w.post(text=f"Notice {i}", accounts=["stmarys-x"])
    time.sleep(1.1)
    settings = QueueSettings.load(w.config_path)
    daemons = [q.SqlAlchemyQueue(w.svc.engine, f"daemon-{i}", timedelta(seconds=60)) for i in range(2)]
    claims = [queue.claim(w.svc.now(), "stmarys-x", 1) for queue in daemons]
    assert [len(c) for c in claims] == [1, 1]
    return [Publisher(w.svc, p, d, settings) for d in daemons], [c[0] for c in claims]


def test_two_daemons_never_publish_on_one_account_at_once(tmp_path: Path, database_url: str) -> None:
    """Two daemons can each claim one of an account's deliveries before either is in flight;
    the intent re-checks under the account's lock, so the second waits (same millisecond upload
    ids on Instagram, look-ups unable to tell posts apart, budgets overrun otherwise)."""
    with running(tmp_path, database_url=database_url) as (w, _sb, p):
        publishers, claims = _two_claimants(w, p)
        first = publishers[0]._begin(claims[0])
        second = publishers[1]._begin(claims[1])
        assert not isinstance(first, Outcome)  # the first daemon's intent
        assert isinstance(second, Outcome) and second.state == "account_busy" and second.hold_until is not None
        rows = {r.id: r for r in deliveries(w.svc)}
        assert rows[claims[0].delivery_id].status == "inflight"
        assert (rows[claims[1].delivery_id].status, rows[claims[1].delivery_id].lease_owner) == ("queued", "")


def test_two_intents_on_one_account_at_the_same_moment_let_one_through(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str
) -> None:
    """As above, but the second daemon's intent runs while the first's is still open: it waits
    on the account's row lock (PostgreSQL; SQLite's write lock), then finds the first in flight.
    Without the lock both would read "nothing in flight" and both would publish."""
    import threading

    original = Publisher._decide
    first_judging, second_done = threading.Event(), threading.Event()

    def slow_first(self: Publisher, *args: object) -> object:
        if self.queue.owner == "daemon-0":
            first_judging.set()
            second_done.wait(1.0)  # the second runs meanwhile (and must wait for this one)
        return original(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(Publisher, "_decide", slow_first)
    with running(tmp_path, database_url=database_url) as (w, _sb, p):
        publishers, claims = _two_claimants(w, p)
        outcomes: dict[int, object] = {}

        def begin(i: int) -> None:
            outcomes[i] = publishers[i]._begin(claims[i])
            if i == 1:
                second_done.set()

        first = threading.Thread(target=begin, args=(0,))
        first.start()
        assert first_judging.wait(10)
        begin(1)
        first.join(10)
        assert not isinstance(outcomes[0], Outcome)  # the first daemon's intent
        assert isinstance(outcomes[1], Outcome) and outcomes[1].state == "account_busy"
        assert sorted(r.status for r in deliveries(w.svc)) == ["inflight", "queued"]


def test_a_call_outlasting_its_lease_keeps_it_and_one_thread_renews_every_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str
) -> None:
    """Platform calls running longer than the lease (a slow upload): the leases are renewed
    while they run, or another daemon's recovery would take the deliveries for orphans and put
    them in doubt mid-call. One thread renews both calls, in one statement; both are recorded
    live after, and once the keeper is closed its thread ends."""
    import threading

    lease = timedelta(seconds=1.5)
    with running(tmp_path, database_url=database_url) as (w, _sb, p):
        accounts = ["stmarys-x", "stmarys-facebook"]
        for account in accounts:
            w.post(text=f"Notice for {account}", accounts=[account])
        time.sleep(1.1)
        queue = q.SqlAlchemyQueue(w.svc.engine, "keeper-test", lease)
        renewals: list[tuple[str, list[str]]] = []
        renew = queue.renew

        def recorded(ids: list[str], now: object) -> None:
            renewals.append((threading.current_thread().name, list(ids)))
            renew(ids, now)  # type: ignore[arg-type]

        monkeypatch.setattr(queue, "renew", recorded)
        publisher = Publisher(w.svc, p, queue, QueueSettings.load(w.config_path))
        claims = [queue.claim(w.svc.now(), account, 1)[0] for account in accounts]
        calling, release = threading.Semaphore(0), threading.Event()
        for account in accounts:
            connector = p.connector(account)

            def held(rendered: object, real: object = connector.publish) -> object:
                calling.release()
                assert release.wait(30)
                return real(rendered)  # type: ignore[operator]

            monkeypatch.setattr(connector, "publish", held)
        outcomes: list[Outcome] = []
        calls = [threading.Thread(target=lambda c=c: outcomes.append(publisher.publish(c))) for c in claims]
        for t in calls:
            t.start()
        assert calling.acquire(timeout=30) and calling.acquire(timeout=30)  # both calls running
        other = q.SqlAlchemyQueue(w.svc.engine, "daemon-1", lease)  # another daemon, recovering orphans
        end = time.monotonic() + 2.5 * lease.total_seconds()
        while time.monotonic() < end:
            assert other.recover(w.svc.now()) == 0
            time.sleep(0.1)
        assert all(r.status == "inflight" and r.lease_owner == "keeper-test" for r in deliveries(w.svc))
        both = sorted(c.delivery_id for c in claims)
        assert ("lease-keeper keeper-test", both) in renewals
        assert {name for name, _ in renewals} == {"lease-keeper keeper-test"}
        release.set()
        for t in calls:
            t.join(30)
        assert [o.state for o in outcomes] == ["live", "live"]
        assert [(r.status, r.lease_owner) for r in deliveries(w.svc)] == [("live", "")] * 2
        [keeper] = [t for t in threading.enumerate() if t.name == "lease-keeper keeper-test"]
        publisher.leases.close()
        keeper.join(5)
        assert not keeper.is_alive()
        with publisher.leases.during(claims[0].delivery_id):  # a call after close starts none again
            assert all(t.name != "lease-keeper keeper-test" for t in threading.enumerate())
