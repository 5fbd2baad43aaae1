"""Subject access requests: register one, list the open ones against the clock, extend one.

A request names its subject by register id or by a name matched against display names and
aliases; a name that fits several subjects is refused with the candidates' ids (never their
names: messages carry no child's name).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from publisher.errors import InvalidInput, NotFound, UsageError
from publisher.sar import deadline
from publisher.sar.models import SarRequestRow
from publisher.store import db
from publisher.store import models as m

if TYPE_CHECKING:
    from publisher.service import Service


class AmbiguousSubject(UsageError):
    def __init__(self, query: str, candidates: list[m.SubjectRow]) -> None:
        self.candidates = [c.id for c in candidates]
        listed = ", ".join(f"{c.id} ({c.kind}, {c.school_id})" for c in candidates)
        super().__init__(
            f"That name matches {len(candidates)} subjects: {listed}; give the id instead "
            "(see 'publisher subject show ID')"
        )


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.casefold()).split())


def _names(row: m.SubjectRow) -> list[str]:
    return [n for n in (_norm(x) for x in [row.display_name, *(row.aliases or [])]) if n]


def resolve_subject(s: Session, query: str) -> m.SubjectRow:
    """The subject with this id, else the one whose name or alias matches ``query``."""
    text = query.strip()
    if not text:
        raise InvalidInput("No subject given: pass a subject id (S-...) or their name")
    row = s.get(m.SubjectRow, text)
    if row is not None:
        return row
    wanted = _norm(text)
    living = [r for r in s.scalars(select(m.SubjectRow).order_by(m.SubjectRow.id)) if not r.erased]
    exact = [r for r in living if wanted in _names(r)]
    words = set(wanted.split())
    found = exact or [r for r in living if any(words <= set(n.split()) for n in _names(r))]
    if not found:
        raise NotFound("subject", "with that id or name", hint="see 'publisher subject list'")
    if len(found) > 1:
        raise AmbiguousSubject(text, found)
    return found[0]


def today(service: Service) -> date:
    return service.now().astimezone(ZoneInfo(service.config.timezone)).date()


@dataclass(frozen=True)
class RequestView:
    id: str
    subject_id: str
    requester: str
    received: date
    due: date
    extension_months: int
    extension_reason: str
    status: str
    clock: deadline.Clock

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "subject": self.subject_id,
            "requester": self.requester,
            "received": self.received.isoformat(),
            "due": self.due.isoformat(),
            "extension_months": self.extension_months,
            "extension_reason": self.extension_reason,
            "status": self.status,
            "days_left": self.clock.days_left,
            "urgency": self.clock.urgency.value,
        }


def _view(row: SarRequestRow, on: date) -> RequestView:
    return RequestView(
        row.id,
        row.subject_id,
        row.requester,
        row.received,
        row.due,
        row.extension_months,
        row.extension_reason,
        row.status,
        deadline.standing(row.due, on),
    )


def open_request(service: Service, subject: str, received: date, requester: str) -> RequestView:
    """Register a request received on ``received`` (not in the future)."""
    from publisher.service import new_id

    if not requester.strip():
        raise InvalidInput('Who made the request? pass --requester "Name (relationship)"')
    now_day = today(service)
    if received > now_day:
        raise InvalidInput(f"--received {received} is in the future (today is {now_day})")
    with db.transaction(service.engine) as s:
        row = resolve_subject(s, subject)
        if row.erased:
            raise UsageError(f"Subject {row.id} was erased: no personal data is held; tell the requester so")
        req = SarRequestRow(
            id=new_id("R-"),
            subject_id=row.id,
            requester=requester.strip(),
            received=received,
            due=deadline.due_date(received),
            extension_months=0,
            extension_reason="",
            status="open",
            opened_at=service.now(),
            opened_by=service.actor,
            answered_by="",
        )
        s.add(req)
        s.flush()
        return _view(req, now_day)


def list_requests(service: Service, include_answered: bool = False) -> list[RequestView]:
    """Requests, soonest due first (open ones only unless ``include_answered``)."""
    on = today(service)
    with db.transaction(service.engine) as s:
        q = select(SarRequestRow).order_by(SarRequestRow.due, SarRequestRow.id)
        if not include_answered:
            q = q.where(SarRequestRow.status == "open")
        return [_view(r, on) for r in s.scalars(q)]


def extend_request(service: Service, request_id: str, months: int, reason: str) -> RequestView:
    """Extend by ``months`` (total at most two), decided within the first month, with a reason."""
    if not reason.strip():
        raise InvalidInput("An extension needs --reason (why the request is complex); the requester must be told it")
    on = today(service)
    with db.transaction(service.engine) as s:
        row = s.get(SarRequestRow, request_id)
        if row is None:
            raise NotFound("subject access request", request_id, hint="see 'publisher sar list --all'")
        if row.status != "open":
            raise UsageError(f"Request {request_id} is {row.status}: it can no longer be extended")
        first_due = deadline.due_date(row.received)
        if on > first_due:
            raise UsageError(
                f"Request {request_id} was due {first_due}: an extension must be decided and told to the "
                "requester within the first month"
            )
        total = row.extension_months + months
        if months < 1 or total > deadline.MAX_EXTENSION_MONTHS:
            raise InvalidInput(
                f"--months {months}: the extension is at most {deadline.MAX_EXTENSION_MONTHS} further months "
                f"in all ({row.extension_months} already)"
            )
        row.extension_months = total
        row.extension_reason = "; ".join(x for x in (row.extension_reason, reason.strip()) if x)
        row.due = deadline.due_date(row.received, total)
        return _view(row, on)
