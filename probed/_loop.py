"""The event loop probed's commands run on: asyncio's own, or uvloop (the ``probed[speed]`` extra).

``--loop`` (``probed run``) or ``PROBED_LOOP`` (every command that runs checks):

- ``auto`` (the default): uvloop when it is installed, asyncio's loop otherwise;
- ``uvloop``: uvloop, or an error naming the extra when it is not installed;
- ``asyncio``: asyncio's loop even when uvloop is installed.

uvloop runs the same code (checks, server, scheduler) with less CPU per probe: libuv connects,
reads and writes in C where asyncio's selector loop runs Python for each step
(``benchmarks/README.md``, "Event loops").
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import os
from collections.abc import Callable, Coroutine
from typing import Any, Final, TypeVar

import click

__all__ = ["LOOPS", "LOOP_OPTION", "loop_factory", "loop_name", "run_loop"]

T = TypeVar("T")
log = logging.getLogger("probed")

LOOPS: Final = ("auto", "asyncio", "uvloop")
MISSING: Final = "uvloop is not installed (pip install 'probed[speed]')"


def loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The factory for ``choice`` (one of :data:`LOOPS`); ``None`` means asyncio's default.

    :raises click.ClickException: ``uvloop`` asked for and not installed, or an unknown choice.
    """
    if choice not in LOOPS:
        raise click.ClickException(f"PROBED_LOOP {choice!r}: expected one of {', '.join(LOOPS)}")
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise click.ClickException(f"--loop uvloop: {MISSING}") from None
        return None
    return _uvloop_class(uvloop.Loop)


@functools.cache
def _uvloop_class(base: type[asyncio.AbstractEventLoop]) -> type[asyncio.AbstractEventLoop]:
    """uvloop's loop, with timers that never fire before their time.

    uvloop keeps time in whole milliseconds and rounds a timer's delay to the nearest one, so
    ``call_at(when)`` can run its callback while ``loop.time()`` is still below ``when``. The
    scheduler, which starts the checks due by ``loop.time()`` and re-arms its timer for the
    rest, then re-armed the same timer for up to half a millisecond of busy loop iterations,
    for every distinct due time. Here the delay is rounded up to the next whole millisecond.
    """

    class Loop(base):  # type: ignore[valid-type,misc]
        def call_at(
            self, when: float, callback: Callable[..., object], *args: Any, context: Any = None
        ) -> asyncio.TimerHandle:
            delay = math.floor((when - self.time()) * 1000) + 1
            handle: asyncio.TimerHandle = self.call_later(
                delay / 1000, callback, *args, context=context
            )
            return handle

    Loop.__qualname__ = Loop.__name__ = "ProbedUvloop"
    return Loop


def loop_name(loop: asyncio.AbstractEventLoop) -> str:
    """``uvloop`` or ``asyncio``: which kind of loop ``loop`` is."""
    kinds = {cls.__module__.partition(".")[0] for cls in type(loop).__mro__}
    return "uvloop" if "uvloop" in kinds else "asyncio"


def run_loop(coro: Coroutine[Any, Any, T], choice: str | None = None) -> T:
    """``asyncio.run(coro)`` on the loop ``choice`` names (default: ``PROBED_LOOP`` or auto)."""
    try:
        factory = loop_factory(choice or os.environ.get("PROBED_LOOP") or "auto")
    except BaseException:
        coro.close()  # never started: no "coroutine was never awaited" warning
        raise
    with asyncio.Runner(loop_factory=factory) as runner:
        log.debug("event loop: %s", loop_name(runner.get_loop()))
        return runner.run(coro)


def _check(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is not None:
        try:
            loop_factory(value)
        except click.ClickException:
            raise click.BadParameter(MISSING) from None
    return value


LOOP_OPTION: Final = click.option(
    "--loop",
    "event_loop",
    envvar="PROBED_LOOP",
    type=click.Choice(LOOPS),
    callback=_check,
    help="Event loop: auto (uvloop when installed, the 'speed' extra), asyncio or uvloop [auto].",
)
