"""Consent is a list of events; the current state is derived, never stored."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum

from publisher.domain.clock import end_of_day_utc
from publisher.domain.limits import Platform
from publisher.domain.model import ConsentAction, ConsentEvent, Scope


class ConsentStatus(StrEnum):
    GRANTED = "granted"
    WITHDRAWN = "withdrawn"
    EXPIRED = "expired"
    MISSING = "missing"


def latest(events: Iterable[ConsentEvent], subject_id: str, platform: Platform, scope: Scope) -> ConsentEvent | None:
    """The last recorded event for (subject, platform, scope).

    Events are taken in the order they were recorded (the register's insertion order), not by
    their clock time, so a withdrawal is never overtaken by a grant stamped by a skewed clock.
    """
    found: ConsentEvent | None = None
    for e in events:
        if e.subject_id == subject_id and e.platform == platform and e.scope == scope:
            found = e
    return found


def status(
    events: Iterable[ConsentEvent],
    subject_id: str,
    platform: Platform,
    scope: Scope,
    now: datetime,
    tz_name: str,
) -> ConsentStatus:
    event = latest(events, subject_id, platform, scope)
    if event is None:
        return ConsentStatus.MISSING
    if event.action is ConsentAction.WITHDRAW:
        return ConsentStatus.WITHDRAWN
    if event.expires is not None and now > end_of_day_utc(event.expires, tz_name):
        return ConsentStatus.EXPIRED
    return ConsentStatus.GRANTED
