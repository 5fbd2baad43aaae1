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


def latest(
    events: Iterable[ConsentEvent], subject_id: str, platform: Platform, scope: Scope, now: datetime
) -> ConsentEvent | None:
    """The last event for (subject, platform, scope) at or before now; later events win ties."""
    found: ConsentEvent | None = None
    for e in events:
        same = e.subject_id == subject_id and e.platform == platform and e.scope == scope
        if same and e.at <= now and (found is None or e.at >= found.at):
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
    event = latest(events, subject_id, platform, scope, now)
    if event is None:
        return ConsentStatus.MISSING
    if event.action is ConsentAction.WITHDRAW:
        return ConsentStatus.WITHDRAWN
    if event.expires is not None and now > end_of_day_utc(event.expires, tz_name):
        return ConsentStatus.EXPIRED
    return ConsentStatus.GRANTED
