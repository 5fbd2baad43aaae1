"""What `publisher status` shows, and the daily sweep of consents about to expire."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any, Final
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from publisher.ledger.tables import LOG_SIZE, log_checkpoints
from publisher.queue import store as q
from publisher.store import db
from publisher.store import models as m
from publisher.takedown import open_takedowns

if TYPE_CHECKING:
    from publisher.service import Service

D = m.DeliveryRow


def _delivery(row: m.DeliveryRow) -> dict[str, Any]:
    return {
        "delivery": row.id,
        "post": row.post_id,
        "account": row.account,
        "status": row.status,
        "due_at": row.due_at.isoformat(),
        "attempts": row.attempts,
        "next_try_at": row.next_try_at.isoformat() if row.next_try_at else None,
        "lease_owner": row.lease_owner,
        "last_error": row.last_error,
        "findings": list(row.findings or []),
        "platform_id": row.platform_id,
        "url": row.url,
        "published_at": row.published_at.isoformat() if row.published_at else None,
    }


def queue_status(service: Service, limit: int = 50) -> dict[str, Any]:
    """Due, in flight, unconfirmed, blocked (with findings), failed; accounts needing attention;
    the last checkpoint. Lists are capped at `limit` rows each; `counts` has the totals."""
    now = service.now()
    with db.transaction(service.engine) as s:
        counts = {status: n for status, n in s.execute(select(D.status, func.count()).group_by(D.status))}
        due_q = select(D).where(D.status == q.QUEUED, D.due_at <= now).order_by(D.due_at).limit(limit)
        out: dict[str, Any] = {
            "now": now.isoformat(),
            "counts": counts,
            "due": [_delivery(r) for r in s.scalars(due_q)],
            "scheduled": int(s.scalar(select(func.count()).where(D.status == q.QUEUED, D.due_at > now)) or 0),
        }
        for key, statuses in (
            ("in_flight", (q.INFLIGHT, q.RECONCILE)),
            ("unconfirmed", (q.UNCONFIRMED,)),
            ("blocked", (q.BLOCKED,)),
            ("failed", (q.FAILED,)),
        ):
            rows = s.scalars(select(D).where(D.status.in_(statuses)).order_by(D.due_at).limit(limit))
            out[key] = [_delivery(r) for r in rows]
        attention = s.scalars(select(m.AccountRow).where(m.AccountRow.needs_attention != ""))
        out["accounts_needing_attention"] = [{"account": a.name, "why": a.needs_attention} for a in attention]
        out["paused"] = (s.get(m.ControlRow, "paused") or m.ControlRow(value="")).value == "yes"
        out["log_size"] = int(s.scalar(LOG_SIZE) or 0)
        cp = s.execute(
            select(log_checkpoints.c.size, log_checkpoints.c.created_at)
            .order_by(log_checkpoints.c.size.desc())
            .limit(1)
        ).first()
        out["last_checkpoint"] = {"size": int(cp[0]), "at": cp[1]} if cp else None
    out["takedowns_pending"] = [
        {"takedown": t.id, "post": t.post_id, "account": t.account, "status": t.status, "attempts": t.attempts,
         "last_error": t.last_error, "next_try_at": t.next_try_at.isoformat() if t.next_try_at else None}
        for t in open_takedowns(service)[:limit]
    ]  # fmt: skip
    return out


def expiring_consents(service: Service, days: int = 14) -> list[dict[str, Any]]:
    """Consents in force now that lapse within `days` (subject ids only, no names)."""
    now = service.now()
    today = now.astimezone(ZoneInfo(service.config.timezone)).date()
    horizon = today + timedelta(days=days)
    with db.transaction(service.engine) as s:
        rows = list(s.scalars(select(m.ConsentEventRow).order_by(m.ConsentEventRow.at, m.ConsentEventRow.id)))
    latest: dict[tuple[str, str, str], m.ConsentEventRow] = {}
    for row in rows:
        if row.at <= now:
            latest[(row.subject_id, row.platform, row.scope)] = row
    out = []
    for (subject, platform, scope), row in sorted(latest.items()):
        if row.action == "grant" and row.expires is not None and today <= row.expires <= horizon:
            out.append({"subject": subject, "platform": platform, "scope": scope, "expires": row.expires.isoformat()})
    return out


_SIGNED_SIZE: Final = select(func.max(log_checkpoints.c.size))


def last_checkpoint_size(service: Service) -> tuple[int, int]:
    """(log size, size at the last checkpoint)."""
    with db.reading(service.engine) as s:
        size = int(s.scalar(LOG_SIZE) or 0)
        cp = s.scalar(_SIGNED_SIZE)
    return size, int(cp or 0)
