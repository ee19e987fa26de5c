"""Pings of ``heartbeat`` checks: the registry the ``/ping`` handler writes and the checks read.

A job (a cron entry, a systemd timer, a CI pipeline) tells probed it ran, as with
healthchecks.io: ``GET`` or ``POST /ping/<check>`` (success), ``/ping/<check>/start``,
``/ping/<check>/fail`` and ``/ping/<check>/<exit-code>`` (0 is success, 1-255 failure). The
check's token is required on every ping, as ``Authorization: Bearer <token>`` or
``?token=<token>``; it is compared in constant time, and a wrong token gets the same 404 as
a check that does not exist, so a ping cannot probe which checks there are.

:data:`HEARTBEATS` holds one :class:`Beat` per heartbeat check name, created when a check
instance attaches (its ``__init__``) and dropped when the last instance with that name
detaches (its ``close``). A reload builds the new instance of a changed check before it
closes the old one, so pings survive a reload whether the check changed or not; they do not
survive a restart (nothing is written to disk). Names are the identity: two daemons in one
process (an embedding application) with a heartbeat check of the same name share its pings.

The registry's :attr:`Heartbeats.clock` stamps pings and is what the checks compare with,
so tests can move time without waiting (:meth:`Heartbeats.use_clock`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from aiohttp import web

__all__ = [
    "BODY_READ_TIMEOUT",
    "HEARTBEATS",
    "MAX_BODY_SIZE",
    "Beat",
    "Heartbeats",
    "Signal",
    "handle_ping",
    "parse_action",
]

MAX_BODY_SIZE: Final = 4 << 10
"""Upper bound of a check's ``max_body_size``: the most of a ping's body ever read and kept.

Small on purpose: the body is kept per check until the next ping and shown in the message,
which is cut at 500 characters anyway; 300 checks pinged with 1 MiB bodies each once cost
350 MiB."""
BODY_READ_TIMEOUT: Final = 10.0
"""Seconds a client has to send the body of a ping."""
TYPE_NAME: Final = "heartbeat"

Signal = str
"""``success``, ``start`` or ``fail``."""


@dataclass(slots=True)
class Beat:
    """What the pings of one check said; times are the registry clock's (Unix seconds).

    :param created: when the first instance of the check attached: the start of the wait for
        the first ping.
    :param last_ping: the last success ping.
    :param last_start: the last ``/start``.
    :param running_since: the ``/start`` of a run not finished yet (cleared by success/fail).
    :param last_fail: the last failure ping (``/fail`` or a non-zero exit code).
    :param failed: whether the latest finishing ping was a failure.
    :param exit_code: the exit code of the latest finishing ping, if it gave one.
    :param run_time: seconds from ``/start`` to the ping that finished that run.
    :param body: the body of the latest ping (capped), ``truncated`` if it was longer.
    """

    created: float
    last_ping: float | None = None
    last_start: float | None = None
    running_since: float | None = None
    last_fail: float | None = None
    failed: bool = False
    exit_code: int | None = None
    run_time: float | None = None
    body: str = ""
    truncated: bool = False
    users: int = 0
    counts: dict[Signal, int] = field(default_factory=dict)

    def record(
        self, signal: Signal, now: float, exit_code: int | None, body: str, cut: bool
    ) -> None:
        """Fold one ping in."""
        self.counts[signal] = self.counts.get(signal, 0) + 1
        self.body, self.truncated = body, cut
        if signal == "start":
            self.last_start = self.running_since = now
            return
        if self.running_since is not None:
            self.run_time = max(now - self.running_since, 0.0)
            self.running_since = None
        else:
            self.run_time = None
        self.exit_code = exit_code
        self.failed = signal == "fail"
        if self.failed:
            self.last_fail = now
        else:
            self.last_ping = now


class Heartbeats:
    """Every heartbeat check's :class:`Beat` by check name, and the clock that stamps pings."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._beats: dict[str, Beat] = {}

    def attach(self, name: str) -> Beat:
        """The beat of check ``name`` (new if no instance of it is attached); call
        :meth:`detach` once per attach."""
        beat = self._beats.get(name)
        if beat is None:
            beat = self._beats[name] = Beat(created=self.clock())
        beat.users += 1
        return beat

    def detach(self, name: str) -> None:
        """One instance of check ``name`` is gone; the last one takes its pings with it."""
        beat = self._beats.get(name)
        if beat is not None:
            beat.users -= 1
            if beat.users <= 0:
                del self._beats[name]

    def get(self, name: str) -> Beat | None:
        """The beat of check ``name``, if one is attached."""
        return self._beats.get(name)

    @contextlib.contextmanager
    def use_clock(self, clock: Callable[[], float]) -> Iterator[None]:
        """Stamp pings and judge lateness with ``clock`` inside the block (tests)."""
        previous, self.clock = self.clock, clock
        try:
            yield
        finally:
            self.clock = previous


