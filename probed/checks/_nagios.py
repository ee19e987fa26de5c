"""The Nagios plugin protocol, both ways: parse a plugin's output, format probed's own.

Pure functions, no I/O, every input bounded by its caller and every result bounded here.

Output of a plugin (the Nagios plugin API, "Plugin Output"):

    TEXT OUTPUT | OPTIONAL PERFDATA
    LONG TEXT LINE 1
    LONG TEXT LINE 2 | PERFDATA LINE 2
    PERFDATA LINE 3

The first line's text before ``|`` is the status message; long text runs until a line holding
``|``; everything after that ``|``, and every line after it, is more perfdata.

One perfdata item is ``'label'=value[UOM];[warn];[crit];[min];[max]``, items separated by
spaces. A label with spaces is quoted with ``'``; a quote inside a quoted label is written
``''``. ``value`` may be ``U`` (could not be determined). Units are normalised to base units:

- ``s``, ``ms``, ``us``: seconds;
- ``B``, ``KB``, ``MB``, ``GB``, ``TB`` (any letter case): bytes, powers of 1024 (as the
  monitoring-plugins and PNP4Nagios count them);
- ``%``: a 0..1 ratio (``80%`` is ``0.8``);
- ``c`` (a counter) and no unit: the number as it is; any other unit: the number as it is.

``warn`` and ``crit`` are Nagios ranges; only a plain number (``80``, alert above it) is kept as
a value, a range such as ``10:20`` or ``@5:`` is not (there is no one number to graph).
``min``/``max`` are numbers (a trailing copy of the value's unit is tolerated).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Final

__all__ = [
    "MAX_LABEL",
    "MAX_MESSAGE",
    "MAX_PERFDATA",
    "PerfData",
    "PerfParse",
    "PluginOutput",
    "format_perfdata",
    "parse_output",
    "parse_perfdata",
    "quote_label",
]

MAX_PERFDATA: Final = 32
"""Most perfdata items kept from one run (more are counted as dropped)."""
MAX_LABEL: Final = 64
"""Longest label kept, in characters (longer ones are cut; a cut that repeats a label is
dropped)."""
MAX_MESSAGE: Final = 300
"""Longest status message kept, in characters."""
_MAX_LONG_LINES: Final = 1000

_UNITS: Final = {"": 1.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "%": 0.01, "c": 1.0}
_BYTE_UNITS: Final = {"b": 1.0, "kb": 1024.0, "mb": 1024.0**2, "gb": 1024.0**3, "tb": 1024.0**4}
_NUMBER: Final = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d{1,3})?"
_VALUE_RE: Final = re.compile(rf"({_NUMBER})([a-zA-Z%]{{0,8}})")
_SIMPLE_LABEL_RE: Final = re.compile(r"[A-Za-z0-9_.:/@+-]+")


@dataclass(frozen=True, slots=True)
class PluginOutput:
    """A plugin's output split the Nagios way.

    :param message: the first line's text (before ``|``), stripped, cut at
        :data:`MAX_MESSAGE` characters, unprintable characters (NUL, ESC...) as spaces.
    :param long_lines: the long text lines (at most 1000).
    :param perfdata: all perfdata text, one space-joined string.
    """

    message: str
    long_lines: tuple[str, ...]
    perfdata: str


@dataclass(frozen=True, slots=True)
class PerfData:
    """One perfdata item, numbers in base units (see the module doc); ``None`` when absent.

    :param label: the label, unquoted, at most :data:`MAX_LABEL` characters.
    :param value: the value (``None`` for ``U``).
    :param uom: the unit as the plugin wrote it (``ms``, ``%``, ``MB``...).
    """

    label: str
    value: float | None
    uom: str = ""
    warn: float | None = None
    crit: float | None = None
    min: float | None = None
    max: float | None = None


@dataclass(frozen=True, slots=True)
class PerfParse:
    """What :func:`parse_perfdata` kept, and how many items it dropped or could not read."""

    items: tuple[PerfData, ...]
    dropped: int = 0
    invalid: int = 0


def parse_output(text: str) -> PluginOutput:
    """Split a plugin's standard output into message, long text and perfdata."""
    lines = text.splitlines()
    if not lines:
        return PluginOutput("", (), "")
    first, _, perf = lines[0].partition("|")
    perf_parts = [perf.strip()] if perf.strip() else []
    long_lines: list[str] = []
    rest = iter(lines[1:])
    for line in rest:
        if "|" in line:
            text_part, _, more = line.partition("|")
            if text_part.strip() and len(long_lines) < _MAX_LONG_LINES:
                long_lines.append(text_part.rstrip())
            perf_parts.append(more.strip())
            perf_parts.extend(p.strip() for p in rest)
            break
        if len(long_lines) < _MAX_LONG_LINES:
            long_lines.append(line.rstrip())
    while long_lines and not long_lines[-1].strip():
        long_lines.pop()
    message = first.strip()
    if len(message) > MAX_MESSAGE:
        message = message[: MAX_MESSAGE - 1] + "…"
    if not message.isprintable():  # NULs, escape sequences: not for logs and terminals
        message = "".join(c if c.isprintable() else " " for c in message).strip()
    return PluginOutput(message, tuple(long_lines), " ".join(p for p in perf_parts if p))


