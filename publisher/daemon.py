"""The daemon: APScheduler 3 jobs around the delivery queue. The only module importing apscheduler.

Jobs: dispatch (every second, coalesced, one instance) hands each account with due work to a
bounded thread pool, so accounts publish concurrently and one slow platform holds up only its
own account; reconcile (puts deliveries orphaned by a dead daemon in doubt); checkpoint (after
every publish batch, and every 10 minutes while the log grows); a daily sweep of consents
expiring within 14 days. SIGTERM / SIGINT: stop claiming, let in-flight calls finish for a
few seconds, give back everything else (an unanswered call goes to reconcile), exit.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import TYPE_CHECKING, Any, ClassVar

from publisher.connectors import ConnectorSettings
from publisher.queue import store as q
from publisher.queue.lock import DaemonLock
from publisher.queue.settings import QueueSettings
from publisher.queue.status import expiring_consents, last_checkpoint_size
from publisher.queue.worker import Begun, Publisher
from publisher.store import db, repo

if TYPE_CHECKING:
    from publisher.ledger.note import NoteSigner
    from publisher.platforms import Platforms
    from publisher.service import Service

log = logging.getLogger("publisher.daemon")
BATCH = 16  # deliveries claimed at a time per account
# At start, the connectors of accounts with deliveries due this soon are made (Platforms.prepare).
# Not further ahead: a connector keeps the credentials it was made with (see the README).
PREPARE_AHEAD = timedelta(minutes=10)
SWITCH_INTERVAL = 0.02  # seconds (CPython's default is 0.005)
CHECKPOINT_GAP = 1.0  # seconds: while publishing, sign at most this often (each dispatch tick cost ~2% of a burst)
GRACE_SECONDS = 7.0  # of the 10 s a service manager allows after SIGTERM


class JsonLines(logging.Formatter):
    """One JSON object per line; only allow-listed fields, so no secret or name slips in."""

    FIELDS: ClassVar[tuple[str, ...]] = (
        "event", "post", "delivery", "account", "codes", "attempt", "error", "platform_id",
        "reconciled", "until", "lookups", "subject", "platform", "scope", "expires", "size", "owner", "count",
        "outcome",
    )  # fmt: skip

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        out.update({k: getattr(record, k) for k in self.FIELDS if hasattr(record, k)})
        if record.exc_info and record.exc_info[0] is not None:
            out["exception"] = record.exc_info[0].__name__
        return json.dumps(out, default=str, sort_keys=True)


class KeyValues(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        extra = " ".join(f"{k}={getattr(record, k)}" for k in JsonLines.FIELDS if hasattr(record, k))
        return f"{when} {record.levelname.lower():<7} {record.getMessage()}" + (f"  {extra}" if extra else "")


def configure_logging(json_lines: bool, level: int = logging.INFO) -> Callable[[], None]:
    """Send the project's logs to stderr; returns a function that puts things back as they were
    (the CLI runs in-process in tests and must not leave its handler behind)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonLines() if json_lines else KeyValues())
    # apscheduler's own errors (a job that raised) go through the same formatter: no traceback
    # with SQL parameters on stderr, only the exception's type.
    loggers = {logging.getLogger("publisher"): level, logging.getLogger("apscheduler"): logging.WARNING}
    saved = {lg: (lg.handlers[:], lg.level, lg.propagate) for lg in loggers}
    for lg, lvl in loggers.items():
        lg.handlers[:] = [handler]
        lg.setLevel(lvl)
        lg.propagate = False

    def restore() -> None:
        for lg, (handlers, lvl, propagate) in saved.items():
            lg.handlers[:], lg.propagate = handlers, propagate
            lg.setLevel(lvl)

    return restore


def make_platforms(service: Service, settings: QueueSettings) -> Platforms:
    from publisher.platforms import Platforms

    cs = ConnectorSettings(
        timeout=settings.timeout,
        graph_version=service.config.graph_version,
        instagram_pause=settings.instagram_pause,
        instagram_request_delay=settings.instagram_request_delay,
    )
    standing = None
    if settings.sandbox_port:
        from publisher.queue.standing import StandingSandbox

        standing = StandingSandbox(service.config.data_dir / "sandbox", settings.sandbox_port)
    return Platforms(service.config, service.vault(), cs, sandbox=standing)


