"""The public option toolkit: the one size grammar, durations, and warn/fail pairs.

Plugins get these from ``probed``; every built-in check type uses them (the cross-type tests
are in ``tests/checks/test_consistency.py``).
"""

from __future__ import annotations

from typing import Any

import pydantic
import pytest
from pydantic import model_validator

import probed
from probed import CheckOptions, Duration, Limit, Percent, Size, Status, WarnFail, check_order
from probed.options import SIZE_UNITS_HELP, format_size, parse_size
from probed.thresholds import evaluate


@pytest.mark.parametrize(
    ("text", "size"),
    [
        (0, 0),
        (65536, 65536),
        ("512", 512),
        ("512B", 512),
        ("1kB", 1000),
        ("1KB", 1000),
        ("1k", 1000),
        ("1KiB", 1024),
        ("1kib", 1024),
        ("10M", 10_000_000),
        ("10MB", 10_000_000),
        ("10mb", 10_000_000),
        ("10MiB", 10 * 2**20),
        ("512Mi", 512 * 2**20),
        ("1.5GiB", 3 * 2**29),
        ("1.5GB", 1_500_000_000),
        ("2TB", 2 * 10**12),
        ("2TiB", 2 * 2**40),
        ("1PB", 10**15),
        (" 1 GiB ", 2**30),
        (".5KiB", 512),
        (1024.0, 1024),
    ],
)
def test_size_grammar_accepts_bytes_and_decimal_or_binary_units(text: Any, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("lots", "invalid size 'lots'"),
        ("10XB", "unknown unit 'XB'"),
        ("10 bytes", "unknown unit 'bytes'"),
        ("-1MB", "invalid size '-1MB'"),
        (-1, "cannot be negative"),
        ("1.5", "a number of bytes must be whole"),
        (1.5, "invalid size 1.5"),
        ("MB", "invalid size 'MB'"),
        ("", "invalid size ''"),
        ("1e3MB", "invalid size '1e3MB'"),
        (True, "expected a size"),
        (None, "invalid size None"),
    ],
)
def test_size_grammar_rejects_anything_else_naming_every_unit(text: Any, why: str) -> None:
    with pytest.raises(ValueError, match="size") as caught:
        parse_size(text)
    message = str(caught.value)
    assert why in message
    if "negative" not in why and "whole" not in why:
        assert SIZE_UNITS_HELP in message
        for unit in ("B", "kB", "MB", "GB", "TB", "KiB", "MiB", "GiB", "TiB"):
            assert unit in SIZE_UNITS_HELP


def test_size_is_formatted_in_binary_units() -> None:
    assert [format_size(v) for v in (0, 512, 1536, 3 * 2**29)] == [
        "0 B",
        "512 B",
        "1.5 KiB",
        "1.5 GiB",
    ]


class _Plugin(CheckOptions):
    """What a plugin author writes, with only what ``probed`` exports."""

    min_size: Size = 1
    warn_age: Duration | None = None
    fail_age: Duration | None = None
    warn_used_percent: Percent | None = 80.0
    fail_used_percent: Percent | None = 90.0

    @model_validator(mode="after")
    def _ordered(self) -> _Plugin:
        check_order(self, "age")
        check_order(self, "used_percent")
        return self


def test_plugin_options_built_from_the_public_types_parse_and_describe_themselves() -> None:
    options = _Plugin.model_validate({"min_size": "1.5GiB", "warn_age": "1h", "fail_age": "1d"})
    assert (options.min_size, options.warn_age, options.fail_age) == (3 * 2**29, 3600.0, 86400.0)
    schema = _Plugin.model_json_schema()["properties"]
    size_forms = [branch["type"] for branch in schema["min_size"]["anyOf"]]
    assert size_forms == ["integer", "string"]
    assert "1.5GiB" in schema["min_size"]["description"]


def test_threshold_order_error_shows_values_like_their_option_type() -> None:
    with pytest.raises(pydantic.ValidationError) as caught:
        _Plugin.model_validate({"warn_age": "1h30m", "fail_age": "1h"})
    assert (
        "warn_age (1h30m) must not be above fail_age (1h): the warning must come first; "
        "lower warn_age or raise fail_age"
    ) in str(caught.value)


def test_threshold_order_compares_only_limits_written_in_the_file() -> None:
    # The default warn limit (80) past a lowered fail limit is harmless: fail is looked at first.
    options = _Plugin.model_validate({"fail_used_percent": 50})
    assert WarnFail(options.warn_used_percent, options.fail_used_percent).status(60) is Status.FAIL
    with pytest.raises(pydantic.ValidationError, match=r"warn_used_percent \(95\) must not be"):
        _Plugin.model_validate({"warn_used_percent": 95, "fail_used_percent": 90})


@pytest.mark.parametrize(
    ("value", "above", "status"),
    [
        (5, True, Status.OK),
        (10, True, Status.OK),  # equal to a limit has not crossed it
        (11, True, Status.WARN),
        (21, True, Status.FAIL),
        (25, False, Status.OK),
        (19, False, Status.WARN),
        (9, False, Status.FAIL),
    ],
)
def test_warn_fail_pair_points_one_way(value: float, above: bool, status: Status) -> None:
    pair = WarnFail(10, 20, above) if above else WarnFail(20, 10, above)
    assert pair.status(value) is status


def test_a_level_set_to_none_is_off() -> None:
    assert WarnFail(None, 20).status(15) is Status.OK
    assert WarnFail(10, None).status(1000) is Status.WARN


def test_evaluate_names_every_crossed_limit_worst_first_in_one_style() -> None:
    verdict = evaluate(
        [
            Limit("disk: 85.0% used", 85.0, WarnFail(80, 90)),
            Limit("load 5", 5.0, WarnFail(1, 4), reason="load"),
            Limit("free 3 GiB", 3.0, WarnFail(2, 1, above=False)),
        ]
    )
    assert (verdict.status, verdict.reason) == (Status.FAIL, "load")
    assert verdict.message == (
        "load 5, above the fail threshold 4; disk: 85.0% used, above the warn threshold 80"
    )
    assert evaluate([Limit("x", 1.0, WarnFail(2, 3))]).message == ""


def test_the_toolkit_is_exported_from_probed_with_docstrings() -> None:
    for name in ("Size", "Percent", "Duration", "Regex", "AbsolutePath", "WarnFail", "Limit"):
        assert name in probed.__all__
    for name in ("WarnFail", "Limit", "check_order", "evaluate", "parse_size", "format_size"):
        assert getattr(probed, name).__doc__, name
