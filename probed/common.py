"""The common keys of a check, declared once.

Every check has the keys declared here beside its type's options. Each key is a field of
:class:`CheckDefaults` (the keys a ``defaults:`` block may set, with their built-in values) or
of :class:`CommonKeys` (the keys each check sets itself), and its :class:`Key` says how it is
written in YAML, how the JSON Schema describes it, and how ``/api/v1/checks`` shows it.
Everything else is derived from these declarations: :data:`COMMON_KEYS`, reading a check's
keys and a ``defaults:`` block (:func:`read_keys`, :func:`merge_defaults`), a check's final
values (:func:`resolve`), :class:`~probed.spec.CheckSpec` (a subclass of :class:`CommonKeys`),
the API view (:func:`common_view`), :func:`probed.testing.make_spec` and the JSON Schema
(:mod:`probed.schema`). Adding a common key is adding a field here.

The rules that involve these keys are written here once: the check name grammar, label names,
``timeout`` below ``interval`` and the timeout a check gets when it sets none.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import MISSING, Field, dataclass, field, fields, replace
from typing import Annotated, Any, Final

from annotated_types import Ge
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    ValidationError,
    WithJsonSchema,
    create_model,
)

from probed._document import Problem, pydantic_problems
from probed._yaml import format_path
from probed.options import Duration, format_duration
from probed.redact import redact_text

__all__ = [
    "COMMON_KEYS",
    "DEFAULT_KEYS",
    "REQUIRED_KEYS",
    "RESERVED_LABELS",
    "CheckDefaults",
    "CommonKeys",
    "Key",
    "PositiveInt",
    "common_values",
    "common_view",
    "key_fields",
    "key_of",
    "label_problems",
    "merge_defaults",
    "missing_keys",
    "read_keys",
    "resolve",
    "timeout_problem",
]

NAME_RE: Final = re.compile(r"[a-z0-9][a-z0-9_.-]*")
"""The grammar of a check name."""
LABEL_RE: Final = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
"""The grammar of a Prometheus label name."""
RESERVED_LABELS: Final = frozenset(
    {"check", "type", "status", "reason", "result", "phase", "le", "quantile", "field", "stat"}
    | {"component", "window", "job", "instance"}
)
"""Label names probed or Prometheus use themselves; a check's labels may not take them."""

TIMEOUT_SHARE: Final = 0.8
"""A check without a timeout gets at most this share of its interval."""

MIN_INTERVAL: Final = 0.01
"""Shortest interval between two runs of a check (10ms)."""
MAX_INTERVAL: Final = 30 * 86400.0
"""Longest interval between two runs of a check (30d)."""
MIN_TIMEOUT: Final = 0.001
"""Shortest timeout of a check (1ms)."""

_KEY: Final = "probed.key"

# -- how a key is written ---------------------------------------------------------------------


def _no_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("expected a whole number, not true/false")
    return value


def _check_name(value: str) -> str:
    if not NAME_RE.fullmatch(value):
        raise ValueError(
            f"invalid check name {value!r}: use lower-case letters, digits, '_', '.' and "
            "'-', starting with a letter or digit"
        )
    return value


def _days(seconds: float) -> str:
    """``30d`` for whole days, else :func:`format_duration`."""
    if seconds >= 86400 and seconds % 86400 == 0:
        return f"{int(seconds // 86400)}d"
    return format_duration(seconds)


def _bounded(what: str, low: float, high: float) -> Callable[[float], float]:
    def check(value: float) -> float:
        if value < low:
            raise ValueError(
                f"{what} {format_duration(value)} is too short: at least {format_duration(low)}"
            )
        if value > high:
            raise ValueError(f"{what} {_days(value)} is too long: at most {_days(high)}")
        return value

    return check


def _duration_schema(low: float, high: float) -> WithJsonSchema:
    pattern = r"^\s*([0-9]+(\.[0-9]+)?(ms|s|m|h|d))+\s*$"
    number = {"type": "number", "minimum": low, "maximum": high}
    return WithJsonSchema({"anyOf": [{"type": "string", "pattern": pattern}, number]})


