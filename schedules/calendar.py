"""The working-day calendar of a municipality: weekdays, Dutch public holidays, closing days.

Public holidays come from the `holidays` package (NL), which moves Koningsdag to 26 April when
27 April is a Sunday. Bevrijdingsdag and Goede Vrijdag are settings: whether they are a day off
differs per municipality (the CAO, the college's decision).
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

import holidays

from schedules.definition import WEEKDAYS, Bevrijdingsdag, CalendarSpec, ClosingDays

_DUTCH_WEEKDAYS = ("ma", "di", "wo", "do", "vr", "za", "zo")


def dutch_weekday(day: dt.date) -> str:
    """'ma', 'di', ... for a date."""
    return _DUTCH_WEEKDAYS[day.weekday()]


@lru_cache(maxsize=64)
def _national(year: int) -> dict[dt.date, str]:
    """The Dutch public holidays of one year, with their Dutch names."""
    return dict(holidays.country_holidays("NL", years=year, language="nl").items())


class WorkingCalendar:
    """Answers 'is this a working day, and if not, why not' for one calendar definition."""

    def __init__(self, spec: CalendarSpec) -> None:
        self.spec = spec
        self._weekdays = frozenset(WEEKDAYS.index(day) for day in spec.working_days)
        self._closed: dict[dt.date, str] = {}
        for entry in spec.closing_days:
            if isinstance(entry, ClosingDays):
                for day in entry.days():
                    self._closed[day] = entry.reason
            else:
                self._closed[entry] = "sluitingsdag"
        self._nth_cache: dict[tuple[int, int], list[dt.date]] = {}

    def holiday(self, day: dt.date) -> str | None:
        """The name of the public holiday on `day` (as this calendar counts them), else None."""
        if not self.spec.public_holidays:
            return None
        name = _national(day.year).get(day)
        if day.month == 5 and day.day == 5:
            rule = self.spec.bevrijdingsdag
            if rule is Bevrijdingsdag.EVERY_YEAR:
                return "Bevrijdingsdag"
            if rule is Bevrijdingsdag.NEVER:
                return None
            return "Bevrijdingsdag" if day.year % 5 == 0 else None
        if name is not None and name.lower().startswith("goede vrijdag"):
            return name if self.spec.goede_vrijdag else None
        return name

    def why_closed(self, day: dt.date) -> str | None:
        """Why `day` is not a working day ('Koningsdag', 'weekend', a closing day), else None."""
        if day.weekday() not in self._weekdays:
            return "geen werkdag" if day.weekday() < 5 else "weekend"
        holiday = self.holiday(day)
        if holiday is not None:
            return holiday
        return self._closed.get(day)

    def is_working_day(self, day: dt.date) -> bool:
        """True when the schedule may fire on `day`."""
        return self.why_closed(day) is None

    def working_days_of_month(self, year: int, month: int) -> list[dt.date]:
        """The working days of one month, in order."""
        key = (year, month)
        if key not in self._nth_cache:
            day = dt.date(year, month, 1)
            days = []
            while day.month == month:
                if self.is_working_day(day):
                    days.append(day)
                day += dt.timedelta(days=1)
            self._nth_cache[key] = days
        return self._nth_cache[key]

    def is_nth_working_day(self, day: dt.date, nth: int) -> bool:
        """True when `day` is the nth working day of its month (negative: counted from the end)."""
        days = self.working_days_of_month(day.year, day.month)
        index = nth - 1 if nth > 0 else len(days) + nth
        return 0 <= index < len(days) and days[index] == day
