"""Make equal values of many check specs one object each, before they are compacted.

A checks file parsed into 10,000 specs holds 10,000 copies of the same ``"GET"``, ``3600.0``,
``65536``, ``"checks.d/web.yaml"``, one ``__pydantic_fields_set__`` set per options model
(216 bytes each, nearly always the same few keys), and, in the built-in types' options, the
same empty ``headers: {}`` and ``body_must_match: []`` (an ``http`` check has ten such empty
containers, ~660 bytes) and the same default ``tls:`` model (~350 bytes). :func:`share_equal`
replaces each by one shared instance; :func:`probed._gc.compact` pickles the specs right after,
and pickle keeps that sharing.

What is shared:

- immutable values (str, bytes, int, float, bool, None and tuples and frozensets of them), and
  the fields-set sets of frozen pydantic models, which pydantic copies before changing
  (``model_copy``) and never mutates in place;
- in the options of the built-in check types (frozen models defined in ``probed``), equal
  lists, dicts and nested models too, up to whole options models that are equal (same type,
  fields, fields set and extras): probed's own check types never change a container they
  were configured with (they copy what they need), so sharing one is invisible.

A plugin's options models keep their own lists, dicts and nested models: a plugin may hold on
to one and change it.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import fields, is_dataclass
from typing import Any

from pydantic import BaseModel, SecretBytes, SecretStr

__all__ = ["share_equal"]

_ATOMS = (str, bytes, int, float, bool, type(None))
_ITEMS = (str, bytes, int, bool, type(None))  # in tuples: (0.0,) == (-0.0,), so no floats


class _NoKeyError(Exception):
    """A value that equality cannot safely key (unhashable, or of an unknown kind)."""


def _key(v: Any) -> Hashable:
    """A hashable key that two values share only if they are equal and of the same types all
    the way down (``0.0`` and ``-0.0``, ``1`` and ``True`` differ; dict order counts)."""
    kind = type(v)
    if kind is float:
        return (float, v.hex())
    if kind in _ATOMS:
        return (kind, v)
    if kind is tuple or kind is list:
        return (kind, tuple(_key(x) for x in v))
    if kind is frozenset:
        return (kind, frozenset(_key(x) for x in v))
    if kind is dict:
        return (kind, tuple((_key(k), _key(x)) for k, x in v.items()))
    if kind is SecretStr or kind is SecretBytes:
        return (kind, v.get_secret_value())
    if isinstance(v, BaseModel):
        if not _builtin(v):
            raise _NoKeyError
        return (
            kind,
            frozenset(v.__pydantic_fields_set__),
            _key(v.__dict__),
            _key(v.__pydantic_extra__),
            _key(v.__pydantic_private__),
        )
    try:
        return (kind, v, hash(v))
    except TypeError:
        raise _NoKeyError from None


def _builtin(m: BaseModel) -> bool:
    """A frozen model of probed's own check types, whose containers probed never changes."""
    return bool(m.model_config.get("frozen")) and type(m).__module__.startswith("probed.")


class _Pool:
    __slots__ = ("fields_sets", "values")

    def __init__(self) -> None:
        self.values: dict[Hashable, Any] = {}
        self.fields_sets: dict[frozenset[str], set[str]] = {}

    def value(self, v: Any) -> Any:
        kind = type(v)
        if kind is float:  # keyed by its bits: 0.0 == -0.0, and NaN equals nothing
            return self.values.setdefault((kind, v.hex()), v)
        if kind in _ATOMS or (kind in (tuple, frozenset) and all(type(x) in _ITEMS for x in v)):
            return self.values.setdefault((kind, v), v)
        if isinstance(v, BaseModel):
            self.model(v)
            if _builtin(v):
                return self.shared(v)
        return v

    def shared(self, v: Any) -> Any:
        """``v``, or an equal value already seen (keyed by :func:`_key`)."""
        try:
            key = _key(v)
        except _NoKeyError:
            return v
        return self.values.setdefault(("shared", key), v)

    def model(self, m: BaseModel) -> None:
        if not m.model_config.get("frozen"):
            return
        state = m.__dict__
        builtin = _builtin(m)
        for key, v in state.items():
            if builtin and type(v) in (list, dict):
                state[key] = self.shared(v)
            else:
                state[key] = self.value(v)
        fields_set = m.__pydantic_fields_set__
        if type(fields_set) is set:
            shared = self.fields_sets.setdefault(frozenset(fields_set), fields_set)
            object.__setattr__(m, "__pydantic_fields_set__", shared)


def share_equal(specs: Iterable[Any]) -> None:
    """Share equal values (see the module's docstring) across ``specs`` in place.

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
