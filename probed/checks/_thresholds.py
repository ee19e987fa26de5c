"""Warn/fail thresholds shared by the host check types (``disk``, ``cpu``, ``memory``).

Every thresholded option comes as a pair, ``warn_<measure>`` and ``fail_<measure>``; either may
be ``null`` to switch that level off. :class:`Limit` pairs one measured value with its two
limits, :func:`evaluate` turns a set of limits into a status and one human sentence such as
``/var: 93.1% used, above the fail threshold 90%``, and :func:`check_order` is the validator
that keeps ``warn`` on the safe side of ``fail``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Annotated, Final

from pydantic import BaseModel, ByteSize, Field

from probed.check import Status

__all__ = [
    "Bytes",
    "Limit",
    "Percent",
    "bytes_limit",
    "check_order",
    "evaluate",
    "format_bytes",
    "format_percent",
    "percent_limit",
]

Percent = Annotated[float, Field(ge=0, le=100)]
"""A percentage option, 0 to 100 (metrics carry the same value as a 0..1 ratio)."""

Bytes = Annotated[ByteSize, Field(ge=0)]
"""A size option: a number of bytes or a string such as ``500MB``, ``10GiB``."""

_BYTE_UNITS: Final = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


def format_bytes(value: float) -> str:
    """Human size with binary units: ``0 B``, ``512 B``, ``1.5 GiB``."""
    size = float(value)
    for unit in _BYTE_UNITS:
        if abs(size) < 1024 or unit == _BYTE_UNITS[-1]:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def format_percent(value: float) -> str:
    """A measured percentage with one decimal: ``93.1%``."""
    return f"{value:.1f}%"


def _format_limit_percent(value: float) -> str:
    return f"{value:g}%"


@dataclass(frozen=True, slots=True)
class Limit:
    """One measured value and the warn/fail limits it is held to.

    :param what: what the value is, placed after it in messages (``used``, ``free``).
    :param value: the measured value, in the same unit as the limits.
    :param warn: the warn limit, or ``None`` when that level is off.
    :param fail: the fail limit, or ``None`` when that level is off.
    :param above: ``True`` when exceeding a limit is bad (use), ``False`` when falling below it
        is bad (free space, available memory).
    :param fmt: formats the measured value.
    :param fmt_limit: formats the limits; defaults to ``fmt``.
    """

    what: str
    value: float
    warn: float | None
    fail: float | None
    above: bool = True
    fmt: Callable[[float], str] = format_percent
    fmt_limit: Callable[[float], str] | None = None

    def breached(self, limit: float | None) -> bool:
        """Whether the value is past ``limit`` (a limit of ``None`` is never breached)."""
        if limit is None:
            return False
        return self.value > limit if self.above else self.value < limit

    def status(self) -> Status:
        """``fail``, ``warn`` or ``ok`` for this value alone."""
        if self.breached(self.fail):
            return Status.FAIL
        if self.breached(self.warn):
            return Status.WARN
        return Status.OK

    def describe(self, subject: str) -> str:
        """The sentence for a breached value: ``/var: 93.1% used, above the fail threshold 90%``."""
        status = self.status()
        limit = self.fail if status is Status.FAIL else self.warn
        assert limit is not None, "describe() is only called for a breached limit"
        fmt_limit = self.fmt_limit or self.fmt
        side = "above" if self.above else "below"
        return (
            f"{subject}: {self.fmt(self.value)} {self.what}, {side} the {status.label} "
            f"threshold {fmt_limit(limit)}"
        )


def percent_limit(what: str, ratio: float, warn: float | None, fail: float | None) -> Limit:
    """A :class:`Limit` for a 0..1 ``ratio`` held to percentage limits (``above`` is bad)."""
    return Limit(
        what, ratio * 100.0, warn, fail, fmt=format_percent, fmt_limit=_format_limit_percent
    )


def bytes_limit(what: str, value: float, warn: float | None, fail: float | None) -> Limit:
    """A :class:`Limit` for a byte count that must stay *above* its limits (free, available)."""
    return Limit(what, value, warn, fail, above=False, fmt=format_bytes)


def evaluate(subject: str, limits: Iterable[Limit]) -> tuple[Status, str]:
    """Fold limits into the worst status and a message naming each breach, worst first.

    :param subject: what is measured, the start of each sentence (``/var``, ``memory``).
    :param limits: the values and their limits.
    :return: ``(Status.OK, "")`` when nothing is breached, else the worst status and the
        breaches joined by ``"; "``.
    """
    breaches = [(limit.status(), limit) for limit in limits]
    breaches = [(status, limit) for status, limit in breaches if status is not Status.OK]
    if not breaches:
        return Status.OK, ""
    breaches.sort(key=lambda pair: pair[0], reverse=True)
    worst = breaches[0][0]
    return worst, "; ".join(limit.describe(subject) for _, limit in breaches)


def check_order(options: BaseModel, name: str, *, above: bool = True) -> None:
    """Validate that ``warn_<name>`` is reached before ``fail_<name>`` when both are set.

    Only limits the user wrote are compared: a default warn limit that lies past a fail limit
    the user lowered is harmless, because :meth:`Limit.status` looks at fail first.

    :param options: the options model holding ``warn_<name>`` and ``fail_<name>``.
    :param name: the measure, as in the option names (``used_percent``).
    :param above: ``True`` when exceeding the limit is bad, so warn must not exceed fail.
    :raises ValueError: with a message naming both options and values.
    """
    warn_field, fail_field = f"warn_{name}", f"fail_{name}"
    if not {warn_field, fail_field} <= options.model_fields_set:
        return
    warn, fail = getattr(options, warn_field), getattr(options, fail_field)
    if warn is None or fail is None:
        return
    if above and warn > fail:
        raise ValueError(
            f"{warn_field} ({warn:g}) must not be above {fail_field} ({fail:g}): "
            "the warning should come first"
        )
    if not above and warn < fail:
        raise ValueError(
            f"{warn_field} ({warn:g}) must not be below {fail_field} ({fail:g}): "
            "the warning should come first"
        )
