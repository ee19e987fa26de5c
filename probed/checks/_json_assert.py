"""Assertions on a decoded JSON document, for the ``json_api`` check type.

An :class:`Assertion` is ``{path, op, value, warn_only}``; :meth:`Assertion.check` returns
``None`` when it holds, else one sentence such as ``$.db.latency_ms = 812, expected < 500``.
JSON types are kept apart: ``true`` is not ``1`` and ``"812"`` is not a number.
"""

from __future__ import annotations

import math
import re
from typing import Any, Final, Literal

from pydantic import Field, PrivateAttr, field_validator, model_validator

from probed.check import CheckOptions
from probed.checks._json_path import JsonPath, PathMissingError, describe_value, type_name

__all__ = ["Assertion", "Op", "json_equal"]

Op = Literal["eq", "ne", "lt", "le", "gt", "ge", "regex", "in", "exists", "length"]

_COMPARE_OPS: Final = ("eq", "ne", "lt", "le", "gt", "ge")
_SYMBOLS: Final = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def json_equal(a: Any, b: Any) -> bool:
    """Equality of JSON values: numbers by value (1 == 1.0), booleans never equal numbers."""
    if _is_number(a) and _is_number(b):
        return bool(a == b)
    if type_name(a) != type_name(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    return bool(a == b)


def _compare(op: str, actual: float, expected: float) -> bool:
    if op == "eq":
        return actual == expected
    if op == "ne":
        return actual != expected
    if op == "lt":
        return actual < expected
    if op == "le":
        return actual <= expected
    if op == "gt":
        return actual > expected
    return actual >= expected


class Assertion(CheckOptions):
    """One assertion on the JSON body."""

    path: str = Field(
        description="Dotted path (data.items[2].name, checks.0.status) or JSON Pointer "
        "(/data/items/2); $ is the whole document."
    )
    op: Op = Field(
        description="eq, ne, lt, le, gt, ge, regex, in, exists or length.",
    )
    value: Any = Field(
        default=None,
        description="What to compare with: any JSON value (eq/ne), a number (lt/le/gt/ge), a "
        "regex (regex), a list (in), true/false (exists, default true), a count or "
        "{lt/le/gt/ge/eq/ne: count} (length).",
    )
    warn_only: bool = Field(
        default=False, description="A failure only warns instead of failing the check."
    )

    _path: JsonPath = PrivateAttr()
    _regex: re.Pattern[str] | None = PrivateAttr(default=None)

    @field_validator("path")
    @classmethod
    def _valid_path(cls, value: str) -> str:
        JsonPath.parse(value)
        return value

    @model_validator(mode="after")
    def _valid_value(self) -> Assertion:
        op, value = self.op, self.value
        given = "value" in self.model_fields_set
        if op == "exists":
            if given and not isinstance(value, bool):
                raise ValueError(f"op exists takes value true or false, got {value!r}")
        elif not given:
            raise ValueError(f"op {op} needs a value")
        elif op in ("lt", "le", "gt", "ge") and not (_is_number(value) and math.isfinite(value)):
            raise ValueError(f"op {op} needs a number as value, got {value!r}")
        elif op == "regex":
            if not isinstance(value, str):
                raise ValueError(f"op regex needs a regular expression string, got {value!r}")
            try:
                self._regex = re.compile(value)
            except re.error as exc:
                raise ValueError(f"invalid regular expression {value!r}: {exc}") from None
        elif op == "in" and not (isinstance(value, list) and value):
            raise ValueError(f"op in needs a non-empty list as value, got {value!r}")
        elif op == "length":
            _length_bounds(value)
        self._path = JsonPath.parse(self.path)
        return self

    @property
    def json_path(self) -> JsonPath:
        """The parsed path."""
        return self._path

    def describe(self) -> str:
        """The assertion as a short phrase (``$.status eq "ok"``), for messages."""
        return f"{self._path.display} {self.op} {describe_value(self.value, 40)}"

    def check(self, document: Any) -> str | None:
        """None when the assertion holds on ``document``, else why not (one sentence)."""
        where = self._path.display
        try:
            actual = self._path.resolve(document)
        except PathMissingError as exc:
            if self.op == "exists" and self.value is False:
                return None
            return f"{where} is missing ({exc.detail})"
        shown = describe_value(actual)
        if self.op == "exists":
            if self.value is False:
                return f"{where} = {shown}, expected it to be absent"
            return None
        if self.op == "eq":
            if json_equal(actual, self.value):
                return None
            return f"{where} = {shown}, expected {describe_value(self.value)}"
        if self.op == "ne":
            if not json_equal(actual, self.value):
                return None
            return f"{where} = {shown}, expected anything but {describe_value(self.value)}"
        if self.op == "in":
            if any(json_equal(actual, option) for option in self.value):
                return None
            return f"{where} = {shown}, expected one of {describe_value(self.value)}"
        if self.op == "regex":
            assert self._regex is not None
            if isinstance(actual, str):
                text = actual
            elif _is_number(actual) or isinstance(actual, bool):
                text = describe_value(actual)
            else:
                return (
                    f"{where} = {shown} (a {type_name(actual)}), expected a string "
                    f"matching /{self._regex.pattern}/"
                )
            if self._regex.search(text):
                return None
            return f"{where} = {shown}, expected to match /{self._regex.pattern}/"
        if self.op == "length":
            if not isinstance(actual, list | dict | str):
                return (
                    f"{where} = {shown} (a {type_name(actual)}) has no length, "
                    "expected a list, object or string"
                )
            size = len(actual)
            for op, bound in _length_bounds(self.value):
                if not _compare(op, size, bound):
                    return f"{where} has length {size}, expected {_SYMBOLS[op]} {bound:g}"
            return None
        # lt, le, gt, ge
        if not _is_number(actual):
            return (
                f"{where} = {shown} (a {type_name(actual)}), expected a number "
                f"{_SYMBOLS[self.op]} {self.value:g}"
            )
        if _compare(self.op, actual, self.value):
            return None
        return f"{where} = {shown}, expected {_SYMBOLS[self.op]} {self.value:g}"


def _length_bounds(value: Any) -> list[tuple[str, float]]:
    """``[(op, bound)]`` from ``3`` or ``{ge: 1, lt: 10}``.

    :raises ValueError: for anything else.
    """
    if _is_number(value) and value >= 0:
        return [("eq", float(value))]
    if isinstance(value, dict) and value:
        bounds = []
        for op, bound in value.items():
            if op not in _COMPARE_OPS:
                raise ValueError(
                    f"op length: unknown comparison {op!r}; use eq, ne, lt, le, gt or ge"
                )
            if not (_is_number(bound) and math.isfinite(bound)):
                raise ValueError(f"op length: {op} needs a number, got {bound!r}")
            bounds.append((str(op), float(bound)))
        return bounds
    raise ValueError(
        f"op length needs a count (3) or comparisons ({{ge: 1, lt: 10}}) as value, got {value!r}"
    )
