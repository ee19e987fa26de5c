"""An exposition body built slice by slice (used by :mod:`probed.exposition`).

Each :meth:`Assembly.add` joins its checks' lines family by family at once, so what is kept
between slices is a few byte strings per family (not a line per check and family) and the
final :meth:`Assembly.body` joins only those: a render of 50,000 checks can yield to the event
loop between slices instead of assembling 20 MB in one go. Lines are kept and joined as UTF-8
bytes, so the body is never copied from text to bytes.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from itertools import groupby
from operator import itemgetter
from typing import Protocol

__all__ = ["HEAD", "Assembly", "Entry", "Layout"]


class Header(Protocol):
    """A metric family: its name and its ``# HELP``/``# TYPE`` lines."""

    @property
    def name(self) -> str:
        """The family name."""
        ...

    def header(self, openmetrics: bool) -> str:
        """The family's header lines in the given format."""
        ...


Layout = tuple[int | str, ...]
"""Which families a check has lines for: first how many of its chunks are static lines (the
renderer's business), then a key per chunk in the order of its chunks: a core family by
index, a type-specific family by name. Equal layouts are one shared tuple (see
:func:`probed.exposition.shared_layout`)."""

Entry = tuple[int, Layout, object, str, *tuple[bytes, ...]]
"""One check's rendered lines, flat: its state version, its :data:`Layout`, what it was
rendered from (the renderer's business: its spec) and its label prefix, then, from
:data:`HEAD` on, one chunk of UTF-8 lines per family of the layout (only families it has
lines for). One tuple per check, not a list with an empty string per absent family: at 50,000
checks the kept lines are most of ``/metrics``' memory."""

HEAD = 4
"""Index of an :data:`Entry`'s first chunk."""


class Assembly:
    """:meth:`add` the lines of some checks, slice after slice, then :meth:`body` once.

    :param families: the core then optional families; an ``int`` in a :data:`Layout` indexes
        this sequence.
    :param optional_from: index of the first optional family (no header when no check has
        lines for it).
    :param histogram: index of the duration histogram (no header when checks exist but none
        has one).
    :param extra_families: type-specific families by name, in output order.
    :param drop: families not exported at all.
    """

    __slots__ = (
        "_any",
        "_core",
        "_drop",
        "_extra",
        "_extra_families",
        "_families",
        "_hist",
        "_optional_from",
    )

    def __init__(
        self,
        families: Sequence[Header],
        optional_from: int,
        histogram: int,
        extra_families: Mapping[str, Header],
        drop: Collection[str] = frozenset(),
    ) -> None:
        self._families = families
        self._optional_from = optional_from
        self._hist = histogram
        self._extra_families = extra_families
        self._drop = drop
        self._any = False
        self._core: list[list[bytes]] = [[] for _ in families]
        self._extra: dict[str, list[bytes]] = {}

    def add(self, entries: Iterable[Entry]) -> None:
        """Join the lines of ``entries`` (in this order, after those added before).

        Consecutive checks with the same layout (nearly always all of a slice) are joined
        column by column at C speed; order within each family is the order of ``entries``.
        """
        core, extra = self._core, self._extra
        for layout, group in groupby(entries, _LAYOUT):
            self._any = True
            columns = zip(*group, strict=True)
            for _ in range(HEAD):  # versions, layouts, specs, label prefixes
                next(columns)
            for key, column in zip(layout[1:], columns, strict=True):
                joined = b"".join(column)
                if type(key) is int:
                    core[key].append(joined)
                else:
                    extra.setdefault(key, []).append(joined)

    def body(self, openmetrics: bool, tail: bytes = b"") -> bytes:
        """Every family added, each after its header, then ``tail``."""
        return b"".join(self.chunks(openmetrics, tail))

    def chunks(self, openmetrics: bool, tail: bytes = b"") -> list[bytes]:
        """:meth:`body` in pieces (headers and joined slices, never copied into one body)."""
        out: list[bytes] = []
        for index, family in enumerate(self._families):
            parts = self._core[index]
            if family.name in self._drop:
                continue
            optional = index >= self._optional_from or (index == self._hist and self._any)
            if optional and not parts:
                continue
            out.append(family.header(openmetrics).encode())
            out.extend(parts)
        for name, family in self._extra_families.items():
            chunks = self._extra.get(name)  # none for a dropped family
            if chunks:
                out.append(family.header(openmetrics).encode())
                out.extend(chunks)
        out.append(tail)
        return out


_LAYOUT = itemgetter(1)
