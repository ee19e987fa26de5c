"""Paths into a decoded JSON document, for the ``json_api`` check type.

Two spellings, both small enough to read in one breath (no dependency):

- **dotted**, with list indexes as ``[n]`` or as a plain numeric segment:
  ``status``, ``checks.0.status``, ``data.items[2].name``, ``$.db.latency_ms``
  (a leading ``$`` / ``$.`` is allowed and ignored; ``$`` alone is the whole document).
  Negative indexes count from the end (``items[-1]``). Keys that contain dots or brackets need
  the other spelling.
- **JSON Pointer** (RFC 6901), recognised by its leading ``/``: ``/data/items/2``,
  ``/checks/db:latency/0/status`` (``~1`` is ``/`` and ``~0`` is ``~`` inside a key).

A numeric segment indexes a list and names a key of an object, so ``checks.0`` works for both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["JsonPath", "PathMissingError", "describe_value", "type_name"]

_DOTTED_RE: Final = re.compile(r"([^.\[\]]+)|\[(-?\d+)\]")
_INDEX_RE: Final = re.compile(r"-?\d+")


class PathMissingError(LookupError):
    """The path does not exist in the document; ``detail`` says where the walk stopped."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def type_name(value: Any) -> str:
    """The JSON type of a decoded value: ``string``, ``number``, ``boolean``, ``null``, ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def describe_value(value: Any, limit: int = 60) -> str:
    """A value as compact JSON text, shortened for messages."""
    import json

    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=True)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True, slots=True)
class JsonPath:
    """A parsed path: its segments, and the spelling the user wrote (for messages)."""

    text: str
    segments: tuple[str | int, ...]

    @classmethod
    def parse(cls, text: str) -> JsonPath:
        """Parse a dotted path or a JSON Pointer.

        :raises ValueError: saying what is wrong with the path and how to write it.
        """
        raw = text.strip()
        if raw.startswith("/") or raw == "":
            return cls(raw or "/", _parse_pointer(raw))
        return cls(raw, _parse_dotted(raw))

    @property
    def display(self) -> str:
        """How messages show the path: ``$.db.latency_ms``, ``$`` or the pointer as written."""
        if self.text.startswith("/"):
            return self.text
        if self.text.startswith("$"):
            return self.text
        return "$." + self.text if not self.text.startswith("[") else "$" + self.text

    def resolve(self, document: Any) -> Any:
        """The value at this path.

        :raises PathMissingError: when a key or index is absent or a scalar is in the way.
        """
        node = document
        walked: list[str | int] = []
        for segment in self.segments:
            where = _render(walked)
            if isinstance(node, list):
                index = _as_index(segment)
                if index is None:
                    raise PathMissingError(
                        f"{where} is a list ({len(node)} items), not an object with key {segment!r}"
                    )
                if not -len(node) <= index < len(node):
                    raise PathMissingError(f"{where} has {len(node)} item(s), no index {index}")
                node = node[index]
            elif isinstance(node, dict):
                key = str(segment)
                if key not in node:
                    raise PathMissingError(f"{where} has no key {key!r}")
                node = node[key]
            else:
                raise PathMissingError(
                    f"{where} is a {type_name(node)} ({describe_value(node, 30)}), "
                    f"cannot look up {segment!r} in it"
                )
            walked.append(segment)
        return node


def _as_index(segment: str | int) -> int | None:
    if isinstance(segment, int):
        return segment
    return int(segment) if _INDEX_RE.fullmatch(segment) else None


def _render(segments: list[str | int]) -> str:
    out = "$"
    for segment in segments:
        out += f"[{segment}]" if isinstance(segment, int) else f".{segment}"
    return out


def _parse_pointer(text: str) -> tuple[str | int, ...]:
    if text == "":
        return ()
    parts = text.split("/")[1:]
    for part in parts:
        if re.search(r"~(?![01])", part):
            raise ValueError(
                f"invalid JSON Pointer {text!r}: '~' must be written ~0 (and '/' in a key ~1)"
            )
    return tuple(part.replace("~1", "/").replace("~0", "~") for part in parts)


def _parse_dotted(text: str) -> tuple[str | int, ...]:
    body = text
    if body.startswith("$"):
        body = body[1:]
        if body.startswith("."):
            body = body[1:]
        if body == "":
            return ()
    segments: list[str | int] = []
    pos = 0
    expect_segment = True
    while pos < len(body):
        if body[pos] == "." and not expect_segment:
            pos += 1
            expect_segment = True
            if pos == len(body):
                break
            continue
        match = _DOTTED_RE.match(body, pos)
        if match is None or (match.group(1) is not None and not expect_segment):
            raise ValueError(_bad_path(text))
        if match.group(1) is not None:
            segments.append(match.group(1))
        else:
            segments.append(int(match.group(2)))
        pos = match.end()
        expect_segment = False
    if expect_segment:
        raise ValueError(_bad_path(text))
    return tuple(segments)


def _bad_path(text: str) -> str:
    return (
        f"invalid path {text!r}: write keys separated by dots with list indexes as [n] or .n "
        "(data.items[2].name, checks.0.status), or a JSON Pointer (/data/items/2)"
    )
