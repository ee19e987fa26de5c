"""Option types for check types: what a value in a checks file may look like, parsed once.

Every built-in check type and every plugin uses these, so one spelling works everywhere:

- :data:`Duration`: ``500ms``, ``10s``, ``1m30s``, ``2h``, ``1d`` or a number of seconds.
- :data:`Size`: a number of bytes, or a number with a unit (see :func:`parse_size`).
- :data:`Percent`: a number from 0 to 100.
- :data:`Regex`: a regular expression that must compile.
- :data:`AbsolutePath`: a filesystem path (or glob) starting with ``/``.

Values are parsed when the configuration is validated, never while a check runs. The types
carry their own JSON Schema, so ``probed schema`` describes them as people write them. Warn/fail
threshold pairs built from these types live in :mod:`probed.thresholds`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Annotated, Any, Final, get_args

from pydantic import AfterValidator, BeforeValidator, Field, WithJsonSchema

from probed.redact import redact_text

__all__ = [
    "MAX_DURATION",
    "MIN_DURATION",
    "SIZE_PATTERN",
    "SIZE_UNITS_HELP",
    "AbsolutePath",
    "Duration",
    "Percent",
    "Regex",
    "Size",
    "format_duration",
    "format_number",
    "format_size",
    "formatter_for",
    "parse_duration",
    "parse_size",
]


@dataclass(frozen=True, slots=True)
class _Shown:
    """Annotation marker: how messages show a value of this option type."""

    fmt: Callable[[float], str]


def format_number(value: float) -> str:
    """A number for a message: whole numbers exact (``2000000000``), fractions up to 4 places."""
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.4f}".rstrip("0").rstrip(".")


def formatter_for(annotation: Any, metadata: Iterable[Any] = ()) -> Callable[[float], str]:
    """How messages show values of an option's type (``Duration`` as ``1m30s``, ...).

    :param annotation: the field's type; ``Optional`` and ``Annotated`` are looked through.
    :param metadata: the field's own metadata (pydantic keeps a bare ``Annotated`` type's
        markers there).
    :return: the option type's formatter, else :func:`format_number`.
    """
    for arg in (*metadata, *get_args(annotation)):
        if isinstance(arg, _Shown):
            return arg.fmt
        if get_args(arg):
            found = formatter_for(arg)
            if found is not format_number:
                return found
    return format_number


# -- durations --------------------------------------------------------------------------------

_DURATION_UNITS: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION_PART: Final = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_DURATION_SCHEMA: Final[dict[str, Any]] = {
    "anyOf": [
        {"type": "string", "pattern": r"^\s*([0-9]+(\.[0-9]+)?(ms|s|m|h|d))+\s*$"},
        {"type": "number", "exclusiveMinimum": 0, "maximum": 3650 * 86400},
    ],
    "description": "a duration such as 500ms, 10s, 1m30s or 2h (a bare number is seconds)",
}


MIN_DURATION: Final = 1e-6
"""Shortest duration accepted anywhere (one microsecond); check intervals and timeouts have
their own, higher minimums (see :mod:`probed.common`)."""
MAX_DURATION: Final = 3650 * 86400.0
"""Longest duration accepted anywhere (3650d, about ten years)."""


def parse_duration(value: Any) -> float:
    """Return seconds for ``500ms``/``10s``/``1m30s``/``2h``/``1d`` or a bare number of seconds.

    The result is finite and between :data:`MIN_DURATION` and :data:`MAX_DURATION`.

    :raises ValueError: with a message showing the accepted forms (never the whole value,
        which may be megabytes long).
    """
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 500ms, 10s or 1m30s")
    if isinstance(value, int):
        # float() of a 400-digit integer raises OverflowError; anything that long is too long.
        seconds = float(value) if abs(value) < 10**30 else math.inf
    elif isinstance(value, float):
        seconds = value
    elif isinstance(value, str):
        text = value.strip()
        pos, seconds = 0, 0.0
        for match in _DURATION_PART.finditer(text):
            if match.start() != pos:
                break
            seconds += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
            pos = match.end()
        if pos != len(text) or not text:
            raise ValueError(
                f"invalid duration {_shorten(value)!r}: use forms like 500ms, 10s, 1m30s, 2h"
            )
    else:
        raise ValueError("expected a duration such as 500ms, 10s or 1m30s")
    if not math.isfinite(seconds) and not isinstance(value, int | str):
        raise ValueError(f"duration must be finite, got {value!r}")
    if seconds <= 0:
        raise ValueError(f"duration must be positive, got {_shorten(value)!r}")
    if seconds > MAX_DURATION:
        raise ValueError(
            f"duration {_shorten(value)!r} is too long: at most 3650d (about ten years)"
        )
    if seconds < MIN_DURATION:
        raise ValueError(f"duration {_shorten(value)!r} is too short: at least 1 microsecond")
    return seconds


def _shorten(value: Any) -> Any:
    """``value`` for a message: a long text or number is cut (``'1000...000s'``)."""
    text = value if isinstance(value, str) else repr(value)
    if len(text) <= 40:
        return value
    text = redact_text(text)  # masked before cutting: a cut URL password no longer looks like one
    return text if len(text) <= 40 else f"{text[:20]}...{text[-10:]}"


def format_duration(seconds: float) -> str:
    """Format seconds compactly (``1m30s``, ``500ms``) for messages."""
    if not math.isfinite(seconds):
        return str(seconds)
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    whole = int(seconds)
    if whole != seconds:
        return f"{seconds!r}s"  # repr round-trips through parse_duration exactly
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [
        f"{hours}h" if hours else "",
        f"{minutes}m" if minutes else "",
        f"{secs}s" if secs else "",
    ]
    return "".join(parts)


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    WithJsonSchema(_DURATION_SCHEMA),
    _Shown(format_duration),
]
"""A duration option: accepts ``10s`` style strings or seconds, holds seconds (a float)."""


# -- sizes ------------------------------------------------------------------------------------

_SIZE_FACTORS: Final = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "p": 1000**5,
    "pb": 1000**5,
    "ki": 1024,
    "kib": 1024,
    "mi": 1024**2,
    "mib": 1024**2,
    "gi": 1024**3,
    "gib": 1024**3,
    "ti": 1024**4,
    "tib": 1024**4,
    "pi": 1024**5,
    "pib": 1024**5,
}
_SIZE_RE: Final = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-zA-Z]*)\s*")
SIZE_UNITS_HELP: Final = (
    "a number of bytes, or a number with a unit: B, kB, MB, GB, TB, PB (powers of 1000) or "
    "KiB, MiB, GiB, TiB, PiB (powers of 1024), e.g. 512MB or 1.5GiB; units ignore case and "
    "may drop the B (10M, 512Mi)"
)
SIZE_PATTERN: Final = r"^\s*([0-9]+(\.[0-9]*)?|\.[0-9]+)\s*([kKmMgGtTpP]([iI]?[bB]?)|[bB])?\s*$"
"""The JSON Schema ``pattern`` of a size written as a string (what :func:`parse_size` reads)."""
_SIZE_SCHEMA: Final[dict[str, Any]] = {
    "anyOf": [{"type": "integer", "minimum": 0}, {"type": "string", "pattern": SIZE_PATTERN}],
    "description": SIZE_UNITS_HELP,
}
_SIZE_UNITS_SHOWN: Final = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def parse_size(value: Any) -> int:
    """Bytes from a number or a string with a unit: ``65536``, ``64KiB``, ``10MB``, ``1.5GiB``.

    The grammar, the same for every option typed :data:`Size`:

    - a bare number (an integer, or a string of digits) is a number of bytes;
    - ``B``; ``kB``, ``MB``, ``GB``, ``TB``, ``PB`` are powers of 1000; ``KiB``, ``MiB``,
      ``GiB``, ``TiB``, ``PiB`` are powers of 1024;
    - units ignore case (``10mb`` is ``10MB``) and the trailing ``B`` may be left out
      (``10M`` is ``10MB``, ``512Mi`` is ``512MiB``, as in Kubernetes);
    - a fraction is allowed before a unit (``1.5GiB``) and rounded down to whole bytes; spaces
      around the number and unit are ignored.

    :raises ValueError: naming the value and every accepted unit.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a size: {SIZE_UNITS_HELP}")
    if isinstance(value, int):
        number, factor = float(value), 1
    elif isinstance(value, float) and value.is_integer():
        number, factor = value, 1
    elif isinstance(value, str) and (match := _SIZE_RE.fullmatch(value)):
        unit = match.group(2).lower()
        if unit not in _SIZE_FACTORS:
            raise ValueError(
                f"invalid size {value!r}: unknown unit {match.group(2)!r}; use {SIZE_UNITS_HELP}"
            )
        number, factor = float(match.group(1)), _SIZE_FACTORS[unit]
        if factor == 1 and not number.is_integer():
            raise ValueError(f"invalid size {value!r}: a number of bytes must be whole")
    else:
        raise ValueError(f"invalid size {value!r}: use {SIZE_UNITS_HELP}")
    if number < 0:
        raise ValueError(f"invalid size {value!r}: a size cannot be negative")
    return int(number * factor)