class Daemon:
    """Use `with Daemon(service, settings) as d:` then `d.run_once()`, `d.drain(...)` or `d.run_forever()`."""

    def __init__(self, service: Service, settings: QueueSettings, platforms: Platforms | None = None) -> None:
        self.service = service
        self.settings = settings
        self.platforms = platforms or make_platforms(service, settings)
        self.owner = f"{socket.gethostname()[:60]}:{os.getpid()}:{secrets.token_hex(3)}"
        self.queue = q.SqlAlchemyQueue(service.engine, self.owner, timedelta(seconds=settings.lease_seconds))
        self.stopping = threading.Event()
        self.publisher = Publisher(service, self.platforms, self.queue, settings, stopping=self.stopping)
        self._pool = ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="publish")
        self._busy: dict[str, Future[None]] = {}
        self._held: dict[str, datetime] = {}
        self._lock = threading.Lock()
        self._dirty = False
        self._last_checkpoint = time.monotonic()
        self._daemon_lock: DaemonLock | None = None
        self._signer: NoteSigner | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> Daemon:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        """Take the SQLite lock, load the log key, put orphaned in-flight deliveries in doubt,
        make the connectors of the accounts with deliveries due within PREPARE_AHEAD."""
        # A worker holding SQLite's write lock should finish its transaction before the GIL
        # passes to the many workers parsing platform answers: a longer switch interval than
        # CPython's 5 ms shortens every write and so the queue behind the lock (measured with
        # bench/bench_slow.py: 100 workers, 12.5 s at 0.5 ms, 10-11.8 s at 20 ms; 50 ms is worse).
        sys.setswitchinterval(SWITCH_INTERVAL)
        sqlite = self.service.engine.dialect.name == "sqlite"
        if sqlite:
            self._daemon_lock = DaemonLock(self.service.config.data_dir / "daemon.lock").acquire()
        try:
            self._signer = self.service.log_signer()
            n = self.queue.recover(self.service.now(), everything=sqlite)
            soon = self.service.now() + PREPARE_AHEAD
            ready = self.platforms.prepare(self.queue.pending_accounts(soon))  # not at their first post
        except BaseException:
            self._unlock()
            raise
        log.info("daemon started", extra={"event": "started", "owner": self.owner, "count": n})
        log.info("connectors prepared", extra={"event": "connectors_prepared", "count": len(ready)})

    def close(self) -> bool:
        """Stop claiming, give in-flight work GRACE_SECONDS, release the rest. True if clean."""
        self.stopping.set()
        deadline = time.monotonic() + GRACE_SECONDS
        clean = True
        for fut in self._futures():
            try:
                fut.result(timeout=max(deadline - time.monotonic(), 0.01))
            except TimeoutError:
                clean = False
            except Exception:
                log.exception("publish task failed", extra={"event": "task_error"})
        self.publisher.leases.close()  # a call still running goes to reconcile (release)
        try:
            released = self.queue.release()
            self.checkpoint(force=False)
        finally:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self.platforms.close()
            self._unlock()
        log.info("daemon stopped", extra={"event": "stopped", "owner": self.owner, "count": released})
        return clean

    def _unlock(self) -> None:
        if self._daemon_lock is not None:
            self._daemon_lock.release()
            self._daemon_lock = None

    def _futures(self) -> list[Future[None]]:
        with self._lock:
            return list(self._busy.values())

    # -- jobs ----------------------------------------------------------------------------------
    def dispatch(self) -> int:
        """Give every idle account with due work to the pool; returns how many were started.
        A checkpoint of what was published follows, at most once every CHECKPOINT_GAP."""
        try:
            return self._dispatch()
        finally:
            if self._dirty and time.monotonic() - self._last_checkpoint >= CHECKPOINT_GAP:
                self.checkpoint()

    def _dispatch(self) -> int:
        now = self.service.now()
        with self._lock:
            self._held = {a: t for a, t in self._held.items() if t > now}
            skip = set(self._busy) | set(self._held)
            free = self.settings.workers - len(self._busy)
        # Every worker busy: each moves on to the next account itself (_switch), so the store
        # is not asked (in a burst of 10,000, that query cost PostgreSQL 27 ms four times a second).
        if free <= 0 or self.stopping.is_set() or self._paused():
            return 0
        started = 0
        for account in self.queue.due_accounts(now, skip)[:free]:
            with self._lock:
                self._busy[account] = self._pool.submit(self._account_loop, account)
            started += 1
        return started

    def _paused(self) -> bool:
        with db.reading(self.service.engine) as s:
            return repo.control(s, "paused") == "yes"

    def _account_loop(self, account: str) -> None:
        """One worker: publish an account's due deliveries in order, then move straight on to the
        next account with due work (a slot never idles until the next dispatch tick)."""
        current: str | None = account
        try:
            while current is not None and not self.stopping.is_set():
                self._work_account(current)
                current = self._switch(current)
        except Exception:
            log.exception("account task failed", extra={"event": "task_error", "account": current})
        finally:
            if current is not None:
                with self._lock:
                    self._busy.pop(current, None)

    def _work_account(self, account: str) -> None:
        while not self.stopping.is_set():
            claims = self.queue.claim(self.service.now(), account, BATCH)
            if not claims or not self._run_claims(account, claims):
                return
            if len(claims) < BATCH and not any(c.reconcile for c in claims):
                return  # that was all that was due: no empty claim (a write) to find out
            # (a look-up settled may free queued deliveries the claim could not take meanwhile)

    def _switch(self, done: str) -> str | None:
        """Hand this worker from `done` to another idle account with due work, or to none."""
        now = self.service.now()
        nxt: list[str] = []
        if not self.stopping.is_set() and not self._paused():
            with self._lock:
                self._held = {a: t for a, t in self._held.items() if t > now}
                skip = set(self._busy) | set(self._held)
            nxt = self.queue.due_accounts(now, skip)
        with self._lock:
            future = self._busy.pop(done, None)
            for account in nxt:
                if future is not None and account not in self._busy and account not in self._held:
                    self._busy[account] = future
                    return account
        return None

    def _run_claims(self, account: str, claims: list[q.Claim]) -> bool:
        begun: Begun | None = None  # the claim at i, begun when the one before went live (Outcome.then)
        for i, claim in enumerate(claims):
            if self.stopping.is_set() and begun is None:  # (one begun is in flight: finish it)
                self.queue.release([c.delivery_id for c in claims[i:]])
                return False
            nxt = claims[i + 1] if i + 1 < len(claims) else None
            then = nxt if nxt is not None and not nxt.reconcile and not self.stopping.is_set() else None
            try:
                outcome = self.publisher.handle(claim, then, begun)
            except Exception:  # the store failed, say: give back what this worker still holds
                with contextlib.suppress(Exception):
                    self.queue.release([c.delivery_id for c in claims[i:]])
                raise
            begun = outcome.then
            if outcome.state in (q.LIVE, q.BLOCKED, q.UNCONFIRMED):
                self._dirty = True
            if outcome.hold_until is not None or outcome.in_doubt:
                if outcome.hold_until is not None:
                    with self._lock:
                        self._held[account] = outcome.hold_until
                self.queue.release([c.delivery_id for c in claims[i + 1 :]])
                return False
        return True

    def reconcile(self) -> int:
        """Deliveries left in flight by a daemon that died (lease lapsed) -> looked up next."""
        return self.queue.recover(self.service.now())

    def takedowns(self) -> int:
        """Try the takedowns that are due (new, or retrying after a failure); returns how many were tried."""
        from publisher.takedown import process_pending_takedowns

        if self.stopping.is_set():
            return 0
        attempts = process_pending_takedowns(self.service, self.platforms, self.service.now())
        for a in attempts:
            log.info(
                "takedown attempt",
                extra={"event": "takedown", "post": a.post_id, "account": a.account, "outcome": a.outcome},
            )
        if attempts:
            self._dirty = True
        return len(attempts)

    def checkpoint(self, force: bool = False) -> bool:
        """Sign a checkpoint after publishing, or every checkpoint_minutes while the log grows."""
        size, signed = last_checkpoint_size(self.service)
        stale = time.monotonic() - self._last_checkpoint >= self.settings.checkpoint_minutes * 60
        if size == signed or not (self._dirty or stale or force) or self._signer is None:
            return False
        self._dirty = False
        with db.writer_lock(self.service.engine), self.service.engine.begin() as conn:
            self.service.audit.ledger.checkpoint(conn, self._signer)
        self._last_checkpoint = time.monotonic()
        log.info("checkpoint signed", extra={"event": "checkpoint", "size": size})
        return True

    def sweep(self) -> list[dict[str, Any]]:
        """Log a warning for each consent lapsing within 14 days (subject ids, never names)."""
        expiring = expiring_consents(self.service, days=14)
        for c in expiring:
            log.warning("consent expires soon", extra={"event": "consent_expiring", **c})
        return expiring

    # -- run modes ---------------------------------------------------------------------------------
    def wait_idle(self, timeout: float | None = None) -> None:
        end = None if timeout is None else time.monotonic() + timeout
        while futures := self._futures():
            left = None if end is None else end - time.monotonic()
            if left is not None and left <= 0:
                return
            wait(futures, timeout=left)

    def drain(self, until: datetime | None = None, timeout: float = 60.0) -> int:
        """Work until nothing due by `until` (default: now) is left unsettled, or `timeout`
        seconds pass; with `until` None, work only what is due now. Returns what is left."""
        end = time.monotonic() + timeout
        while not self.stopping.is_set() and time.monotonic() < end:
            started = self.dispatch() + self.takedowns()
            self.wait_idle(max(end - time.monotonic(), 0.01))
            self.checkpoint()
            if started:
                continue
            if until is None or not self.queue.pending(max(until, self.service.now())):
                break
            self.stopping.wait(0.05)
        self.wait_idle(max(end - time.monotonic(), 0.01))
        self.checkpoint()
        return self.queue.pending(max(until or self.service.now(), self.service.now()))

    def run_once(self) -> int:
        """`publisher run --once`: do what is due now (including anything in doubt), then stop."""
        with self._signals():
            self.sweep()
            return self.drain(None, timeout=self.settings.lease_seconds)

    def run_forever(self) -> None:
        """`publisher run`: the scheduler until SIGTERM / SIGINT (then `close()` does the rest)."""
        from apscheduler.schedulers.background import BackgroundScheduler

        st = self.settings
        sched = BackgroundScheduler(timezone=UTC, job_defaults={"coalesce": True, "max_instances": 1})
        now = datetime.now(UTC)
        sched.add_job(self.dispatch, "interval", seconds=st.dispatch_seconds, id="dispatch", next_run_time=now)
        sched.add_job(self.reconcile, "interval", seconds=st.reconcile_seconds, id="reconcile")
        sched.add_job(self.takedowns, "interval", seconds=max(st.dispatch_seconds, 5.0), id="takedowns")
        sched.add_job(self.checkpoint, "interval", seconds=60, id="checkpoint")
        sched.add_job(self.sweep, "cron", hour=7, minute=0, timezone=self.service.config.timezone, id="sweep")
        with self._signals():
            self.sweep()
            sched.start()
            try:
                while not self.stopping.wait(0.2):
                    pass
            finally:
                sched.shutdown(wait=False)

    @contextmanager
    def _signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def stop(signum: int, _frame: FrameType | None) -> None:
            log.info("stopping", extra={"event": "signal", "count": signum})
            self.stopping.set()

        old = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield
        finally:
            for sig, handler in old.items():
                signal.signal(sig, handler)
