"""``notifications:`` in ``probed.yaml``: :class:`Notifications` and :class:`Route` (as held) and
:class:`NotificationsFile` (as written, validated with located errors by :mod:`probed.settings`).

Apprise URLs carry tokens, so they are held out of every ``repr`` and never quoted in an error:
a problem with one names its route and its position (``routes.0.urls.1``), never its text.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    StrictBool,
    StrictInt,
    model_validator,
)

from probed.options import Duration, parse_duration

__all__ = ["EVENTS", "Notifications", "NotificationsFile", "Route"]

EVENTS: Final = ("fail", "warn", "recovery")
"""What a route can be told: a check going to ``fail``, to ``warn``, and back to ``ok``."""

MAX_ROUTES: Final = 100
MAX_URLS: Final = 20
_ROUTE_NAME: Final = re.compile(r"[a-z0-9][a-z0-9_.-]{0,62}")
_SCHEME: Final = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]{0,31}://")


@dataclass(frozen=True, slots=True)
class Route:
    """Where notifications go and for which checks.

    :param name: shown in logs and metrics (``route`` label) instead of the URLs.
    :param urls: Apprise URLs (secret: never shown).
    :param checks: check name patterns (``*``, ``?``); empty: every check.
    :param labels: label values a check must all have; empty: any.
    :param events: which changes are sent (``fail``, ``warn``, ``recovery``).
    """

    name: str
    urls: tuple[str, ...] = field(default=(), repr=False)
    checks: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    events: frozenset[str] = frozenset({"fail", "recovery"})

    def selects(self, name: str, labels: Mapping[str, str]) -> bool:
        """Whether a check with this name and labels is this route's business."""
        if self.checks and not any(fnmatch.fnmatchcase(name, p) for p in self.checks):
            return False
        return all(labels.get(k) == v for k, v in self.labels.items())


@dataclass(frozen=True, slots=True)
class Notifications:
    """Direct notifications through Apprise (:mod:`probed.notifications`).

    :param enabled: off: nothing is tracked or sent.
    :param routes: the destinations; none: the feature is inactive (and Apprise not imported).
    :param min_duration: seconds a check must stay in its new status before that is sent
        (flap damping); a check back to the told status within it sends nothing.
    :param remind_every: seconds between reminders while a check stays down (0: none).
    :param digest_after: this many messages for one route within ``digest_within`` are sent as
        one digest (0: never).
    :param digest_within: how long a route collects messages before sending them (when
        ``digest_after`` is set).
    :param retries: attempts after the first failed delivery, with doubling ``backoff``.
    :param backoff: seconds before the first retry.
    :param timeout: seconds one delivery attempt may take.
    :param queue_size: messages waiting for delivery (and retries); more are dropped, counted.
    """

    enabled: bool = True
    routes: tuple[Route, ...] = ()
    min_duration: float = 0.0
    remind_every: float = 0.0
    digest_after: int = 5
    digest_within: float = 10.0
    retries: int = 3
    backoff: float = 5.0
    timeout: float = 10.0
    queue_size: int = 1000

    @property
    def active(self) -> bool:
        """Whether anything is to be sent at all."""
        return self.enabled and bool(self.routes)


def _zero_or_duration(value: Any) -> float:
    if (value == 0 and not isinstance(value, bool)) or (
        isinstance(value, str) and value.strip() in ("0", "0s")
    ):
        return 0.0
    return parse_duration(value)


def _route_name(value: str) -> str:
    if not _ROUTE_NAME.fullmatch(value):
        raise ValueError(
            f"{value[:64]!r} is not a route name: lower-case letters, digits, '_', '.', '-'"
        )
    return value


def _one_or_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


def _url(value: SecretStr) -> SecretStr:
    text = value.get_secret_value().strip()
    if not _SCHEME.match(text):
        # Never quote the value: it may hold a token.
        raise ValueError("not an Apprise URL: expected SCHEME://..., such as slack://...")
    from probed._notify_apprise import check_url  # imports Apprise: only with a route

    check_url(text)
    return SecretStr(text)


ZeroOrDuration = Annotated[float, BeforeValidator(_zero_or_duration)]
Url = Annotated[SecretStr, AfterValidator(_url)]


class RouteFile(BaseModel):
    """One ``routes:`` entry as written."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, AfterValidator(_route_name)]
    urls: Annotated[
        list[Url], BeforeValidator(_one_or_list), Field(min_length=1, max_length=MAX_URLS)
    ]
    checks: Annotated[list[str], BeforeValidator(_one_or_list), Field(max_length=1000)] = []
    labels: dict[str, str] = {}
    events: Annotated[list[Literal["fail", "warn", "recovery"]], BeforeValidator(_one_or_list)] = [
        "fail",
        "recovery",
    ]

    def route(self) -> Route:
        return Route(
            name=self.name,
            urls=tuple(u.get_secret_value() for u in self.urls),
            checks=tuple(self.checks),
            labels=dict(self.labels),
            events=frozenset(self.events),
        )


class NotificationsFile(BaseModel):
    """``notifications:`` as written; a key not given keeps :class:`Notifications`' default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: StrictBool | None = None
    routes: Annotated[list[RouteFile], Field(max_length=MAX_ROUTES)] | None = None
    min_duration: ZeroOrDuration | None = None
    remind_every: ZeroOrDuration | None = None
    digest_after: Annotated[StrictInt, Field(ge=0, le=100_000)] | None = None
    digest_within: Duration | None = None
    retries: Annotated[StrictInt, Field(ge=0, le=20)] | None = None
    backoff: Duration | None = None
    timeout: Duration | None = None
    queue_size: Annotated[StrictInt, Field(ge=1, le=100_000)] | None = None

    @model_validator(mode="after")
    def _unique_names(self) -> NotificationsFile:
        names = [r.name for r in self.routes or ()]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"route names must be unique: {', '.join(twice)} given twice")
        return self

    def settings(self) -> Notifications:
        """The notification settings: the keys given over the defaults."""
        given: dict[str, Any] = {
            k: getattr(self, k)
            for k in self.model_fields_set
            if getattr(self, k) is not None and k != "routes"
        }
        if self.routes is not None:
            given["routes"] = tuple(r.route() for r in self.routes)
        return Notifications(**given)
