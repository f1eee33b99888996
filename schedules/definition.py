"""Schedule definitions: pydantic models of `schedules/definitions/*.yaml` and their JSON Schema.

A schedule says which task runs when (cron, interval or one date), in which time zone, on which
days (the working-day calendar: Dutch public holidays, the municipality's closing days), on what
input, what happens when a run is still busy, and whom to tell when a run goes wrong.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BeforeValidator, Field, field_validator, model_validator

from tasks.definition import Model
from tasks.errors import DefinitionError
from tasks.loading import load_model

DEFINITIONS_DIR = Path(__file__).parent / "definitions"

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def _office_week() -> list[Weekday]:
    return ["mon", "tue", "wed", "thu", "fri"]


_DUTCH_DATE = re.compile(r"^\s*(\d{1,2})-(\d{1,2})-(\d{4})\s*$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_CLOCK = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)(:00)?$")


def _dutch_date(value: Any) -> Any:
    """Accept dd-mm-jjjj besides ISO dates: administrators write dates the Dutch way."""
    if isinstance(value, str):
        found = _DUTCH_DATE.match(value)
        if found:
            day, month, year = (int(part) for part in found.groups())
            return dt.date(year, month, day)
    return value


Day = Annotated[dt.date, BeforeValidator(_dutch_date)]


def _clock(value: Any) -> Any:
    """'7:30' or '07:30' (YAML 1.1 reads an unquoted 07:30 as minutes: 450)."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 24 * 60:
        return dt.time(value // 60, value % 60)
    if isinstance(value, str):
        found = _CLOCK.match(value.strip())
        if not found:
            raise ValueError(f"expected a time of day as HH:MM, got {value!r}")
        return dt.time(int(found.group(1)), int(found.group(2)))
    return value


Clock = Annotated[dt.time, BeforeValidator(_clock)]


_CRON_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _crontab_weekdays(field: str) -> str:
    """A crontab weekday field with numbers as cron means them (0 and 7 Sunday, 1 Monday) as
    names: APScheduler 3.x would read the numbers from Monday = 0."""
    parts = []
    for token in field.split(","):
        body, _, step_text = token.partition("/")
        step = int(step_text) if step_text.isdigit() else 1
        if step_text and not step_text.isdigit():
            raise ValueError(f"bad step in weekday field {field!r}")
        if body == "*" and step == 1:
            parts.append("*")
            continue
        if body == "*":
            first, last = 0, 6
        elif "-" in body:
            low, high = body.split("-", 1)
            if not (low.isdigit() and high.isdigit()):
                parts.append(token)  # names (mon-fri): APScheduler reads those right
                continue
            first, last = int(low), int(high)
        elif body.isdigit():
            first = last = int(body)
        else:
            parts.append(token)
            continue
        if not (0 <= first <= 7 and 0 <= last <= 7 and first <= last):
            raise ValueError(f"weekday numbers run from 0 to 7 (0 and 7 are Sunday): {token!r}")
        parts.extend(_CRON_DAYS[n] for n in range(first, last + 1, step))
    return ",".join(dict.fromkeys(parts))


def crontab_fields(line: str) -> dict[str, str]:
    """The five fields of a crontab line (minute hour day month weekday) as APScheduler fields."""
    values = line.split()
    if len(values) != 5:
        raise ValueError(
            f"a crontab line has 5 fields (minute hour day month weekday), got {len(values)}"
        )
    minute, hour, day, month, day_of_week = values
    return {
        "second": "0",
        "minute": minute,
        "hour": hour,
        "day": day,
        "month": month,
        "day_of_week": _crontab_weekdays(day_of_week),
    }


class CronFields(Model):
    """Cron fields as APScheduler knows them; unset fields are `*` (every), except below `hour`."""

    year: str | int | None = None
    month: str | int | None = None
    day: str | int | None = Field(None, description="Day of the month (1-31, 'last').")
    week: str | int | None = None
    day_of_week: str | int | None = Field(
        None, description="mon-fri, sat, ...; use names (APScheduler counts 0 as Monday)."
    )
    hour: str | int | None = None
    minute: str | int | None = None
    second: str | int | None = None


class IntervalSpec(Model):
    """Every so many weeks, days, hours, minutes and/or seconds."""

    weeks: int = Field(0, ge=0)
    days: int = Field(0, ge=0)
    hours: int = Field(0, ge=0)
    minutes: int = Field(0, ge=0)
    seconds: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _not_zero(self) -> IntervalSpec:
        if self.length().total_seconds() <= 0:
            raise ValueError(
                "an interval needs at least one of weeks, days, hours, minutes, seconds"
            )
        return self

    def length(self) -> dt.timedelta:
        """The interval as a timedelta."""
        return dt.timedelta(
            weeks=self.weeks,
            days=self.days,
            hours=self.hours,
            minutes=self.minutes,
            seconds=self.seconds,
        )


class TriggerSpec(Model):
    """When a schedule fires: exactly one of `cron`, `interval`, `date`."""

    cron: str | CronFields | None = Field(
        None,
        description="A crontab line ('0 7 * * *': minute hour day month weekday) or cron fields.",
    )
    interval: IntervalSpec | None = Field(
        None, description="Every N minutes etc., counted from `start` (default: midnight)."
    )
    date: dt.datetime | None = Field(
        None, description="One moment (local time); the calendar does not apply to it."
    )
    start: dt.datetime | None = Field(None, description="Not before this moment (local time).")
    end: dt.datetime | None = Field(None, description="Not after this moment (local time).")
    working_day_of_month: int | None = Field(
        None,
        ge=-23,
        le=23,
        description="Only on the N-th working day of the month (1 = first, -1 = last).",
    )

    @model_validator(mode="after")
    def _one_kind(self) -> TriggerSpec:
        given = [name for name in ("cron", "interval", "date") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of cron, interval, date"
                + (f" (got {', '.join(given)})" if given else "")
            )
        if self.working_day_of_month == 0:
            raise ValueError("working_day_of_month counts from 1 (or back from -1)")
        if self.date is not None and (self.start or self.end or self.working_day_of_month):
            raise ValueError("start, end and working_day_of_month do not go with a single date")
        if isinstance(self.cron, str):
            from apscheduler.triggers.cron import CronTrigger

            try:
                CronTrigger(**crontab_fields(self.cron))
            except ValueError as exc:
                raise ValueError(f"cron {self.cron!r}: {exc}") from None
        elif isinstance(self.cron, CronFields):
            from apscheduler.triggers.cron import CronTrigger

            try:
                CronTrigger(**self.cron_fields())
            except ValueError as exc:
                raise ValueError(f"cron: {exc}") from None
        return self

    @property
    def kind(self) -> str:
        """cron, interval or date."""
        return "cron" if self.cron is not None else "interval" if self.interval else "date"

    def cron_fields(self) -> dict[str, str | int]:
        """The cron fields that are set; a time below the hour defaults to 0, not every minute."""
        assert isinstance(self.cron, CronFields)
        fields = {k: v for k, v in self.cron.model_dump().items() if v is not None}
        if "hour" in fields or "day" in fields or "day_of_week" in fields:
            fields.setdefault("minute", 0)
        if "minute" in fields:
            fields.setdefault("second", 0)
        return fields

    def describe(self) -> str:
        """The trigger in a few words, for `klerk schedule list`."""
        if isinstance(self.cron, str):
            text = f"cron {self.cron}"
        elif isinstance(self.cron, CronFields):
            text = "cron " + " ".join(f"{k}={v}" for k, v in self.cron_fields().items())
        elif self.interval is not None:
            parts = [
                f"{value} {name}" for name, value in self.interval.model_dump().items() if value
            ]
            text = "every " + ", ".join(parts)
        else:
            assert self.date is not None
            return f"once, {self.date:%d-%m-%Y %H:%M}"
        if self.working_day_of_month:
            text += f"; working day {self.working_day_of_month} of the month"
        return text


class ClosingDays(Model):
    """One closing day or a run of them, with a reason (shown in `klerk schedule list`)."""

    start: Day
    end: Day | None = Field(None, description="Last closing day (inclusive); default: `start`.")
    reason: str = "sluitingsdag"

    @model_validator(mode="after")
    def _in_order(self) -> ClosingDays:
        if self.end is not None and self.end < self.start:
            raise ValueError("end lies before start")
        return self

    def days(self) -> list[dt.date]:
        """Every date in the run."""
        last = self.end or self.start
        return [self.start + dt.timedelta(days=n) for n in range((last - self.start).days + 1)]


class Bevrijdingsdag(StrEnum):
    """Whether 5 May is a day off: every year, only in lustrum years (2025, 2030), or never."""

    EVERY_YEAR = "every_year"
    LUSTRUM = "lustrum"
    NEVER = "never"


class CalendarSpec(Model):
    """The days a schedule may fire on: working days, minus public holidays and closing days."""

    working_days: list[Weekday] = Field(
        default_factory=_office_week,
        description="Weekdays that are working days.",
    )
    public_holidays: bool = Field(
        True, description="Skip the Dutch public holidays (the `holidays` package, NL)."
    )
    bevrijdingsdag: Bevrijdingsdag = Field(
        Bevrijdingsdag.LUSTRUM,
        description="5 May off every year, only in lustrum years (the national rule), or never.",
    )
    goede_vrijdag: bool = Field(True, description="Count Goede Vrijdag as a public holiday.")
    closing_days: list[Day | ClosingDays] = Field(
        default_factory=list,
        description="The municipality's own closing days: dates (2026-12-24 or 24-12-2026) or "
        "{start, end, reason}.",
    )

    @field_validator("working_days")
    @classmethod
    def _some_day(cls, days: list[Weekday]) -> list[Weekday]:
        if not days:
            raise ValueError("at least one working day")
        return days


class OfficeHours(Model):
    """Fire only from `start` until (not at) `end`, local time, on working days."""

    start: Clock = Field(description="HH:MM, e.g. '08:00'.")
    end: Clock = Field(description="HH:MM, e.g. '17:00' (a fire at exactly 17:00 is outside).")

    @model_validator(mode="after")
    def _in_order(self) -> OfficeHours:
        if self.end <= self.start:
            raise ValueError("end must be later than start")
        return self


class Overlap(StrEnum):
    """What a fire does when the task is still running (from this schedule or otherwise)."""

    SKIP = "skip"
    QUEUE = "queue"


class Event(StrEnum):
    """What a notification can be sent for."""

    FAILED = "failed"
    NOT_ALL_DONE = "not_all_done"
    MISSED = "missed"
    SKIPPED = "skipped"
    INTERRUPTED = "interrupted"
    FINISHED = "finished"


class NotifySpec(Model):
    """Who hears about a fire; KLERK_SMTP_RECIPIENTS and KLERK_WEBHOOK_URL are always added."""

    email: list[str] = Field(default_factory=list, description="E-mail addresses.")
    webhook: str | None = Field(
        None,
        description="URL that gets a JSON POST. A URL holding a secret token belongs in "
        "KLERK_WEBHOOK_URL, not here.",
    )
    when: list[Event] = Field(
        default_factory=lambda: [Event.FAILED, Event.NOT_ALL_DONE, Event.MISSED],
        description="failed, not_all_done, missed (due but not run), skipped, interrupted, "
        "finished.",
    )

    @field_validator("email")
    @classmethod
    def _addresses(cls, addresses: list[str]) -> list[str]:
        for address in addresses:
            if not _EMAIL.match(address):
                raise ValueError(f"not an e-mail address: {address!r}")
        return addresses

    @field_validator("webhook")
    @classmethod
    def _url(cls, url: str | None) -> str | None:
        if url is not None and not re.match(r"^https?://[^\s/]+", url):
            raise ValueError("the webhook must be an http:// or https:// URL")
        return url


class InputMissing(StrEnum):
    """What a fire does when its input file is not there."""

    FAIL = "fail"
    SKIP = "skip"


class Schedule(Model):
    """A schedule definition: which task runs when, on what, and who hears about it."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    description: str = ""
    task: str = Field(description="A task name (tasks/definitions/) or a path to a task file.")
    enabled: bool = Field(True, description="A disabled schedule never fires (run-now still can).")
    trigger: TriggerSpec
    timezone: str = Field("Europe/Amsterdam", description="IANA time zone of the times above.")
    calendar: CalendarSpec = Field(default_factory=CalendarSpec)
    office_hours: OfficeHours | None = None
    input: str | None = Field(
        None,
        description="Input file; a template with `today` and `now` (the planned fire time), e.g. "
        "\"/srv/intake/aanvragen-{{ today.strftime('%Y%m%d') }}.xlsx\". Relative to KLERK_HOME.",
    )
    if_input_missing: InputMissing = Field(
        InputMissing.FAIL, description="fail (and notify) or skip quietly."
    )
    results: str | None = Field(None, description="Results file (template); default: the task's.")
    concurrency: int | None = Field(None, ge=1, le=32, description="Override the task's.")
    overlap: Overlap = Field(
        Overlap.SKIP,
        description="When the task still runs at a fire: skip this fire, or queue it (at most "
        "one waits; it starts when the running run ends).",
    )
    misfire_grace_seconds: int = Field(
        3600,
        ge=1,
        description="A fire missed (klerk serve down or busy) still runs this late; later: missed.",
    )
    coalesce: bool = Field(True, description="Several missed fires run once, not once each.")
    resume_interrupted: bool = Field(
        True,
        description="A fire first finishes this schedule's interrupted or aborted run on the same "
        "unchanged input, instead of starting a new run.",
    )
    notify: NotifySpec = Field(default_factory=NotifySpec)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {name!r}; e.g. Europe/Amsterdam") from None
        return name

    def zone(self) -> ZoneInfo:
        """The schedule's time zone."""
        return ZoneInfo(self.timezone)

    def fingerprint(self, *, trigger_only: bool = False) -> str:
        """SHA-256 of the definition (or of what decides its fire times) as canonical JSON."""
        data = self.model_dump(mode="json")
        if trigger_only:
            data = {k: data[k] for k in ("trigger", "timezone", "calendar", "office_hours")}
        text = json.dumps(data, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


def definitions_dir(configured: Path | None) -> Path:
    """The folder of schedule files: KLERK_SCHEDULES_DIR, else schedules/definitions."""
    return (configured or DEFINITIONS_DIR).resolve()


def schedule_files(folder: Path) -> list[Path]:
    """The schedule files in a folder, by name."""
    return sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")])


def read_schedules(folder: Path) -> tuple[dict[str, tuple[Schedule, Path]], list[str]]:
    """Every valid schedule in `folder` by name, and the problems of the files that are not."""
    found: dict[str, tuple[Schedule, Path]] = {}
    problems: list[str] = []
    for path in schedule_files(folder):
        try:
            schedule = load_model(path, Schedule)
        except DefinitionError as exc:
            problems.extend(exc.problems)
            continue
        if schedule.name in found:
            problems.append(
                f"{path}:1:1: schedule name {schedule.name!r} is also used by "
                f"{found[schedule.name][1]}; names must be unique"
            )
            continue
        found[schedule.name] = (schedule, path)
    return found, problems


def load_schedules(folder: Path) -> dict[str, tuple[Schedule, Path]]:
    """Every schedule in `folder` by name; raises with every problem of every file at once."""
    found, problems = read_schedules(folder)
    if problems:
        raise DefinitionError(problems)
    return found


def find_schedule(folder: Path, name: str) -> tuple[Schedule, Path]:
    """The schedule called `name` (with did-you-mean); other files may be broken."""
    import difflib

    schedules, problems = read_schedules(folder)
    if name in schedules:
        return schedules[name]
    close = difflib.get_close_matches(name, list(schedules), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    known = ", ".join(sorted(schedules)) or "none"
    raise DefinitionError(
        [f"unknown schedule {name!r}{hint}; known in {folder}: {known}", *problems]
    )
