"""YAML loading that remembers line numbers, and helpers to point errors at them.

:func:`load_yaml` parses with a ``SafeLoader`` whose mappings and sequences are :class:`YDict`
and :class:`YList`: ordinary ``dict``/``list`` subclasses that also record the line of the
mapping, of each key and of each sequence item. :func:`line_at` walks a path such as
``("checks", 0, "url")`` (a pydantic ``loc``) down that tree to the most precise known line,
and :func:`format_path` renders it as ``checks[0].url`` for ``FILE:LINE: field: message`` errors.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Final

import yaml
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from probed.errors import ConfigError

__all__ = [
    "DocPath",
    "YDict",
    "YList",
    "did_you_mean",
    "duplicate_keys",
    "format_path",
    "line_at",
    "load_yaml",
    "to_plain",
]

DocPath = tuple[str | int, ...]
"""A location inside a document: mapping keys and sequence indexes (like a pydantic ``loc``)."""

_MERGE_TAG: Final = "tag:yaml.org,2002:merge"


class YDict(dict[Any, Any]):
    """A mapping from YAML that knows its own line, each key's line and repeated keys."""

    __slots__ = ("duplicates", "key_lines", "line")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.line = 0
        self.key_lines: dict[Any, int] = {}
        self.duplicates: list[tuple[Any, int]] = []


class YList(list[Any]):
    """A sequence from YAML that knows its own line and each item's line."""

    __slots__ = ("item_lines", "line")

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.line = 0
        self.item_lines: list[int] = []


# libyaml parses about ten times faster than the pure-Python parser (10,000 checks); both give
# the same nodes and marks, and construction stays in Python either way.
_BaseLoader: Final[type[yaml.SafeLoader]] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _LineLoader(_BaseLoader):  # type: ignore[valid-type,misc]
    """SafeLoader building :class:`YDict`/:class:`YList` with 1-based line numbers."""


def _construct_mapping(loader: _LineLoader, node: MappingNode) -> Iterator[YDict]:
    data = YDict()
    data.line = node.start_mark.line + 1
    # Yield first so recursive anchors resolve, exactly like SafeConstructor does.
    yield data
    # Repeated keys are checked among the keys written here; merged (``<<``) keys may be
    # overridden on purpose, so they are not duplicates.
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == _MERGE_TAG or not isinstance(key_node, ScalarNode):
            continue
        key = loader.construct_object(key_node)
        line = key_node.start_mark.line + 1
        if key in seen:
            data.duplicates.append((key, line))
        seen[key] = line
    loader.flatten_mapping(node)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping",
                node.start_mark,
                "found an unhashable key",
                key_node.start_mark,
            ) from None
        data[key] = loader.construct_object(value_node, deep=False)
        data.key_lines[key] = key_node.start_mark.line + 1


def _construct_sequence(loader: _LineLoader, node: SequenceNode) -> Iterator[YList]:
    data = YList()
    data.line = node.start_mark.line + 1
    data.item_lines = [item.start_mark.line + 1 for item in node.value]
    yield data
    data.extend(loader.construct_sequence(node))


_LineLoader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)
_LineLoader.add_constructor("tag:yaml.org,2002:seq", _construct_sequence)


def load_yaml(text: str, source: str) -> Any:
    """Parse one YAML document; mappings are :class:`YDict`, sequences :class:`YList`.

    :param text: the document.
    :param source: the file name used in errors.
    :raises ConfigError: a syntax error, located at the line and column of the YAML mark.
    """
    try:
        return yaml.load(text, Loader=_LineLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "cannot parse"
        if mark is None:
            raise ConfigError(source, 0, "", f"invalid YAML: {problem}") from None
        raise ConfigError(
            source, mark.line + 1, "", f"invalid YAML at column {mark.column + 1}: {problem}"
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(source, 0, "", f"invalid YAML: {exc}") from None


def line_at(tree: Any, path: Sequence[Any], default: int = 0) -> int:
    """The line of the deepest part of ``path`` found in ``tree`` (``default`` if none)."""
    line = getattr(tree, "line", 0) or default
    node = tree
    for part in path:
        if isinstance(node, YDict) and part in node.key_lines:
            line = node.key_lines[part]
            node = node[part]
        elif (
            isinstance(node, YList)
            and isinstance(part, int)
            and not isinstance(part, bool)
            and 0 <= part < len(node.item_lines)
        ):
            line = node.item_lines[part]
            node = node[part]
        else:
            break
    return line


def format_path(path: Iterable[Any]) -> str:
    """Render ``("checks", 0, "url")`` as ``checks[0].url``."""
    out = ""
    for part in path:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def duplicate_keys(tree: Any, path: DocPath = ()) -> Iterator[tuple[DocPath, int, Any]]:
    """Yield ``(path_of_mapping, line, key)`` for every key written twice in one mapping."""
    if isinstance(tree, YDict):
        for key, line in tree.duplicates:
            yield path, line, key
        for key, value in tree.items():
            yield from duplicate_keys(value, (*path, key))
    elif isinstance(tree, YList):
        for index, value in enumerate(tree):
            yield from duplicate_keys(value, (*path, index))


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """`` (did you mean 'url'?)`` when a candidate is close to ``word``, else ``""``."""
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def to_plain(value: Any) -> Any:
    """A copy of ``value`` with :class:`YDict`/:class:`YList` turned into plain dict/list."""
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_plain(v) for v in value]
    return value
