"""What the ``http``/``json_api`` checks build once and share between instances: the parsed
``valid_status_codes`` (:func:`status_ranges`) and the client settings (:func:`shared_client`).
At 50,000 checks, one object for each distinct value instead of one per check."""

from __future__ import annotations

import functools
import re
from typing import Final

from probed.checks._httpclient import ClientConfig

__all__ = ["parse_status_codes", "shared_client", "status_ranges"]

_STATUS_RE: Final = re.compile(r"([1-5])xx|(\d{3})(?:\s*-\s*(\d{3}))?")
_CLIENTS: Final[dict[tuple[ClientConfig, tuple[type, ...], object], ClientConfig]] = {}
_CLIENTS_MAX: Final = 4096


def parse_status_codes(specs: list[int | str]) -> tuple[tuple[int, int], ...]:
    """Inclusive (low, high) ranges from ``200``, ``"2xx"``, ``"200-299"`` items.

    :raises ValueError: for anything else, saying which item.
    """
    ranges = []
    for spec in specs:
        text = str(spec).strip().lower()
        match = _STATUS_RE.fullmatch(text)
        if not match:
            raise ValueError(f"invalid status code {spec!r}: use 200, '2xx' or '200-299'")
        if match.group(1):
            low = int(match.group(1)) * 100
            ranges.append((low, low + 99))
            continue
        low = int(match.group(2))
        high = int(match.group(3) or low)
        if not 100 <= low <= high <= 599:
            raise ValueError(f"invalid status code range {spec!r}: codes are 100-599, low first")
        ranges.append((low, high))
    if not ranges:
        raise ValueError("valid_status_codes must not be empty")
    return tuple(ranges)


@functools.lru_cache(maxsize=256)
def status_ranges(specs: tuple[int | str, ...]) -> tuple[tuple[int, int], ...]:
    """:func:`parse_status_codes`, one shared result per distinct ``specs``."""
    return parse_status_codes(list(specs))


def shared_client(config: ClientConfig) -> ClientConfig:
    """``config``, or an equal one already built: one object for the many checks that fetch
    the same way (the URL is not part of it), each 120 bytes otherwise.

    Equal means equal fields of the same types, and the same preferred family (a
    ``PreferredFamily`` is an ``int`` equal to ``AF_UNSPEC`` whichever family it prefers).
    Only a config without an SSL context of its own or a proxy (each check builds its own of
    these); at most :data:`_CLIENTS_MAX` are kept.
    """
    if config.ssl_context is not None or config.proxy is not None:
        return config
    kinds = tuple(type(getattr(config, name)) for name in ClientConfig.__slots__)
    key = (config, kinds, getattr(config.family, "prefer", None))
    try:
        shared = _CLIENTS.get(key)
        if shared is None and len(_CLIENTS) < _CLIENTS_MAX:
            shared = _CLIENTS[key] = config
    except TypeError:  # an unhashable field (a plugin's redirect_check, say)
        return config
    return config if shared is None else shared
