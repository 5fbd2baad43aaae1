"""The statutory clock of a subject access request (UK GDPR Art. 12(3)). Pure: dates in, dates out.

A request is answered within one calendar month of receipt: the same day number of the next
month, or that month's last day when it has no such day (31 January -> 28 or 29 February).
It may be extended by up to two further months when it is complex or one of several, if the
requester is told why within the first month. The ICO also allows the next working day when
the date falls on a weekend or bank holiday; this module keeps the stricter calendar date.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

MAX_EXTENSION_MONTHS = 2
DUE_SOON_DAYS = 7


def add_months(day: date, months: int) -> date:
    """The corresponding date ``months`` calendar months later (clamped to the month's end)."""
    if months < 0:
        raise ValueError("months must not be negative")
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def due_date(received: date, extension_months: int = 0) -> date:
    """The last day to answer: one calendar month from receipt, plus any extension."""
    if not 0 <= extension_months <= MAX_EXTENSION_MONTHS:
        raise ValueError(f"an extension is 0 to {MAX_EXTENSION_MONTHS} further months")
    return add_months(received, 1 + extension_months)


class Urgency(StrEnum):
    ON_TRACK = "on track"
    DUE_SOON = "due soon"
    DUE_TODAY = "due today"
    OVERDUE = "OVERDUE"


@dataclass(frozen=True)
class Clock:
    """Where one request stands on ``today``."""

    due: date
    days_left: int
    urgency: Urgency


def standing(due: date, today: date) -> Clock:
    days = (due - today).days
    if days < 0:
        urgency = Urgency.OVERDUE
    elif days == 0:
        urgency = Urgency.DUE_TODAY
    elif days <= DUE_SOON_DAYS:
        urgency = Urgency.DUE_SOON
    else:
        urgency = Urgency.ON_TRACK
    return Clock(due, days, urgency)
