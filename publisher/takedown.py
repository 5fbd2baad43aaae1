"""Taking posts down, and the emergency stop.

A takedown request turns into one ``takedowns`` row per live delivery (a post on one account);
``process_pending_takedowns`` deletes each on its platform, confirms with a lookup that it is
gone, and only then marks the delivery ``taken_down`` and logs ``taken_down``. A failure that
may pass (network, 5xx, rate limit) stays pending with exponential backoff; a permanent refusal
(``Rejected``) or an account needing a person (``AuthFailed``) becomes ``failed`` until someone
acts and runs ``publisher takedown --retry``. Deliveries that are not live yet are cancelled
instead, and a post that never went live is cancelled as a whole.

Who calls what:
- ``publisher takedown`` (CLI): ``request_takedown`` / ``request_subject_takedown``, then
  ``process_pending_takedowns(..., only=ids)`` at once.
- ``Service.consent_withdraw``: ``queue_consent_takedowns`` inside the withdrawal's own
  transaction (a crash cannot separate them); the CLI then processes them at once.
- The daemon: ``process_pending_takedowns(service, platforms, now)`` every cycle.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from publisher.connectors.base import PublishedRef
from publisher.errors import AuthFailed, InvalidInput, NotFound, PublisherError, RateLimited, Rejected, UsageError
from publisher.ledger import log as kinds
from publisher.sar.models import TakedownRow
from publisher.store import db, repo
from publisher.store import models as m

if TYPE_CHECKING:
    from publisher.platforms import Platforms
    from publisher.service import Service

BACKOFF_BASE = timedelta(seconds=30)
BACKOFF_MAX = timedelta(hours=1)
CLAIM = timedelta(minutes=5)  # a claimed row is not tried by anyone else for this long
SETTLE = timedelta(minutes=1)  # wait for an in-flight publish to settle
NOT_LIVE_YET = ("queued", "blocked", "failed")
UNSETTLED = ("in_flight", "inflight", "reconcile", "unconfirmed")  # the queue spells in-flight "inflight"


@dataclass
class Requested:
    """What one takedown request did."""

    request_id: str
    post_id: str
    queued: list[str] = field(default_factory=list)  # takedown ids to process
    accounts: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)  # accounts whose delivery was cancelled
    post_cancelled: bool = False


@dataclass(frozen=True)
class Attempt:
    """One try at one takedown: outcome gone | pending | failed | not_needed."""

    takedown_id: str
    post_id: str
    account: str
    outcome: str
    message: str = ""


def backoff(attempts: int) -> timedelta:
    """30 s, 60 s, 120 s, ... capped at one hour."""
    step: timedelta = BACKOFF_BASE * (2 ** max(0, min(attempts, 20) - 1))
    return min(BACKOFF_MAX, step)


def _personal(s: Session, post_id: str, fields: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Sealed fields for every featured subject who is not erased (an erased one gets no new key)."""
    out: dict[str, dict[str, Any]] = {}
    for f in repo.post_featured(s, post_id):
        row = s.get(m.SubjectRow, f.subject_id)
        if row is not None and not row.erased:
            out[f.subject_id] = dict(fields)
    return out


def _queue(
    service: Service,
    s: Session,
    post: m.PostRow,
    deliveries: Sequence[m.DeliveryRow],
    reason: str,
    requested_by: str,
    source: str,
    cancelled: Sequence[str] = (),
) -> Requested:
    """Make takedown rows for ``deliveries`` (live or unsettled) and log the request."""
    from publisher.service import new_id

    req = Requested(new_id("TR-"), post.id, cancelled=list(cancelled))
    now = service.now()
    for d in deliveries:
        if d.status in UNSETTLED:  # its outcome is unknown: if it turns out not to be there, cancel it
            d.cancel_requested = True
        existing = s.scalar(
            select(TakedownRow.id).where(TakedownRow.delivery_id == d.id, TakedownRow.status == "pending")
        )
        if existing is not None:
            req.queued.append(existing)
            continue
        account = s.get(m.AccountRow, d.account)
        row = TakedownRow(
            id=new_id("T-"), request_id=req.request_id, post_id=post.id, delivery_id=d.id, account=d.account,
            platform=account.platform if account else "", reason=reason, requested_by=requested_by, source=source,
            status="pending", attempts=0, next_try_at=now, last_error="", requested_at=now, actor=service.actor,
        )  # fmt: skip
        s.add(row)
        req.queued.append(row.id)
        req.accounts.append(d.account)
    s.flush()
    if req.accounts or req.cancelled:
        _log_request(service, s, req, reason, requested_by, source)
    return req


