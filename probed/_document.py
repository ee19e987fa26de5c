"""Reading one configuration document, shared by ``probed.yaml`` and the check files.

:func:`read_document` takes the file's bytes through every step both pipelines need: decode
(UTF-8, with or without BOM), parse YAML keeping line numbers (libyaml's alias and size limits,
plus interpolation's node budget against alias bombs), check that the top level is a mapping,
report keys written twice in one mapping, and resolve ``${...}`` references. What is left for
the caller is its own validation; :meth:`Document.locate` and :func:`pydantic_problems` turn
its ``(path, message)`` problems into ``FILE:LINE: field: message`` errors worded for people,
with interpolated values kept out of the messages.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel, ValidationError

from probed._interpolate import Interpolator
from probed._yaml import (
    DocPath,
    YDict,
    did_you_mean,
    duplicate_keys,
    format_path,
    line_at,
    load_yaml,
)
from probed.errors import ConfigError
from probed.redact import MIN_SECRET_LENGTH, hide

__all__ = [
    "Document",
    "Problem",
    "conceal",
    "pydantic_problems",
    "read_bytes",
    "read_document",
]

Problem = tuple[DocPath, str]
"""A problem found by validation: where inside the document (or a part of it), and what."""


# -- keeping interpolated values out of messages -------------------------------------------------


def _related(a: DocPath, b: DocPath) -> bool:
    n = min(len(a), len(b))
    return a[:n] == b[:n]


def conceal(message: str, loc: DocPath, hidden: Mapping[DocPath, Sequence[str]]) -> str:
    """``message`` about ``loc`` without the values interpolated there (or above or below it),
    nor any long value interpolated elsewhere in ``hidden``."""
    if not hidden:
        return message
    message = hide(message, (p for hp, ps in hidden.items() if _related(hp, loc) for p in ps))
    return hide(message, (p for ps in hidden.values() for p in ps if len(p) >= MIN_SECRET_LENGTH))


# -- pydantic errors worded for people ----------------------------------------------------------


def _models_in(annotation: Any, depth: int = 0) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if depth > 4:
        return []
    out: list[type[BaseModel]] = []
    for arg in getattr(annotation, "__args__", ()):
        out.extend(_models_in(arg, depth + 1))
    return out


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


def pydantic_problems(
    exc: ValidationError, model: type[BaseModel], extra_keys: Iterable[str] = ()
) -> list[Problem]:
    """A problem per pydantic error, worded from ``msg`` only (never the input value).

    :param extra_keys: more keys valid at the top level, for "did you mean" hints.
    """
    out: list[Problem] = []
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


# -- the document -------------------------------------------------------------------------------


@dataclass(slots=True)
class Document:
    """One configuration file, read and interpolated; its own validation is the caller's.

    :param source: the file name used in errors.
    :param tree: the interpolated top-level mapping, or ``None`` when the file is empty or
        could not be read as a mapping (then ``errors`` says why, unless it was empty).
    :param errors: the problems found while reading, in the part of the file in scope.
    :param secrets: secret values interpolated (to redact everywhere).
    :param hidden: interpolated values by path, kept out of messages.
    :param failed: paths whose interpolation failed (already reported).
    :param repeated: paths of keys written twice in one mapping (already reported).
    """

    source: str
    tree: YDict | None = None
    errors: list[ConfigError] = field(default_factory=list)
    secrets: set[str] = field(default_factory=set)
    hidden: dict[DocPath, list[str]] = field(default_factory=dict)
    failed: set[DocPath] = field(default_factory=set)
    repeated: set[DocPath] = field(default_factory=set)

    def line(self, path: DocPath) -> int:
        """The line of ``path`` (or of the closest enclosing part known)."""
        return line_at(self.tree, path)

    def error(self, path: DocPath, message: str) -> ConfigError:
        """An error at ``path`` of the document, interpolated values concealed."""
        return ConfigError(
            self.source, self.line(path), format_path(path), conceal(message, path, self.hidden)
        )

    def locate(self, problems: Iterable[Problem], base: DocPath = ()) -> list[ConfigError]:
        """Errors for problems found at ``base + path`` of the document."""
        return [self.error((*base, *loc), message) for loc, message in problems]


MAX_FILE_BYTES: Final = 64 * 1024 * 1024
"""Largest configuration file read (50,000 checks take about 8 MiB of YAML)."""


def read_bytes(path: Path) -> bytes | ConfigError:
    """The file's content, or the error saying why it cannot be read (or is too large)."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        return ConfigError(str(path), 0, "", f"cannot read: {exc.strerror or type(exc).__name__}")
    if len(data) > MAX_FILE_BYTES:
        return ConfigError(
            str(path),
            0,
            "",
            f"file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB; "
            "split its checks across several files",
        )
    return data


def _kind(value: Any) -> str:
    return "a list" if isinstance(value, list) else f"a {type(value).__name__}"


def read_document(
    source: str,
    content: bytes,
    interpolator: Interpolator,
    *,
    shape: str,
    say_kind: bool = True,
    in_scope: Callable[[DocPath], bool] | None = None,
    prepare: Callable[[YDict], None] | None = None,
) -> Document:
    """Decode, parse, check the top level and interpolate one document.

    :param source: the file name used in errors.
    :param content: the file's bytes.
    :param interpolator: resolves ``${...}`` (one per load, so a file is read once).
    :param shape: what the top level must be, for the error when it is not a mapping.
    :param say_kind: that error also says what the top level is instead.
    :param in_scope: which paths this reader reports repeated keys and interpolation errors
        for (``probed.yaml`` is read by both pipelines, each reporting its own part).
    :param prepare: called with the parsed tree before it is interpolated (``probed.yaml``
        sets the directories its own ``${file:}`` may read).
    :return: never raises for problems in the file: see :attr:`Document.errors`.
    """
    doc = Document(source)
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        doc.errors.append(ConfigError(source, 0, "", f"not valid UTF-8 (byte {exc.start})"))
        return doc
    try:
        tree = load_yaml(text, source)
    except ConfigError as exc:
        doc.errors.append(exc)
        return doc
    if tree is None:
        return doc
    if not isinstance(tree, YDict):
        message = f"the top level must be {shape}" + (f", got {_kind(tree)}" if say_kind else "")
        doc.errors.append(ConfigError(source, getattr(tree, "line", 1), "", message))
        return doc

    def mine(path: DocPath) -> bool:
        return in_scope is None or in_scope(path)

    for where, line, key in duplicate_keys(tree):
        if mine(where):
            doc.repeated.add((*where, key))
            doc.errors.append(
                ConfigError(
                    source,
                    line,
                    format_path((*where, key)),
                    f"key {key!r} is repeated in the same mapping; keep only one",
                )
            )
    if prepare is not None:
        prepare(tree)
    interpolated = interpolator.tree(tree)
    doc.secrets, doc.hidden, doc.failed = (
        interpolated.secrets,
        interpolated.pieces,
        interpolated.failed,
    )
    for where, message in interpolated.errors:
        if mine(where):
            doc.errors.append(
                ConfigError(source, line_at(interpolated.value, where), format_path(where), message)
            )
    if () not in interpolated.failed:  # the document is too large to work on
        doc.tree = interpolated.value
    return doc
