"""A small, bounded parser and evaluator of five-field cron expressions, for ``heartbeat``.

:func:`parse_cron` reads ``minute hour day-of-month month day-of-week`` as Vixie cron and
cronie do: ``*``, numbers, ranges ``a-b``, steps ``*/n``, ``a-b/n`` and ``a/n`` (``a`` to the
field's end), lists ``a,b``, month names ``jan``-``dec`` and day names ``sun``-``sat`` (0 and
7 are both Sunday), and the macros ``@hourly``, ``@daily`` (``@midnight``), ``@weekly``,
``@monthly`` and ``@yearly`` (``@annually``). When both day fields are restricted (neither
starts with ``*``) a day matches if *either* does, as in cron. Extensions of other crons
(``L``, ``W``, ``#``, ``?``, seconds, years) are refused with a message.

:meth:`CronSchedule.next_after` finds the first matching time after an instant, on the wall
clock of a time zone. Daylight saving time is handled as Debian's cron runs jobs, so that a
heartbeat is never expected before its job runs:

- a wall time skipped by a spring-forward change (02:30 on the night clocks go from 02:00 to
  03:00) is expected at the moment of the change (03:00 new time);
- a wall time that happens twice when clocks go back is expected once, at its first occurrence.

Every loop is bounded: an expression is at most :data:`MAX_LENGTH` characters, and a search
gives up after :data:`MAX_STEPS` steps (a satisfiable expression always matches long before).
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Final

__all__ = ["MAX_LENGTH", "MAX_STEPS", "CronSchedule", "parse_cron"]

MAX_LENGTH: Final = 256
"""Longest cron expression accepted (characters)."""
MAX_STEPS: Final = 100_000
"""Most field-skipping steps one :meth:`CronSchedule.next_after` search takes."""

_QUARTZ: Final = re.compile(r"\d*[LW]+", re.IGNORECASE)
_MACROS: Final = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTHS: Final = {
    name: number
    for number, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1
    )
}
_DAYS: Final = {
    name: number for number, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))
}


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    low: int
    high: int
    names: dict[str, int] | None = None


_FIELDS: Final = (
    _Field("minute", 0, 59),
    _Field("hour", 0, 23),
    _Field("day of month", 1, 31),
    _Field("month", 1, 12, _MONTHS),
    _Field("day of week", 0, 7, _DAYS),
)


def _number(text: str, spec: _Field) -> int:
    if "#" in text or "?" in text or _QUARTZ.fullmatch(text):
        raise ValueError(
            f"{spec.name}: {text!r} uses L, W, # or ? (Quartz cron), which cron does not have"
        )
    if spec.names is not None and text.lower() in spec.names:
        return spec.names[text.lower()]
    if not text.isdigit() or len(text) > 4:
        named = f" or a name ({', '.join(spec.names)})" if spec.names else ""
        raise ValueError(
            f"{spec.name}: {text!r} is not a number from {spec.low} to {spec.high}{named}"
        )
    value = int(text)
    if not spec.low <= value <= spec.high:
        raise ValueError(f"{spec.name}: {value} is out of range {spec.low}-{spec.high}")
    return value


def _parse_field(text: str, spec: _Field) -> frozenset[int]:
    values: set[int] = set()
    items = text.split(",")
    for item in items:
        if not item:
            raise ValueError(f"{spec.name}: empty item in {text!r}")
        base, slash, step_text = item.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or len(step_text) > 4 or int(step_text) == 0:
                raise ValueError(f"{spec.name}: step {step_text!r} must be a positive number")
            step = int(step_text)
        if base == "*":
            low, high = spec.low, spec.high
        elif "-" in base:
            first, _, last = base.partition("-")
            low, high = _number(first, spec), _number(last, spec)
            if low > high:
                raise ValueError(f"{spec.name}: range {base!r} runs backwards")
        else:
            low = _number(base, spec)
            high = spec.high if slash else low
        values.update(range(low, high + 1, step))
    if spec.names is _DAYS and 7 in values:
        values.discard(7)
        values.add(0)
    return frozenset(values)


def _longest(month: int) -> int:
    return 29 if month == 2 else calendar.monthrange(2001, month)[1]


def parse_cron(text: str) -> CronSchedule:
    """Parse a five-field cron expression or a macro (see the module docstring).

    :raises ValueError: naming the field and what is wrong with it.
    """
    if len(text) > MAX_LENGTH:
        raise ValueError(f"cron expression is longer than {MAX_LENGTH} characters")
    source = text.strip()
    expanded = _MACROS.get(source.lower(), source)
    if expanded.startswith("@"):
        raise ValueError(
            f"unknown cron macro {source!r}: use @hourly, @daily, @weekly, @monthly or @yearly"
        )
    parts = expanded.split()
    if len(parts) != 5:
        raise ValueError(
            f"cron expression {source!r} has {len(parts)} fields; use five: "
            "minute hour day-of-month month day-of-week (e.g. '30 2 * * *')"
        )
    minutes, hours, days, months, weekdays = (
        _parse_field(part, spec) for part, spec in zip(parts, _FIELDS, strict=True)
    )
    schedule = CronSchedule(
        text=source,
        minutes=minutes,
        hours=hours,
        days=days,
        months=months,
        weekdays=weekdays,
        days_star=parts[2].startswith("*"),
        weekdays_star=parts[4].startswith("*"),
    )
    if not schedule.satisfiable():
        raise ValueError(f"cron expression {source!r} never matches (no such day in those months)")
    return schedule


@dataclass(frozen=True, slots=True)
class CronSchedule:
    """A parsed cron expression: the allowed values of each field (Sunday is 0)."""

    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    days_star: bool
    weekdays_star: bool

    def satisfiable(self) -> bool:
        """Whether some date matches (``0 0 30 2 *`` never does; ``29 2`` does in leap years)."""
        if not self.days_star and not self.weekdays_star:
            return True  # either day field may match, and every weekday comes round
        if not self.days_star:  # and every day of the week: the day of month must exist
            return any(min(self.days) <= _longest(month) for month in self.months)
        return True  # a starred day field holds the 1st, and the 1st falls on every weekday

    def day_matches(self, year: int, month: int, day: int) -> bool:
        """Whether the date matches the day-of-month and day-of-week fields."""
        in_month = day in self.days
        in_week = (calendar.weekday(year, month, day) + 1) % 7 in self.weekdays
        if self.days_star or self.weekdays_star:
            return in_month and in_week
        return in_month or in_week

    def next_after(self, instant: float, zone: tzinfo) -> float:
        """The first matching time strictly after ``instant`` (Unix seconds), on the wall
        clock of ``zone``, as Unix seconds (see the module docstring for daylight saving time).

        :raises ValueError: if no match is found within :data:`MAX_STEPS` steps.
        """
        wall = datetime.fromtimestamp(instant, zone).replace(tzinfo=None, second=0, microsecond=0)
        wall += timedelta(minutes=1)
        for _ in range(MAX_STEPS):
            if wall.month not in self.months:
                year, month = (
                    (wall.year + 1, 1) if wall.month == 12 else (wall.year, wall.month + 1)
                )
                wall = datetime(year, month, 1)
            elif not self.day_matches(wall.year, wall.month, wall.day):
                wall = datetime(wall.year, wall.month, wall.day) + timedelta(days=1)
            elif wall.hour not in self.hours:
                wall = wall.replace(minute=0) + timedelta(hours=1)
            elif wall.minute not in self.minutes:
                later = [m for m in self.minutes if m > wall.minute]
                if later:
                    wall = wall.replace(minute=min(later))
                else:
                    wall = wall.replace(minute=0) + timedelta(hours=1)
            else:
                when = wall_to_instant(wall, zone)
                if when > instant:
                    return when
                wall += timedelta(minutes=1)
        raise ValueError(f"cron expression {self.text!r}: no match found after {instant}")


def wall_to_instant(wall: datetime, zone: tzinfo) -> float:
    """Unix seconds of the naive wall time ``wall`` in ``zone``: the first occurrence of a
    repeated time, the moment of the change for a skipped one."""
    first = wall.replace(tzinfo=zone, fold=0).timestamp()
    if datetime.fromtimestamp(first, zone).replace(tzinfo=None) == wall:
        return first
    # Skipped: fold=0 reads it with the offset before the change (an instant after the change),
    # fold=1 with the offset after it (an instant before). The change lies in between.
    other = wall.replace(tzinfo=zone, fold=1).timestamp()
    low, high = int(min(first, other)), int(max(first, other)) + 1
    while low < high:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, zone).replace(tzinfo=None) > wall:
            high = middle
        else:
            low = middle + 1
    return float(low)
