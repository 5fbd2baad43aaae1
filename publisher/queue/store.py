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
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import and_, bindparam, case, exists, func, or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, aliased

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


def _claimable() -> Any:
    now: Any = bindparam("now")
    return and_(
        D.status.in_((QUEUED, RECONCILE)),
        D.due_at <= now,
        or_(D.next_try_at.is_(None), D.next_try_at <= now),
        or_(D.lease_expires.is_(None), D.lease_expires <= now),
    )


def _in_doubt_elsewhere() -> Any:
    """A queued row whose account has another delivery in flight or in doubt: publish nothing
    more there until that one is settled. One call at a time per account (across daemons too)
    keeps the platform look-up able to tell which post is whose."""
    other = aliased(m.DeliveryRow)
    return and_(
        D.status == QUEUED,
        exists().where(other.account == D.account, other.id != D.id, other.status.in_((INFLIGHT, RECONCILE))),
    )


# The statements every delivery runs, built once with bound parameters (building a SQLAlchemy
# expression costs more than running it on SQLite).
_DUE_ACCOUNTS: Final = (
    select(D.account, func.min(D.due_at))
    .where(_claimable(), ~_in_doubt_elsewhere())
    .group_by(D.account)
    .order_by(func.min(D.due_at))
)
_CLAIM: Final = (
    select(D)
    .where(_claimable(), D.account == bindparam("account"), ~_in_doubt_elsewhere())
    .order_by((D.status == RECONCILE).desc(), D.due_at, D.id)
    .with_for_update(skip_locked=True)
)
_LOCK: Final = select(D).where(D.id == bindparam("id")).with_for_update()
_LOCK_ACCOUNT: Final = select(m.AccountRow.name).where(m.AccountRow.name == bindparam("account")).with_for_update()
_OTHER_IN_FLIGHT: Final = (
    select(D.id)
    .where(D.account == bindparam("account"), D.id != bindparam("id"), D.status.in_((INFLIGHT, RECONCILE)))
    .limit(1)
)
_IN_WINDOW: Final = and_(D.status.in_((LIVE, TAKEN_DOWN)), D.published_at >= bindparam("since"))
_BUDGET: Final = select(
    func.count(case((or_(_IN_WINDOW, D.status.in_((INFLIGHT, RECONCILE))), 1))),
    func.min(case((_IN_WINDOW, D.published_at))),
).where(D.account == bindparam("account"), D.status.in_((LIVE, TAKEN_DOWN, INFLIGHT, RECONCILE)))


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

    # -- claiming ------------------------------------------------------------------------
    def due_accounts(self, now: datetime, exclude: Collection[str] = ()) -> list[str]:
        """Accounts with at least one claimable delivery, oldest due first."""
        with db.reading(self.engine) as s:
            return [a for a, _ in s.execute(_DUE_ACCOUNTS, {"now": now}) if a not in exclude]

    def claim(self, now: datetime, account: str, limit: int) -> list[Claim]:
        """Lease up to `limit` due deliveries of one account: deliveries in doubt first."""
        with db.transaction(self.engine) as s:
            rows = list(s.scalars(_CLAIM.limit(limit), {"now": now, "account": account}))
            for row in rows:
                row.lease_owner, row.lease_expires = self.owner, now + self.lease
            return [Claim(r.id, r.post_id, r.account, r.status) for r in rows]

    def lock(self, s: Session, delivery_id: str) -> m.DeliveryRow | None:
        """The row, locked for this transaction (PostgreSQL: FOR UPDATE)."""
        return s.scalars(_LOCK, {"id": delivery_id}).first()

    def owns(self, row: m.DeliveryRow, now: datetime) -> bool:
        return row.lease_owner == self.owner and row.lease_expires is not None and row.lease_expires > now

    # -- transitions inside the caller's transaction ---------------------------------------
    def mark_in_flight(self, row: m.DeliveryRow, now: datetime) -> None:
        row.status, row.attempts, row.attempted_at = INFLIGHT, row.attempts + 1, now
        row.lease_owner, row.lease_expires = self.owner, now + self.lease

    def mark_live(self, row: m.DeliveryRow, platform_id: str, url: str, now: datetime) -> None:
        row.status, row.platform_id, row.url, row.published_at = LIVE, platform_id, url, now
        row.last_error, row.findings, row.next_try_at = "", [], None
        self._unlease(row)

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

    def busy_elsewhere(self, s: Session, row: m.DeliveryRow) -> bool:
        """Inside the intent's transaction: does the account have another delivery in flight or
        in doubt? The claim checked this too, but two daemons can each claim one of an account's
        deliveries before either is in flight; the account row, locked here (PostgreSQL: FOR
        UPDATE), makes the check and the intent one step per account across daemons."""
        s.execute(_LOCK_ACCOUNT, {"account": row.account})
        return s.scalar(_OTHER_IN_FLIGHT, {"account": row.account, "id": row.id}) is not None

    def recorded_ids(self, s: Session, account: str, but: str) -> set[str]:
        """Platform ids already recorded for the account's other deliveries."""
        q = select(D.platform_id).where(D.account == account, D.id != but, D.platform_id != "")
        return {str(pid) for pid in s.scalars(q)}

    # -- budget ----------------------------------------------------------------------------
    def posts_since(self, s: Session, account: str, since: datetime) -> tuple[int, datetime | None]:
        """How many posts count against the account's budget since `since` (live in the window,
        or possibly live now), and the oldest publish time in the window."""
        used, oldest = s.execute(_BUDGET, {"account": account, "since": since}).one()
        return int(used or 0), oldest

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
        if not delivery_ids:
            return
        with db.transaction(self.engine) as s:
            s.execute(
                update(D)
                .where(D.lease_owner == self.owner, D.id.in_(list(delivery_ids)))
                .values(lease_expires=now + self.lease)
            )

    # -- reading -----------------------------------------------------------------------------
    def pending(self, until: datetime) -> int:
        """Deliveries not yet settled that fall due by `until`."""
        with db.reading(self.engine) as s:
            return int(s.scalar(select(func.count()).where(D.status.in_(ACTIVE), D.due_at <= until)) or 0)