HEARTBEATS: Final = Heartbeats()
"""The process's registry (see the module docstring)."""


# -- the /ping endpoint ---------------------------------------------------------------------


class _Spec(Protocol):
    @property
    def type(self) -> str: ...
    @property
    def options(self) -> Any: ...


class _State(Protocol):
    @property
    def spec(self) -> _Spec: ...


class _States(Protocol):
    def get(self, name: str) -> Any: ...


_ACTIONS: Final = (
    "use /ping/<check>, /ping/<check>/start, /ping/<check>/fail or /ping/<check>/<exit code 0-255>"
)
# Compared with when the check does not exist, so both answers take the same work.
_NOBODY: Final = hashlib.sha256(b"").digest()


def parse_action(action: str) -> tuple[Signal, int | None] | None:
    """``(signal, exit code)`` for the last path segment of a ping (``""`` is success), or
    None if it is not one."""
    if action == "":
        return "success", None
    if action in ("start", "fail"):
        return action, None
    if action.isascii() and action.isdigit() and len(action) <= 3 and int(action) <= 255:
        code = int(action)
        return ("success" if code == 0 else "fail"), code
    return None


def _text(status: int, text: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status, text=text + "\n", headers={"Cache-Control": "no-store", **(headers or {})}
    )


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def _token(request: web.Request) -> str | None:
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return request.query.get("token") or None


async def _read_body(request: web.Request, limit: int) -> tuple[str, bool]:
    """At most ``limit`` bytes of the body as text, and whether there was more."""
    data = bytearray()
    async with asyncio.timeout(BODY_READ_TIMEOUT):
        while len(data) <= limit:
            chunk = await request.content.read(limit + 1 - len(data))
            if not chunk:
                break
            data += chunk
    cut = len(data) > limit
    text = bytes(data[:limit]).decode("utf-8", "replace").replace("\x00", "")
    return text.strip(), cut


async def handle_ping(request: web.Request, states: _States) -> web.Response:
    """``GET|POST|HEAD /ping/<check>[/start|/fail|/<exit-code>]``: record a ping.

    200 ``OK``; 400 for an unknown last segment; 401 without a token; 404 when no heartbeat
    check of that name accepts the token (whether it exists is not said); 408 when the body
    does not arrive within :data:`BODY_READ_TIMEOUT`.
    """
    name = request.match_info["check"]
    parsed = parse_action(request.match_info.get("action", ""))
    if parsed is None:
        return _text(400, f"not a ping: {_ACTIONS}")
    signal, exit_code = parsed
    token = _token(request)
    if token is None:
        return _text(
            401,
            "a token is required: send 'Authorization: Bearer <token>' or add ?token=<token>",
            {"WWW-Authenticate": 'Bearer realm="probed"'},
        )
    state = states.get(name)
    spec = state.spec if state is not None else None
    expected = _NOBODY
    options: Any = None
    if spec is not None and spec.type == TYPE_NAME:
        options = spec.options
        expected = _digest(options.token.get_secret_value())
    # Digests are compared so that neither the token's length nor its content leaks by timing.
    matches = hmac.compare_digest(_digest(token), expected)
    beat = HEARTBEATS.get(name)
    if not matches or options is None or beat is None:
        return _text(404, "no heartbeat check with this name accepts this token")
    try:
        body, cut = await _read_body(request, options.max_body_size)
    except TimeoutError:
        return _text(408, f"the body did not arrive within {BODY_READ_TIMEOUT:g}s")
    beat.record(signal, HEARTBEATS.clock(), exit_code, body, cut)
    return _text(200, "OK")
