"""SqlAlchemyQueue: the deliveries table as a work queue with leases. SQL lives here.

A delivery moves through these states (`DeliveryRow.status`):

    queued ──claim──> (queued, leased) ──gate ok──> inflight ──platform call──> live
       ^                    │                          │
       │                    └─gate says no──> blocked  ├─ failed for good ──> failed
       │                                               ├─ try again later ──> queued (next_try_at)
       └──── certainly absent ──── reconcile <─────────┴─ outcome unknown / crash
                                       ├─ found on the platform ──> live
                                       └─ the platform cannot say, N times ──> unconfirmed

A claim is a lease (owner, expiry) on a queued or reconcile row. `inflight` is written and
committed before the platform is called, so a crash leaves evidence that the call may have
happened; such rows are reconciled (looked up on the platform) before anything else is done
for their account, and are never published again blindly. On PostgreSQL claims use
`SELECT ... FOR UPDATE SKIP LOCKED`, so several daemons share the queue; on SQLite one daemon
holds the file (see `publisher.queue.lock`).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Final, cast

from sqlalchemy import Table, and_, bindparam, case, func, or_, select, true, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from publisher.errors import NotFound
from publisher.store import db, repo
from publisher.store import models as m

QUEUED = "queued"
INFLIGHT = "inflight"
RECONCILE = "reconcile"
LIVE = "live"
BLOCKED = "blocked"
FAILED = "failed"
UNCONFIRMED = "unconfirmed"
CANCELLED = "cancelled"
TAKEN_DOWN = "taken_down"
ACTIVE = (QUEUED, INFLIGHT, RECONCILE)
LOOKUP_FAILED = "LOOKUP_FAILED"

D = m.DeliveryRow


@dataclass(frozen=True)
class Claim:
    """One leased delivery: publish it (status queued) or look it up (status reconcile)."""

    delivery_id: str
    post_id: str
    account: str
    status: str

    @property
    def reconcile(self) -> bool:
        return self.status == RECONCILE


# The statements every delivery runs, built once with bound parameters (building a SQLAlchemy
# expression costs more than running it on SQLite), on the table (Core: no ORM object loaded;
# an ORM statement costs about three times as much, see repo._POST_ID). Bound names differ from
# the columns they set. Those the publisher runs in its transactions go through db.Direct, on
# the driver's cursor (SQLAlchemy's execute cost the daemon as much CPU as they do), which does
# not flush the Session: none of them follows an ORM change in its transaction.
T: Final = cast(Table, D.__table__)
_ACCOUNTS: Final = cast(Table, m.AccountRow.__table__)
_ID: Any = bindparam("b_id")
_ACCOUNT: Any = bindparam("b_account")
_NOW: Any = bindparam("b_now")
_GOING: Final = repo.one_of(T.c.status, (INFLIGHT, RECONCILE))
_CLAIMABLE: Final = and_(
    repo.one_of(T.c.status, (QUEUED, RECONCILE)),
    T.c.due_at <= _NOW,
    or_(T.c.next_try_at.is_(None), T.c.next_try_at <= _NOW),
    or_(T.c.lease_expires.is_(None), T.c.lease_expires <= _NOW),
)
_OTHER: Final = T.alias("other")
# A queued row whose account has another delivery in flight or in doubt: publish nothing more
# there until that one is settled. One call at a time per account (across daemons too) keeps
# the platform look-up able to tell which post is whose. (A queued row is neither, so "another"
# needs no id test, and the accounts are found once per statement, not once per row: correlated,
# it cost PostgreSQL 20 of the 30 ms of the due-accounts query with 10,000 due.)
_IN_DOUBT_ELSEWHERE: Final = and_(
    T.c.status == QUEUED,
    T.c.account.in_(select(_OTHER.c.account).where(repo.one_of(_OTHER.c.status, (INFLIGHT, RECONCILE)))),
)
_DUE_ACCOUNTS: Final = (
    select(T.c.account, func.min(T.c.due_at))
    .where(_CLAIMABLE, ~_IN_DOUBT_ELSEWHERE)
    .group_by(T.c.account)
    .order_by(func.min(T.c.due_at))
)
_CLAIM: Final = (
    select(T.c.id, T.c.post_id, T.c.account, T.c.status)
    .where(_CLAIMABLE, T.c.account == _ACCOUNT, ~_IN_DOUBT_ELSEWHERE)
    .order_by((T.c.status == RECONCILE).desc(), T.c.due_at, T.c.id)
    .with_for_update(skip_locked=True)
)
_LEASE: Final = (
    update(T)
    .where(T.c.id.in_(bindparam("b_ids", expanding=True)))
    .values(lease_owner=bindparam("b_owner"), lease_expires=bindparam("b_until"))
)
_LOCK: Final = select(D).where(D.id == bindparam("id")).with_for_update()  # an ORM row, for the rarer paths
_HELD: Final = (
    T.c.id,
    T.c.post_id,
    T.c.account,
    T.c.status,
    T.c.attempts,
    T.c.lease_owner,
    T.c.lease_expires,
    T.c.jti,
    T.c.cancel_requested,
)
# FOR NO KEY UPDATE: neither key changes, so rows that only refer to them (a new post's
# deliveries and post_accounts) pass their foreign-key checks (KEY SHARE) without waiting while
# the gate judges; a second hold, an UPDATE or a FOR UPDATE (takedown, withdrawal) still waits.
_HOLD: Final = db.Direct(select(*_HELD).where(T.c.id == _ID).with_for_update(key_share=True))
_HOLD_WITH_ACCOUNT: Final = db.Direct(  # on a join: the row, then its account's row
    select(*_HELD).join(_ACCOUNTS, _ACCOUNTS.c.name == T.c.account).where(T.c.id == _ID).with_for_update(key_share=True)
)
_START: Final = db.Direct(
    update(T)
    .where(T.c.id == _ID)
    .values(
        status=INFLIGHT,
        attempts=T.c.attempts + 1,
        attempted_at=_NOW,
        lease_owner=bindparam("b_owner"),
        lease_expires=bindparam("b_until"),
    )
)
RECORDABLE: Final = (INFLIGHT, RECONCILE, UNCONFIRMED)  # a delivery whose publishing may be recorded
_GO_LIVE: Final = (
    update(T)
    .where(T.c.id == _ID, repo.one_of(T.c.status, RECORDABLE))
    .values(
        status=LIVE,
        platform_id=bindparam("b_platform_id"),
        url=bindparam("b_url"),
        published_at=_NOW,
        last_error="",
        findings=[],
        next_try_at=None,
        lease_owner="",
        lease_expires=None,
    )
)
_LIVE: Final = _GO_LIVE.returning(*_HELD).cte("live")
_GO_LIVE_PUBLISHED: Final = db.Direct(  # the delivery's row, then its post's
    select(*_LIVE.c).add_cte(repo.post_published(select(_LIVE.c.post_id).scalar_subquery()).cte("published"))
)
_GO_LIVE_ONLY: Final = db.Direct(_GO_LIVE)
_UNLEASE: Final = db.Direct(update(T).where(T.c.id == _ID).values(lease_owner="", lease_expires=None))
_IN_WINDOW: Final = and_(repo.one_of(T.c.status, (LIVE, TAKEN_DOWN)), T.c.published_at >= bindparam("b_since"))
_LOAD_SELECT: Final = select(
    func.count(case((or_(_IN_WINDOW, _GOING), 1))).label("load_used"),
    func.min(case((_IN_WINDOW, T.c.published_at))).label("load_oldest"),
    func.count(case((and_(_GOING, T.c.id != _ID), 1))).label("load_others"),
).where(T.c.account == _ACCOUNT, repo.one_of(T.c.status, (LIVE, TAKEN_DOWN, INFLIGHT, RECONCILE)))
_LOADED: Final = _LOAD_SELECT.subquery("account_load")


def _gate_read_and_load(dialect: str) -> db.Direct:
    """repo.gate_read_select with the account's load (one row) joined on: one statement."""
    posts = cast(Table, m.PostRow.__table__)
    return db.Direct(repo.gate_read_select(dialect).add_columns(*_LOADED.c).join_from(posts, _LOADED, true()))


