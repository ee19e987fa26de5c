"""The cron parser of the heartbeat check (probed/checks/_cron.py): syntax, errors, matching,
and time zones across daylight saving time changes."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from probed.checks._cron import MAX_LENGTH, parse_cron

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def _at(zone: ZoneInfo | type[UTC], *fields: int) -> float:
    return datetime(*fields, tzinfo=zone).timestamp()  # type: ignore[arg-type, misc]


def _times(expression: str, start: float, zone: ZoneInfo, count: int) -> list[str]:
    schedule = parse_cron(expression)
    out, instant = [], start
    for _ in range(count):
        instant = schedule.next_after(instant, zone)
        out.append(datetime.fromtimestamp(instant, zone).isoformat())
    return out


def test_fields_accept_stars_ranges_steps_lists_and_names() -> None:
    schedule = parse_cron("*/20 9-17/4 1,15 jan-mar,dec MON-fri")
    assert schedule.minutes == {0, 20, 40}
    assert schedule.hours == {9, 13, 17}
    assert schedule.days == {1, 15}
    assert schedule.months == {1, 2, 3, 12}
    assert schedule.weekdays == {1, 2, 3, 4, 5}


def test_seven_is_sunday_and_a_slash_after_a_number_runs_to_the_end_of_the_field() -> None:
    assert parse_cron("0 0 * * 7").weekdays == {0}
    assert parse_cron("5/20 * * * *").minutes == {5, 25, 45}


@pytest.mark.parametrize(
    ("macro", "same_as"),
    [
        ("@hourly", "0 * * * *"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@weekly", "0 0 * * 0"),
        ("@monthly", "0 0 1 * *"),
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
    ],
)
def test_macros_mean_their_five_field_form(macro: str, same_as: str) -> None:
    a, b = parse_cron(macro), parse_cron(same_as)
    assert (a.minutes, a.hours, a.days, a.months, a.weekdays) == (
        b.minutes,
        b.hours,
        b.days,
        b.months,
        b.weekdays,
    )


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("* * * *", "has 4 fields; use five"),
        ("0 0 * * * 2026", "has 6 fields"),
        ("60 * * * *", "minute: 60 is out of range 0-59"),
        ("0 24 * * *", "hour: 24 is out of range 0-23"),
        ("0 0 0 * *", "day of month: 0 is out of range 1-31"),
        ("0 0 * 13 *", "month: 13 is out of range 1-12"),
        ("0 0 * * 8", "day of week: 8 is out of range 0-7"),
        ("0 0 * foo *", "month: 'foo' is not a number from 1 to 12 or a name (jan,"),
        ("*/0 * * * *", "minute: step '0' must be a positive number"),
        ("5-1 * * * *", "minute: range '5-1' runs backwards"),
        ("1,,2 * * * *", "minute: empty item"),
        ("0 0 L * *", "uses L, W, # or ? (Quartz cron)"),
        ("0 0 15W * *", "uses L, W, # or ?"),
        ("0 0 * * 1#2", "uses L, W, # or ?"),
        ("0 0 ? * *", "uses L, W, # or ?"),
        ("@reboot", "unknown cron macro '@reboot': use @hourly"),
        ("0 0 30 2 *", "never matches"),
        ("0 0 31 4,6 *", "never matches"),
        ("9" * 5000, f"longer than {MAX_LENGTH} characters"),
    ],
)
def test_bad_expressions_are_refused_naming_the_field(expression: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_cron(expression)


def test_february_29th_matches_in_leap_years_only_skipping_2100() -> None:
    assert _times("0 0 29 2 *", _at(UTC, 2097, 1, 1), ZoneInfo("UTC"), 2) == [
        "2104-02-29T00:00:00+00:00",
        "2108-02-29T00:00:00+00:00",
    ]


def test_both_day_fields_restricted_match_either_as_cron_does() -> None:
    # 1 December 2026 is a Tuesday: the 1st and 15th, and every Friday.
    assert _times("0 12 1,15 * fri", _at(UTC, 2026, 11, 30), ZoneInfo("UTC"), 4) == [
        "2026-12-01T12:00:00+00:00",
        "2026-12-04T12:00:00+00:00",
        "2026-12-11T12:00:00+00:00",
        "2026-12-15T12:00:00+00:00",
    ]


def test_a_starred_day_field_makes_the_day_fields_match_both() -> None:
    # */10 starts with *, so it is not "either": the 1st, 11th, 21st or 31st AND a Monday.
    times = _times("0 0 */10 * mon", _at(UTC, 2026, 1, 1), ZoneInfo("UTC"), 5)
    for stamp in times:
        when = datetime.fromisoformat(stamp)
        assert when.day in (1, 11, 21, 31) and when.weekday() == 0, stamp
    assert times[0] == "2026-05-11T00:00:00+00:00"


def test_next_time_is_strictly_after_the_instant_and_on_the_zones_wall_clock() -> None:
    exactly = _at(BERLIN, 2026, 12, 1, 2, 30)
    assert _times("30 2 * * *", exactly, BERLIN, 1) == ["2026-12-02T02:30:00+01:00"]
    assert _times("30 2 * * *", exactly - 1, BERLIN, 1) == ["2026-12-01T02:30:00+01:00"]
    assert _times("0 9 * * mon-fri", _at(NEW_YORK, 2026, 12, 4, 10), NEW_YORK, 1) == [
        "2026-12-07T09:00:00-05:00"
    ]


def test_a_time_skipped_by_spring_forward_is_expected_at_the_change() -> None:
    # Europe/Berlin, 29 March 2026: 02:00 CET becomes 03:00 CEST; 02:30 does not exist.
    assert _times("30 2 * * *", _at(BERLIN, 2026, 3, 28, 12), BERLIN, 3) == [
        "2026-03-29T03:00:00+02:00",
        "2026-03-30T02:30:00+02:00",
        "2026-03-31T02:30:00+02:00",
    ]
    # Every quarter of an hour: the four skipped ones collapse into the moment of the change.
    assert _times("*/15 * * * *", _at(BERLIN, 2026, 3, 29, 1, 40), BERLIN, 3) == [
        "2026-03-29T01:45:00+01:00",
        "2026-03-29T03:00:00+02:00",
        "2026-03-29T03:15:00+02:00",
    ]


def test_a_time_repeated_by_fall_back_is_expected_once_at_its_first_occurrence() -> None:
    # Europe/Berlin, 25 October 2026: 03:00 CEST becomes 02:00 CET; 02:30 happens twice.
    assert _times("30 2 * * *", _at(BERLIN, 2026, 10, 24, 12), BERLIN, 2) == [
        "2026-10-25T02:30:00+02:00",
        "2026-10-26T02:30:00+01:00",
    ]
    # After the first 02:45 the next expected quarter is 03:00 CET, 75 minutes later.
    assert _times("*/15 * * * *", _at(BERLIN, 2026, 10, 25, 2, 40), BERLIN, 2) == [
        "2026-10-25T02:45:00+02:00",
        "2026-10-25T03:00:00+01:00",
    ]


def test_the_united_states_change_on_their_own_date() -> None:
    # America/New_York springs forward on 8 March 2026 at 02:00.
    assert _times("30 2 * * *", _at(NEW_YORK, 2026, 3, 7, 12), NEW_YORK, 2) == [
        "2026-03-08T03:00:00-04:00",
        "2026-03-09T02:30:00-04:00",
    ]
