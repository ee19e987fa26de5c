"""Make equal immutable values of many check specs one object each, before they are compacted.

A checks file parsed into 10,000 specs holds 10,000 copies of the same ``"GET"``, ``3600.0``,
``65536``, ``"checks.d/web.yaml"``, and one ``__pydantic_fields_set__`` set per options model
(216 bytes each, nearly always the same few keys). :func:`share_equal` replaces each by one
shared instance; :func:`probed._gc.compact` pickles the specs right after, and pickle keeps
that sharing. Only immutable values are shared (str, bytes, int, float, bool, None and tuples
and frozensets of them), plus the fields-set sets of frozen pydantic models, which pydantic
copies before changing (``model_copy``) and never mutates in place. Lists and dicts stay per
spec: a check may hold on to them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import fields, is_dataclass
from typing import Any

from pydantic import BaseModel

__all__ = ["share_equal"]

_ATOMS = (str, bytes, int, float, bool, type(None))
_ITEMS = (str, bytes, int, bool, type(None))  # in tuples: (0.0,) == (-0.0,), so no floats


class _Pool:
    __slots__ = ("fields_sets", "values")

    def __init__(self) -> None:
        self.values: dict[tuple[type, Any], Any] = {}
        self.fields_sets: dict[frozenset[str], set[str]] = {}

    def value(self, v: Any) -> Any:
        kind = type(v)
        if kind is float:  # keyed by its bits: 0.0 == -0.0, and NaN equals nothing
            return self.values.setdefault((kind, v.hex()), v)
        if kind in _ATOMS or (kind in (tuple, frozenset) and all(type(x) in _ITEMS for x in v)):
            return self.values.setdefault((kind, v), v)
        if isinstance(v, BaseModel):
            self.model(v)
        return v

    def model(self, m: BaseModel) -> None:
        if not m.model_config.get("frozen"):
            return
        state = m.__dict__
        for key, v in state.items():
            state[key] = self.value(v)
        fields_set = m.__pydantic_fields_set__
        if type(fields_set) is set:
            shared = self.fields_sets.setdefault(frozenset(fields_set), fields_set)
            object.__setattr__(m, "__pydantic_fields_set__", shared)


def share_equal(specs: Iterable[Any]) -> None:
    """Share equal immutable field values (and options fields) across ``specs`` in place.

    ``specs`` are frozen dataclasses (:class:`probed.spec.CheckSpec`); their pydantic option
    models are walked too. Equality, hashing and every value read stay the same.
    """
    pool = _Pool()
    for spec in specs:
        if not is_dataclass(spec) or isinstance(spec, type):
            continue
        for f in fields(spec):
            old = getattr(spec, f.name)
            new = pool.value(old)
            if new is not old:
                object.__setattr__(spec, f.name, new)