Interval = Annotated[
    Duration,
    AfterValidator(_bounded("interval", MIN_INTERVAL, MAX_INTERVAL)),
    _duration_schema(MIN_INTERVAL, MAX_INTERVAL),
]
"""A check's interval: a :data:`Duration` from :data:`MIN_INTERVAL` to :data:`MAX_INTERVAL`."""
Timeout = Annotated[
    Duration,
    AfterValidator(_bounded("timeout", MIN_TIMEOUT, MAX_INTERVAL)),
    _duration_schema(MIN_TIMEOUT, MAX_INTERVAL),
]
"""A check's timeout: a :data:`Duration` of at least :data:`MIN_TIMEOUT`."""


def _label_value(value: Any) -> Any:
    if not isinstance(value, str):
        raise ValueError("label values must be strings (quote the value in YAML)")
    return value


PositiveInt = Annotated[int, Ge(1), BeforeValidator(_no_bool)]
"""A whole number of at least 1 (``true`` is not 1)."""

CheckName = Annotated[
    str,
    AfterValidator(_check_name),
    WithJsonSchema({"type": "string", "pattern": f"^{NAME_RE.pattern}$"}),
]
"""A check name: :data:`NAME_RE`."""

LabelsInput = Annotated[
    # Names are checked by label_problems, which words each bad name better than pydantic.
    dict[Any, Annotated[Any, BeforeValidator(_label_value)]],
    WithJsonSchema(
        {
            "type": "object",
            "propertyNames": {
                "pattern": f"^{LABEL_RE.pattern}$",
                "not": {"anyOf": [{"enum": sorted(RESERVED_LABELS)}, {"pattern": "^__"}]},
            },
            "additionalProperties": {"type": "string"},
        }
    ),
]
"""Labels as written: a mapping of label name to string."""

Labels = tuple[tuple[str, str], ...]
"""Labels as held: sorted ``(name, value)`` pairs."""


def _replace(inherited: Any, given: Any) -> Any:
    return given


def _same(value: Any) -> Any:
    return value


def _add_labels(inherited: Labels, given: Mapping[str, str]) -> Labels:
    return tuple(sorted({**dict(inherited), **given}.items()))


def _labels_view(value: Labels) -> dict[str, str]:
    # Label values are public everywhere; a URL with a password put in one is still masked.
    return {name: redact_text(text) for name, text in value}


def label_problems(labels: Mapping[Any, Any]) -> list[Problem]:
    """A problem for each label name that is malformed or reserved, at ``(name,)``."""
    out: list[Problem] = []
    for name in labels:
        if not isinstance(name, str) or not LABEL_RE.fullmatch(name):
            message = (
                f"invalid label name {name!r}: use letters, digits and '_', "
                "not starting with a digit"
            )
        elif name.startswith("__"):
            message = (
                f"label name {name!r} is reserved: names starting with '__' belong to Prometheus"
            )
        elif name in RESERVED_LABELS:
            message = (
                f"label name {name!r} is reserved by probed; reserved names: "
                f"{', '.join(sorted(RESERVED_LABELS))}"
            )
        else:
            continue
        out.append(((str(name),), message))
    return out


@dataclass(frozen=True, slots=True)
class Key:
    """How one common key is written, described, combined with its default and shown.

    :param input: the pydantic type of the value as written in YAML; its JSON Schema is the
        key's schema.
    :param doc: the key's description in the JSON Schema.
    :param api: its name in ``/api/v1/checks`` (default: the key itself).
    :param show: its value as the API shows it.
    :param hide_empty: the API leaves the key out while its value is empty.
    :param merge: ``(inherited, given) -> value``: how a written value combines with the one
        from the defaults (default: it replaces it).
    :param problems: further checks of a written mapping value, as ``(path, message)``.
    """

    input: Any
    doc: str = ""
    api: str = ""
    show: Callable[[Any], Any] = _same
    hide_empty: bool = False
    merge: Callable[[Any, Any], Any] = _replace
    problems: Callable[[Mapping[Any, Any]], list[Problem]] | None = None


def key(input: Any, doc: str = "", **how: Any) -> dict[str, Key]:
    """Field metadata declaring a common key (see :class:`Key`)."""
    return {_KEY: Key(input, doc, **how)}


