"""An exposition text built slice by slice (used by :mod:`probed.exposition`).

Each :meth:`Assembly.add` joins its checks' lines family by family at once, so what is kept
between slices is a few strings per family (not a line per check and family) and the final
:meth:`Assembly.text` joins only those: a render of 50,000 checks can yield to the event loop
between slices instead of assembling 20 MB in one go.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from operator import itemgetter
from typing import Protocol

__all__ = ["Assembly"]


class Header(Protocol):
    """A metric family: its name and its ``# HELP``/``# TYPE`` lines."""

    @property
    def name(self) -> str:
        """The family name."""
        ...

    def header(self, openmetrics: bool) -> str:
        """The family's header lines in the given format."""
        ...


class Lines(Protocol):
    """One check's rendered lines: one string per core family, and per type family."""

    @property
    def core(self) -> list[str]:
        """By index of the core and optional families."""
        ...

    @property
    def extra(self) -> dict[str, str]:
        """By type-specific family name."""
        ...


class Assembly:
    """:meth:`add` the lines of some checks, slice after slice, then :meth:`text` once.

    :param families: the core then optional families, in the order of each check's ``core``.
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
        self._core: list[list[str]] = [[] for _ in families]
        self._extra: dict[str, list[str]] = {}

    def add(self, caches: Sequence[Lines]) -> None:
        """Join the lines of ``caches`` (in this order, after those added before)."""
        if not caches:
            return
        self._any = True
        cores = [c.core for c in caches]
        for index, parts in enumerate(self._core):
            joined = "".join(map(itemgetter(index), cores))
            if joined:
                parts.append(joined)
        grouped: dict[str, list[str]] = {}
        for cache in caches:
            for name, chunk in cache.extra.items():
                bucket = grouped.get(name)
                if bucket is None:
                    grouped[name] = [chunk]
                else:
                    bucket.append(chunk)
        extra = self._extra
        for name, chunks in grouped.items():
            extra.setdefault(name, []).append("".join(chunks))

    def text(self, openmetrics: bool, tail: str = "") -> str:
        """Every family added, each after its header, then ``tail``."""
        out: list[str] = []
        for index, family in enumerate(self._families):
            parts = self._core[index]
            if family.name in self._drop:
                continue
            optional = index >= self._optional_from or (index == self._hist and self._any)
            if optional and not parts:
                continue
            out.append(family.header(openmetrics))
            out.extend(parts)
        for name, family in self._extra_families.items():
            chunks = self._extra.get(name)  # none for a dropped family
            if chunks:
                out.append(family.header(openmetrics))
                out.extend(chunks)
        out.append(tail)
        return "".join(out)
