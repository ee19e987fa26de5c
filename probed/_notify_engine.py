"""When to tell whom what: flap damping, reminders and digests, on a clock the caller passes in.

:class:`Engine` is plain synchronous policy (no I/O, no tasks, no reading of the clock):
:meth:`Engine.observe` is told every status change, :meth:`Engine.due` returns the messages
ready at a given moment and :meth:`Engine.next_deadline` says when to ask again. So tests drive
minutes of damping and hours of reminders in microseconds, and the delivery side
(:mod:`probed._notify_delivery`) stays free of policy.

- A change is *told* once the check has stayed in its new status for ``min_duration``; one
  that is undone within it (back to the status last told) is never sent, nor its undoing.
- A check starting in ``ok`` is not news; one starting in ``fail`` is.
- ``recovery`` is sent only after a told ``fail`` or ``warn``; ``unknown`` is never news.
- While a told ``fail``/``warn`` lasts, a reminder goes out every ``remind_every``.
- With ``digest_after`` set, a route collects what becomes due for ``digest_within``; that
  many or more go out as one digest message, fewer one by one.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from probed.check import Status
from probed.options import format_duration

if TYPE_CHECKING:
    from probed._notify_settings import Notifications, Route
    from probed.check import Result
    from probed.spec import CheckSpec

__all__ = ["Engine", "Event", "Message"]

_SETTLE: Final = 0
_REMIND: Final = 1
_KIND: Final = {Status.FAIL: "fail", Status.WARN: "warn", Status.OK: "recovery"}
_DOWN: Final = (Status.FAIL, Status.WARN)
MAX_DIGEST_LINES: Final = 50


@dataclass(frozen=True, slots=True)
class Event:
    """One thing worth telling about one check."""

    check: str
    kind: str  # fail, warn, recovery or reminder
    status: Status
    old: Status
    type: str
    labels: Mapping[str, str]
    message: str
    reason: str
    since: float  # wall-clock time the check entered ``status``
    down_for: float = 0.0  # seconds down (reminder, recovery)

    @property
    def base(self) -> str:
        """The route event this belongs to (a reminder belongs to its ``fail``/``warn``)."""
        return _KIND[self.status] if self.kind == "reminder" else self.kind

    def line(self) -> str:
        """One line: what happened and the check's last message."""
        what = {
            "fail": f"{self.check} is down (fail, was {self.old.label})",
            "warn": f"{self.check} is degraded (warn, was {self.old.label})",
            "recovery": f"{self.check} recovered after {_span(self.down_for)}",
            "reminder": f"{self.check} is still {self.status.label} after {_span(self.down_for)}",
        }[self.kind]
        detail = f" [{self.reason}]" if self.reason and self.kind != "recovery" else ""
        return f"{what}{detail}: {self.message}" if self.message else f"{what}{detail}"


@dataclass(frozen=True, slots=True)
class Message:
    """One notification for one route: a single event or a digest."""

    route: Route
    title: str
    body: str
    kind: str  # Apprise notify type: success, warning, failure
    events: int = 1


def _span(seconds: float) -> str:
    whole = round(seconds)
    return format_duration(whole) if whole >= 1 else "0s"


def _apprise_type(events: list[Event]) -> str:
    statuses = {e.status for e in events}
    if Status.FAIL in statuses:
        return "failure"
    return "warning" if Status.WARN in statuses else "success"


def _stamp(wall: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(wall))


def single(route: Route, event: Event) -> Message:
    """The message for one event."""
    mark = {"fail": "FAIL", "warn": "WARN", "recovery": "OK"}[event.base]
    title = f"[{mark}] {event.line().partition(':')[0]}"
    body = [event.line(), f"type: {event.type}, since {_stamp(event.since)}"]
    if event.labels:
        body.append("labels: " + ", ".join(f"{k}={v}" for k, v in sorted(event.labels.items())))
    return Message(route, title[:250], "\n".join(body), _apprise_type([event]))


def digest(route: Route, events: list[Event]) -> Message:
    """One message for many events (a mass outage)."""
    counts: dict[str, int] = {}
    for e in events:
        counts[e.kind] = counts.get(e.kind, 0) + 1
    summary = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))
    lines = [e.line() for e in events[:MAX_DIGEST_LINES]]
    if len(events) > MAX_DIGEST_LINES:
        lines.append(f"... and {len(events) - MAX_DIGEST_LINES} more")
    title = f"[probed] {len(events)} checks changed ({summary})"
    return Message(route, title, "\n".join(lines), _apprise_type(events), len(events))


class _Track:
    __slots__ = (
        "gen",
        "labels",
        "message",
        "reason",
        "since",
        "status",
        "told",
        "told_gen",
        "told_wall",
        "type",
        "wall",
    )

    def __init__(self) -> None:
        self.gen = 0
        self.told_gen = 0
        self.status = Status.OK
        self.told = Status.OK
        self.since = 0.0
        self.wall = 0.0
        self.told_wall = 0.0
        self.type = ""
        self.labels: tuple[tuple[str, str], ...] = ()
        self.message = ""
        self.reason = ""


