"""The ``heartbeat`` check type: passive, a job pings probed and the check says if it is late.

Semantics are healthchecks.io's. A job pings ``/ping/<check>`` when it succeeds (the route
and the registry of pings are :mod:`probed.heartbeats`); optionally ``/ping/<check>/start``
when it begins, and ``/ping/<check>/fail`` or ``/ping/<check>/<exit-code>`` when it ends.
Each run of the check compares the registry's clock with what the pings said:

- the latest finishing ping was a failure: ``fail``, reason ``job_failed``, until the next
  success ping;
- started and not finished within ``grace``: ``fail``, reason ``late``;
- no success ping by the time the next one was due plus ``grace``: ``fail``, reason ``late``.
  The next one is due ``period`` after the last, or at the first ``cron`` time after it;
- before the first ping: ``ok`` ("waiting for the first ping") until the first one is due
  (counted from when probed started watching) plus ``grace``, then ``late`` as above. Not
  ``unknown``: that counts as a failure, and would mark every heartbeat down after each
  restart of probed (and, with ``readiness``, take probed out of the Service the pings come
  through).

The message carries the body of the latest ping (capped at ``max_body_size``), the run time
from ``/start`` and when the next ping is due.
"""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime, tzinfo
from typing import Any, ClassVar, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import ConfigDict, Field, SecretStr, field_validator, model_validator

from probed import hookimpl
from probed._yaml import did_you_mean
from probed.check import Check, CheckOptions, MetricDef, Reason, Result, Status
from probed.checks._cron import CronSchedule, parse_cron
from probed.heartbeats import HEARTBEATS, MAX_BODY_SIZE, Beat
from probed.options import Duration, Size, format_duration, format_size

__all__ = ["JOB_FAILED", "HeartbeatCheck", "HeartbeatOptions", "verdict"]

JOB_FAILED: Final = "job_failed"
"""Reason: the job's latest finishing ping said it failed (``/fail`` or a non-zero code)."""
MIN_TOKEN_LENGTH: Final = 16

_LAST_PING: Final = "probed_heartbeat_last_ping_timestamp_seconds"
_LAST_START: Final = "probed_heartbeat_last_start_timestamp_seconds"
_RUN_TIME: Final = "probed_heartbeat_last_run_duration_seconds"
_DEADLINE: Final = "probed_heartbeat_deadline_timestamp_seconds"


class HeartbeatOptions(CheckOptions):
    """Options of the ``heartbeat`` check type."""

    # Validation errors must not echo the token they reject.
    model_config = ConfigDict(hide_input_in_errors=True)

    token: SecretStr = Field(
        description="secret every ping must carry (Authorization: Bearer, or ?token=); at "
        f"least {MIN_TOKEN_LENGTH} characters, e.g. from ${{file:/run/secrets/...}}"
    )
    period: Duration | None = Field(
        None, description="expected time between success pings (set period or cron)"
    )
    cron: str | None = Field(
        None,
        description="five-field cron expression of when the job runs, e.g. '30 2 * * *' "
        "(set period or cron)",
    )
    timezone: str = Field("UTC", description="time zone of cron (IANA name, e.g. Europe/Berlin)")
    grace: Duration = Field(
        3600.0,
        description="how late a ping may be, and how long a run may take after /start, "
        "before the check fails with reason late",
    )
    max_body_size: Size = Field(
        1024,
        gt=0,
        le=MAX_BODY_SIZE,
        description="most bytes of a ping's body kept as the message (the rest is dropped)",
    )

    @field_validator("token")
    @classmethod
    def _long_enough(cls, token: SecretStr) -> SecretStr:
        value = token.get_secret_value()
        if len(value) < MIN_TOKEN_LENGTH or value != value.strip():
            raise ValueError(
                f"token must be at least {MIN_TOKEN_LENGTH} characters without surrounding "
                "spaces; make one with: openssl rand -hex 16"
            )
        return token

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None:
            parse_cron(value)
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        # Validation runs off the event loop, so reading the zone file here is fine.
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            known = available_timezones()
            if not known:
                raise ValueError(
                    f"cannot read time zone {value!r}: this system has no time zone database; "
                    "install it (apt-get install tzdata, or pip install tzdata)"
                ) from None
            raise ValueError(
                f"unknown time zone {value!r}{did_you_mean(value, known)}; use an IANA name "
                "such as Europe/Berlin"
            ) from None
        return value

    @model_validator(mode="after")
    def _one_schedule(self) -> HeartbeatOptions:
        if (self.period is None) == (self.cron is None):
            raise ValueError(
                "set either period (e.g. period: 1h) or cron (e.g. cron: '30 2 * * *'), not "
                + ("both" if self.period is not None else "neither")
            )
        if self.period is not None and self.timezone != "UTC":
            raise ValueError("timezone applies to cron only; remove it or use cron")
        return self


def _at(instant: float, zone: tzinfo) -> str:
    return datetime.fromtimestamp(instant, zone).strftime("%Y-%m-%d %H:%M:%S %Z")


def _ago(seconds: float) -> str:
    return "just now" if seconds < 1 else f"{format_duration(math.floor(seconds))} ago"


def _duration(seconds: float) -> str:
    return format_duration(round(seconds, 3)) if seconds > 0 else "0s"


