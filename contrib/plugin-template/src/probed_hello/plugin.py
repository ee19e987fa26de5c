"""``type: hello``: a TCP service answers with the greeting it should.

Many services greet first (SMTP ``220 mail.example ESMTP``, SSH ``SSH-2.0-OpenSSH_9.2``, FTP
``220``, Redis after ``PING``: ``+PONG``). A port that accepts connections but greets wrongly,
or not at all, is a broken service that a plain TCP check calls healthy::

    checks:
      - name: mail-greets
        type: hello
        host: 127.0.0.1
        port: 25
        expect: "^220 "
      - name: redis-pong
        type: hello
        port: 6379
        send: "PING\\r\\n"
        expect: "PONG"

This module is the whole plugin: probed finds it through the ``probed`` entry point declared in
``pyproject.toml`` and calls :func:`probed_register_check_types`. It imports only from
``probed``; the daemon owns timeouts (it cancels ``run()``) and exceptions.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from typing import Any, ClassVar

from probed import Check, CheckOptions, MetricDef, Reason, Regex, Result, hookimpl
from pydantic import Field

from probed_hello import __version__

__all__ = ["HelloCheck", "HelloOptions", "__version__", "probed_register_check_types"]


class HelloOptions(CheckOptions):
    """Options of ``type: hello`` (unknown keys are errors, like every probed check)."""

    host: str = Field(default="127.0.0.1", description="host name or IP address to connect to")
    port: int = Field(ge=1, le=65535, description="TCP port")
    send: str = Field(default="", description="text sent after connecting (for example PING)")
    expect: Regex = Field(description="regular expression the greeting must match")
    max_bytes: int = Field(
        default=1024, ge=1, le=1_048_576, description="stop reading after this many bytes"
    )


class HelloCheck(Check[HelloOptions]):
    """Connects, optionally sends a line, and reads until the greeting matches ``expect``."""

    type_name: ClassVar[str] = "hello"
    options_model: ClassVar[type[CheckOptions]] = HelloOptions
    description: ClassVar[str] = "a TCP service answers with the expected greeting"
    metrics: ClassVar[tuple[MetricDef, ...]] = (
        MetricDef(
            "probed_hello_greeting_seconds",
            "Seconds from connected until the expected greeting had arrived.",
        ),
        MetricDef("probed_hello_greeting_bytes", "Bytes read before the greeting matched."),
    )

    pattern: re.Pattern[str]

    async def setup(self) -> None:
        """Compile the pattern once per configuration, not once per run."""
        self.pattern = re.compile(self.options.expect)

    async def run(self) -> Result:
        """Probe once; every expected failure is a ``Result``, never an exception."""
        opts = self.options
        where = f"{opts.host}:{opts.port}"
        start = time.perf_counter()
        try:
            reader, writer = await asyncio.open_connection(opts.host, opts.port)
        except ConnectionRefusedError:
            return Result.fail(Reason.CONNECTION_REFUSED, f"{where} refused the connection")
        except OSError as exc:
            return Result.fail(Reason.UNREACHABLE, f"{where}: {exc.strerror or exc}")
        connected = time.perf_counter()
        try:
            if opts.send:
                writer.write(opts.send.encode())
                await writer.drain()
            data = await self._read_greeting(reader)
        except ConnectionResetError:
            return Result.fail(Reason.CONNECTION_RESET, f"{where} reset the connection")
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        done = time.perf_counter()
        text = data.decode(errors="replace")
        phases = {"connect": connected - start, "greeting": done - connected}
        values = {"probed_hello_greeting_bytes": float(len(data))}
        if not self.pattern.search(text):
            shown = text.strip()[:80] or "nothing"
            return Result.fail(
                Reason.ASSERTION,
                f"{where} greeted with {shown!r}, expected /{opts.expect}/",
                phases=phases,
                values=values,
            )
        values["probed_hello_greeting_seconds"] = done - connected
        return Result.ok(f"{where} greeted as expected", phases=phases, values=values)

    async def _read_greeting(self, reader: asyncio.StreamReader) -> bytes:
        """Read until ``expect`` matches, the peer closes, or ``max_bytes`` were read."""
        data = b""
        while len(data) < self.options.max_bytes:
            chunk = await reader.read(self.options.max_bytes - len(data))
            if not chunk:
                break
            data += chunk
            if self.pattern.search(data.decode(errors="replace")):
                break
        return data


@hookimpl
def probed_register_check_types() -> list[type[Check[Any]]]:
    """Tell probed about the check types this package provides."""
    return [HelloCheck]
