"""The ``json_api`` check type: an ``http`` check that also reads the JSON body.

Everything the ``http`` check type does (phases, status codes, TLS, redirects, body and header
regexes: :class:`~probed.checks._http.HttpProbe`) happens first; then the body is decoded and
judged:

- the service's own health verdict, for the formats in :mod:`probed.checks._json_health`
  (``application/health+json``, Spring Boot Actuator, plain ``{"status": "ok"}``), with each
  component of the service exported as ``probed_component_up{component}`` and the state set
  ``probed_component_status{component,status}``;
- the configured :class:`~probed.checks._json_assert.Assertion` list (paths are described in
  :mod:`probed.checks._json_path`), each failing or, with ``warn_only``, warning.

The status is the worst of the HTTP result, the health verdict and the assertions; the reason
is that of the worst part (``unhealthy`` when the service says so itself).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, ClassVar, Final

from pydantic import Field, field_validator

from probed import hookimpl
from probed.check import Check, CheckOptions, MetricDef, Reason, Result, Sample, Status
from probed.checks._http import HTTP_METRICS, HttpOptions, HttpProbe
from probed.checks._httpclient import HttpResponse
from probed.checks._json_assert import Assertion
from probed.checks._json_health import (
    COMPONENT_STATES,
    Component,
    Format,
    HealthFormatError,
    HealthReport,
    detect_format,
    entries_components,
    read_health,
)
from probed.checks._json_path import JsonPath, PathMissingError, describe_value, type_name
from probed.checks._reasons import UNHEALTHY
from probed.threads import run_blocking

__all__ = ["JSON_API_METRICS", "UNHEALTHY", "JsonApiCheck", "JsonApiOptions"]


ACCEPT: Final = "application/json, application/health+json;q=0.9, */*;q=0.5"
# Decoding a large body takes tens of milliseconds: do that in a thread, not in the loop.
_THREAD_DECODE_BYTES: Final = 64 * 1024
_MAX_LABEL: Final = 128
_LISTED: Final = 5

# Order among parts of equal severity: the service's own word explains a 503 best.
_RANK_UNHEALTHY: Final = 0
_RANK_HTTP: Final = 1
_RANK_FORMAT: Final = 2
_RANK_ASSERTION: Final = 3


class JsonApiOptions(HttpOptions):
    """Options of the ``json_api`` check type: every ``http`` option plus the JSON ones."""

    format: Format = Field(
        default="auto",
        description="Health format of the body: auto (by content type and shape), health_json, "
        "actuator, plain, or none (assertions only).",
    )
    assertions: list[Assertion] = Field(
        default_factory=list,
        description="Assertions on the body: {path, op, value, warn_only}.",
    )
    component_path: str | None = Field(
        default=None,
        description="Path of an object (or list) holding the service's components, for bodies "
        "whose format does not define them; replaces the format's own components.",
    )
    max_components: int = Field(
        default=50,
        ge=0,
        le=10_000,
        description="Components exported as series at most (protects label cardinality).",
    )

    @field_validator("component_path")
    @classmethod
    def _component_path(cls, value: str | None) -> str | None:
        if value is not None:
            JsonPath.parse(value)
        return value


JSON_API_METRICS: Final = (
    *HTTP_METRICS,
    MetricDef(
        "probed_component_up",
        "1 if the component of the watched service reports pass or warn, else 0.",
        labels=("component",),
    ),
    MetricDef(
        "probed_component_status",
        "State set of each component of the watched service: 1 for its current status "
        "among ok, warn, fail, unknown.",
        labels=("component", "status"),
    ),
)


@dataclasses.dataclass(frozen=True, slots=True)
class _Part:
    """One non-ok finding: severity, tie-break rank, reason, sentence."""

    status: Status
    rank: int
    reason: str
    detail: str


class JsonApiCheck(HttpProbe):
    """Request a URL, then judge its JSON body: health format verdict and assertions."""

    type_name: ClassVar[str] = "json_api"
    options_model: ClassVar[type[CheckOptions]] = JsonApiOptions
    metrics: ClassVar[tuple[MetricDef, ...]] = JSON_API_METRICS
    description: ClassVar[str] = (
        "HTTP JSON API: health formats (health+json, Actuator, plain) and path assertions"
    )

    def __init__(self, spec: Any) -> None:
        super().__init__(spec)
        options = spec.options
        assert isinstance(options, JsonApiOptions)
        self.json_options = options
        self.component_path = (
            JsonPath.parse(options.component_path) if options.component_path else None
        )
        if not any(name.lower() == "accept" for name, _ in self.request.headers):
            self.request = dataclasses.replace(
                self.request, headers=(*self.request.headers, ("Accept", ACCEPT))
            )

    async def evaluate(self, response: HttpResponse) -> Result:
        """Judge the response as ``http`` does, then judge its JSON body."""
        base = self.judge(response)
        if len(response.body) > _THREAD_DECODE_BYTES:
            document, error = await run_blocking(_decode, response.body)
        else:
            document, error = _decode(response.body)
        return self._judge_json(response, base, document, error)

    # -- judging the body

    def _judge_json(
        self, response: HttpResponse, base: Result, document: Any, error: str | None
    ) -> Result:
        http_detail = base.message.removeprefix(f"{self.prefix}: ")
        parts: list[_Part] = []
        if base.status is not Status.OK:
            parts.append(_Part(base.status, _RANK_HTTP, base.reason, http_detail))
        if error is not None:
            if parts:  # a 502 page from a proxy: the status code says it all
                return base
            ctype = response.headers.get("content-type") or "no content-type"
            return Result.fail(
                Reason.PROTOCOL,
                f"{self.prefix}: {error} ({ctype}, {response.body_size} bytes)",
                phases=base.phases,
                values=base.values,
            )
        report, components = self._health(document, response, parts)
        notes: list[str] = []
        samples = self._samples(components, notes)
        self._assertions(document, parts)
        if not parts:
            summary = [http_detail]
            if report is not None:
                summary.append(_health_summary(report, components))
            elif components:
                summary.append(_components_summary(components))
            if self.json_options.assertions:
                summary.append(f"{len(self.json_options.assertions)} assertion(s) hold")
            message = "; ".join(summary + notes)
            return Result(
                Status.OK,
                "",
                f"{self.prefix}: {message}",
                phases=base.phases,
                values=base.values,
                samples=samples,
            )
        parts.sort(key=lambda part: (-part.status, part.rank))
        worst = parts[0]
        message = "; ".join([part.detail for part in parts] + notes)
        return Result(
            worst.status,
            worst.reason,
            f"{self.prefix}: {message}",
            phases=base.phases,
            values=base.values,
            samples=samples,
        )

    def _health(
        self, document: Any, response: HttpResponse, parts: list[_Part]
    ) -> tuple[HealthReport | None, tuple[Component, ...]]:
        fmt = self.json_options.format
        if fmt == "auto":
            fmt = detect_format(document, response.headers.get("content-type") or "")
        report: HealthReport | None = None
        if fmt != "none":
            try:
                report = read_health(document, fmt)
            except HealthFormatError as exc:
                parts.append(_Part(Status.FAIL, _RANK_FORMAT, Reason.PROTOCOL, str(exc)))
        components = report.components if report is not None else ()
        if self.component_path is not None:
            components = ()
            where = self.component_path.display
            try:
                container = self.component_path.resolve(document)
            except PathMissingError as exc:
                parts.append(
                    _Part(
                        Status.FAIL,
                        _RANK_ASSERTION,
                        Reason.ASSERTION,
                        f"component_path {where} is missing ({exc.detail})",
                    )
                )
            else:
                if isinstance(container, dict | list):
                    components = tuple(entries_components(container))
                else:
                    parts.append(
                        _Part(
                            Status.FAIL,
                            _RANK_ASSERTION,
                            Reason.ASSERTION,
                            f"component_path {where} is a {type_name(container)} "
                            f"({describe_value(container, 30)}), expected an object or list",
                        )
                    )
        if report is not None and report.status is not Status.OK:
            parts.append(
                _Part(
                    report.status, _RANK_UNHEALTHY, UNHEALTHY, _health_summary(report, components)
                )
            )
        return report, components

    def _samples(self, components: tuple[Component, ...], notes: list[str]) -> tuple[Sample, ...]:
        cap = self.json_options.max_components
        samples: list[Sample] = []
        seen: set[str] = set()
        for component in components:
            name = component.name[:_MAX_LABEL]
            if name in seen:
                continue
            if len(seen) >= cap:
                notes.append(
                    f"only {cap} of {len(components)} components exported as series "
                    f"(max_components={cap})"
                )
                break
            seen.add(name)
            up = 1.0 if component.state in ("ok", "warn") else 0.0
            samples.append(Sample("probed_component_up", up, (name,)))
            samples.extend(
                Sample(
                    "probed_component_status",
                    1.0 if component.state == state else 0.0,
                    (name, state),
                )
                for state in COMPONENT_STATES
            )
        return tuple(samples)

    def _assertions(self, document: Any, parts: list[_Part]) -> None:
        failed: list[tuple[Status, str]] = []
        for assertion in self.json_options.assertions:
            detail = assertion.check(document)
            if detail is not None:
                status = Status.WARN if assertion.warn_only else Status.FAIL
                failed.append((status, detail + (" (warn_only)" if assertion.warn_only else "")))
        if not failed:
            return
        # The worst failure leads; the count of the others keeps the message short.
        failed.sort(key=lambda item: -item[0])
        status, detail = failed[0]
        if len(failed) > 1:
            detail += f" (and {len(failed) - 1} more failed assertion(s))"
        parts.append(_Part(status, _RANK_ASSERTION, Reason.ASSERTION, detail))


def _decode(body: bytes) -> tuple[Any, str | None]:
    """(document, None) or (None, why the body is not JSON)."""
    try:
        return json.loads(body), None
    except json.JSONDecodeError as exc:
        return None, f"response is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
    except UnicodeDecodeError as exc:
        return None, f"response is not JSON: invalid UTF-8 at byte {exc.start}"
    except RecursionError:
        return None, "response is not JSON we can read: nested too deeply"


def _components_summary(components: tuple[Component, ...]) -> str:
    bad = [c for c in components if c.state != "ok"]
    if not bad:
        return f"{len(components)} component(s) ok"
    listed = ", ".join(_describe_component(c) for c in bad[:_LISTED])
    more = f" and {len(bad) - _LISTED} more" if len(bad) > _LISTED else ""
    return f"{len(bad)} of {len(components)} component(s) not ok: {listed}{more}"


def _describe_component(component: Component) -> str:
    text = f"{component.name} {component.raw}"
    if component.output:
        output = component.output
        text += f" ({output if len(output) <= 80 else output[:79] + '…'})"
    return text


def _health_summary(report: HealthReport, components: tuple[Component, ...]) -> str:
    text = f"service reports {report.raw} ({report.label})"
    if components:
        text += ", " + _components_summary(components)
    return text


@hookimpl
def probed_register_check_types() -> list[type[Check[Any]]]:
    """Register the ``json_api`` check type."""
    return [JsonApiCheck]