def format_size(value: float) -> str:
    """A byte count for people, in binary units: ``0 B``, ``512 B``, ``1.5 GiB``."""
    size = float(value)
    for unit in _SIZE_UNITS_SHOWN:
        if abs(size) < 1024 or unit == _SIZE_UNITS_SHOWN[-1]:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


Size = Annotated[
    int,
    BeforeValidator(parse_size),
    WithJsonSchema(_SIZE_SCHEMA),
    _Shown(format_size),
]
"""A size option, held in bytes (an int): ``65536``, ``64KiB``, ``10MB``, ``1.5GiB``."""


# -- other option types ----------------------------------------------------------------------

Percent = Annotated[float, Field(ge=0, le=100)]
"""A percentage option, 0 to 100 (metrics carry the same value as a 0..1 ratio)."""


def _valid_regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"invalid regular expression {value!r}: {exc}") from None
    return value


Regex = Annotated[str, AfterValidator(_valid_regex)]
"""An option holding a regular expression, rejected at validation time if it does not compile."""


def _absolute_path(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError(
            f"path must be absolute (start with /), got {value!r}: the daemon's working "
            "directory is not a stable reference"
        )
    return value


AbsolutePath = Annotated[str, AfterValidator(_absolute_path)]
"""An option holding an absolute filesystem path (or glob): relative ones are rejected."""


# -- what help(Regex) shows ---------------------------------------------------------------------
# An Annotated alias has no docstring of its own (help() would print typing.Annotated's), so
# each gets one here; tests/test_plugins_docs.py checks every public name has one.

_DOCS: Final = (
    (
        Duration,
        "Option type for a duration: YAML takes ``500ms``, ``10s``, ``1m30s``, ``2h``, ``1d`` or "
        "a number of seconds; the field holds seconds (a float), between 1 microsecond and 10 "
        "years. ``format_duration(self.options.x)`` prints it back. Example:\n\n"
        "    class MyOptions(CheckOptions):\n"
        '        max_age: Duration = Field(3600.0, description="oldest acceptable age")',
    ),
    (
        Size,
        "Option type for a size: YAML takes bytes (``65536``) or a number with a unit (``64KiB``, "
        "``10MB``, ``1.5GiB``); the field holds bytes (an int). ``format_size`` prints it back. "
        "Example: ``min_size: Size = 1``.",
    ),
    (
        Percent,
        "Option type for a percentage: a number from 0 to 100 (a float); anything outside is a "
        "validation error. Example: ``warn_used: Percent | None = None``.",
    ),
    (
        Regex,
        "Option type for a regular expression: a string that must compile with :func:`re.compile` "
        "(a bad pattern is a validation error naming the option, before any run). The field "
        "holds the pattern text; compile it once in ``__init__`` or ``setup``. Example: "
        "``expect: Regex | None = None``.",
    ),
    (
        AbsolutePath,
        "Option type for a filesystem path or glob that must start with ``/`` (the daemon's "
        "working directory is not a stable reference). The field holds the string. Example: "
        "``path: AbsolutePath``.",
    ),
)
for _alias, _text in _DOCS:
    setattr(_alias, "__doc__", _text)  # noqa: B010 (an Annotated alias, not a class)
