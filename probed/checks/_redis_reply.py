"""Bounded RESP2 replies for the ``redis`` check: a hostile server cannot make it buffer much.

redis-py's pure-Python parser trusts the lengths the server announces: ``$999999999999``
makes it ``readexactly`` a terabyte (RSS went from 58 MB to 3.5 GB in 5 s), ``*999999999``
builds a list of that many replies, and a reply line is only bounded by asyncio's 64 KiB
``readline`` limit (which surfaces as a bare ``ValueError``). :func:`bounded_parser` returns a
subclass of that parser which checks every line before acting on it:

- a bulk string may announce at most :data:`MAX_BULK` bytes (``INFO`` is a few KiB);
- an array at most :data:`MAX_ELEMENTS` elements;
- a line (status, error, integer, length) at most asyncio's stream limit;
- the whole connection (one check run) at most :data:`MAX_TOTAL` bytes of replies.

Each limit raises :class:`ReplyTooLarge` (a redis-py ``InvalidResponse``) with a sentence naming
the limit; the check reports it as a ``protocol`` failure, having read at most the limit.
The parser is forced for every check connection (also when ``hiredis`` is installed).
"""

from __future__ import annotations

import functools
import re
from typing import Any, Final

from probed.options import format_size

__all__ = ["MAX_BULK", "MAX_ELEMENTS", "MAX_TOTAL", "bounded_parser", "reply_too_large"]

MAX_BULK: Final = 1 << 20
"""Largest bulk string a check accepts (``INFO`` of a busy server is ~10 KiB)."""
MAX_ELEMENTS: Final = 4096
"""Largest array a check accepts (PING, AUTH, SELECT and INFO return none)."""
MAX_TOTAL: Final = 4 << 20
"""Bytes of replies one run may read in all."""
_LENGTH: Final = re.compile(rb"-?[0-9]{1,18}")


def reply_too_large(exc: BaseException) -> bool:
    """Whether ``exc`` is the bounded parser's refusal of an oversized reply."""
    return type(exc).__name__ == "ReplyTooLarge"


def _length(line: bytes, what: str, error: type[Exception]) -> int:
    digits = line[1:]
    if not _LENGTH.fullmatch(digits):
        raise error(f"a {what} length that is not a number: {digits[:24]!r}")
    return int(digits)


@functools.cache
def bounded_parser() -> type[Any]:
    """The bounded parser class (built on first use: redis is an optional dependency)."""
    from redis._parsers import _AsyncRESP2Parser
    from redis.exceptions import InvalidResponse

    class ReplyTooLarge(InvalidResponse):
        """A reply over one of the check's limits."""

    class BoundedRESP2Parser(_AsyncRESP2Parser):
        """redis-py's RESP2 parser with every announced length checked before it is read."""

        __slots__ = ("_probed_total",)

        def __init__(self, socket_read_size: int) -> None:
            super().__init__(socket_read_size)
            self._probed_total = 0

        def _count(self, size: int) -> None:
            self._probed_total += size
            if self._probed_total > MAX_TOTAL:
                raise ReplyTooLarge(
                    f"more than {format_size(MAX_TOTAL)} of replies in one run (the check's limit)"
                )

        async def _readline(self) -> bytes:
            try:
                line: bytes = await super()._readline()
            except ValueError:  # asyncio's StreamReader limit: no CRLF in 64 KiB
                raise ReplyTooLarge("a reply line longer than 64 KiB (no CRLF in sight)") from None
            self._count(len(line) + 2)
            kind = line[:1]
            if kind == b"$":
                size = _length(line, "bulk string", ReplyTooLarge)
                if size > MAX_BULK:
                    raise ReplyTooLarge(
                        f"a bulk string of {size} bytes (the check's limit is "
                        f"{format_size(MAX_BULK)})"
                    )
                self._count(max(size, 0))
            elif kind == b"*":
                count = _length(line, "array", ReplyTooLarge)
                if count > MAX_ELEMENTS:
                    raise ReplyTooLarge(
                        f"an array of {count} elements (the check's limit is {MAX_ELEMENTS})"
                    )
            return line

    return BoundedRESP2Parser
