"""Every built-in check type follows the same rules for the same thing.

Sizes parse alike in every type, warn/fail ordering errors read alike, a metric name has one
help text, and no check type module imports another (shared code lives in a private module).
"""

from __future__ import annotations

import ast
import importlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args

import pydantic
import pytest
from pydantic import BaseModel
from pydantic.functional_validators import BeforeValidator

import probed.checks
from probed.check import Check, MetricDef
from probed.checks._tls import TlsOptions
from probed.checks.redis import InfoLimits
from probed.options import SIZE_UNITS_HELP, parse_size
from probed.plugins import DEFAULT_PLUGINS

CHECKS_DIR = Path(probed.checks.__file__).parent
TYPE_MODULES = sorted(p.stem for p in CHECKS_DIR.glob("*.py") if not p.stem.startswith("_"))


def builtin_types() -> dict[str, type[Check[Any]]]:
    types: dict[str, type[Check[Any]]] = {}
    for name in DEFAULT_PLUGINS:
        if name.startswith("probed.checks."):
            for cls in importlib.import_module(name).probed_register_check_types():
                types[cls.type_name] = cls
    return types


# The least each type needs besides the option under test.
REQUIRED: dict[str, dict[str, Any]] = {
    "http": {"url": "http://127.0.0.1/"},
    "json_api": {"url": "http://127.0.0.1/"},
    "tcp": {"address": "127.0.0.1:1"},
    "dns": {"query_name": "example.test"},
    "icmp": {"host": "127.0.0.1"},
    "postgres": {"dsn": "postgresql://u@127.0.0.1/db"},
    "redis": {"url": "redis://127.0.0.1:6379/0"},
    "ssh": {"address": "127.0.0.1:22"},
    "heartbeat": {"token": "0123456789abcdef", "period": 60},
    "exec": {"command": ["true"]},
    "grpc": {"address": "127.0.0.1:1"},
    "websocket": {"url": "ws://127.0.0.1/"},
    "mysql": {"dsn": "mysql://u@127.0.0.1:3306/db"},
}


def _is_size(annotation: Any) -> bool:
    for arg in get_args(annotation):
        if isinstance(arg, BeforeValidator) and arg.func is parse_size:
            return True
        if get_args(arg) and _is_size(arg):
            return True
    return False


def size_options() -> Iterator[tuple[str, str]]:
    for type_name, cls in sorted(builtin_types().items()):
        for field, info in cls.options_model.model_fields.items():
            metadata = tuple(info.metadata)
            if _is_size(info.annotation) or any(
                isinstance(m, BeforeValidator) and m.func is parse_size for m in metadata
            ):
                yield type_name, field


SIZE_OPTIONS = list(size_options())
TYPES = builtin_types()


def options_of(type_name: str) -> type[BaseModel]:
    return TYPES[type_name].options_model


def test_every_size_option_of_the_builtin_types_is_found() -> None:
    assert set(SIZE_OPTIONS) >= {
        ("http", "max_body_size"),
        ("json_api", "max_body_size"),
        ("tcp", "max_read_size"),
        ("disk", "warn_free_bytes"),
        ("disk", "fail_free_bytes"),
        ("memory", "warn_available_bytes"),
        ("memory", "fail_available_bytes"),
    }


ACCEPTED = ["1.5GiB", "10M", "10MB", "10mb", "10MiB", "512Mi", "2TB", "64KiB", "1 kB", "4096"]
REJECTED = ["lots", "10XB", "1.5", "-1MB", "MB", "1e3MB"]


@pytest.mark.parametrize(("type_name", "field"), SIZE_OPTIONS)
@pytest.mark.parametrize("text", ACCEPTED)
def test_sizes_are_accepted_alike_by_every_type(type_name: str, field: str, text: str) -> None:
    model = options_of(type_name)
    data = {**REQUIRED.get(type_name, {}), field: text}
    limits = [
        m.le for m in model.model_fields[field].metadata if getattr(m, "le", None) is not None
    ]
    if limits and parse_size(text) > min(limits):  # parsed alike, then refused by the option's cap
        with pytest.raises(pydantic.ValidationError, match=field):
            model.model_validate(data)
        return
    assert getattr(model.model_validate(data), field) == parse_size(text)


@pytest.mark.parametrize("text", ACCEPTED)
def test_redis_info_limits_read_sizes_with_the_same_grammar(text: str) -> None:
    assert InfoLimits.model_validate({"fail_above": text}).fail_above == parse_size(text)


