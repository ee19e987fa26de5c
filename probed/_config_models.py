"""Private helpers of :mod:`probed.config`: pydantic models, error wording and JSON Schema.

The models validate the common keys of a check, a ``defaults:`` block and ``probed.yaml``;
:func:`pydantic_problems` turns pydantic errors into ``(loc, message)`` pairs worded for people
(with "did you mean" hints and never the input value) and :func:`located` gives them their
``FILE:LINE``; :func:`merge_defaults` applies a ``defaults:`` block; :func:`check_file_schema`
describes a checks file for editors.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Any, Final, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictStr,
    ValidationError,
    field_validator,
)
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from probed._durations import Duration, format_duration, parse_duration
from probed._yaml import DocPath, did_you_mean, format_path, line_at
from probed.errors import ConfigError
from probed.plugins import CheckTypeInfo
from probed.redact import hide
from probed.settings import CheckDefaults

COMMON_KEYS: Final = (
    "name",
    "type",
    "interval",
    "timeout",
    "readiness",
    "failure_threshold",
    "success_threshold",
    "labels",
    "description",
)
"""Keys every check has; any other key is a type-specific option."""

RESERVED_LABELS: Final = frozenset(
    {"check", "type", "status", "reason", "result", "phase", "le", "quantile", "field", "stat"}
    | {"component", "window", "job", "instance"}
)
"""Label names probed or Prometheus use themselves; a check's labels may not take them."""

NAME_RE: Final = re.compile(r"[a-z0-9][a-z0-9_.-]*")
LABEL_RE: Final = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

# -- pydantic models for the common keys, file defaults and probed.yaml -----------------------


def _no_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("expected a whole number, not true/false")
    return value


def non_negative_duration(value: Any) -> float:
    """Like :func:`parse_duration`, but ``0`` is allowed (for ``startup_spread``)."""
    if value == 0 and not isinstance(value, bool):
        return 0.0
    if isinstance(value, str) and value.strip() in ("0", "0s", "0ms"):
        return 0.0
    return parse_duration(value)


PositiveInt = Annotated[int, BeforeValidator(_no_bool), Field(ge=1)]
Labels = dict[str, StrictStr]
NonNegativeDuration = Annotated[float, BeforeValidator(non_negative_duration)]