def _log_request(service: Service, s: Session, req: Requested, reason: str, requested_by: str, source: str) -> None:
    fields = {"reason": reason, "requested_by": requested_by}
    personal = _personal(s, req.post_id, fields)
    body: dict[str, Any] = {
        "request": req.request_id,
        "post": req.post_id,
        "accounts": sorted(req.accounts),
        "cancelled": sorted(req.cancelled),
        "source": source,
        "actor": service.actor,
    }
    if not personal:  # nobody featured: the reason names no child, keep it in the entry itself
        body.update(fields)
    service.record(s, kinds.TAKEDOWN_REQUESTED, body, personal)


def _check_words(reason: str, requested_by: str) -> tuple[str, str]:
    if not reason.strip():
        raise InvalidInput('A takedown needs --reason "..." (why it must come down)')
    if not requested_by.strip():
        raise InvalidInput('A takedown needs --requested-by "..." (who asked: parent, DPO, headteacher)')
    return reason.strip(), requested_by.strip()


def request_takedown(
    service: Service, post_id: str, reason: str, requested_by: str, account: str | None = None
) -> Requested:
    """Queue the takedown of a post on each account where it is live (or only ``account``).

    Deliveries not live yet are cancelled; a post with no live delivery is cancelled as a whole.
    Raises NotFound for an unknown post or account, UsageError when there is nothing to do.
    """
    reason, requested_by = _check_words(reason, requested_by)
    with db.transaction(service.engine) as s:
        repo.hold_register(s, shared=False)  # before the rows: see hold_register
        post = repo.get_post(s, post_id)
        q = select(m.DeliveryRow).where(m.DeliveryRow.post_id == post_id).order_by(m.DeliveryRow.account)
        # Locked (PostgreSQL): a delivery a daemon is judging is read after its intent commits,
        # so a queued row turned in flight meanwhile is taken down, never overwritten as cancelled.
        deliveries = list(s.scalars(q.with_for_update()))
        if account is not None:
            deliveries = [d for d in deliveries if d.account == account]
            if not deliveries and post.status != "draft":
                hint = f"post {post_id} is for {', '.join(repo.post_accounts(s, post_id)) or 'no account'}"
                raise NotFound("account", f"{account} for post {post_id}", hint=hint)
        live = [d for d in deliveries if d.status == "live" or d.status in UNSETTLED]
        waiting = [d for d in deliveries if d.status in NOT_LIVE_YET]
        if not live and not waiting and post.status != "draft":
            _nothing_to_do(post, deliveries)
        for d in waiting:
            d.status = "cancelled"
        req = _queue(service, s, post, live, reason, requested_by, "request", [d.account for d in waiting])
        ever_live = any(d.status in ("live", "taken_down", *UNSETTLED) for d in _all_deliveries(s, post_id))
        if not ever_live and post.status != "cancelled":
            post.status, post.cancelled_at, post.cancelled_by = "cancelled", service.now(), service.actor
            req.post_cancelled = True
            fields = {"reason": reason, "requested_by": requested_by}
            personal = _personal(s, post_id, fields)
            body: dict[str, Any] = {"post": post_id, "via": "takedown", "actor": service.actor}
            service.record(s, kinds.POST_CANCELLED, body if personal else {**body, **fields}, personal)
        return req


