"""What one check is configured with: :class:`CheckSpec` (its common keys, its options, where it
was defined) and :class:`CheckOptions`, the base of every check type's options model."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Final

from pydantic import BaseModel, ConfigDict

from probed.common import CommonKeys

__all__ = ["CheckOptions", "CheckSpec"]


_NUMBERS: dict[tuple[type, object], object] = {}
_NUMBERS_MAX: Final = 4096


def _interned(value: Any) -> Any:
    """One shared object per equal float or int (``bool`` and CPython's cached small ints
    aside) among unpickled specs: pickle copies numbers (it shares only what it memoizes), so
    the configuration's compaction (:func:`probed._gc.compact`) would give 10,000 checks
    10,000 copies of ``3600.0``. Floats are keyed by their bits (``0.0`` is not ``-0.0``); the
    table keeps at most :data:`_NUMBERS_MAX` values (then starts again)."""
    kind = type(value)
    if kind is float:
        key: tuple[type, object] = (kind, value.hex())
    elif kind is int and not -5 <= value <= 256:
        key = (kind, value)
    else:
        return value
    shared = _NUMBERS.get(key)
    if shared is not None:
        return shared
    if len(_NUMBERS) >= _NUMBERS_MAX:  # bounded: start again (what was shared stays shared)
        _NUMBERS.clear()
    _NUMBERS[key] = value
    return value


class CheckOptions(BaseModel):
    """Base for a check type's options model: frozen, and unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def __setstate__(self, state: dict[Any, Any]) -> None:
        """Unpickle (pydantic's), with equal numbers shared (see :func:`_interned`)."""
        super().__setstate__(state)
        values = self.__dict__
        for key, value in values.items():
            if type(value) is float or type(value) is int:
                values[key] = _interned(value)


@dataclass(frozen=True, slots=True)
class CheckSpec(CommonKeys):
    """One check as configured: its common keys (see :class:`~probed.common.CommonKeys`:
    name, type, interval, timeout, readiness, thresholds, labels, ...), its type's options,
    and where it was defined.

    Two specs compare equal when the configuration is the same, which is how a reload decides
    that a check is unchanged and keeps its state and schedule.
    """

    options: CheckOptions = field(kw_only=True)
    source: str = field(default="", compare=False)
    line: int = field(default=0, compare=False)

    def __setstate__(self, state: list[Any]) -> None:
        """Unpickle (as the dataclass would), with equal numbers of the compared fields
        shared (an interval, a timeout: see :func:`_interned`; not ``line``, unique)."""
        for f, value in zip(fields(self), state, strict=True):
            object.__setattr__(self, f.name, _interned(value) if f.compare else value)

    @property
    def where(self) -> str:
        """``file:line`` where the check is defined, for messages."""
        return f"{self.source}:{self.line}" if self.source else "<built-in>"

    def public_options(self) -> dict[str, Any]:
        """Options as JSON-able data with secret fields masked."""
        return self.options.model_dump(mode="json")
