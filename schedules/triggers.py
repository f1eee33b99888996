"""The APScheduler trigger of a schedule: cron, interval or a date, kept to working days.

`ScheduleTrigger` wraps APScheduler's own triggers and skips the moments that fall outside the
calendar (weekends, public holidays, closing days), outside the office hours, or on any but the
n-th working day of a month, by asking the wrapped trigger again from the next allowed moment.
It pickles as plain data (the job store keeps it), so a changed klerk still reads old jobs.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from schedules.calendar import WorkingCalendar
from schedules.definition import (
    CalendarSpec,
    CronFields,
    OfficeHours,
    Schedule,
    TriggerSpec,
    crontab_fields,
)

# how far ahead a calendar may push a fire before the schedule counts as never firing again
_HORIZON_DAYS = 3700
_STATE_VERSION = 1


class ScheduleTrigger(BaseTrigger):  # type: ignore[misc]
    """Fire times of one schedule: its trigger, on working days and within office hours."""

    def __init__(self, schedule: Schedule) -> None:
        self._state: dict[str, Any] = {
            "version": _STATE_VERSION,
            "trigger": schedule.trigger.model_dump(mode="json"),
            "timezone": schedule.timezone,
            "calendar": schedule.calendar.model_dump(mode="json"),
            "office_hours": (
                schedule.office_hours.model_dump(mode="json") if schedule.office_hours else None
            ),
        }
        self._build()

    def _build(self) -> None:
        from zoneinfo import ZoneInfo

        spec = TriggerSpec.model_validate(self._state["trigger"])
        self.zone = ZoneInfo(self._state["timezone"])
        start = spec.start.replace(tzinfo=self.zone) if spec.start else None
        end = spec.end.replace(tzinfo=self.zone) if spec.end else None
        self._inner: BaseTrigger
        self._calendar: WorkingCalendar | None = None
        self._hours: OfficeHours | None = None
        self._nth = spec.working_day_of_month
        if spec.date is not None:
            moment = spec.date if spec.date.tzinfo else spec.date.replace(tzinfo=self.zone)
            self._inner = DateTrigger(run_date=moment, timezone=self.zone)
            return
        if isinstance(spec.cron, str):
            self._inner = CronTrigger(
                **crontab_fields(spec.cron), start_date=start, end_date=end, timezone=self.zone
            )
        elif isinstance(spec.cron, CronFields):
            self._inner = CronTrigger(
                **spec.cron_fields(), start_date=start, end_date=end, timezone=self.zone
            )
        else:
            assert spec.interval is not None
            # counted from midnight, so that 'every 15 minutes' fires on :00, :15, :30, :45
            anchor = start or dt.datetime(2000, 1, 3, tzinfo=self.zone)
            self._inner = IntervalTrigger(
                seconds=int(spec.interval.length().total_seconds()),
                start_date=anchor,
                end_date=end,
                timezone=self.zone,
            )
        self._calendar = WorkingCalendar(CalendarSpec.model_validate(self._state["calendar"]))
        hours = self._state["office_hours"]
        self._hours = OfficeHours.model_validate(hours) if hours else None

    def __getstate__(self) -> dict[str, Any]:
        return dict(self._state)

    def __setstate__(self, state: dict[str, Any]) -> None:
        if state.get("version", 0) > _STATE_VERSION:
            raise ValueError(f"a schedule trigger of a newer klerk (version {state['version']})")
        self._state = dict(state)
        self._build()

    def __str__(self) -> str:
        text = TriggerSpec.model_validate(self._state["trigger"]).describe()
        return f"{text} ({self._state['timezone']}, working days)" if self._calendar else text

    def get_next_fire_time(
        self, previous_fire_time: dt.datetime | None, now: dt.datetime
    ) -> dt.datetime | None:
        """The first fire time after `previous_fire_time` (or `now`) that the calendar allows."""
        candidate: dt.datetime | None = self._inner.get_next_fire_time(previous_fire_time, now)
        while candidate is not None:
            allowed, resume_at = self._check(candidate)
            if allowed:
                return candidate
            if resume_at is None:
                return None
            candidate = self._inner.get_next_fire_time(None, resume_at)
        return None

    def _check(self, moment: dt.datetime) -> tuple[bool, dt.datetime | None]:
        """(True, None) when `moment` may fire; else (False, the moment to look again from)."""
        if self._calendar is None:
            return True, None
        local = moment.astimezone(self.zone)
        day = local.date()
        if self._day_allowed(day):
            if self._hours is None:
                return True, None
            opens = dt.datetime.combine(day, self._hours.start, tzinfo=self.zone)
            closes = dt.datetime.combine(day, self._hours.end, tzinfo=self.zone)
            if local < opens:
                return False, opens
            if local < closes:
                return True, None
        for offset in range(1, _HORIZON_DAYS):
            later = day + dt.timedelta(days=offset)
            if self._day_allowed(later):
                opening = self._hours.start if self._hours else dt.time(0)
                return False, dt.datetime.combine(later, opening, tzinfo=self.zone)
        return False, None

    def _day_allowed(self, day: dt.date) -> bool:
        assert self._calendar is not None
        if not self._calendar.is_working_day(day):
            return False
        return self._nth is None or self._calendar.is_nth_working_day(day, self._nth)

    @property
    def calendar(self) -> WorkingCalendar | None:
        """The working-day calendar (None for a single date)."""
        return self._calendar


def fire_times(schedule: Schedule, after: dt.datetime, count: int) -> list[dt.datetime]:
    """The next `count` fire times of `schedule` from `after` on, in the schedule's time zone."""
    trigger = ScheduleTrigger(schedule)
    times: list[dt.datetime] = []
    previous: dt.datetime | None = None
    now = after
    while len(times) < count:
        moment = trigger.get_next_fire_time(previous, now)
        if moment is None:
            break
        times.append(moment.astimezone(schedule.zone()))
        previous = now = moment
    return times


def closed_days(schedule: Schedule, first: dt.date, last: dt.date) -> list[tuple[dt.date, str]]:
    """The days from `first` to `last` that the calendar skips although they are working weekdays
    (public holidays and closing days), with the reason: what `klerk schedule list` points out."""
    if schedule.trigger.date is not None:
        return []
    calendar = WorkingCalendar(schedule.calendar)
    skipped = []
    day = first
    while day <= last:
        weekday = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[day.weekday()]
        if weekday in schedule.calendar.working_days:
            reason = calendar.why_closed(day)
            if reason is not None:
                skipped.append((day, reason))
        day += dt.timedelta(days=1)
    return skipped
