"""Warn/fail threshold pairs: one ordering rule, one evaluation, one message style.

A thresholded measure has two options, a warn limit and a fail limit (``warn_used_percent`` /
``fail_used_percent``); either may be ``null`` to switch that level off. A pair points one way:
``above=True`` when going over a limit is bad (use, latency, loss), ``above=False`` when
falling under it is bad (free space, days before a certificate expires). Comparisons are strict:
a value equal to a limit has not crossed it.

- :class:`WarnFail`: the pair, and :meth:`WarnFail.status` for a measured value.
- :func:`check_order`: the validator that keeps the warning first, for an options model.
- :class:`Limit` and :func:`evaluate`: measured values held to their pairs, folded into the worst
  status and one message such as ``/var: 93.1% used, above the fail threshold 90%``.

Every built-in check type with thresholds uses these; plugins import them from ``probed``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

from pydantic import BaseModel

from probed.check import Reason, Status
from probed.options import format_number, format_size, formatter_for

__all__ = ["OK", "Limit", "Verdict", "WarnFail", "check_order", "evaluate", "threshold_phrase"]


@dataclass(frozen=True, slots=True)
class WarnFail:
    """A warn limit and a fail limit for one measure (``None`` switches a level off).

    :param above: ``True`` when exceeding a limit is bad, ``False`` when falling below it is.
    """

    warn: float | None = None
    fail: float | None = None
    above: bool = True

    def crossed(self, value: float) -> tuple[Status, float] | None:
        """The worst level ``value`` has crossed and that level's limit, or ``None``.

        The fail limit is looked at first, so a warn limit lying past the fail limit (a
        default the user did not lower with it) never hides a failure.
        """
        for status, limit in ((Status.FAIL, self.fail), (Status.WARN, self.warn)):
            if limit is not None and (value > limit if self.above else value < limit):
                return status, limit
        return None

    def status(self, value: float) -> Status:
        """``fail``, ``warn`` or ``ok`` for ``value``."""
        crossed = self.crossed(value)
        return Status.OK if crossed is None else crossed[0]

    def order_problem(
        self, warn_name: str, fail_name: str, fmt: Callable[[float], str] = format_number
    ) -> str | None:
        """Why the warning would never come first, in the one wording, or ``None``."""
        warn, fail = self.warn, self.fail
        if warn is None or fail is None or (warn <= fail if self.above else warn >= fail):
            return None
        side, fix = ("above", "lower") if self.above else ("below", "raise")
        undo = "raise" if self.above else "lower"
        return (
            f"{warn_name} ({fmt(warn)}) must not be {side} {fail_name} ({fmt(fail)}): the warning "
            f"must come first; {fix} {warn_name} or {undo} {fail_name}"
        )


def _field_formatter(model: type[BaseModel], name: str) -> Callable[[float], str]:
    info = model.model_fields[name]
    return formatter_for(info.annotation, info.metadata)


def check_order(
    options: BaseModel,
    measure: str,
    *,
    above: bool = True,
    names: tuple[str, str] | None = None,
) -> None:
    """Validate that ``warn_<measure>`` is reached before ``fail_<measure>``.

    The one ordering rule of every warn/fail pair: when the file sets both limits, the warn
    limit must not lie past the fail limit. Defaults are not compared: a default warn limit
    past a fail limit the user lowered is harmless, because the fail limit is looked at first.
    Call it from a ``model_validator(mode="after")``.

    :param measure: the measure as in the option names (``used_percent``).
    :param above: ``True`` when exceeding the limits is bad.
    :param names: the two option names when they are not ``warn_<measure>``/``fail_<measure>``.
    :raises ValueError: naming both options and values (shown like the option type shows them).
    """
    warn_name, fail_name = names or (f"warn_{measure}", f"fail_{measure}")
    if not {warn_name, fail_name} <= options.model_fields_set:
        return
    pair = WarnFail(getattr(options, warn_name), getattr(options, fail_name), above)
    problem = pair.order_problem(warn_name, fail_name, _field_formatter(type(options), warn_name))
    if problem is not None:
        raise ValueError(problem)


def threshold_phrase(status: Status, limit: str, *, above: bool = True) -> str:
    """The one way a crossed limit is worded: ``above the fail threshold 90%``."""
    return f"{'above' if above else 'below'} the {status.label} threshold {limit}"


def _format_limit_percent(value: float) -> str:
    return f"{value:g}%"


@dataclass(frozen=True, slots=True)
class Limit:
    """One measured value held to a warn/fail pair.

    :param label: the value as the message shows it (``/var: 93.1% used``).
    :param value: the measured value, in the unit of the limits.
    :param pair: the limits.
    :param fmt_limit: shows a limit in the message.
    :param reason: the result reason when this limit is the worst one crossed.
    :param names: the warn and fail option names, to name the crossed one in the message.
    """

    label: str
    value: float
    pair: WarnFail
    fmt_limit: Callable[[float], str] = format_number
    reason: str = Reason.THRESHOLD
    names: tuple[str, str] | None = None

    @classmethod
    def percent(
        cls, subject: str, what: str, ratio: float, warn: float | None, fail: float | None
    ) -> Limit:
        """A 0..1 ``ratio`` held to percentage limits that must not be exceeded."""
        return cls(
            f"{subject}: {ratio * 100:.1f}% {what}",
            ratio * 100.0,
            WarnFail(warn, fail),
            _format_limit_percent,
        )

    @classmethod
    def size(
        cls,
        subject: str,
        what: str,
        value: float,
        warn: float | None,
        fail: float | None,
        *,
        above: bool = False,
    ) -> Limit:
        """A byte count held to size limits; by default it must stay *above* them (free)."""
        return cls(
            f"{subject}: {format_size(value)} {what}",
            value,
            WarnFail(warn, fail, above),
            format_size,
        )

    def status(self) -> Status:
        """``fail``, ``warn`` or ``ok`` for this value alone."""
        return self.pair.status(self.value)

    def message(self) -> str:
        """``<label>, above the <level> threshold <limit>`` (``""`` when nothing is crossed)."""
        crossed = self.pair.crossed(self.value)
        if crossed is None:
            return ""
        status, limit = crossed
        shown = self.fmt_limit(limit)
        if self.names is not None:
            shown += f" ({self.names[0] if status is Status.WARN else self.names[1]})"
        return f"{self.label}, {threshold_phrase(status, shown, above=self.pair.above)}"


@dataclass(frozen=True, slots=True)
class Verdict:
    """What :func:`evaluate` found: the worst status, its reason and the message."""

    status: Status
    reason: str
    message: str


OK: Final = Verdict(Status.OK, "", "")


def evaluate(limits: Iterable[Limit]) -> Verdict:
    """Fold limits into the worst status and a message naming every crossed limit, worst first.

    :return: :data:`OK` when nothing is crossed; else the worst status, the reason of the first
        worst limit and the crossed limits' messages joined by ``"; "``.
    """
    crossed = [(limit.status(), limit) for limit in limits]
    crossed = [(status, limit) for status, limit in crossed if status is not Status.OK]
    if not crossed:
        return OK
    crossed.sort(key=lambda pair: pair[0], reverse=True)  # stable: same level keeps its order
    worst, first = crossed[0]
    return Verdict(worst, first.reason, "; ".join(limit.message() for _, limit in crossed))
