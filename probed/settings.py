"""``Settings``: daemon-wide configuration from ``probed.yaml``, the command line and ``PROBED_*``.

Precedence, highest first: command-line option, ``PROBED_<OPTION>`` environment variable,
``probed.yaml``, built-in default.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

__all__ = ["DEFAULT_LISTEN", "CheckDefaults", "Settings"]

DEFAULT_LISTEN: Final = "0.0.0.0:9333"


@dataclass(frozen=True, slots=True)
class CheckDefaults:
    """Values a check gets when neither it nor its file's ``defaults:`` set them."""

    interval: float = 30.0
    timeout: float = 10.0
    readiness: bool = True
    failure_threshold: int = 3
    success_threshold: int = 1
    labels: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything that configures the daemon itself (not the checks).

    :param config_file: the ``probed.yaml`` read, if any.
    :param checks_dirs: directories scanned for ``*.yaml``/``*.yml`` check files.
    :param plugins_dirs: directories of one-file plugins.
    :param listen: ``HOST:PORT`` of the HTTP server.
    :param max_concurrency: how many checks may run at the same moment.
    :param startup_spread: the first run of every check starts within this many seconds of
        startup (never later than its interval), so ``/health/startup`` opens quickly.
    :param history: how many recent results each check keeps for the API.
    :param hook_timeout: seconds an async notification hook may take before it is abandoned.
    :param watch: whether changes under the checks directories are picked up on their own.
    :param use_embedded_checks: run the embedded host checks (no config and no checks dir given).
    """

    config_file: Path | None = None
    checks_dirs: tuple[Path, ...] = ()
    plugins_dirs: tuple[Path, ...] = ()
    listen: str = DEFAULT_LISTEN
    log_format: Literal["json", "text"] = "json"
    log_level: str = "INFO"
    disabled_plugins: tuple[str, ...] = ()
    max_concurrency: int = 512
    startup_spread: float = 2.0
    history: int = 10
    hook_timeout: float = 5.0
    watch: bool = True
    watch_interval: float = 2.0
    defaults: CheckDefaults = field(default_factory=CheckDefaults)
    plugins: Mapping[str, Any] = field(default_factory=dict)
    use_embedded_checks: bool = False

    @property
    def host_port(self) -> tuple[str, int]:
        """``listen`` split into host and port (``[::1]:9333`` style IPv6 accepted)."""
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]") or "0.0.0.0", int(port)