def _all_deliveries(s: Session, post_id: str) -> list[m.DeliveryRow]:
    return list(s.scalars(select(m.DeliveryRow).where(m.DeliveryRow.post_id == post_id)))


def _nothing_to_do(post: m.PostRow, deliveries: Sequence[m.DeliveryRow]) -> None:
    if any(d.status == "taken_down" for d in deliveries):
        raise UsageError(f"Post {post.id} is already taken down on every account it went to: nothing to do")
    raise UsageError(
        f"Post {post.id} never went live ({post.status}): nothing to take down (see 'publisher post show {post.id}')"
    )


def live_featuring(
    s: Session, subject_id: str, platform: str | None, scope: str | None = None
) -> dict[str, list[m.DeliveryRow]]:
    """Live (or unsettled) deliveries of posts featuring the subject, by post id; locked
    (PostgreSQL: FOR UPDATE), so the caller holds every row before its first log entry."""
    q = (
        select(m.DeliveryRow)
        .join(m.PostSubjectRow, m.PostSubjectRow.post_id == m.DeliveryRow.post_id)
        .join(m.AccountRow, m.AccountRow.name == m.DeliveryRow.account)
        .where(m.PostSubjectRow.subject_id == subject_id, m.DeliveryRow.status.in_(("live", *UNSETTLED)))
        .order_by(m.DeliveryRow.post_id, m.DeliveryRow.account)
        .with_for_update(of=m.DeliveryRow)
    )
    if platform is not None:
        q = q.where(m.AccountRow.platform == platform)
    if scope == "image":
        q = q.where(m.PostSubjectRow.image.is_(True))
    elif scope == "name":
        q = q.where(m.PostSubjectRow.name.is_(True))
    out: dict[str, list[m.DeliveryRow]] = {}
    for d in s.scalars(q):
        out.setdefault(d.post_id, []).append(d)
    if scope in (None, "name"):
        for d in _live_naming(s, subject_id, platform):  # named in the text, declared or not
            if d not in out.get(d.post_id, []):
                out.setdefault(d.post_id, []).append(d)
    return out


