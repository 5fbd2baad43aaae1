"""`publisher subject erase`: crypto-shred a subject (UK GDPR Art. 17).

Deletes their log key and pseudonym mapping (their sealed fields become unreadable; every
leaf, checkpoint and proof still verifies), logs ``subject_erased`` with the pseudonym only,
and blanks their display name and aliases in the register. One transaction.

Posts already on the platforms are not removed by this: take them down first
(``publisher takedown --subject ID``); ``live_posts`` says how many still are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from publisher.errors import UsageError
from publisher.ledger import log as kinds
from publisher.store import db, repo
from publisher.store import models as m

if TYPE_CHECKING:
    from publisher.service import Service

BASES = ("request", "retention", "other")


@dataclass(frozen=True)
class Erased:
    subject_id: str
    ref: str | None
    live_posts: int


def erase_subject(service: Service, subject_id: str, basis: str = "request") -> Erased:
    if basis not in BASES:
        raise UsageError(f"--basis {basis!r}: one of {', '.join(BASES)}")
    with db.transaction(service.engine) as s:
        repo.hold_register(s, shared=False)  # before the subject's row and the log: see hold_register
        row = repo.get_subject(s, subject_id)
        if row.erased:
            raise UsageError(f"Subject {subject_id} is already erased")
        ref = service.audit.erase(s.connection(), subject_id)
        service.record(s, kinds.SUBJECT_ERASED, {"subject": ref, "basis": basis, "actor": service.actor})
        row.erased, row.display_name, row.aliases = True, "", []
        live = s.scalar(
            select(func.count(func.distinct(m.DeliveryRow.post_id)))
            .join(m.PostSubjectRow, m.PostSubjectRow.post_id == m.DeliveryRow.post_id)
            .where(m.PostSubjectRow.subject_id == subject_id, m.DeliveryRow.status == "live")
        )
        return Erased(subject_id, ref, int(live or 0))
