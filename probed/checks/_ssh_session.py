"""The asyncssh side of the ``ssh`` check: phase timing, host key pinning callbacks, the private
key, the command's bounded output, and asyncssh's exceptions turned into reasons.

asyncssh is the optional ``probed[ssh]`` extra: it is imported inside the functions that need
it, never when this module is imported, so a banner-only check works without it.
"""

from __future__ import annotations

import functools
from time import perf_counter
from typing import Any, Final

from probed.check import Reason
from probed.checks._failures import network_failure
from probed.checks._reasons import EXIT_CODE
from probed.checks._ssh_banner import MAX_LINE_SHOWN, RunError
from probed.options import format_size
from probed.phase import set_phase

__all__ = [
    "DOING",
    "HOST_KEY_ALGORITHMS",
    "MAX_KEY_FILE",
    "Output",
    "Timer",
    "client_class",
    "describe_key",
    "first_line",
    "load_key",
    "login_failure",
    "quote",
    "read_key_file",
    "run_command",
]

HOST_KEY_ALGORITHMS: Final = (
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "rsa-sha2-512",
    "rsa-sha2-256",
    "ssh-rsa",
)
"""Host key types asked for, in OpenSSH's order (asyncssh's own puts RSA first): a server with
several keys presents the one ``ssh`` records, usually ``ssh_host_ed25519_key``."""
MAX_KEY_FILE: Final = 1 << 20
"""Most bytes read from ``key_file`` (a private key is a few KiB)."""
_MAX_STDERR: Final = 4096
DOING: Final = {
    "banner": "waiting for the SSH identification line",
    "kex": "in the SSH key exchange",
    "auth": "logging in",
    "command": "running the command",
}
"""What each phase is doing, as a clause after "while" (for messages and the run's phase)."""


class Timer:
    """Times the kex/auth/command phases as the run and asyncssh's callbacks report progress."""

    def __init__(self, phases: dict[str, float]) -> None:
        self.phases = phases
        self.current: str | None = None
        self._t0 = 0.0

    def start(self, name: str) -> None:
        """End the current phase (if any) and start ``name``."""
        self.stop()
        self.current = name
        self._t0 = perf_counter()
        set_phase(DOING[name])

    def stop(self) -> None:
        """End the current phase, recording its duration."""
        if self.current is not None:
            self.phases[self.current] = perf_counter() - self._t0
            self.current = None


@functools.cache
def client_class() -> type[Any]:
    """asyncssh's client callbacks (built on first use: asyncssh is an optional import)."""
    import asyncssh

    class Client(asyncssh.SSHClient):
        """Pins the host key during the key exchange; marks where the login starts."""

        def __init__(self, pins: tuple[str, ...] | None, seen: list[Any], timer: Timer):
            self.pins = pins
            self.seen = seen
            self.timer = timer

        def validate_host_public_key(
            self, host: str, addr: str, port: int, key: asyncssh.SSHKey
        ) -> bool:
            """Called in the key exchange when a pin is set: nothing is sent before it."""
            self.seen.append(key)
            return self.pins is not None and key.get_fingerprint("sha256") in self.pins

        def begin_auth(self, username: str) -> None:
            self.timer.start("auth")

    return Client


