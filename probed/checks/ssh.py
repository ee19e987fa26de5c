"""The ``ssh`` check type: the server's identification line, its host key, a login, a command.

Every run opens one fresh TCP connection and goes as far as the options ask:

1. ``connect`` (and ``resolve`` for a host name);
2. ``banner``: the server's identification line (``SSH-2.0-OpenSSH_9.2p1 ...``), read with a
   bounded buffer (:mod:`probed.checks._ssh_banner`) and matched against ``expect_banner``.
   A banner-only check stops here, sends its own identification line and closes: it needs no
   driver;
3. ``kex``: the key exchange (asyncssh, the ``probed[ssh]`` extra), which proves the server holds
   the host key whose fingerprint is pinned in ``host_key_fingerprint``;
4. ``auth``: a login as ``username`` with a private key (``key``, ``key_file``) or a
   ``password``. With a pinned fingerprint, a server with another host key never sees them;
5. ``command``: the command's exit code must be ``expect_exit_code``; the first line of what it
   printed (at most ``max_output_size`` is kept) goes into the message.

The password, the key and its passphrase never reach a message or a log: they are secret
options (masked everywhere by :mod:`probed.redact`), messages are passed through a
:class:`~probed.redact.Redactor` too, and asyncssh's own logger is quietened to warnings.
Nothing is read from ``~/.ssh`` (no config, known_hosts, default keys or agent).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.util
import logging
import re
from time import perf_counter
from typing import Annotated, Any, ClassVar, Final

from pydantic import (
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    WithJsonSchema,
    model_validator,
)

from probed import __version__, hookimpl
from probed.check import Check, CheckOptions, MetricDef, Reason, Result
from probed.checks._endpoint import AddressOptions, parse_address
from probed.checks._net import ProbeError, family_for, format_addr, open_connection
from probed.checks._reasons import EXIT_CODE, HOST_KEY
from probed.checks._ssh_banner import (
    BannerProtocol,
    Handoff,
    RunError,
    parse_fingerprint,
    read_banner,
)
from probed.checks._ssh_session import (
    DOING,
    HOST_KEY_ALGORITHMS,
    Timer,
    client_class,
    describe_key,
    first_line,
    load_key,
    login_failure,
    quote,
    read_key_file,
    run_command,
)
from probed.options import AbsolutePath, Regex, Size, format_duration, format_size
from probed.phase import format_elapsed, set_phase
from probed.redact import Redactor
from probed.threads import run_blocking

__all__ = ["SshCheck", "SshOptions"]

log = logging.getLogger("probed.checks.ssh")

CLIENT_VERSION: Final = f"probed_{__version__}"
"""What probed says it is in its own identification line (``SSH-2.0-probed_0.1.0``)."""


def _fingerprints(value: Any) -> Any:
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list | tuple):
        if not value:
            raise ValueError("give at least one fingerprint, or leave host_key_fingerprint out")
        return tuple(parse_fingerprint(v) if isinstance(v, str) else v for v in value)
    return value


Fingerprints = Annotated[
    tuple[str, ...],
    BeforeValidator(_fingerprints),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string"},
                {"type": "array", "items": {"type": "string"}, "minItems": 1},
            ],
            "description": "SHA256:... as 'ssh-keygen -lf' prints it, or a list of them",
        }
    ),
]


def _driver_available() -> bool:
    """Whether asyncssh can be imported (the ``probed[ssh]`` extra)."""
    try:
        return importlib.util.find_spec("asyncssh") is not None
    except (ImportError, ValueError):  # a broken or blocked module (sys.modules entry None)
        return False


class SshOptions(AddressOptions):
    """Options of the ``ssh`` check type."""

    model_config = ConfigDict(hide_input_in_errors=True)  # a key or password may be the input

    expect_banner: Regex | None = Field(
        default=None,
        description="Regex the server's identification line (SSH-2.0-...) must match.",
    )
    host_key_fingerprint: Fingerprints | None = Field(
        default=None,
        description="Pin the host key: SHA256:... as 'ssh-keygen -lf' prints it, or a list "
        "(any one matches); another key fails with reason host_key before any login.",
    )
    username: str | None = Field(
        default=None, min_length=1, max_length=256, description="Log in as this user."
    )
    key: SecretStr | None = Field(
        default=None,
        description="Private key text for the login (OpenSSH or PEM), e.g. "
        "${file:/run/secrets/ssh_key}.",
    )
    key_file: AbsolutePath | None = Field(
        default=None, description="Path of the private key for the login (instead of key)."
    )
    passphrase: SecretStr | None = Field(
        default=None, description="Passphrase of an encrypted private key."
    )
    password: SecretStr | None = Field(
        default=None, description="Password for the login, e.g. ${file:/run/secrets/ssh_pw}."
    )
    command: str | None = Field(
        default=None,
        min_length=1,
        description="Command run after the login; its exit code decides (no pty, no stdin).",
    )
    expect_exit_code: int = Field(
        default=0, ge=0, le=255, description="Exit code the command must end with."
    )
    max_output_size: Size = Field(
        default=65536,
        gt=0,
        description="Keep at most this much of the command's output (the rest is discarded).",
    )

    @model_validator(mode="after")
    def _login(self) -> SshOptions:
        if self.key is not None and self.key_file is not None:
            raise ValueError("give the private key once: key or key_file, not both")
        if self.passphrase is not None and self.key is None and self.key_file is None:
            raise ValueError("passphrase is for an encrypted key: add key or key_file")
        has_credential = self.key is not None or self.key_file is not None or self.password
        if self.username is None and (has_credential or self.command is not None):
            raise ValueError("a login needs username: add username (and key, key_file or password)")
        if self.username is not None and not has_credential:
            raise ValueError(
                "username without a credential: add key (${file:...}), key_file or password"
            )
        if self.needs_driver and not _driver_available():
            raise ValueError(
                "host_key_fingerprint and logins need asyncssh: pip install 'probed[ssh]' "
                "(a banner-only ssh check does not)"
            )
        return self

    @property
    def logs_in(self) -> bool:
        """Whether a run goes past the key exchange."""
        return self.username is not None

    @property
    def needs_driver(self) -> bool:
        """Whether a run needs asyncssh (anything beyond the identification line)."""
        return self.logs_in or self.host_key_fingerprint is not None


class SshCheck(Check[SshOptions]):
    """Read an SSH server's banner, pin its host key, log in and run a command."""

    type_name: ClassVar[str] = "ssh"
    options_model: ClassVar[type[CheckOptions]] = SshOptions
    requires: ClassVar[tuple[str, ...]] = ()  # banner-only checks need no driver
    extra: ClassVar[str | None] = "ssh"
    description: ClassVar[str] = "SSH: banner, host key fingerprint, login and command exit code"
    metrics: ClassVar[tuple[MetricDef, ...]] = (
        MetricDef("probed_ssh_command_exit_code", "Exit code of the check's SSH command"),
    )

    _unpinned_warned = False  # the no-pin password warning is logged once per check

    def __init__(self, spec: Any) -> None:
        super().__init__(spec)
        options = self.options
        self.host, self.port = parse_address(options.address)
        self.where = format_addr(self.host, self.port)
        self.family = family_for(options.ip_version)
        self._expect = None if options.expect_banner is None else re.compile(options.expect_banner)
        self._key: Any = None
        self._key_source: bytes | None = None  # what _key was loaded from (a rotated file reloads)
        secrets = [s.get_secret_value() for s in (options.password, options.passphrase) if s]
        if options.key is not None:
            secrets += [line for line in options.key.get_secret_value().splitlines() if line]
        self._redact = Redactor(secrets)

    async def setup(self) -> None:
        """Import asyncssh once, in a thread (slow enough to stall the loop), when needed."""
        if not self.options.needs_driver:
            return
        await run_blocking(importlib.import_module, "asyncssh")
        quiet = logging.getLogger("asyncssh")
        if quiet.level == logging.NOTSET:  # its INFO lines (one per step, per run) are noise
            quiet.setLevel(logging.WARNING)

    async def run(self) -> Result:
        """Connect, read the banner, and go on to the key exchange, login and command."""
        opts = self.options
        loop = asyncio.get_running_loop()
        start = perf_counter()
        # Our own deadlines end a little before the daemon's, so the message says what was
        # seen (a banner that did not match, a command that hung) rather than just "timeout".
        deadline = start + self.spec.timeout * 0.9
        phases: dict[str, float] = {}
        try:
            transport, proto, _ = await open_connection(
                lambda: BannerProtocol(loop),
                self.host,
                self.port,
                family=self.family,
                phases=phases,
            )
        except ProbeError as exc:
            return exc.result(self.where)
        handed_over = False
        try:
            set_phase(DOING["banner"])
            t0 = perf_counter()
            try:
                banner = await read_banner(proto, deadline, self.spec.timeout * 0.9, self._expect)
            finally:
                phases["banner"] = perf_counter() - t0
            if not opts.needs_driver:
                # Say who we are before leaving, so the server logs a closed connection rather
                # than a client that never identified itself (which fail2ban may count).
                transport.write(f"SSH-2.0-{CLIENT_VERSION}\r\n".encode())
                transport.close()
                return Result.ok(
                    f"{self.where}: {banner} in {format_elapsed(perf_counter() - start)}",
                    phases=phases,
                )
            client_key = await self._client_key() if opts.logs_in else None
            handed_over = True
            return await self._session(
                Handoff(transport, proto), banner, client_key, phases, deadline
            )
        except RunError as exc:
            return Result.fail(
                exc.reason, self._redact(f"{self.where}: {exc.detail}"), phases=phases
            )
        finally:
            if not handed_over:
                transport.abort()

    async def _session(
        self,
        handoff: Handoff,
        banner: str,
        client_key: Any,
        phases: dict[str, float],
        deadline: float,
    ) -> Result:
        import asyncssh
        from asyncssh.packet import PacketDecodeError  # a ValueError, not an asyncssh.Error

        opts = self.options
        pins = opts.host_key_fingerprint
        seen: list[Any] = []
        timer = Timer(phases)
        timer.start("kex")
        conn: Any = None
        try:
            # The same connection (tunnel), nothing from ~/.ssh, OpenSSH's host key order.
            common: dict[str, Any] = {
                "tunnel": handoff,
                "config": [],
                "client_version": CLIENT_VERSION,
                "server_host_key_algs": list(HOST_KEY_ALGORITHMS),
            }
            async with asyncio.timeout(max(deadline - perf_counter(), 0.001)):
                if not opts.logs_in:
                    key = await asyncssh.get_server_host_key(self.host, self.port, **common)
                    timer.stop()
                    if key is not None:
                        seen.append(key)
                    self._judge_host_key(seen[0] if seen else None)
                    return Result.ok(
                        f"{self.where}: {banner}, host key {describe_key(seen)} matches",
                        phases=phases,
                    )
                self._warn_unpinned()
                conn = await asyncssh.connect(
                    self.host,
                    self.port,
                    **common,
                    client_factory=lambda: client_class()(pins, seen, timer),
                    known_hosts=None if pins is None else ([], [], []),
                    username=opts.username,
                    password=opts.password.get_secret_value() if opts.password else None,
                    client_keys=[client_key] if client_key is not None else None,
                    passphrase=None,
                    agent_path=None,
                    x509_trusted_certs=None,
                    x509_trusted_cert_paths=None,
                    gss_host=None,
                    gss_auth=False,
                    gss_kex=False,
                    host_based_auth=False,
                    kbdint_auth=opts.password is not None,
                    password_auth=opts.password is not None,
                    public_key_auth=client_key is not None,
                    connect_timeout=None,
                    login_timeout=self.spec.timeout,
                    keepalive_interval=0,
                )
                timer.stop()
                if conn.get_server_host_key() is not None and not seen:
                    seen.append(conn.get_server_host_key())
                summary = f"{self.where}: {banner}"
                if pins is not None:
                    summary += f", host key {describe_key(seen)} matches"
                summary += f", logged in as {opts.username}"
                if opts.command is None:
                    return Result.ok(self._redact(summary), phases=phases)
                timer.start("command")
                return await self._command(conn, summary, phases, timer)
        except TimeoutError:
            phase, waited = timer.current, format_duration(self.spec.timeout * 0.9)
            timer.stop()
            if phase == "command":
                raise RunError(
                    Reason.TIMEOUT,
                    f"logged in as {opts.username}, but command {quote(opts.command or '')} was "
                    f"still running after {waited}; the connection was closed (sshd hangs it up)",
                ) from None
            doing = DOING.get(phase or "", "running")
            raise RunError(Reason.TIMEOUT, f"no answer while {doing} within {waited}") from None
        except asyncssh.HostKeyNotVerifiable:
            timer.stop()
            self._judge_host_key(seen[0] if seen else None)
            raise RunError(HOST_KEY, "the host key was not accepted") from None
        except (asyncssh.Error, OSError, EOFError, PacketDecodeError) as exc:
            phase = timer.current
            timer.stop()
            tried = ["the key"] if client_key is not None else []
            tried += ["the password"] if opts.password is not None else []
            raise login_failure(exc, phase, self.where, opts.username, tried) from None
        finally:
            if conn is not None:
                # A polite disconnect, but never past the daemon's timeout (ours is at 90%).
                conn.close()
                budget = min(0.5, deadline + self.spec.timeout * 0.08 - perf_counter())
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(max(budget, 0.0)):
                        await conn.wait_closed()
            handoff.transport.abort()

    async def _client_key(self) -> Any:
        """The private key, loaded in a thread; reloaded when ``key_file`` changed."""
        import asyncssh

        opts = self.options
        passphrase = opts.passphrase.get_secret_value() if opts.passphrase else None
        try:
            if opts.key is not None:
                if self._key is None:
                    self._key = await run_blocking(
                        load_key, opts.key.get_secret_value().encode(), passphrase
                    )
                return self._key
            if opts.key_file is None:
                return None
            data = await run_blocking(read_key_file, opts.key_file)
            if data != self._key_source:
                self._key = await run_blocking(load_key, data, passphrase)
                self._key_source = data
            return self._key
        except OSError as exc:
            raise RunError(
                Reason.AUTH,
                f"cannot read key_file {opts.key_file}: {exc.strerror or exc} (no login was tried)",
            ) from None
        except (asyncssh.KeyImportError, asyncssh.KeyEncryptionError, ValueError) as exc:
            where = f"key_file {opts.key_file}" if opts.key_file else "the key option"
            hint = (
                "incorrect or missing passphrase"
                if "passphrase" in str(exc).lower() or "decrypt" in str(exc).lower()
                else "not a private key in OpenSSH or PEM format"
            )
            raise RunError(
                Reason.AUTH,
                f"cannot use the private key in {where}: {hint} ({exc}; no login was tried)",
            ) from None

    def _judge_host_key(self, key: Any) -> None:
        pins = self.options.host_key_fingerprint
        if pins is None:
            return
        if key is None:
            raise RunError(HOST_KEY, "the server presented no host key to compare with the pin")
        got = key.get_fingerprint("sha256")
        if got in pins:
            return
        wanted = pins[0] if len(pins) == 1 else "one of " + ", ".join(pins)
        raise RunError(
            HOST_KEY,
            f"host key mismatch: the server presented {key.get_algorithm()} {got}, "
            f"host_key_fingerprint expects {wanted}; nothing was sent to it. If the key was "
            "changed on purpose, pin the new one (ssh-keygen -lf on the server's "
            "/etc/ssh/ssh_host_*_key.pub); otherwise something else answers at this address",
        )

    async def _command(
        self, conn: Any, summary: str, phases: dict[str, float], timer: Timer
    ) -> Result:
        opts = self.options
        assert opts.command is not None
        status, signal, output = await run_command(conn, opts.command, opts.max_output_size)
        timer.stop()
        values: dict[str, float] = {}
        line = first_line(bytes(output.stdout))
        shown = f": {line}" if line else ""
        truncated = (
            f" (output truncated to {format_size(opts.max_output_size)})"
            if output.received > opts.max_output_size
            else ""
        )
        if status is None or status < 0:
            what = f"was killed by signal {signal[0]}" if signal else "ended without an exit code"
            err = first_line(bytes(output.stderr))
            detail = f"{summary}, command {quote(opts.command)} {what}{shown}"
            if err:
                detail += f" (stderr: {err})"
            return Result.fail(EXIT_CODE, self._redact(detail), phases=phases)
        values["probed_ssh_command_exit_code"] = float(status)
        text = f"{summary}, command {quote(opts.command)} exited {status}{shown}{truncated}"
        if status != opts.expect_exit_code:
            err = first_line(bytes(output.stderr))
            if err and not line:
                text += f" (stderr: {err})"
            return Result.fail(
                EXIT_CODE,
                self._redact(f"{text}; expected exit code {opts.expect_exit_code}"),
                phases=phases,
                values=values,
            )
        return Result.ok(self._redact(text), phases=phases, values=values)

    def _warn_unpinned(self) -> None:
        """Log once per check when a password goes to a server whose host key is not pinned."""
        if self._unpinned_warned or self.options.password is None:
            return
        if self.options.host_key_fingerprint is not None:
            return
        self._unpinned_warned = True
        log.warning(
            "check %s: the SSH password is sent to whatever answers at %s (no "
            "host_key_fingerprint): pin the server's host key so a look-alike server never "
            "receives it (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub on the server)",
            self.spec.name,
            self.where,
        )


@hookimpl
def probed_register_check_types() -> list[type[Check[Any]]]:
    """Register the ``ssh`` check type."""
    return [SshCheck]
