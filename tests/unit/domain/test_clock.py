from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from publisher.domain.clock import LocalTimeError, end_of_academic_year, parse_local

TZ = "Europe/London"


def test_the_hour_that_happens_twice_is_refused_without_an_offset() -> None:
    with pytest.raises(LocalTimeError, match="happens twice"):
        parse_local("2027-10-31 01:30", TZ)


@pytest.mark.parametrize(
    ("text", "utc"),
    [
        ("2027-10-31 01:30+01:00", datetime(2027, 10, 31, 0, 30, tzinfo=UTC)),
        ("2027-10-31 01:30+00:00", datetime(2027, 10, 31, 1, 30, tzinfo=UTC)),
    ],
)
def test_an_offset_settles_the_repeated_hour(text: str, utc: datetime) -> None:
    assert parse_local(text, TZ) == utc


def test_the_hour_that_does_not_exist_is_refused() -> None:
    with pytest.raises(LocalTimeError, match="does not exist"):
        parse_local("2027-03-28 01:30", TZ)


def test_nine_on_the_first_bst_morning_is_eight_utc() -> None:
    assert parse_local("2027-03-28 09:00", TZ) == datetime(2027, 3, 28, 8, 0, tzinfo=UTC)
    assert parse_local("2027-03-27 09:00", TZ) == datetime(2027, 3, 27, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize("text", ["tomorrow", "2027-02-30 10:00", "2027-01-01 25:00", "2027-10-31 01:30+02:00"])
def test_nonsense_is_refused(text: str) -> None:
    with pytest.raises(LocalTimeError):
        parse_local(text, TZ)


@pytest.mark.parametrize(
    ("today", "end"),
    [
        (date(2026, 11, 26), date(2027, 8, 31)),
        (date(2027, 8, 31), date(2027, 8, 31)),
        (date(2027, 9, 1), date(2028, 8, 31)),
    ],
)
def test_default_consent_expiry_is_the_end_of_the_academic_year(today: date, end: date) -> None:
    assert end_of_academic_year(today) == end
