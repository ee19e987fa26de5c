"""A drop-in plugin for the behaviour tests: the ``outcome`` check type does what its options say.

Loaded from this directory both by in-process daemons (``plugins_dirs=[PLUGINS]``) and by
``probed`` subprocesses (``--plugins-dir tests/data/plugins``), so every test that needs a check
with a given status, reason, message, setup behaviour or return value declares it in YAML.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar, Literal

from probed import Check, CheckOptions, Result, Status, hookimpl


class OutcomeOptions(CheckOptions):
    """What the check returns, and how its ``setup()`` behaves."""

    status: Literal["ok", "warn", "fail", "unknown"] = "ok"
    reason: str = ""
    message: str = ""
    repeat: int = 1
    """The message is repeated this many times (to build long messages)."""
    returns: Literal["result", "int", "none", "str"] = "result"
    """Return a Result, or (wrongly) an int, None or a str."""
    setup: Literal["ok", "raise", "hang"] = "ok"
    setup_failures: int = 0
    """How many setup() calls raise or hang (as ``setup`` says) before one succeeds."""


class OutcomeCheck(Check[OutcomeOptions]):
    """Returns the configured status, reason and message; setup may raise or hang first."""

    type_name: ClassVar[str] = "outcome"
    options_model: ClassVar[type[CheckOptions]] = OutcomeOptions
    description: ClassVar[str] = "test check returning a configured outcome"

    def __init__(self, spec: Any) -> None:
        super().__init__(spec)
        self.setup_calls = 0
        self.setup_cancelled = 0
        self.run_calls = 0

    async def setup(self) -> None:
        self.setup_calls += 1
        if self.setup_calls > self.options.setup_failures or self.options.setup == "ok":
            return
        if self.options.setup == "raise":
            raise ConnectionError(f"setup attempt {self.setup_calls} refused")
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.setup_cancelled += 1
            raise

    async def run(self) -> Any:
        self.run_calls += 1
        if self.options.returns == "int":
            return 42
        if self.options.returns == "none":
            return None
        if self.options.returns == "str":
            return "ok"
        opts = self.options
        message = opts.message * opts.repeat
        if not message:
            message = f"{opts.status} after {self.setup_calls} setup call(s)"
        return Result(Status.parse(opts.status), opts.reason, message)


@hookimpl
def probed_register_check_types() -> list[type[Check[Any]]]:
    return [OutcomeCheck]
