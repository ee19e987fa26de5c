"""The daemon's type-specific metric families, of the check types loaded so far.

A built-in check type's module is imported when the type is first used
(:mod:`probed._check_types`), so the families of a type are added when its class is loaded:
in the order of the registered types, as if every type had been loaded from the start. Only
checks of a loaded type have results, so ``/metrics`` is the same.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from probed._check_types import CheckTypeInfo, watch
from probed.check import MetricDef
from probed.exposition import TypeMetrics

__all__ = ["LoadedTypeMetrics"]


class LoadedTypeMetrics(TypeMetrics):
    """:class:`~probed.exposition.TypeMetrics` of the loaded types among ``types``, kept
    current as more load (a conflicting declaration is logged when both types are loaded)."""

    def __init__(self, types: Mapping[str, CheckTypeInfo]) -> None:
        self._types = types
        self._loaded = self._loaded_names()
        super().__init__(self._declared())
        watch(self)

    def _loaded_names(self) -> tuple[str, ...]:
        return tuple(name for name, info in self._types.items() if info.loaded)

    def _declared(self) -> list[tuple[str, Sequence[MetricDef]]]:
        return [(name, self._types[name].cls.metrics) for name in self._loaded]

    def refresh(self) -> None:
        """Rebuild the families if a type of ``types`` was loaded since (replacing the dicts:
        a render in progress keeps the ones it started with)."""
        loaded = self._loaded_names()
        if loaded != self._loaded:
            self._loaded = loaded
            fresh = TypeMetrics(self._declared())
            self.labels = fresh.labels
            self.families = fresh.families
