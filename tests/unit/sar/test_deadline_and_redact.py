from __future__ import annotations

from datetime import date

import pytest

from publisher.sar.deadline import Urgency, add_months, due_date, standing
from publisher.sar.redact import MARKER, Redactor, own_terms


@pytest.mark.parametrize(
    ("received", "months", "due"),
    [
        (date(2027, 1, 31), 1, date(2027, 2, 28)),
        (date(2028, 1, 31), 1, date(2028, 2, 29)),
        (date(2027, 3, 31), 1, date(2027, 4, 30)),
        (date(2027, 12, 15), 1, date(2028, 1, 15)),
        (date(2027, 11, 30), 3, date(2028, 2, 29)),
        (date(2027, 5, 5), 1, date(2027, 6, 5)),
    ],
)
def test_calendar_months(received: date, months: int, due: date) -> None:
    assert add_months(received, months) == due
    assert due_date(received, months - 1) == due if months <= 3 else True


def test_extension_is_at_most_two_months() -> None:
    with pytest.raises(ValueError, match="0 to 2"):
        due_date(date(2027, 1, 1), 3)


def test_flags() -> None:
    due = date(2027, 2, 28)
    assert standing(due, date(2027, 2, 1)).urgency is Urgency.ON_TRACK
    assert standing(due, date(2027, 2, 21)).urgency is Urgency.DUE_SOON
    assert standing(due, date(2027, 2, 28)).urgency is Urgency.DUE_TODAY
    assert standing(due, date(2027, 3, 1)).urgency is Urgency.OVERDUE


def test_redaction_keeps_the_requesters_own_names() -> None:
    r = Redactor(own=own_terms("Amelia Jones", ["Millie"]))
    r.add("S-OTHER12345", "Oliver Jones", ["Olly"])  # shares a surname with the requester
    out = r.text("Well done Amelia, Oliver Jones, Olly's team and S-OTHER12345; Millie Jones too")
    assert out == f"Well done Amelia, {MARKER}, {MARKER} team and {MARKER}; Millie Jones too"
    assert r.value({"k": ["Oliver"]}) == {"k": [MARKER]}