@dataclass(slots=True)
class _Batch:
    flush_at: float
    events: list[Event] = field(default_factory=list)


class Engine:
    """The notification policy for one daemon (see the module docstring)."""

    def __init__(self, settings: Notifications, exists: Callable[[str], bool] = bool) -> None:
        self.settings = settings
        self._exists = exists
        self._tracks: dict[str, _Track] = {}
        self._timers: list[tuple[float, int, int, str, int]] = []
        self._seq = 0
        self._batches: dict[str, _Batch] = {}

    def configure(self, settings: Notifications) -> None:
        """New settings (a reload): routes gone lose their collected messages."""
        self.settings = settings
        names = {r.name for r in settings.routes}
        for gone in set(self._batches) - names:
            del self._batches[gone]

    def _token(self) -> int:
        # One sequence for every token: a track made again after being forgotten can never
        # match a timer left by the old one.
        self._seq += 1
        return self._seq

    def _push(self, when: float, what: int, name: str, token: int) -> None:
        heapq.heappush(self._timers, (when, self._token(), what, name, token))

    def observe(
        self, spec: CheckSpec, new: Status, result: Result, now: float, wall: float
    ) -> None:
        """A check's status changed to ``new`` at ``now`` (monotonic) / ``wall`` (Unix)."""
        if new is Status.UNKNOWN:
            return
        track = self._tracks.get(spec.name)
        if track is None:
            if new is Status.OK:
                return  # nothing told, nothing to tell: costs nothing per healthy check
            track = self._tracks[spec.name] = _Track()
        track.gen = self._token()
        track.status, track.since, track.wall = new, now, wall
        track.type, track.labels = spec.type, spec.labels
        track.message, track.reason = result.message, result.reason
        if new is not track.told:
            self._push(now + self.settings.min_duration, _SETTLE, spec.name, track.gen)
        elif new is Status.OK:
            del self._tracks[spec.name]  # a flap undone within the damping time: all forgotten

    def next_deadline(self) -> float | None:
        """When :meth:`due` may next have something (``None``: not until a change)."""
        times = [b.flush_at for b in self._batches.values()]
        if self._timers:
            times.append(self._timers[0][0])
        return min(times, default=None)

    def due(self, now: float, wall: float) -> list[Message]:
        """The messages to send at ``now``."""
        events: list[tuple[float, Event]] = []
        while self._timers and self._timers[0][0] <= now:
            when, _, what, name, token = heapq.heappop(self._timers)
            track = self._tracks.get(name)
            if track is None:
                continue
            if what == _SETTLE:
                if token == track.gen and track.status is not track.told:
                    events.append((when, self._tell(track, name, when, wall)))
            elif token == track.told_gen and track.told in _DOWN:
                every = self.settings.remind_every
                if every <= 0:
                    continue  # a reload turned reminders off
                if not self._exists(name):
                    del self._tracks[name]  # removed by a reload while down: no more reminders
                    continue
                if track.status is track.told:
                    events.append((when, self._event(track, name, "reminder", track.told, wall)))
                following = when + every
                if following <= now:  # after a long stall (a suspended host): one, not a burst
                    following = now + every
                self._push(following, _REMIND, name, token)
        return self._route(events, now)

    def _event(self, track: _Track, name: str, kind: str, old: Status, wall: float) -> Event:
        # Down from the told change until now (a reminder) or until the check came back.
        end = {"reminder": wall, "recovery": track.wall}.get(kind)
        down_for = max(0.0, end - track.told_wall) if end is not None else 0.0
        return Event(
            name,
            kind,
            track.status,
            old,
            track.type,
            dict(track.labels),
            track.message,
            track.reason,
            track.wall,
            down_for,
        )

    def _tell(self, track: _Track, name: str, now: float, wall: float) -> Event:
        event = self._event(track, name, _KIND[track.status], track.told, wall)
        track.told, track.told_wall = track.status, track.wall
        track.told_gen = self._token()
        if track.told is Status.OK:
            del self._tracks[name]  # all told: back to costing nothing
        elif self.settings.remind_every > 0:
            self._push(now + self.settings.remind_every, _REMIND, name, track.told_gen)
        return event

    def _route(self, events: list[tuple[float, Event]], now: float) -> list[Message]:
        out: list[Message] = []
        settings = self.settings
        for when, event in events:
            for route in settings.routes:
                if event.base not in route.events or not route.selects(event.check, event.labels):
                    continue
                if settings.digest_after <= 0:
                    out.append(single(route, event))
                    continue
                batch = self._batches.get(route.name)
                if batch is None:
                    batch = self._batches[route.name] = _Batch(when + settings.digest_within)
                batch.events.append(event)
        by_name = {r.name: r for r in settings.routes}
        for name, batch in list(self._batches.items()):
            if batch.flush_at > now:
                continue
            del self._batches[name]
            route = by_name[name]
            if len(batch.events) >= settings.digest_after:
                out.append(digest(route, batch.events))
            else:
                out.extend(single(route, e) for e in batch.events)
        return out

    def pending(self) -> int:
        """Checks with a status not yet told or told down (tests and diagnostics)."""
        return len(self._tracks)