class Output:
    """An asyncssh client session keeping at most ``limit`` bytes of stdout (and some stderr).

    What is over the limit is counted and dropped, so a command printing gigabytes costs
    ``limit`` bytes of memory; the run's timeout bounds the time.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.stdout = bytearray()
        self.stderr = bytearray()
        self.received = 0

    # asyncssh.SSHClientSession's interface (duck-typed: asyncssh is imported lazily).
    def connection_made(self, chan: Any) -> None:
        """The channel is open."""

    def connection_lost(self, exc: Exception | None) -> None:
        """The channel is closed."""

    def session_started(self) -> None:
        """The command started."""

    def data_received(self, data: bytes, datatype: int | None) -> None:
        """Keep what fits; count everything."""
        self.received += len(data)
        if datatype is None:
            room = self.limit - len(self.stdout)
            if room > 0:
                self.stdout += data[:room]
        else:
            room = min(self.limit, _MAX_STDERR) - len(self.stderr)
            if room > 0:
                self.stderr += data[:room]

    def eof_received(self) -> bool:
        """The command closed its output: let the channel close."""
        return False

    def pause_writing(self) -> None:
        """Nothing is written after the command starts."""

    def resume_writing(self) -> None:
        """Nothing is written after the command starts."""

    def exit_status_received(self, status: int) -> None:
        """Read from the channel once it is closed."""

    def exit_signal_received(self, signal: str, core_dumped: bool, msg: str, lang: str) -> None:
        """Read from the channel once it is closed."""


async def run_command(conn: Any, command: str, limit: int) -> tuple[int | None, Any, Output]:
    """Run ``command`` on the logged-in connection ``conn`` (no pty, stdin closed).

    :return: its exit status (``None`` or negative when it has none), its exit signal
        (``(name, core_dumped, message, lang)`` or ``None``) and its bounded output.
    """
    output = Output(limit)
    chan, _ = await conn.create_session(lambda: output, command, encoding=None)
    chan.write_eof()
    await chan.wait_closed()
    return chan.get_exit_status(), chan.get_exit_signal(), output


def first_line(data: bytes) -> str:
    """The first non-empty line of ``data``, cut for a message."""
    text = data.decode("utf-8", "replace").strip()
    line = text.splitlines()[0].strip() if text else ""
    return line if len(line) <= MAX_LINE_SHOWN else line[:MAX_LINE_SHOWN] + "…"


def load_key(data: bytes, passphrase: str | None) -> Any:
    """The private key (blocking: the passphrase's KDF takes a while on purpose)."""
    import asyncssh

    return asyncssh.import_private_key(data, passphrase)


def read_key_file(path: str) -> bytes:
    """The key file's bytes, at most :data:`MAX_KEY_FILE` (blocking)."""
    with open(path, "rb") as handle:
        data = handle.read(MAX_KEY_FILE + 1)
    if len(data) > MAX_KEY_FILE:
        raise ValueError(f"larger than {format_size(MAX_KEY_FILE)}: not a private key")
    return data


def describe_key(seen: list[Any]) -> str:
    """``ssh-ed25519 SHA256:...`` of the first host key seen."""
    if not seen:
        return "(none)"
    key = seen[0]
    return f"{key.get_algorithm()} {key.get_fingerprint('sha256')}"


def quote(command: str) -> str:
    """A command for a message, cut at 80 characters."""
    return repr(command if len(command) <= 80 else command[:80] + "…")


def login_failure(
    exc: BaseException, phase: str | None, where: str, username: str | None, tried: list[str]
) -> RunError:
    """The reason and sentence for an exception out of asyncssh's connect or the command.

    :param phase: the phase that was running (``kex``, ``auth``, ``command``).
    :param where: the server's ``host:port``.
    :param tried: what the login offered (``"the key"``, ``"the password"``).
    """
    import asyncssh
    from asyncssh.packet import PacketDecodeError

    doing = DOING.get(phase or "", "talking to the server")
    detail = str(exc).strip() or type(exc).__name__
    if isinstance(exc, asyncssh.PermissionDenied):
        hints = []
        if "the key" in tried:
            hints.append("that its public key is in the user's authorized_keys")
        if "the password" in tried:
            hints.append("the password (and that the server allows password logins)")
        return RunError(
            Reason.AUTH,
            f"login as {username} with {' and '.join(tried)} was refused "
            f"({detail}): check the user name, {' and '.join(hints)}",
        )
    if isinstance(exc, asyncssh.KeyExchangeFailed):
        return RunError(
            Reason.PROTOCOL,
            f"key exchange failed: {detail} (no algorithm in common with the server?)",
        )
    if isinstance(exc, asyncssh.ProtocolNotSupported | asyncssh.ProtocolError):
        return RunError(Reason.PROTOCOL, f"SSH protocol error while {doing}: {detail}")
    if isinstance(exc, PacketDecodeError):  # a ValueError: a malformed packet from the server
        return RunError(
            Reason.PROTOCOL, f"the server sent a malformed SSH packet while {doing}: {detail}"
        )
    if isinstance(exc, asyncssh.ChannelOpenError):
        return RunError(
            EXIT_CODE,
            f"logged in as {username}, but the server refused to run the command ({detail})",
        )
    if isinstance(exc, asyncssh.ConnectionLost | EOFError):
        return RunError(Reason.CONNECTION_RESET, f"the server closed the connection while {doing}")
    if isinstance(exc, asyncssh.DisconnectError):
        return RunError(Reason.CONNECTION_RESET, f"the server disconnected while {doing}: {detail}")
    found = network_failure(exc, where)
    if found is not None and found[0] == Reason.CONNECTION_RESET:
        return RunError(
            found[0], f"the server closed the connection while {doing} (connection reset)"
        )
    if found is not None:
        return RunError(found[0], f"{found[1].removeprefix(where + ' ')} while {doing}")
    return RunError(Reason.EXCEPTION, f"{type(exc).__name__} while {doing}: {detail}")