# -- the declarations ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CheckDefaults:
    """The keys a ``defaults:`` block may set, with the values a check gets when nothing does."""

    interval: float = field(
        default=30.0,
        metadata=key(Interval, "time between runs (10ms to 30d)", api="interval_seconds"),
    )
    timeout: float = field(
        default=10.0,
        metadata=key(Timeout, "must be less than interval (at least 1ms)", api="timeout_seconds"),
    )
    readiness: bool = field(default=True, metadata=key(bool, "counts toward /health/ready"))
    public: bool = field(
        default=True, metadata=key(bool, "shown on the status page at / (false hides it)")
    )
    failure_threshold: int = field(
        default=3, metadata=key(PositiveInt, "consecutive failures before down")
    )
    success_threshold: int = field(
        default=1, metadata=key(PositiveInt, "consecutive successes before up")
    )
    duration_histogram: bool = field(
        default=True,
        metadata=key(
            bool,
            "export the probed_check_duration_seconds histogram (false: a last-duration gauge)",
        ),
    )
    labels: Labels = field(
        default=(),
        metadata=key(
            LabelsInput,
            "extra Prometheus labels",
            show=_labels_view,
            merge=_add_labels,
            problems=label_problems,
        ),
    )


@dataclass(frozen=True, slots=True)
class CommonKeys(CheckDefaults):
    """Every common key of a check: those of :class:`CheckDefaults` and those each check sets
    itself. A key without a default is required."""

    name: str = field(kw_only=True, metadata=key(CheckName, "unique across all files"))
    type: str = field(kw_only=True, metadata=key(str, "a registered check type"))
    description: str = field(default="", metadata=key(str, hide_empty=True))


# -- derived ------------------------------------------------------------------------------------


def _required(f: Field[Any]) -> bool:
    return f.default is MISSING and f.default_factory is MISSING


def _declared(cls: type[CheckDefaults]) -> tuple[Field[Any], ...]:
    found = [f for f in fields(cls) if _KEY in f.metadata]
    return tuple(sorted(found, key=lambda f: not _required(f)))


_FIELDS: Final = {cls: _declared(cls) for cls in (CheckDefaults, CommonKeys)}


def key_fields(cls: type[CheckDefaults] = CommonKeys) -> tuple[Field[Any], ...]:
    """The common keys of ``cls`` as dataclass fields: required ones first, then as declared."""
    return _FIELDS.get(cls) or _declared(cls)


def key_of(f: Field[Any]) -> Key:
    """The :class:`Key` declared on a field."""
    declared: Key = f.metadata[_KEY]
    return declared


COMMON_KEYS: Final = tuple(f.name for f in key_fields())
"""Keys every check has; any other key of a check is a type-specific option."""
DEFAULT_KEYS: Final = tuple(f.name for f in key_fields(CheckDefaults))
"""Keys a ``defaults:`` block may set."""
REQUIRED_KEYS: Final = tuple(f.name for f in key_fields() if _required(f))
"""Keys every check must set."""


def _reader(name: str, cls: type[CheckDefaults], extra: Any) -> type[BaseModel]:
    """A pydantic model reading ``cls``'s keys as written; a key not given is ``None``."""
    definitions: dict[str, Any] = {f.name: (key_of(f).input | None, None) for f in key_fields(cls)}
    model: type[BaseModel] = create_model(
        name, __config__=ConfigDict(extra=extra, frozen=True), **definitions
    )
    return model


_CHECK_READER: Final = _reader("CommonKeys", CommonKeys, "ignore")
_DEFAULTS_READER: Final = _reader("Defaults", CheckDefaults, "forbid")


_EXTRA_CHECKS: Final = tuple(
    (f.name, check) for f in key_fields() if (check := key_of(f).problems) is not None
)


def read_keys(
    raw: Mapping[Any, Any], *, block: bool = False
) -> tuple[dict[str, Any], list[Problem]]:
    """The common keys written in ``raw`` that are valid, and a problem for each that is not.

    :param raw: a check (its other keys are ignored) or, with ``block``, a ``defaults:`` block
        (where any other key is a problem).
    :return: ``(values, problems)``: valid values by key, as validated (a key set to ``null``
        counts as not given); problems at their path inside ``raw``.
    """
    model, keys = (_DEFAULTS_READER, DEFAULT_KEYS) if block else (_CHECK_READER, COMMON_KEYS)
    written = raw if block else {k: raw[k] for k in COMMON_KEYS if k in raw}
    problems: list[Problem] = []
    try:
        read = model.model_validate(written)
    except ValidationError as exc:
        problems = pydantic_problems(exc, model)
        rejected = {loc[0] for loc, _ in problems if loc}
        read = model.model_validate(
            {k: v for k, v in written.items() if k not in rejected and k in keys}
        )
    values = {k: v for k, v in read.__dict__.items() if v is not None}
    for name, check in _EXTRA_CHECKS:
        if name in keys and isinstance(raw.get(name), Mapping):
            found = check(raw[name])
            problems += [((name, *loc), message) for loc, message in found]
            bad = {loc[0] for loc, _ in found}
            if name in values:
                values[name] = {k: v for k, v in values[name].items() if k not in bad}
    return values, problems


