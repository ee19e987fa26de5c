"""Blocking work off the event loop: small bounded thread pools, one per check type, cancellable.

Checks that must call blocking code (``os.statvfs``, reading ``/proc``, walking a directory
tree, importing a driver) do it through :func:`run_blocking`, not the event loop's default
executor. That executor is shared by everything (``getaddrinfo`` for every host name, the
daemon's config loads): six checks walking ``/`` used to fill it, so healthy ``disk`` and
``memory`` checks timed out, name resolution stalled, and the process did not exit at SIGTERM
because ``asyncio.run`` waited for the walks.

- **Bounded, and fair per check type**: each check type (the ``type`` of the running check, or
  the ``pool`` argument) has its own pool of at most :data:`POOL_SIZE` threads. One type's stuck
  or slow work queues behind itself and cannot take the threads of another type.
- **Cancellable**: when the awaiting run is cancelled (its timeout, a reload, shutdown), a call
  still queued is dropped, and a call already running sees :func:`blocking_cancelled` turn true;
  long loops (a directory walk) check it and stop.
- **Never waited for at exit**: the threads are daemon threads and nothing joins them, so a walk
  that does not check the flag (or a hung NFS ``stat``) cannot hold up SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Final, TypeVar

from probed.phase import CURRENT_PHASE

__all__ = ["POOL_SIZE", "blocking_cancelled", "pool_stats", "run_blocking"]

T = TypeVar("T")

POOL_SIZE: Final = 4
"""Threads per pool (per check type): enough for a few slow calls side by side."""

_DEFAULT_POOL: Final = "probed"


class _Token:
    __slots__ = ("cancelled",)

    def __init__(self) -> None:
        self.cancelled = False


_TOKEN: contextvars.ContextVar[_Token | None] = contextvars.ContextVar(
    "probed_blocking_token", default=None
)

_Item = tuple["Future[Any]", Callable[[], Any]]


class _Pool:
    """At most ``size`` daemon threads taking calls from one queue, started on demand."""

    def __init__(self, name: str, size: int) -> None:
        self.name = name
        self.size = size
        self.queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self.lock = threading.Lock()
        self.threads = 0
        self.idle = 0
        self.busy = 0

    def full(self) -> bool:
        """Whether a call submitted now would have to wait for a thread."""
        with self.lock:
            return self.idle == 0 and self.threads >= self.size

    def submit(self, call: Callable[[], Any]) -> Future[Any]:
        future: Future[Any] = Future()
        with self.lock:
            start = self.idle == 0 and self.threads < self.size
            if start:
                self.threads += 1
        self.queue.put((future, call))
        if start:
            worker = threading.Thread(
                target=self._work, name=f"probed-{self.name}-{self.threads}", daemon=True
            )
            worker.start()
        return future

    def _work(self) -> None:
        while True:
            with self.lock:
                self.idle += 1
            future, call = self.queue.get()
            with self.lock:
                self.idle -= 1
            if not future.set_running_or_notify_cancel():
                continue  # cancelled while queued: never started
            with self.lock:
                self.busy += 1
            try:
                result = call()
            except BaseException as exc:  # handed to the awaiting coroutine
                future.set_exception(exc)
            else:
                future.set_result(result)
            finally:
                with self.lock:
                    self.busy -= 1
            del future, call


_pools: dict[str, _Pool] = {}
_pools_lock = threading.Lock()


def _pool(name: str) -> _Pool:
    found = _pools.get(name)
    if found is None:
        with _pools_lock:
            found = _pools.setdefault(name, _Pool(name, POOL_SIZE))
    return found


async def run_blocking(
    func: Callable[..., T], /, *args: Any, pool: str | None = None, **kwargs: Any
) -> T:
    """Run blocking ``func(*args, **kwargs)`` in a probed worker thread and return its result.

    Use it instead of ``asyncio.to_thread`` in a check. The call runs in the pool of the
    running check's type (or ``pool``), at most :data:`POOL_SIZE` at a time per pool, with the
    caller's context variables. If the awaiting coroutine is cancelled (the check's timeout),
    a call still queued never starts, and a running one sees :func:`blocking_cancelled` return
    true: a long loop should check it now and then and stop (return, or raise an exception of
    its own: nobody awaits the result any more). Nothing waits for an abandoned call at exit.

    :param func: the blocking callable.
    :param pool: the pool to use; defaults to the running check's type.
    :return: what ``func`` returned (its exception is raised here).
    """
    holder = CURRENT_PHASE.get()
    if pool is None:
        pool = holder.kind if holder is not None and holder.kind else _DEFAULT_POOL
    token = _Token()
    context = contextvars.copy_context()
    context.run(_TOKEN.set, token)
    target = _pool(pool)
    call: Callable[[], T]
    if holder is None:
        call = functools.partial(context.run, func, *args, **kwargs)
    else:
        # While the call waits for a thread, a timeout says so; once it runs, the run's own
        # phase is back (the holder is shared with the thread through the copied context).
        doing = holder.name
        if target.full():
            holder.name = f"waiting for a free {pool} thread (all {target.size} busy)"

        def call() -> T:
            holder.name = doing
            return context.run(func, *args, **kwargs)

    future = target.submit(call)
    try:
        return await asyncio.wrap_future(future)
    except asyncio.CancelledError:
        token.cancelled = True
        future.cancel()
        raise


def blocking_cancelled() -> bool:
    """Whether the run that started this :func:`run_blocking` call was cancelled (timed out).

    Call it from the blocking function (in its thread), e.g. once per directory of a walk.
    Outside :func:`run_blocking` it is always false.
    """
    token = _TOKEN.get()
    return token is not None and token.cancelled


def pool_stats() -> dict[str, tuple[int, int]]:
    """``{pool: (threads, busy)}`` for every pool started so far (tests and diagnostics)."""
    return {name: (p.threads, p.busy) for name, p in sorted(_pools.items())}
