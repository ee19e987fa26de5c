"""Debian's ``tinyproxy`` and ``squid`` as real forward proxies on loopback ports, own configs.

Fixtures:

- ``tinyproxy``: a factory. ``tinyproxy(auth=("user", "password"), allow="127.0.0.1",
  connect_ports=(443,))`` writes a config, starts ``tinyproxy -d`` on a free loopback port and
  returns a :class:`Tinyproxy`; every proxy started is stopped at the end of the test. ``auth``
  turns on basic authentication (407 without it); ``allow`` is the only client address allowed
  (another one makes the proxy refuse every client with 403); ``connect_ports`` the only ports
  ``CONNECT`` may reach (default: all). Skips when the binary is missing (fails under
  ``PROBED_REQUIRE_SERVICES=1``).

- ``squid``: a factory. ``squid(deny=True)`` starts ``squid -N`` on a free loopback port; with
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
from typing import Final

import pytest

from tests.servers._util import free_port, port_open, require_binary, stop_process, wait_until

__all__ = ["Squid", "Tinyproxy"]

_BINARY: Final = "/usr/bin/tinyproxy"
_HINT: Final = "apt-get install -y tinyproxy"
_SQUID: Final = "/usr/sbin/squid"
_SQUID_HINT: Final = "apt-get install -y squid"
_NCSA: Final = "/usr/lib/squid/basic_ncsa_auth"


class Tinyproxy:
    """One tinyproxy process listening on ``127.0.0.1:port``."""

    def __init__(
        self,
        binary: str,
        root: Path,
        auth: tuple[str, str] | None,
        allow: str,
        connect_ports: tuple[int, ...],
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = root / "tinyproxy.log"
        lines = [
            f"Port {self.port}",
            "Listen 127.0.0.1",
            "Timeout 10",
            "MaxClients 50",
            "LogLevel Info",
            f'LogFile "{self.log}"',
            f"Allow {allow}",
        ]
        if auth is not None:
            lines.append(f"BasicAuth {auth[0]} {auth[1]}")
        lines += [f"ConnectPort {port}" for port in connect_ports]
        config = root / "tinyproxy.conf"
        config.write_text("\n".join(lines) + "\n")
        self.process: subprocess.Popen[bytes] | None = subprocess.Popen(
            [binary, "-d", "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_until(self._up, timeout=10, what=f"tinyproxy on port {self.port}")
        except (TimeoutError, RuntimeError):
            self.stop()
            raise

    def _up(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"tinyproxy exited {self.process.returncode}:\n{self.log_text()}")
        return port_open("127.0.0.1", self.port)

    def log_text(self) -> str:
        """What tinyproxy logged so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        """Stop the proxy (idempotent)."""
        stop_process(self.process)
        self.process = None


ProxyFactory = Callable[..., Tinyproxy]


@pytest.fixture
def tinyproxy() -> Iterator[ProxyFactory]:
    """Factory: start tinyproxy (``auth``, ``allow``, ``connect_ports`` keywords)."""
    binary = require_binary(_BINARY, _HINT)
    started: list[Tinyproxy] = []
    with tempfile.TemporaryDirectory(prefix="probed-proxy-") as tmp:

        def start(
            *,
            auth: tuple[str, str] | None = None,
            allow: str = "127.0.0.1",
            connect_ports: tuple[int, ...] = (),
        ) -> Tinyproxy:
            root = Path(tmp) / str(len(started))
            root.mkdir()
            proxy = Tinyproxy(binary, root, auth, allow, connect_ports)
            started.append(proxy)
            return proxy

        try:
            yield start
        finally:
            for proxy in started:
                proxy.stop()


class Squid:
    """One squid process (no cache, no disk) listening on ``127.0.0.1:port``."""

    def __init__(self, binary: str, root: Path, deny: bool, auth: tuple[str, str] | None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        root.chmod(0o777)  # squid drops to the proxy user and writes its log here
        self.log = root / "cache.log"
        access = ["http_access deny all" if deny else "http_access allow localhost"]
        if auth is not None:
            access = [
                f"auth_param basic program {_NCSA} {self._password_file(root, *auth)}",
                "auth_param basic children 1 startup=1",
                "auth_param basic realm probed",
                "acl users proxy_auth REQUIRED",
                "http_access deny !users",  # an auth ACL last on a deny line: 407, not 403
                *access,
            ]
        config = root / "squid.conf"
        config.write_text(
            "\n".join(
                [
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
            )
            + "\n"
        )
        self.process: subprocess.Popen[bytes] | None = subprocess.Popen(
            [binary, "-N", "-f", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_until(self._up, timeout=15, what=f"squid on port {self.port}")
        except (TimeoutError, RuntimeError):
            self.stop()
            raise

    @staticmethod
    def _password_file(root: Path, user: str, password: str) -> Path:
        crypted = (
            subprocess.run(
                ["openssl", "passwd", "-1", "-stdin"],
                input=password.encode(),
                capture_output=True,
                check=True,
            )
            .stdout.decode()
            .strip()
        )
        path = root / "passwords"
        path.write_text(f"{user}:{crypted}\n")
        path.chmod(0o644)
        return path

    def _up(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            log = self.log.read_text(errors="replace") if self.log.exists() else ""
            raise RuntimeError(f"squid exited {self.process.returncode}:\n{log}")
        return port_open("127.0.0.1", self.port)

    def stop(self) -> None:
        """Stop the proxy (idempotent)."""
        stop_process(self.process)
        self.process = None


@pytest.fixture
def squid() -> Iterator[Callable[..., Squid]]:
    """Factory: start squid (``deny`` and ``auth`` keywords)."""
    binary = require_binary(_SQUID, _SQUID_HINT)
    started: list[Squid] = []
    with tempfile.TemporaryDirectory(prefix="probed-squid-") as tmp:
        Path(tmp).chmod(0o755)

        def start(*, deny: bool = False, auth: tuple[str, str] | None = None) -> Squid:
            root = Path(tmp) / str(len(started))
            root.mkdir()
            proxy = Squid(binary, root, deny, auth)
            started.append(proxy)
            return proxy

        try:
            yield start
        finally:
            for proxy in started:
                proxy.stop()
