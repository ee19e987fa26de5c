"""YAML loading that remembers line numbers, and helpers to point errors at them.

:func:`load_yaml` parses with a ``SafeLoader`` whose mappings and sequences are :class:`YDict`
and :class:`YList`: ordinary ``dict``/``list`` subclasses that also record the line of the
mapping, of each key and of each sequence item. :func:`line_at` walks a path such as
``("checks", 0, "url")`` (a pydantic ``loc``) down that tree to the most precise known line,
and :func:`format_path` renders it as ``checks[0].url`` for ``FILE:LINE: field: message`` errors.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Final

import yaml
from yaml.events import (
    AliasEvent,
    CollectionEndEvent,
    CollectionStartEvent,
    NodeEvent,
)
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from probed.errors import ConfigError

__all__ = [
    "MAX_DEPTH",
    "MAX_INT_DIGITS",
    "MAX_NODES",
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

MAX_NODES: Final = 3_000_000
"""Most nodes a document may hold, counting every alias as a copy of what it points to (a
YAML "billion laughs" is a small file that is exponentially large once aliases are expanded;
50,000 checks take about a million nodes)."""
MAX_DEPTH: Final = 100
"""Deepest nesting of mappings and sequences (a check needs fewer than ten levels; libyaml's
composer recurses in C and crashes the process on tens of thousands)."""
MAX_INT_DIGITS: Final = 64
"""Longest integer read (Python refuses to convert more than 4,300 digits, and no option needs
more than 20)."""


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


def _construct_int(loader: _LineLoader, node: ScalarNode) -> int:
    text = str(node.value)
    if len(text) > MAX_INT_DIGITS:
        raise yaml.constructor.ConstructorError(
            None,
            None,
            f"integer with {len(text)} characters: at most {MAX_INT_DIGITS} digits are read",
            node.start_mark,
        )
    value: int = loader.construct_yaml_int(node)
    return value


_LineLoader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)
_LineLoader.add_constructor("tag:yaml.org,2002:seq", _construct_sequence)
_LineLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)


def _scan(text: str) -> None:
    """Refuse, before anything is built, a document too deep, too large once its aliases are
    expanded, or with an alias inside the node it refers to.

    Reads the event stream once: every node counts, an alias counts as many nodes as the node
    it refers to (whose size is known when the node ends), so a "billion laughs" stops as soon
    as the count passes :data:`MAX_NODES`, at the cost of reading the file once.

    :raises yaml.MarkedYAMLError: located at the offending event.
    """
    loader = _BaseLoader(text)
    count = 0
    sizes: dict[str, int] = {}
    # Open collections: (anchor or None, count when it started).
    stack: list[tuple[str | None, int]] = []
    open_anchors: set[str] = set()
    try:
        while (event := loader.get_event()) is not None:  # type: ignore[no-untyped-call]
            if not isinstance(event, NodeEvent | CollectionEndEvent):
                continue
            problem = ""
            if isinstance(event, AliasEvent):
                name = str(event.anchor)
                if name in open_anchors:
                    problem = f"alias *{name} refers to a node that contains it (a cycle)"
                else:
                    count += sizes.get(name, 1)
            elif isinstance(event, CollectionStartEvent):
                count += 1
                stack.append((event.anchor, count - 1))
                if event.anchor is not None:
                    open_anchors.add(event.anchor)
                if len(stack) > MAX_DEPTH:
                    problem = f"nested more than {MAX_DEPTH} levels deep"
            elif isinstance(event, CollectionEndEvent):
                anchor, start = stack.pop()
                if anchor is not None:
                    open_anchors.discard(anchor)
                    sizes[anchor] = count - start
            else:  # a scalar
                count += 1
                if event.anchor is not None:
                    sizes[event.anchor] = 1
            if not problem and count > MAX_NODES:
                problem = (
                    f"more than {MAX_NODES:,} values once aliases are expanded (an alias bomb?)"
                )
            if problem:
                raise yaml.composer.ComposerError(None, None, problem, event.start_mark)  # type: ignore[arg-type]
    finally:
        loader.dispose()


def load_yaml(text: str, source: str) -> Any:
    """Parse one YAML document; mappings are :class:`YDict`, sequences :class:`YList`.

    :param text: the document.
    :param source: the file name used in errors.
    :raises ConfigError: a syntax error, or a document refused by the limits above (too deep,
        too many nodes with aliases expanded, a recursive alias, a huge integer), located at
        the line and column of the YAML mark.
    """
    try:
        _scan(text)
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
    import difflib  # only for a mistake's hint

    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def to_plain(value: Any) -> Any:
    """A copy of ``value`` with :class:`YDict`/:class:`YList` turned into plain dict/list."""
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_plain(v) for v in value]
    return value