class HeartbeatCheck(Check[HeartbeatOptions]):
    """Fail when a job's pings are late or say it failed."""

    type_name: ClassVar[str] = "heartbeat"
    options_model: ClassVar[type[CheckOptions]] = HeartbeatOptions
    metrics: ClassVar[tuple[MetricDef, ...]] = (
        MetricDef(_LAST_PING, "Unix time of the job's last success ping."),
        MetricDef(_LAST_START, "Unix time of the job's last /start ping."),
        MetricDef(_RUN_TIME, "Seconds from the job's last /start to the ping that ended the run."),
        MetricDef(_DEADLINE, "Unix time after which the check fails with reason late."),
    )
    description: ClassVar[str] = "passive: a job pings /ping/<check>; fails when late or failed"

    def __init__(self, spec: Any) -> None:
        super().__init__(spec)
        options = self.options
        self.schedule = parse_cron(options.cron) if options.cron is not None else None
        self.zone: tzinfo = UTC
        self.beat = HEARTBEATS.attach(spec.name)
        self._attached = True

    async def setup(self) -> None:
        """Load the time zone off the event loop (it reads a file)."""
        if self.schedule is not None and self.options.timezone != "UTC":
            self.zone = await asyncio.to_thread(ZoneInfo, self.options.timezone)

    async def run(self) -> Result:
        """Judge the pings received so far against the schedule."""
        return verdict(
            self.beat,
            HEARTBEATS.clock(),
            self.options,
            self.schedule,
            self.zone,
        )

    async def close(self) -> None:
        """Let go of the pings (kept while a changed instance of the check is attached)."""
        if self._attached:
            self._attached = False
            HEARTBEATS.detach(self.spec.name)


def _due_after(
    instant: float, options: HeartbeatOptions, schedule: CronSchedule | None, zone: tzinfo
) -> float:
    if schedule is not None:
        return schedule.next_after(instant, zone)
    assert options.period is not None  # the options require period or cron
    return instant + options.period


def verdict(
    beat: Beat,
    now: float,
    options: HeartbeatOptions,
    schedule: CronSchedule | None,
    zone: tzinfo,
) -> Result:
    """The result for ``beat`` at ``now`` (pure: the check's whole judgement)."""
    grace = options.grace
    values: dict[str, float] = {}
    if beat.last_ping is not None:
        values[_LAST_PING] = beat.last_ping
    if beat.last_start is not None:
        values[_LAST_START] = beat.last_start
    if beat.run_time is not None:
        values[_RUN_TIME] = beat.run_time
    body = ""
    if beat.body:
        cut = f" (cut at {format_size(options.max_body_size)})" if beat.truncated else ""
        body = f"; body{cut}: {beat.body}"
    took = f", run took {_duration(beat.run_time)}" if beat.run_time is not None else ""

    if beat.failed and beat.last_fail is not None:
        code = f" with exit code {beat.exit_code}" if beat.exit_code is not None else ""
        return Result.fail(
            JOB_FAILED,
            f"job reported failure{code} at {_at(beat.last_fail, zone)} "
            f"({_ago(now - beat.last_fail)}){took}{body}",
            values=values,
        )
    if beat.running_since is not None:
        deadline = beat.running_since + grace
        values[_DEADLINE] = deadline
        started = (
            f"job started at {_at(beat.running_since, zone)} ({_ago(now - beat.running_since)})"
        )
        if now > deadline:
            return Result.fail(
                Reason.LATE,
                f"{started} and has not reported success or failure within the grace of "
                f"{format_duration(grace)} (late since {_at(deadline, zone)}){body}",
                values=values,
            )
        return Result(
            Status.OK,
            "",
            f"{started}; running, late after {_at(deadline, zone)}{body}",
            values=values,
        )

    since = beat.last_ping if beat.last_ping is not None else beat.created
    due = _due_after(since, options, schedule, zone)
    deadline = due + grace
    values[_DEADLINE] = deadline
    if beat.last_ping is None:
        watching = f"probed started watching at {_at(beat.created, zone)}"
        if now > deadline:
            return Result.fail(
                Reason.LATE,
                f"no ping since {watching}; the first was due at {_at(due, zone)} and is late "
                f"since {_at(deadline, zone)} (grace {format_duration(grace)})",
                values=values,
            )
        return Result(
            Status.OK,
            "",
            f"waiting for the first ping ({watching}); due at {_at(due, zone)}, late after "
            f"{_at(deadline, zone)}",
            values=values,
        )
    last = f"last ping at {_at(beat.last_ping, zone)} ({_ago(now - beat.last_ping)}){took}"
    if now > deadline:
        return Result.fail(
            Reason.LATE,
            f"{last}; the next was due at {_at(due, zone)} and is late since "
            f"{_at(deadline, zone)} (grace {format_duration(grace)}){body}",
            values=values,
        )
    if now > due:
        when = (
            f"overdue since {_at(due, zone)}, within the grace period until {_at(deadline, zone)}"
        )
    else:
        when = f"next due at {_at(due, zone)}, late after {_at(deadline, zone)}"
    return Result(Status.OK, "", f"{last}; {when}{body}", values=values)


@hookimpl
def probed_register_check_types() -> list[type[Check[Any]]]:
    """Register the ``heartbeat`` check type."""
    return [HeartbeatCheck]