_GATE_READ_AND_LOAD: Final = {dialect: _gate_read_and_load(dialect) for dialect in ("sqlite", "postgresql")}


@dataclass(frozen=True)
class Load:
    """An account as one delivery's intent finds it."""

    busy: bool  # another of its deliveries is in flight or in doubt
    used: int  # posts counting against its daily budget: live in the window, or possibly live now
    oldest: datetime | None  # the oldest publish time in the window


@dataclass(frozen=True)
class Held:
    """A delivery row locked by the caller's transaction (PostgreSQL: FOR NO KEY UPDATE), as the
    publisher judges and records it."""

    id: str
    post_id: str
    account: str
    status: str
    attempts: int
    lease_owner: str
    lease_expires: datetime | None
    jti: str
    cancel_requested: bool


def _rows(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


class SqlAlchemyQueue:
    """The delivery queue on the project's store. Every method is one short transaction,
    except those taking a Session, which join the caller's (so the result and its log entry
    commit together). Thread-safe: it holds no state but the engine, its owner id and lease."""

    def __init__(self, engine: Engine, owner: str, lease: timedelta) -> None:
        self.engine = engine
        self.owner = owner
        self.lease = lease
        self._sqlite = engine.dialect.name == "sqlite"  # its write lock serialises; no RETURNING before 3.35

    # -- claiming ------------------------------------------------------------------------
    def due_accounts(self, now: datetime, exclude: Collection[str] = ()) -> list[str]:
        """Accounts with at least one claimable delivery, oldest due first."""
        with db.reading(self.engine) as s:
            return [a for a, _ in s.execute(_DUE_ACCOUNTS, {"b_now": now}) if a not in exclude]

    def pending_accounts(self, until: datetime) -> list[str]:
        """Accounts with a delivery still to publish or settle (queued, in flight or in doubt)
        due by `until`."""
        query = select(T.c.account).where(repo.one_of(T.c.status, ACTIVE), T.c.due_at <= until).distinct()
        with db.reading(self.engine) as s:
            return list(s.scalars(query))

    def claim(self, now: datetime, account: str, limit: int) -> list[Claim]:
        """Lease up to `limit` due deliveries of one account: deliveries in doubt first."""
        with db.transaction(self.engine) as s:
            claims = [Claim(*r) for r in s.execute(_CLAIM.limit(limit), {"b_now": now, "b_account": account})]
            if claims:
                ids = [c.delivery_id for c in claims]
                s.execute(_LEASE, {"b_ids": ids, "b_owner": self.owner, "b_until": now + self.lease})
            return claims

    def lock(self, s: Session, delivery_id: str) -> m.DeliveryRow | None:
        """The row, locked for this transaction (PostgreSQL: FOR UPDATE)."""
        return s.scalars(_LOCK, {"id": delivery_id}).first()

    def hold(self, s: Session, delivery_id: str, account_too: bool = False) -> Held | None:
        """`lock` for the publisher (PostgreSQL: FOR NO KEY UPDATE): the row's state, without loading an ORM object.
        `account_too`: lock its account's row as well, in the same statement (PostgreSQL: see
        `load_and_gate_read`; the row's foreign key keeps the account in the register)."""
        statement = _HOLD_WITH_ACCOUNT if account_too and not self._sqlite else _HOLD
        row = statement.first(s.connection(), {"b_id": delivery_id})
        return Held(*row) if row is not None else None

    def owns(self, row: Held, now: datetime) -> bool:
        return row.lease_owner == self.owner and row.lease_expires is not None and row.lease_expires > now

    # -- transitions inside the caller's transaction ---------------------------------------
    def start(self, s: Session, row: Held, now: datetime) -> None:
        """In flight: the platform call is about to be made (one more attempt)."""
        _START.run(s.connection(), {"b_id": row.id, "b_now": now, "b_owner": self.owner, "b_until": now + self.lease})

    def go_live(self, s: Session, delivery_id: str, platform_id: str, url: str, now: datetime) -> Held | None:
        """Live, if the row is still RECORDABLE, and its post published (if it was approved);
        returns the row as it now is (None: it was not, as when another daemon recorded it
        first). The row, and the post's if this published it, stay locked until the transaction
        ends. PostgreSQL does it in one statement (an UPDATE ... RETURNING, and the post's
        UPDATE as a WITH on its result); SQLite, whose RETURNING needs 3.35 or newer, reads the
        row first, under its write lock, and takes three."""
        values = {"b_id": delivery_id, "b_platform_id": platform_id, "b_url": url, "b_now": now}
        if not self._sqlite:
            live = _GO_LIVE_PUBLISHED.first(s.connection(), values)
            return Held(*live) if live is not None else None
        held = self.hold(s, delivery_id)
        if held is None or held.status not in RECORDABLE:
            return None
        _GO_LIVE_ONLY.run(s.connection(), values)
        repo.mark_post_published(s, held.post_id)
        return replace(held, status=LIVE, lease_owner="", lease_expires=None)

    def unlease(self, s: Session, row: Held) -> None:
        _UNLEASE.run(s.connection(), {"b_id": row.id})

    def retry(self, row: m.DeliveryRow, at: datetime, error: str, status: str = QUEUED) -> None:
        row.status, row.next_try_at, row.last_error = status, at, error[:2000]
        self._unlease(row)

    def finish(self, row: m.DeliveryRow, status: str, error: str = "", findings: Sequence[dict[str, Any]] = ()) -> None:
        row.status, row.last_error, row.next_try_at = status, error[:2000], None
        if findings:
            row.findings = list(findings)
        self._unlease(row)

    def note_lookup_failure(self, row: m.DeliveryRow, error: str, at: datetime) -> int:
        """Record a look-up that could not answer; returns how many there have been."""
        failures = [f for f in (row.findings or []) if f.get("code") == LOOKUP_FAILED]
        failures.append({"code": LOOKUP_FAILED, "message": error[:500], "at": at.isoformat()})
        row.findings = failures
        return len(failures)

    @staticmethod
    def _unlease(row: m.DeliveryRow) -> None:
        row.lease_owner, row.lease_expires = "", None

    def set_attention(self, s: Session, account: str, why: str) -> None:
        s.execute(update(m.AccountRow).where(m.AccountRow.name == account).values(needs_attention=why[:1000]))

    def load_and_gate_read(self, s: Session, row: Held, since: datetime) -> tuple[Load, repo.GateRead]:
        """Inside the intent's transaction, in one statement: is the account busy with another
        delivery, and how much of its budget is used since `since`? And the gate's read of the
        row's post (`repo.gate_read`), one round trip fewer per delivery on PostgreSQL. The claim
        checked busy too, but two daemons can each claim one of an account's deliveries before
        either is in flight; the account row, locked first (PostgreSQL: FOR NO KEY UPDATE, by
        `hold(account_too=True)`; SQLite: the write lock), makes the check and the intent one
        step per account across daemons. (This read is a statement of its own, after the lock:
        in READ COMMITTED its snapshot then includes the other daemon's intent, committed while
        the lock was waited for.)"""
        conn = s.connection()
        params = {"post_id": row.post_id, "b_account": row.account, "b_id": row.id, "b_since": since}
        read = _GATE_READ_AND_LOAD[conn.dialect.name].first(conn, params)
        if read is None:
            raise NotFound("post", row.post_id)
        return Load(bool(read.load_others), int(read.load_used or 0), read.load_oldest), repo.as_gate_read(read)

    def recorded_ids(self, s: Session, account: str, but: str) -> set[str]:
        """Platform ids already recorded for the account's other deliveries."""
        q = select(D.platform_id).where(D.account == account, D.id != but, D.platform_id != "")
        return {str(pid) for pid in s.scalars(q)}

    # -- crash recovery and shutdown -------------------------------------------------------
    def recover(self, now: datetime, everything: bool = False) -> int:
        """In-flight rows whose lease lapsed (their daemon died) -> reconcile; lapsed claims are
        simply claimable again. `everything`: the caller holds the only-daemon lock (SQLite),
        so every in-flight row and lease is an orphan. Returns the rows put in doubt."""
        lapsed = or_(D.lease_expires.is_(None), D.lease_expires <= now)
        cond_inflight = and_(D.status == INFLIGHT, lapsed) if not everything else D.status == INFLIGHT
        with db.transaction(self.engine) as s:
            repo.hold_register(s, shared=True)  # before the rows: see repo.hold_register
            n = _rows(
                s.execute(
                    update(D)
                    .where(cond_inflight)
                    .values(status=RECONCILE, lease_owner="", lease_expires=None, next_try_at=None)
                    .execution_options(synchronize_session=False)
                )
            )
            if everything:
                s.execute(
                    update(D)
                    .where(D.lease_owner != "")
                    .values(lease_owner="", lease_expires=None)
                    .execution_options(synchronize_session=False)
                )
            return n

    def release(self, delivery_ids: Collection[str] = ()) -> int:
        """Give back this owner's claims (all, or the given ones). A row still in flight was
        called and not answered: it goes to reconcile, never back to queued."""
        mine = D.lease_owner == self.owner
        if delivery_ids:
            mine = and_(mine, D.id.in_(list(delivery_ids)))
        with db.transaction(self.engine) as s:
            repo.hold_register(s, shared=True)  # before the rows: see repo.hold_register
            n = _rows(
                s.execute(
                    update(D)
                    .where(mine, D.status == INFLIGHT)
                    .values(status=RECONCILE, lease_owner="", lease_expires=None)
                )
            )
            return n + _rows(s.execute(update(D).where(mine).values(lease_owner="", lease_expires=None)))

    def renew(self, delivery_ids: Collection[str], now: datetime) -> None:
        """Extend this owner's leases on these deliveries. A row another transaction holds is
        skipped, not waited for (PostgreSQL: SKIP LOCKED; the caller tries again within the
        lease): a withdrawal or takedown locks several rows in its own order, and an UPDATE of
        several rows waiting on one of them could deadlock with it."""
        if not delivery_ids:
            return
        mine = select(D.id).where(D.lease_owner == self.owner, D.id.in_(list(delivery_ids)))
        with db.transaction(self.engine) as s:
            s.execute(
                update(D)
                .where(D.id.in_(mine.order_by(D.id).with_for_update(skip_locked=True).scalar_subquery()))
                .values(lease_expires=now + self.lease)
                .execution_options(synchronize_session=False)
            )

    # -- reading -----------------------------------------------------------------------------
    def pending(self, until: datetime) -> int:
        """Deliveries not yet settled that fall due by `until`."""
        with db.reading(self.engine) as s:
            return int(s.scalar(select(func.count()).where(D.status.in_(ACTIVE), D.due_at <= until)) or 0)