class Common(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str | None = None
    type: str | None = None
    interval: Duration | None = None
    timeout: Duration | None = None
    readiness: bool | None = None
    failure_threshold: PositiveInt | None = None
    success_threshold: PositiveInt | None = None
    labels: Labels | None = None
    description: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None and not NAME_RE.fullmatch(value):
            raise ValueError(
                f"invalid check name {value!r}: use lower-case letters, digits, '_', '.' and "
                "'-', starting with a letter or digit"
            )
        return value


class Defaults(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    interval: Duration | None = None
    timeout: Duration | None = None
    readiness: bool | None = None
    failure_threshold: PositiveInt | None = None
    success_threshold: PositiveInt | None = None
    labels: Labels | None = None


def _str_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


StrList = Annotated[list[str], BeforeValidator(_str_list)]


class SettingsFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    listen: str | None = None
    checks_dirs: StrList | None = None
    plugins_dirs: StrList | None = None
    log_format: Literal["json", "text"] | None = None
    log_level: str | None = None
    disabled_plugins: StrList | None = None
    max_concurrency: PositiveInt | None = None
    startup_spread: NonNegativeDuration | None = None
    history: PositiveInt | None = None
    hook_timeout: Duration | None = None
    watch: bool | None = None
    watch_interval: Duration | None = None
    defaults: Defaults | None = None
    plugins: dict[str, dict[str, Any] | None] | None = None
    checks: list[Any] | None = None

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(
                f"expected HOST:PORT such as 127.0.0.1:9333 or [::1]:9333, got {value!r}"
            )
        del host
        return value

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        if value.upper() not in LOG_LEVELS:
            raise ValueError(f"unknown log level {value!r}; use one of {', '.join(LOG_LEVELS)}")
        return value.upper()


# -- error helpers -----------------------------------------------------------------------------


def _model_keys(model: type[BaseModel], loc: Sequence[Any]) -> list[str]:
    """Keys accepted at ``loc`` inside ``model`` (for "did you mean" on nested unknown keys)."""
    annotations: list[Any] = [model]
    for part in loc:
        following: list[Any] = []
        for annotation in annotations:
            found = False
            for sub in _models_in(annotation):
                for name, info in sub.model_fields.items():
                    if part in (name, info.alias):
                        following.append(info.annotation)
                        found = True
            if not found:  # a list index or dict key: look inside the container's types
                following.extend(getattr(annotation, "__args__", ()))
        annotations = following
    keys: list[str] = []
    for annotation in annotations:
        for sub in _models_in(annotation):
            for name, info in sub.model_fields.items():
                keys.append(info.alias or name)
    return keys


def _models_in(annotation: Any, depth: int = 0) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if depth > 4:
        return []
    out: list[type[BaseModel]] = []
    for arg in getattr(annotation, "__args__", ()):
        out.extend(_models_in(arg, depth + 1))
    return out


def pydantic_problems(
    exc: ValidationError, model: type[BaseModel], extra_keys: Iterable[str] = ()
) -> list[tuple[DocPath, str]]:
    """``(loc, message)`` per pydantic error, messages built from ``msg`` only (no input)."""
    out: list[tuple[DocPath, str]] = []
    for err in exc.errors(include_url=False, include_input=False):
        loc: DocPath = tuple(err["loc"])
        kind = err["type"]
        if kind == "extra_forbidden" and loc:
            key = loc[-1]
            keys = _model_keys(model, loc[:-1])
            if len(loc) == 1:
                keys = [*keys, *extra_keys]
            message = f"unknown key {key!r}{did_you_mean(str(key), keys)}"
        elif kind == "missing":
            message = "required key is missing"
        else:
            message = str(err["msg"])
            for prefix in ("Value error, ", "Assertion failed, "):
                message = message.removeprefix(prefix)
        out.append((loc, message))
    return out


def label_problems(labels: Mapping[Any, Any]) -> list[tuple[str, str]]:
    out = []
    for name in labels:
        if not isinstance(name, str) or not LABEL_RE.fullmatch(name):
            out.append(
                (
                    str(name),
                    f"invalid label name {name!r}: use letters, digits and '_', "
                    "not starting with a digit",
                )
            )
        elif name.startswith("__"):
            out.append(
                (
                    name,
                    f"label name {name!r} is reserved: names starting with '__' "
                    "belong to Prometheus",
                )
            )
        elif name in RESERVED_LABELS:
            out.append(
                (
                    name,
                    f"label name {name!r} is reserved by probed; reserved names: "
                    f"{', '.join(sorted(RESERVED_LABELS))}",
                )
            )
    return out


def related(a: DocPath, b: DocPath) -> bool:
    n = min(len(a), len(b))
    return a[:n] == b[:n]


def located(
    problems: Iterable[tuple[DocPath, str]],
    doc: Any,
    source: str,
    base: DocPath = (),
    hidden: Mapping[DocPath, Sequence[str]] | None = None,
) -> list[ConfigError]:
    """ConfigErrors for ``(loc, message)`` problems at ``base + loc`` of ``doc``."""
    out = []
    for loc, message in problems:
        full = (*base, *loc)
        if hidden:
            message = hide(
                message, (p for hp, ps in hidden.items() if related(hp, full) for p in ps)
            )
        out.append(ConfigError(source, line_at(doc, full), format_path(full), message))
    return out


def merge_defaults(
    base: CheckDefaults, raw: Any
) -> tuple[CheckDefaults, list[tuple[DocPath, str]]]:
    """``base`` overridden by a ``defaults:`` mapping; invalid parts are reported and skipped."""
    if raw is None:
        return base, []
    if not isinstance(raw, Mapping):
        return base, [((), "must be a mapping (interval, timeout, readiness, labels...)")]
    problems: list[tuple[DocPath, str]] = []
    try:
        model = Defaults.model_validate(raw)
    except ValidationError as exc:
        problems = pydantic_problems(exc, Defaults)
        bad = {loc[0] for loc, _ in problems if loc}
        model = Defaults.model_validate(
            {k: v for k, v in raw.items() if k not in bad and k in Defaults.model_fields}
        )
    labels = dict(base.labels)
    if model.labels:
        bad_labels = label_problems(model.labels)
        problems += [(("labels", name), message) for name, message in bad_labels]
        rejected = {name for name, _ in bad_labels}
        labels.update((k, v) for k, v in model.labels.items() if k not in rejected)
    if model.timeout is not None and model.interval is not None and model.timeout >= model.interval:
        problems.append(
            (
                ("timeout",),
                f"timeout {format_duration(model.timeout)} must be less than interval "
                f"{format_duration(model.interval)}",
            )
        )
    merged = CheckDefaults(
        interval=model.interval or base.interval,
        timeout=model.timeout or base.timeout,
        readiness=base.readiness if model.readiness is None else model.readiness,
        failure_threshold=model.failure_threshold or base.failure_threshold,
        success_threshold=model.success_threshold or base.success_threshold,
        labels=tuple(sorted(labels.items())),
    )
    return merged, problems


# -- JSON Schema -------------------------------------------------------------------------------

_DURATION_SCHEMA: Final[dict[str, Any]] = {
    "anyOf": [
        {"type": "string", "pattern": r"^\s*([0-9]+(\.[0-9]+)?(ms|s|m|h|d))+\s*$"},
        {"type": "number", "exclusiveMinimum": 0},
    ],
    "description": "a duration such as 500ms, 10s, 1m30s or 2h (a bare number is seconds)",
}


class _SchemaGenerator(GenerateJsonSchema):
    """Describes :data:`~probed._durations.Duration` fields as the strings people write."""

    def function_before_schema(
        self, schema: core_schema.BeforeValidatorFunctionSchema
    ) -> JsonSchemaValue:
        function = schema["function"].get("function")
        if function in (parse_duration, non_negative_duration):
            return dict(_DURATION_SCHEMA)
        return super().function_before_schema(schema)


def _common_schema() -> dict[str, Any]:
    labels = {
        "type": "object",
        "propertyNames": {
            "pattern": "^[a-zA-Z_][a-zA-Z0-9_]*$",
            "not": {"anyOf": [{"enum": sorted(RESERVED_LABELS)}, {"pattern": "^__"}]},
        },
        "additionalProperties": {"type": "string"},
        "description": "extra Prometheus labels",
    }
    threshold = {"type": "integer", "minimum": 1}
    return {
        "name": {
            "type": "string",
            "pattern": "^[a-z0-9][a-z0-9_.-]*$",
            "description": "unique across all files",
        },
        "type": {"type": "string", "description": "a registered check type"},
        "interval": {**_DURATION_SCHEMA, "description": "time between runs"},
        "timeout": {**_DURATION_SCHEMA, "description": "must be less than interval"},
        "readiness": {"type": "boolean", "description": "counts toward /health/ready"},
        "failure_threshold": {**threshold, "description": "consecutive failures before down"},
        "success_threshold": {**threshold, "description": "consecutive successes before up"},
        "labels": labels,
        "description": {"type": "string"},
    }


def check_file_schema(types: Mapping[str, CheckTypeInfo]) -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of a checks file, one ``oneOf`` branch per check type."""
    common = _common_schema()
    defs: dict[str, Any] = {}
    variants: list[dict[str, Any]] = []
    for name in sorted(types):
        cls = types[name].cls
        schema = cls.options_model.model_json_schema(
            ref_template=f"#/$defs/{name}.{{model}}", schema_generator=_SchemaGenerator
        )
        for def_name, definition in schema.pop("$defs", {}).items():
            defs[f"{name}.{def_name}"] = definition
        variant: dict[str, Any] = {
            "type": "object",
            "title": f"{name} check",
            "properties": {
                **common,
                **schema.get("properties", {}),
                "type": {"const": name, "description": "a registered check type"},
            },
            "required": ["name", "type", *schema.get("required", [])],
            "additionalProperties": False,
        }
        if cls.description or schema.get("description"):
            variant["description"] = cls.description or schema["description"]
        variants.append(variant)
    fallback = {"type": "object", "properties": common, "required": ["name", "type"]}
    defaults = {
        "type": "object",
        "properties": {k: common[k] for k in Defaults.model_fields},
        "additionalProperties": False,
        "description": "defaults for every check in this file",
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "probed checks file",
        "type": ["object", "null"],
        "properties": {
            "defaults": defaults,
            "checks": {
                "type": ["array", "null"],
                "items": {"oneOf": variants} if variants else fallback,
            },
        },
        "additionalProperties": False,
        "$defs": defs,
    }