def _live_naming(s: Session, subject_id: str, platform: str | None) -> list[m.DeliveryRow]:
    """Live (or unsettled) deliveries whose post text names the subject (same screen as the gate)."""
    from publisher.domain.screening import mentions

    row = s.get(m.SubjectRow, subject_id)
    if row is None or row.erased:
        return []
    names = repo.subject(row).screen_names
    q = (
        select(m.DeliveryRow, m.PostRow.text)
        .join(m.PostRow, m.PostRow.id == m.DeliveryRow.post_id)
        .join(m.AccountRow, m.AccountRow.name == m.DeliveryRow.account)
        .where(m.DeliveryRow.status.in_(("live", *UNSETTLED)))
        .order_by(m.DeliveryRow.post_id, m.DeliveryRow.account)
    )
    if platform is not None:
        q = q.where(m.AccountRow.platform == platform)
    ids = [d.id for d, text in s.execute(q) if mentions(text, names)]
    if not ids:
        return []
    # Lock only those (PostgreSQL: FOR UPDATE, read again as they are now), not every live row.
    again = (
        select(m.DeliveryRow)
        .where(m.DeliveryRow.id.in_(ids), m.DeliveryRow.status.in_(("live", *UNSETTLED)))
        .order_by(m.DeliveryRow.post_id, m.DeliveryRow.account)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return list(s.scalars(again))


def request_subject_takedown(
    service: Service, subject_id: str, reason: str, requested_by: str, platform: str | None = None
) -> list[Requested]:
    """Queue takedowns of every live post featuring the subject (on ``platform`` only, if given)."""
    reason, requested_by = _check_words(reason, requested_by)
    with db.transaction(service.engine) as s:
        repo.hold_register(s, shared=False)  # then the rows, then the log: see hold_register
        repo.get_subject(s, subject_id)
        found = live_featuring(s, subject_id, platform)
        return [
            _queue(service, s, repo.get_post(s, pid), ds, reason, requested_by, "subject") for pid, ds in found.items()
        ]


def queue_consent_takedowns(
    service: Service, s: Session, found: dict[str, list[m.DeliveryRow]], platform: str, scope: str
) -> list[Requested]:
    """Inside the withdrawal's transaction ``s``: queue takedowns of the deliveries ``found`` by
    live_featuring (locked before the withdrawal's log entry). Returns what was queued."""
    reason = f"consent withdrawn: {scope} on {platform}"
    return [
        _queue(service, s, repo.get_post(s, pid), ds, reason, service.actor, "consent_withdrawn")
        for pid, ds in found.items()
    ]


# --------------------------------------------------------------------------- processing


def process_pending_takedowns(
    service: Service, platforms: Platforms, now: datetime, only: Collection[str] | None = None
) -> list[Attempt]:
    """Try every pending takedown due at ``now`` (or just the ids in ``only``); one attempt each.

    Contract for the daemon: call once per cycle with the cycle's ``now``. Each row is claimed
    in its own transaction (``next_try_at`` pushed ``CLAIM`` ahead, so two daemons never try the
    same row at once), the platform is called outside any transaction, and the result is
    recorded in a second one. Never raises for a platform failure: it is returned as an
    Attempt and the row is rescheduled (``backoff``) or marked failed. Safe to call with
    nothing pending (one small query).
    """
    with db.transaction(service.engine) as s:
        q = select(TakedownRow.id).where(TakedownRow.status == "pending").order_by(TakedownRow.requested_at)
        if only is not None:
            q = q.where(TakedownRow.id.in_(list(only)))
        else:
            q = q.where((TakedownRow.next_try_at.is_(None)) | (TakedownRow.next_try_at <= now))
        ids = list(s.scalars(q))
    return [a for a in (_attempt(service, platforms, tid, now, only is not None) for tid in ids) if a is not None]


def _claim(
    service: Service, tid: str, now: datetime, forced: bool
) -> tuple[TakedownRow, PublishedRef] | Attempt | None:
    with db.transaction(service.engine) as s:
        row = s.get(TakedownRow, tid, with_for_update=True)
        if row is None or row.status != "pending":
            return None
        if not forced and row.next_try_at is not None and row.next_try_at > now:
            return None  # someone else claimed it meanwhile
        d = s.get(m.DeliveryRow, row.delivery_id)
        status = d.status if d else "cancelled"
        if status in UNSETTLED:
            row.next_try_at = now + SETTLE
            return Attempt(tid, row.post_id, row.account, "pending", "waiting for its publish to settle")
        if d is None or status not in ("live", "taken_down"):
            row.status, row.done_at = "not_needed", now
            return Attempt(tid, row.post_id, row.account, "not_needed", f"the delivery is {status}, not live")
        row.attempts += 1
        row.next_try_at = now + CLAIM
        s.flush()
        s.expunge(row)
        return row, PublishedRef(row.platform, d.platform_id, d.url)


def _attempt(service: Service, platforms: Platforms, tid: str, now: datetime, forced: bool) -> Attempt | None:
    claimed = _claim(service, tid, now, forced)
    if claimed is None or isinstance(claimed, Attempt):
        return claimed
    row, ref = claimed
    try:
        connector = platforms.connector(row.account)
        connector.delete(ref)
        if connector.lookup(ref) != "gone":
            raise _StillLive(row.platform)
    except PublisherError as exc:
        return _failed(service, row, now, exc)
    return _done(service, row, ref)


class _StillLive(PublisherError):
    def __init__(self, platform: str) -> None:
        super().__init__(f"{platform}: the post is still visible after the delete; will try again")


def _done(service: Service, row: TakedownRow, ref: PublishedRef) -> Attempt:
    now = service.now()
    with db.transaction(service.engine) as s:
        live = s.get(TakedownRow, row.id)
        d = s.get(m.DeliveryRow, row.delivery_id)
        assert live is not None and d is not None
        live.status, live.done_at, live.last_error = "done", now, ""
        d.status, d.taken_down_at = "taken_down", now
        body = {
            "takedown": row.id, "request": row.request_id, "post": row.post_id, "account": row.account,
            "platform": row.platform, "platform_id": ref.platform_id, "confirmed": "gone",
            "attempts": row.attempts, "actor": service.actor,
        }  # fmt: skip
        service.record(s, kinds.TAKEN_DOWN, body, _personal(s, row.post_id, {}))
    return Attempt(row.id, row.post_id, row.account, "gone", f"confirmed gone from {row.platform}")


def _failed(service: Service, row: TakedownRow, now: datetime, exc: PublisherError) -> Attempt:
    permanent = isinstance(exc, Rejected | AuthFailed | NotFound)
    wait = backoff(row.attempts)
    if isinstance(exc, RateLimited):
        wait = max(wait, timedelta(seconds=exc.retry_after))
    with db.transaction(service.engine) as s:
        live = s.get(TakedownRow, row.id)
        assert live is not None
        live.last_error = exc.message[:500]
        if permanent:
            live.status = "failed"
        else:
            live.next_try_at = now + wait
    if permanent:
        return Attempt(row.id, row.post_id, row.account, "failed", exc.message)
    return Attempt(
        row.id, row.post_id, row.account, "pending", f"{exc.message}; will retry in {int(wait.total_seconds())} s"
    )


def retry_failed(service: Service) -> list[str]:
    """Put failed takedowns back to pending, due now (after a person fixed the cause)."""
    with db.transaction(service.engine) as s:
        rows = list(s.scalars(select(TakedownRow).where(TakedownRow.status == "failed")))
        for r in rows:
            r.status, r.next_try_at = "pending", service.now()
        return [r.id for r in rows]


def open_takedowns(service: Service) -> list[TakedownRow]:
    """Takedowns not finished (pending or failed), oldest first: what `status` should show."""
    with db.transaction(service.engine) as s:
        q = select(TakedownRow).where(TakedownRow.status.in_(("pending", "failed"))).order_by(TakedownRow.requested_at)
        return list(s.scalars(q))


# --------------------------------------------------------------------------- emergency stop


@dataclass(frozen=True)
class PauseState:
    paused: bool
    since: datetime | None
    by: str
    reason: str


def pause_state(service: Service) -> PauseState:
    with db.transaction(service.engine) as s:
        row = s.get(m.ControlRow, "paused")
        reason = repo.control(s, "paused_reason")
        if row is None or row.value != "yes":
            return PauseState(False, None, "", "")
        return PauseState(True, row.changed_at, row.changed_by, reason)


def pause(service: Service, reason: str) -> bool:
    """Stop all publishing at once (the gate's PUBLISHING_PAUSED). False if already paused."""
    if not reason.strip():
        raise InvalidInput('Pausing needs --reason "..." (it is logged; do not name a child)')
    with db.transaction(service.engine) as s:
        repo.hold_register(s, shared=False)  # two pauses at once: the second sees the first
        if repo.control(s, "paused") == "yes":
            return False
        now = service.now()
        repo.set_control(s, "paused", "yes", now, service.actor)
        repo.set_control(s, "paused_reason", reason.strip(), now, service.actor)
        service.record(s, kinds.PUBLISHING_PAUSED, {"reason": reason.strip(), "actor": service.actor})
        return True


def resume(service: Service) -> bool:
    """Lift the emergency stop. False if publishing was not paused."""
    with db.transaction(service.engine) as s:
        repo.hold_register(s, shared=False)
        if repo.control(s, "paused") != "yes":
            return False
        now = service.now()
        repo.set_control(s, "paused", "no", now, service.actor)
        repo.set_control(s, "paused_reason", "", now, service.actor)
        service.record(s, kinds.PUBLISHING_RESUMED, {"actor": service.actor})
        return True
