"""Health document formats understood by the ``json_api`` check type.

- ``health_json``: ``application/health+json`` (draft-inadarei-api-health-check): top-level
  ``status`` ``pass``/``warn``/``fail``; ``checks`` maps ``"component:measurement"`` keys to
  lists of objects with their own ``status`` (and an optional ``output`` explaining a failure).
- ``actuator``: Spring Boot Actuator ``/actuator/health``: ``UP``/``DOWN``/``OUT_OF_SERVICE``/
  ``UNKNOWN`` with nested ``components`` (Boot 2.2+) or ``details`` (Boot 2.0/2.1), recursively.
- ``plain``: ``{"status": "ok"}`` and friends.

Each recognised document yields a :class:`HealthReport`: the service's own verdict mapped to a
:class:`~probed.check.Status`, and its components, each in one of the states ``ok``, ``warn``,
``fail``, ``unknown``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final, Literal

from probed.check import Status
from probed.checks._json_path import describe_value, type_name

__all__ = [
    "COMPONENT_STATES",
    "Component",
    "Format",
    "HealthFormatError",
    "HealthReport",
    "detect_format",
    "entries_components",
    "read_health",
    "state_of",
]

Format = Literal["auto", "health_json", "actuator", "plain", "none"]
ComponentState = Literal["ok", "warn", "fail", "unknown"]

COMPONENT_STATES: Final[tuple[ComponentState, ...]] = ("ok", "warn", "fail", "unknown")

# Words services use for their state, compared case-insensitively. ``green``/``yellow``/``red``
# is Elasticsearch's cluster health; ``success`` keeps JSend-style APIs from failing.
_OK_WORDS: Final = frozenset(
    {"ok", "up", "pass", "passed", "passing", "healthy", "success", "green"}
)
_WARN_WORDS: Final = frozenset({"warn", "warning", "degraded", "yellow"})
_FAIL_WORDS: Final = frozenset(
    {"fail", "failed", "failing", "down", "error", "critical", "unhealthy", "out_of_service", "red"}
)
_ACTUATOR_WORDS: Final = frozenset({"UP", "DOWN", "OUT_OF_SERVICE", "UNKNOWN"})
_HEALTH_JSON_WORDS: Final = frozenset({"pass", "warn", "fail"})
_STATE_RANK: Final = {"ok": 0, "warn": 1, "unknown": 2, "fail": 3}
_MAX_DEPTH: Final = 16
_FORMAT_NAMES: Final = {
    "health_json": "application/health+json",
    "actuator": "Spring Boot Actuator",
    "plain": "plain status",
}


class HealthFormatError(ValueError):
    """The document does not have the shape the configured ``format`` requires."""


@dataclass(frozen=True, slots=True)
class Component:
    """One component of the watched service: its name, state and raw status text."""

    name: str
    state: ComponentState
    raw: str
    output: str = ""


@dataclass(frozen=True, slots=True)
class HealthReport:
    """What a health document says: the format, its verdict and its components."""

    format: str
    status: Status
    raw: str
    components: tuple[Component, ...]

    @property
    def label(self) -> str:
        """Human name of the format, for messages."""
        return _FORMAT_NAMES.get(self.format, self.format)


def state_of(value: Any) -> ComponentState:
    """Map a status value (string or boolean) to ``ok``/``warn``/``fail``/``unknown``."""
    if isinstance(value, bool):
        return "ok" if value else "fail"
    if not isinstance(value, str):
        return "unknown"
    word = value.strip().lower()
    if word in _OK_WORDS:
        return "ok"
    if word in _WARN_WORDS:
        return "warn"
    if word in _FAIL_WORDS:
        return "fail"
    return "unknown"


def _raw(value: Any) -> str:
    return value if isinstance(value, str) else describe_value(value, 30)


def detect_format(document: Any, content_type: str) -> Format:
    """Which health format ``document`` is in (``none`` when it is not a health document)."""
    media = content_type.split(";")[0].strip().lower()
    if media == "application/health+json":
        return "health_json"
    if "spring-boot.actuator" in media:
        return "actuator"
    if not isinstance(document, dict) or not isinstance(document.get("status"), str):
        return "none"
    status = document["status"]
    if status in _ACTUATOR_WORDS or (
        isinstance(document.get("components"), dict) and status.upper() in _ACTUATOR_WORDS
    ):
        return "actuator"
    if status in _HEALTH_JSON_WORDS and isinstance(document.get("checks"), dict):
        return "health_json"
    return "plain"


def _verdict(fmt: str, raw: str, state: ComponentState) -> Status:
    if state == "ok":
        return Status.OK
    if state == "warn":
        return Status.WARN
    if state == "unknown" and fmt == "actuator" and raw.strip().upper() == "UNKNOWN":
        # Spring answers UNKNOWN with HTTP 200: the service cannot tell, so warn, not fail.
        return Status.WARN
    return Status.FAIL


def read_health(document: Any, fmt: Format) -> HealthReport:
    """Read the verdict and components of a document in format ``fmt`` (not auto/none).

    :raises HealthFormatError: when the document has no string ``status`` to read.
    """
    if not isinstance(document, dict) or "status" not in document:
        got = (
            "an object without a 'status' key"
            if isinstance(document, dict)
            else f"a {type_name(document)}"
        )
        raise HealthFormatError(
            f"expected a {_FORMAT_NAMES.get(fmt, fmt)} document with a 'status', got {got}"
        )
    status = document["status"]
    if not isinstance(status, str | bool):
        raise HealthFormatError(
            f"$.status is a {type_name(status)} ({describe_value(status, 30)}), "
            "expected a status string"
        )
    raw = _raw(status)
    components: tuple[Component, ...] = ()
    if fmt == "health_json":
        checks = document.get("checks")
        if isinstance(checks, dict):
            components = tuple(_health_json_components(checks))
    elif fmt == "actuator":
        components = tuple(_actuator_components(document, "", 0))
    return HealthReport(fmt, _verdict(fmt, raw, state_of(status)), raw, components)


def _worst(states: list[ComponentState]) -> ComponentState:
    return max(states, key=_STATE_RANK.__getitem__) if states else "unknown"


def _health_json_components(checks: dict[str, Any]) -> Iterator[Component]:
    # One series per "component:measurement" key, in the worst state of its entries: entries
    # are often per instance (componentId), which would make the label set churn.
    for key, entries in checks.items():
        items = entries if isinstance(entries, list) else [entries]
        states: list[ComponentState] = []
        raws: list[str] = []
        outputs: list[str] = []
        for item in items:
            value = item.get("status") if isinstance(item, dict) else None
            state = state_of(value)
            states.append(state)
            raws.append(_raw(value) if value is not None else "missing")
            output = item.get("output") if isinstance(item, dict) else None
            if state != "ok" and isinstance(output, str) and output:
                outputs.append(output)
        worst = _worst(states)
        raw = next((r for r, s in zip(raws, states, strict=True) if s == worst), "missing")
        yield Component(str(key), worst, raw, "; ".join(outputs))


def _actuator_components(node: dict[str, Any], prefix: str, depth: int) -> Iterator[Component]:
    if depth >= _MAX_DEPTH:
        return
    children = node.get("components")
    if not isinstance(children, dict):
        # Boot 2.0/2.1 nest components under "details"; other details are plain data.
        details = node.get("details")
        children = details if isinstance(details, dict) else {}
    for key, child in children.items():
        if not isinstance(child, dict) or "status" not in child:
            continue
        name = f"{prefix}/{key}" if prefix else str(key)
        status = child["status"]
        yield Component(name, state_of(status), _raw(status))
        yield from _actuator_components(child, name, depth + 1)


def entries_components(container: Any) -> Iterator[Component]:
    """Components from a ``component_path`` target: an object whose values are status
    strings/booleans or objects with a ``status``, or a list of objects with ``name`` and
    ``status``."""
    if isinstance(container, dict):
        items: list[tuple[str, Any]] = list(container.items())
    elif isinstance(container, list):
        items = [
            (str(item.get("name", index)), item) if isinstance(item, dict) else (str(index), item)
            for index, item in enumerate(container)
        ]
    else:
        return
    for key, value in items:
        status = value.get("status") if isinstance(value, dict) else value
        output = value.get("output") if isinstance(value, dict) else None
        state = state_of(status)
        yield Component(
            str(key),
            state,
            _raw(status) if status is not None else "missing",
            output if isinstance(output, str) and state != "ok" else "",
        )