def missing_keys(raw: Mapping[Any, Any]) -> list[Problem]:
    """A problem for each required key that ``raw`` does not set."""
    return [((), f"missing required key {k!r}") for k in REQUIRED_KEYS if raw.get(k) is None]


def timeout_problem(timeout: float, interval: float, interval_name: str = "interval") -> Problem:
    """The problem of a timeout that is not below the interval (the rule, written once)."""
    return (
        ("timeout",),
        f"timeout {format_duration(timeout)} must be less than {interval_name} "
        f"{format_duration(interval)}",
    )


_PLAN: Final = tuple(
    (f.name, f.name in DEFAULT_KEYS, f.default, key_of(f).merge) for f in key_fields()
)
"""Per key: its name, whether ``defaults`` hold its inherited value, its own default, merge."""


def resolve(
    given: Mapping[str, Any], defaults: CheckDefaults
) -> tuple[dict[str, Any], list[Problem]]:
    """Every common key's value for one check, and the problems of the combination.

    A key takes its written value (see :attr:`Key.merge`), else the value of ``defaults``,
    else the key's own default. A check without a timeout gets the default timeout, but at
    most :data:`TIMEOUT_SHARE` of its interval; one with a timeout must keep it below the
    interval.

    :param given: valid written values (from :func:`read_keys`).
    :param defaults: the built-in defaults merged with the settings' and the file's.
    :return: ``(values, problems)``; ``values`` lacks required keys not given.
    """
    values: dict[str, Any] = {}
    problems: list[Problem] = []
    for name, from_defaults, own, merge in _PLAN:
        if name in given:
            inherited = getattr(defaults, name) if from_defaults else own
            values[name] = merge(None if inherited is MISSING else inherited, given[name])
        elif from_defaults:
            values[name] = getattr(defaults, name)
        elif own is not MISSING:
            values[name] = own
        # else: a required key not given (see missing_keys)
    interval = values["interval"]
    if "timeout" not in given:
        values["timeout"] = min(defaults.timeout, TIMEOUT_SHARE * interval)
    elif values["timeout"] >= interval:
        where = "interval" if "interval" in given else "the default interval"
        problems.append(timeout_problem(values["timeout"], interval, where))
    return values, problems


def merge_defaults(base: CheckDefaults, raw: Any) -> tuple[CheckDefaults, list[Problem]]:
    """``base`` overridden by a ``defaults:`` block; invalid parts are reported and skipped."""
    if raw is None:
        return base, []
    if not isinstance(raw, Mapping):
        return base, [((), "must be a mapping (interval, timeout, readiness, labels...)")]
    given, problems = read_keys(raw, block=True)
    values = {
        f.name: key_of(f).merge(getattr(base, f.name), given[f.name])
        for f in key_fields(CheckDefaults)
        if f.name in given
    }
    if "timeout" in given and "interval" in given and given["timeout"] >= given["interval"]:
        problems.append(timeout_problem(given["timeout"], given["interval"]))
    return replace(base, **values), problems


def common_values(
    raw: Mapping[str, Any], defaults: CheckDefaults | None = None, *, timing: bool = True
) -> dict[str, Any]:
    """Every common key's value from keys written as in YAML (for tests and tools).

    :param timing: also apply the timeout rule (tests may want a timeout as long as the
        interval, which a check file may not have).
    :raises ValueError: naming each problem.
    """
    given, problems = read_keys(raw)
    values, more = resolve(given, defaults or CheckDefaults())
    problems += missing_keys(raw) + (more if timing else [])
    if problems:
        raise ValueError("; ".join(f"{format_path(loc) or 'check'}: {m}" for loc, m in problems))
    return values


def common_view(keys: CommonKeys) -> dict[str, Any]:
    """The common keys of a check as ``/api/v1/checks`` shows them."""
    view: dict[str, Any] = {}
    for f in key_fields():
        declared = key_of(f)
        value = getattr(keys, f.name)
        if declared.hide_empty and not value:
            continue
        view[declared.api or f.name] = declared.show(value)
    return view
