"""A drop-in plugin (copied into a test's --plugins-dir) that makes ``probed run`` slow where a
test asks, through environment variables, and tells the test where it got to with marker files.

- ``H8D_DIR``: directory of the marker files (``<step>-began``) and of ``go`` (which releases
  every wait).
- ``H8D_SLOW``: comma-separated steps that wait for ``go``: ``import`` (the module itself, before
  the event loop runs), ``startup`` (``probed_startup``), ``shutdown`` (``probed_shutdown``).
- ``H8D_SPAM``: log this many 500-byte lines per 10 ms from ``probed_startup`` on, until the file
  ``H8D_DIR/quiet`` exists.

It also provides the ``tick`` check type, which is always ok.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path
from typing import Any, ClassVar

from probed import Check, CheckOptions, Result, hookimpl

DIR = Path(os.environ["H8D_DIR"])
SLOW = set(filter(None, os.environ.get("H8D_SLOW", "").split(",")))
SPAM = int(os.environ.get("H8D_SPAM", "0"))
log = logging.getLogger("probed.plugins.slow")
_tasks: set[asyncio.Task[None]] = set()


def _began(step: str) -> None:
    (DIR / f"{step}-began").write_text("")


if "import" in SLOW:
    _began("import")
    while not (DIR / "go").exists():  # the plugin's own wait, before the loop exists
        time.sleep(0.01)


class Tick(Check[CheckOptions]):
    type_name: ClassVar[str] = "tick"
    options_model: ClassVar[type[CheckOptions]] = CheckOptions

    async def run(self) -> Result:
        return Result.ok("tick")


@hookimpl
def probed_register_check_types() -> list[Any]:
    return [Tick]


async def _wait_for_go(step: str) -> None:
    _began(step)
    while not (DIR / "go").exists():  # noqa: ASYNC110 - the test's signal is a file
        await asyncio.sleep(0.01)


async def _spam() -> None:
    line = "x" * 500
    while not (DIR / "quiet").exists():
        for _ in range(SPAM):
            log.info("spam %s", line)
        await asyncio.sleep(0.01)


@hookimpl
async def probed_startup(settings: Any, states: Any) -> None:
    if SPAM:
        task = asyncio.get_running_loop().create_task(_spam())
        _tasks.add(task)
    if "startup" in SLOW:
        await _wait_for_go("startup")


@hookimpl
async def probed_shutdown(settings: Any) -> None:
    _began("shutdown")
    if "shutdown" in SLOW:
        await _wait_for_go("shutdown")
