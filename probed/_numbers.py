"""The numbers a check's last result keeps: :class:`Numbers`, a compact read-only mapping.

Every check keeps its last result, and with it that run's ``phases`` and ``values``: as dicts,
about 200 bytes and a float object per number. :meth:`probed.state.CheckState.record` keeps
them as :class:`Numbers` instead (re-exported by :mod:`probed.state`).
"""

from __future__ import annotations

import struct
from collections.abc import ItemsView, Iterator, Mapping, ValuesView
from typing import Final

__all__ = ["Numbers"]


class Numbers(Mapping[str, float]):
    """A read-only mapping of names to numbers: what a check's last result keeps of its
    ``phases`` and ``values`` (see :meth:`probed.state.CheckState.record`).

    The names are one tuple shared by every mapping with the same names; the numbers, when
    all are floats (as the daemon's checked results always are), are packed in one ``bytes``
    (8 bytes each, exact; reading one builds an equal float), a single float is kept as it is,
    and anything else as a tuple. A one-item dict is 184 bytes plus its float (24); this is a
    48-byte object and the float. Five floats in a tuple are 200 bytes; packed, 73. Iterates
    in the dict's order and compares equal to it.
    """

    __slots__ = ("_names", "_numbers")

    def __init__(self, items: Mapping[str, float]) -> None:
        names = tuple(items)
        self._names = _NAMES.setdefault(names, names) if len(_NAMES) < 1000 else names
        numbers = tuple(items.values())
        self._numbers: bytes | float | tuple[float, ...] = numbers
        if len(numbers) <= _MAX_PACKED:
            for number in numbers:
                if type(number) is not float:
                    return
            self._numbers = (
                numbers[0] if len(numbers) == 1 else _packer(len(numbers)).pack(*numbers)
            )

    def _values(self) -> tuple[float, ...]:
        numbers = self._numbers
        if type(numbers) is bytes:
            return _packer(len(numbers) // 8).unpack(numbers)
        if type(numbers) is float:
            return (numbers,)
        return numbers  # type: ignore[return-value]

    def __getitem__(self, name: str) -> float:
        try:
            i = self._names.index(name)
        except ValueError:
            raise KeyError(name) from None
        numbers = self._numbers
        if type(numbers) is bytes:
            number: float = _DOUBLE.unpack_from(numbers, 8 * i)[0]
            return number
        if type(numbers) is float:
            return numbers
        return numbers[i]  # type: ignore[index]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def items(self) -> ItemsView[str, float]:
        """``(name, number)`` pairs, in order (unpacked at once, not one lookup each)."""
        return _NumberItems(self)

    def values(self) -> ValuesView[float]:
        """The numbers, in order."""
        return _NumberValues(self)

    def __repr__(self) -> str:
        return repr(dict(zip(self._names, self._values(), strict=True)))


class _NumberItems(ItemsView[str, float]):
    _mapping: Numbers

    def __iter__(self) -> Iterator[tuple[str, float]]:
        mapping = self._mapping
        return zip(mapping._names, mapping._values(), strict=True)


class _NumberValues(ValuesView[float]):
    _mapping: Numbers

    def __iter__(self) -> Iterator[float]:
        return iter(self._mapping._values())


_DOUBLE: Final = struct.Struct("=d")
_MAX_PACKED: Final = 64
_PACKERS: Final[dict[int, struct.Struct]] = {}


def _packer(n: int) -> struct.Struct:
    """The struct of ``n`` native doubles, ``n`` at most :data:`_MAX_PACKED` (cached)."""
    packer = _PACKERS.get(n)
    if packer is None:
        packer = _PACKERS[n] = struct.Struct(f"={n}d")
    return packer


_NAMES: dict[tuple[str, ...], tuple[str, ...]] = {}
"""One tuple per set of names seen by :class:`Numbers` (phases and metrics: a few dozen)."""