def _tokens(text: str) -> list[tuple[str, str] | None]:
    """``(label, rest)`` per item; ``None`` for text that is not an item. Linear in ``text``."""
    out: list[tuple[str, str] | None] = []
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        if text[i] == "'":
            j, label = i + 1, []
            while j < n:
                if text[j] == "'":
                    if j + 1 < n and text[j + 1] == "'":
                        label.append("'")
                        j += 2
                        continue
                    break
                label.append(text[j])
                j += 1
            if j >= n:  # unterminated: skip this word only, read on after it
                out.append(None)
                i = _skip_word(text, i + 1)
                continue
            if j + 1 >= n or text[j + 1] != "=":  # no '=' after the closing quote
                out.append(None)
                i = _skip_word(text, j + 1)
                continue
            start = j + 2
            name = "".join(label)
        else:
            j = i
            while j < n and text[j] != "=" and not text[j].isspace():
                j += 1
            if j >= n or text[j] != "=" or j == i:
                out.append(None)
                i = _skip_word(text, j)
                continue
            name, start = text[i:j], j + 1
        end = _skip_word(text, start)
        out.append((name, text[start:end]))
        i = end
    return out


def _skip_word(text: str, i: int) -> int:
    n = len(text)
    while i < n and not text[i].isspace():
        i += 1
    return i


def _factor(uom: str) -> float:
    """What one ``uom`` is in base units; an unknown unit leaves the number as it is."""
    found = _UNITS.get(uom)
    if found is None:
        found = _BYTE_UNITS.get(uom.lower(), 1.0)
    return found


def _number(text: str, factor: float) -> float | None:
    match = _VALUE_RE.fullmatch(text.strip())
    if not match:
        return None
    value = float(match.group(1)) * factor
    return value if math.isfinite(value) else None


def _item(label: str, rest: str) -> PerfData | None:
    fields = rest.split(";")
    raw = fields[0].strip()
    uom = ""
    if raw == "U":
        value: float | None = None
    else:
        match = _VALUE_RE.fullmatch(raw)
        if not match:
            return None
        uom = match.group(2)
        value = float(match.group(1))
        if not math.isfinite(value):
            return None
    factor = _factor(uom)
    extra = [f.strip() for f in fields[1:5]] + [""] * (5 - len(fields[1:5]))
    warn, crit, low, high = extra[:4]
    return PerfData(
        label=label,
        value=value * factor if value is not None else None,
        uom=uom,
        warn=_number(warn, factor),
        crit=_number(crit, factor),
        min=_number(low, factor),
        max=_number(high, factor),
    )


def parse_perfdata(
    text: str, *, max_items: int = MAX_PERFDATA, max_label: int = MAX_LABEL
) -> PerfParse:
    """Read perfdata items from ``text`` (space-separated; see the module doc).

    :param max_items: keep at most this many items; the rest are counted in ``dropped``.
    :param max_label: cut labels to this many characters.
    :return: the items in order, without empty or repeated labels (the first wins).
    """
    items: list[PerfData] = []
    seen: set[str] = set()
    dropped = invalid = 0
    for token in _tokens(text):
        if token is None:
            invalid += 1
            continue
        label, rest = token
        label = label.strip()[:max_label]
        item = _item(label, rest) if label else None
        if item is None:
            invalid += 1
        elif label in seen or len(items) >= max_items:
            dropped += 1
        else:
            seen.add(label)
            items.append(item)
    return PerfParse(tuple(items), dropped, invalid)


def quote_label(label: str) -> str:
    """``label`` as perfdata writes it: bare when simple, else in ``'`` with ``'`` doubled."""
    if _SIMPLE_LABEL_RE.fullmatch(label):
        return label
    return "'" + label.replace("'", "''") + "'"


def _num(value: float | None) -> str:
    """A number as perfdata writes it: plain digits, never an exponent."""
    if value is None:
        return ""
    if float(value).is_integer():
        return str(int(value))
    text = f"{value:.9f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def format_perfdata(
    label: str,
    value: float | None,
    uom: str = "",
    *,
    warn: float | None = None,
    crit: float | None = None,
    min: float | None = None,
    max: float | None = None,
) -> str:
    """One perfdata item: ``'label'=value[UOM];warn;crit;min;max``, trailing ``;`` dropped.

    Numbers are written in ``uom`` as given (no conversion); ``None`` is ``U`` for the value
    and an empty field otherwise. Characters perfdata cannot carry in a label (line breaks)
    become spaces.
    """
    clean = " ".join(label.split())
    fields = [
        ("U" if value is None else _num(value)) + (uom if value is not None else ""),
        _num(warn),
        _num(crit),
        _num(min),
        _num(max),
    ]
    while len(fields) > 1 and fields[-1] == "":
        fields.pop()
    return f"{quote_label(clean)}={';'.join(fields)}"
