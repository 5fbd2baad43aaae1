"""Local wall-clock times for schedules: Europe/London by default, stored as UTC.

On the last Sunday of October one local hour happens twice, and on the last Sunday of
March one local hour does not happen at all. A time in either is refused unless the
person gives an offset that settles it ("2027-10-31 01:30+01:00").
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

_LOCAL = re.compile(r"^\s*(\d{4}-\d{2}-\d{2})[ T](\d{1,2}:\d{2})(?::(\d{2}))?\s*(Z|[+-]\d{2}:?\d{2})?\s*$")


class LocalTimeError(ValueError):
    pass


def parse_local(text: str, tz_name: str) -> datetime:
    """Parse 'YYYY-MM-DD HH:MM[+HH:MM]' in tz_name; return an aware UTC datetime."""
    m = _LOCAL.match(text)
    if not m:
        raise LocalTimeError(f"{text!r} is not a time like '2027-03-28 09:00' (YYYY-MM-DD HH:MM)")
    day, hm, sec, offset = m.groups()
    try:
        naive = datetime.fromisoformat(f"{day}T{hm.zfill(5)}:{sec or '00'}")
    except ValueError as exc:
        raise LocalTimeError(f"{text!r} is not a real date and time: {exc}") from None
    tz = ZoneInfo(tz_name)
    if offset:
        fixed = datetime.fromisoformat(f"{naive.isoformat()}{'+00:00' if offset == 'Z' else offset}")
        if fixed.astimezone(tz).replace(tzinfo=None) != naive:
            raise LocalTimeError(f"{text!r}: the offset {offset} is not in force in {tz_name} at that time")
        return fixed.astimezone(UTC)
    early = naive.replace(tzinfo=tz, fold=0)
    late = naive.replace(tzinfo=tz, fold=1)
    if early.utcoffset() != late.utcoffset():
        if early.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != naive:
            raise LocalTimeError(
                f"{text} does not exist in {tz_name} (the clocks go forward that night): pick another time"
            )
        raise LocalTimeError(
            f"{text} happens twice in {tz_name} (the clocks go back that night): add the offset, "
            f"e.g. '{day} {hm}{_fmt(early.utcoffset())}' or '{day} {hm}{_fmt(late.utcoffset())}'"
        )
    return early.astimezone(UTC)


def _fmt(delta: timedelta | None) -> str:
    minutes = int((delta or timedelta()).total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def format_local(value: datetime, tz_name: str) -> str:
    return value.astimezone(ZoneInfo(tz_name)).strftime("%Y-%m-%d %H:%M %Z")


def end_of_academic_year(today: date) -> date:
    """31 August of the academic year that contains today (it starts on 1 September)."""
    return date(today.year + 1 if today.month >= 9 else today.year, 8, 31)


def parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise LocalTimeError(f"{text!r} is not a date like 2027-08-31 (YYYY-MM-DD)") from None


def end_of_day_utc(day: date, tz_name: str) -> datetime:
    """The last instant of a local calendar day, in UTC (consent expires at the end of its day)."""
    nxt = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=ZoneInfo(tz_name))
    return nxt.astimezone(UTC) - timedelta(microseconds=1)
