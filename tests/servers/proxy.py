"""Debian's ``tinyproxy`` and ``squid`` as real forward proxies on loopback ports, own configs.

Fixtures:

- ``tinyproxy``: a factory. ``tinyproxy(auth=("user", "password"), allow="127.0.0.1",
  connect_ports=(443,))`` writes a config, starts ``tinyproxy -d`` on a free loopback port and
  returns a :class:`Tinyproxy`; every proxy started is stopped at the end of the test. ``auth``
  turns on basic authentication (407 without it); ``allow`` is the only client address allowed
  (another one makes the proxy refuse every client with 403); ``connect_ports`` the only ports
  ``CONNECT`` may reach (default: all). Skips when the binary is missing (fails under
  ``PROBED_REQUIRE_SERVICES=1``).

- ``squid``: a factory (module-scoped: the same options give the same running squid).
  ``squid(deny=True)`` starts ``squid -N`` on a free loopback port; with
  ``deny`` it refuses every request with its own 403 error page (``X-Squid-Error``);
  ``auth=("user", "password")`` requires basic authentication (``basic_ncsa_auth`` with an
  MD5-crypt password file made by ``openssl passwd``; any characters in the password).

Requests through tinyproxy are seen by an ``http`` target with a ``Via: 1.1 tinyproxy`` header; the
``CONNECT`` tunnels it opens are in :meth:`Tinyproxy.log_text`.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final, TypeVar

import pytest

from tests.servers._util import free_port, port_open, require_binary, stop_process, wait_until

__all__ = ["ProxyProcess", "Squid", "Tinyproxy"]

_BINARY: Final = "/usr/bin/tinyproxy"
_HINT: Final = "apt-get install -y tinyproxy"
_SQUID: Final = "/usr/sbin/squid"
_SQUID_HINT: Final = "apt-get install -y squid"
_NCSA: Final = "/usr/lib/squid/basic_ncsa_auth"


class ProxyProcess:
    """A proxy process listening on ``127.0.0.1:port``, its config and log in ``root``."""

    name: str = "proxy"

    def __init__(self, root: Path, log: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.root = root
        self.log = root / log
        self.process: subprocess.Popen[bytes] | None = None

    def _start(self, argv: list[str], config: list[str]) -> None:
        path = self.root / f"{self.name}.conf"
        path.write_text("\n".join(config) + "\n")
        self.process = subprocess.Popen(
            [*argv, str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        try:
            wait_until(self._up, timeout=15, what=f"{self.name} on port {self.port}")
        except (TimeoutError, RuntimeError):
            self.stop()
            raise

    def _up(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited {self.process.returncode}:\n{self.log_text()}")
        return port_open("127.0.0.1", self.port)

    def log_text(self) -> str:
        """What the proxy logged so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        """Stop the proxy (idempotent)."""
        stop_process(self.process)
        self.process = None


class Tinyproxy(ProxyProcess):
    """One tinyproxy process."""

    name = "tinyproxy"

    def __init__(
        self,
        binary: str,
        root: Path,
        *,
        auth: tuple[str, str] | None = None,
        allow: str = "127.0.0.1",
        connect_ports: tuple[int, ...] = (),
    ) -> None:
        super().__init__(root, "tinyproxy.log")
        config = [
            f"Port {self.port}",
            "Listen 127.0.0.1",
            "Timeout 10",
            "MaxClients 50",
            "LogLevel Info",
            f'LogFile "{self.log}"',
            f"Allow {allow}",
        ]
        if auth is not None:
            config.append(f"BasicAuth {auth[0]} {auth[1]}")
        config += [f"ConnectPort {port}" for port in connect_ports]
        self._start([binary, "-d", "-c"], config)


class Squid(ProxyProcess):
    """One squid process (no cache, no disk)."""

    name = "squid"

    def __init__(
        self, binary: str, root: Path, *, deny: bool = False, auth: tuple[str, str] | None = None
    ) -> None:
        root.chmod(0o777)  # squid drops to the proxy user and writes its log here
        super().__init__(root, "cache.log")
        access = ["http_access deny all" if deny else "http_access allow localhost"]
        if auth is not None:
            access = [
                f"auth_param basic program {_NCSA} {self._password_file(*auth)}",
                "auth_param basic children 1 startup=1",
                "auth_param basic realm probed",
                "acl users proxy_auth REQUIRED",
                "http_access deny !users",  # an auth ACL last on a deny line: 407, not 403
                *access,
            ]
        config = [
            f"http_port 127.0.0.1:{self.port}",
            "pid_filename none",
            f"cache_log {self.log}",
            "access_log none",
            "cache deny all",
            "cache_mem 8 MB",
            f"coredump_dir {root}",
            "shutdown_lifetime 0 seconds",
            *access,
            "http_access deny all",
        ]
        self._start([binary, "-N", "-f"], config)

    def _password_file(self, user: str, password: str) -> Path:
        done = subprocess.run(
            ["openssl", "passwd", "-1", "-stdin"],
            input=password.encode(),
            capture_output=True,
            check=True,
        )
        path = self.root / "passwords"
        path.write_text(f"{user}:{done.stdout.decode().strip()}\n")
        path.chmod(0o644)
        return path


ProxyT = TypeVar("ProxyT", bound=ProxyProcess)


def _factory(
    kind: Callable[..., ProxyT], path: str, hint: str, *, reuse: bool = False
) -> Iterator[Callable[..., ProxyT]]:
    binary = require_binary(path, hint)
    started: dict[int | str, ProxyT] = {}
    with tempfile.TemporaryDirectory(prefix="probed-proxy-") as tmp:
        Path(tmp).chmod(0o755)

        def start(**options: Any) -> ProxyT:
            key: int | str = repr(sorted(options.items())) if reuse else len(started)
            if key not in started:
                root = Path(tmp) / str(len(started))
                root.mkdir()
                started[key] = kind(binary, root, **options)
            return started[key]

        try:
            yield start
        finally:
            for proxy in started.values():  # all told first: squid takes ~2 s to stop
                if proxy.process is not None:
                    proxy.process.terminate()
            for proxy in started.values():
                proxy.stop()


@pytest.fixture
def tinyproxy() -> Iterator[Callable[..., Tinyproxy]]:
    """Factory: start tinyproxy (``auth``, ``allow``, ``connect_ports`` keywords)."""
    yield from _factory(Tinyproxy, _BINARY, _HINT)


@pytest.fixture(scope="module")
def squid() -> Iterator[Callable[..., Squid]]:
    """Factory: start squid (``deny`` and ``auth`` keywords). Module-scoped: squid keeps no
    state between requests (no cache), and the same options give the same running squid."""
    yield from _factory(Squid, _SQUID, _SQUID_HINT, reuse=True)