REJECTIONS = [
    (type_name, field, text)
    for type_name, field in [*SIZE_OPTIONS, ("redis", "info_fields")]
    for text in REJECTED
    # A fraction is a valid redis limit (mem_fragmentation_ratio: 1.5), not a size.
    if not (type_name == "redis" and text == "1.5")
]


@pytest.mark.parametrize(("type_name", "field", "text"), REJECTIONS)
def test_sizes_are_rejected_alike_by_every_type(type_name: str, field: str, text: str) -> None:
    model = options_of(type_name)
    value: Any = {"used_memory": {"fail_above": text}} if type_name == "redis" else text
    with pytest.raises(pydantic.ValidationError) as caught:
        model.model_validate({**REQUIRED.get(type_name, {}), field: value})
    message = str(caught.value)
    assert repr(text) in message
    if text != "1.5":
        assert SIZE_UNITS_HELP in message


ORDER_ERRORS: list[tuple[type[BaseModel], dict[str, Any]]] = [
    (options_of("disk"), {"warn_used_percent": 95, "fail_used_percent": 90}),
    (options_of("disk"), {"warn_free_bytes": "1GB", "fail_free_bytes": "2GB"}),
    (
        options_of("memory"),
        {"warn_swap_used_percent": 9, "fail_swap_used_percent": 5},
    ),
    (options_of("cpu"), {"warn_load_per_core": 3, "fail_load_per_core": 2}),
    (
        options_of("icmp"),
        {**REQUIRED["icmp"], "warn_loss_ratio": 0.5, "fail_loss_ratio": 0.2},
    ),
    (
        options_of("icmp"),
        {**REQUIRED["icmp"], "warn_rtt": "2s", "fail_rtt": "1s"},
    ),
    (
        options_of("postgres"),
        {**REQUIRED["postgres"], "warn_replication_lag": "1m", "fail_replication_lag": "10s"},
    ),
    (InfoLimits, {"warn_above": "2GB", "fail_above": "1GB"}),
    (InfoLimits, {"warn_below": 1, "fail_below": 2}),
    (TlsOptions, {"expiry_warn_days": 3, "expiry_fail_days": 7}),
]
ORDER_MESSAGE = re.compile(
    r"(\w+) \(([^()]|\([^()]*\))+\) must not be (above|below) (\w+) \(([^()]|\([^()]*\))+\): "
    r"the warning must come first; (lower|raise) \1 or (raise|lower) \4"
)


@pytest.mark.parametrize(("model", "data"), ORDER_ERRORS)
def test_threshold_ordering_errors_read_the_same_in_every_type(
    model: type[BaseModel], data: dict[str, Any]
) -> None:
    with pytest.raises(pydantic.ValidationError) as caught:
        model.model_validate(data)
    (error,) = caught.value.errors()
    message = error["msg"].removeprefix("Value error, ")
    assert ORDER_MESSAGE.fullmatch(message), message
    warn_name = next(k for k in data if "warn" in k)
    assert message.startswith(f"{warn_name} (")


def test_one_metric_name_has_one_help_text_kind_and_label_set() -> None:
    seen: dict[str, tuple[str, MetricDef]] = {}
    for type_name, cls in sorted(TYPES.items()):
        for metric in cls.metrics:
            first = seen.setdefault(metric.name, (type_name, metric))
            assert first[1] == metric, (
                f"{metric.name} is declared by {first[0]} as {first[1]} and by {type_name} as "
                f"{metric}: declare it once (a shared MetricDef in a private module)"
            )
    assert "probed_tls_cert_expiry_timestamp_seconds" in seen


def _imported_modules(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


@pytest.mark.parametrize("module", TYPE_MODULES)
def test_a_check_type_module_imports_no_other_check_type_module(module: str) -> None:
    siblings = {f"probed.checks.{name}" for name in TYPE_MODULES} - {f"probed.checks.{module}"}
    imported = set(_imported_modules(CHECKS_DIR / f"{module}.py"))
    assert not imported & siblings, (
        f"probed/checks/{module}.py imports {sorted(imported & siblings)}: move what they share "
        "to a private probed/checks/_module.py"
    )


def test_the_sibling_import_rule_sees_every_check_type() -> None:
    assert set(TYPE_MODULES) == {
        name.rsplit(".", 1)[1] for name in DEFAULT_PLUGINS if ".checks." in name
    }
