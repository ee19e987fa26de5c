"""``GET /probe?target=…&module=…[&debug=true]``: blackbox_exporter's multi-target endpoint.

The modules come from a blackbox_exporter module file (``--blackbox-config``, or
``blackbox_config:`` in ``probed.yaml``), read by :mod:`probed._blackbox_modules` onto probed's
``http``, ``tcp``, ``dns``, ``icmp`` and ``grpc`` check types; the answer uses blackbox's metric
names (:mod:`probed._blackbox_metrics`). The file is read again when its path (a reload of
``probed.yaml``) or its contents change; a broken file keeps the modules last read (its errors
are logged, and answered while no good version was ever read).

Bad input is a 400 and nothing is probed: an unknown module, no target, a target whose form
the module's prober does not take, an unreadable scrape-timeout header. A probe is bounded by
the module's ``timeout`` and Prometheus' ``X-Prometheus-Scrape-Timeout-Seconds`` (minus half a
second, as blackbox does), and at most :data:`MAX_IN_FLIGHT` probes run at once (more: 503).
Secrets of the module file never appear in an answer: ``debug=true`` masks them.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import yaml
from aiohttp import web
from pydantic import ValidationError

from probed.check import Check, Result
from probed.common import common_values
from probed.errors import ConfigError, ConfigErrors
from probed.runner import execute
from probed.spec import CheckSpec

if TYPE_CHECKING:  # the blackbox modules load with the first module file (not in every daemon)
    from probed._blackbox_modules import Module

__all__ = ["MAX_IN_FLIGHT", "PROBES", "ProbeEndpoint", "load_blackbox_modules", "probe"]

log = logging.getLogger("probed.probe")

MAX_IN_FLIGHT: Final = 256
"""Probes running at once; a request past it is answered 503 (Prometheus retries next scrape)."""
TIMEOUT_OFFSET: Final = 0.5
"""Seconds taken off the scrape timeout so the answer arrives in time (blackbox's default)."""
DEFAULT_TIMEOUT: Final = 120.0
"""blackbox's probe timeout when neither the module nor the scraper sets one."""
CACHED_CHECKS: Final = 4096
"""Built checks kept for the next probe of the same module and target (see CheckCache)."""
DEFAULT_MODULE: Final = "http_2xx"
"""The module blackbox uses when the request names none."""

_CHECK_TYPES: Final = {
    "http": ("probed.checks.http", "HttpCheck"),
    "tcp": ("probed.checks.tcp", "TcpCheck"),
    "dns": ("probed.checks.dns", "DnsCheck"),
    "icmp": ("probed.checks.icmp", "IcmpCheck"),
    "grpc": ("probed.checks.grpc", "GrpcCheck"),
}
# A name, not an IP literal: an ip6-only module must not fail its load-time check on the
# placeholder's family (http refuses a literal its address options exclude).
_PLACEHOLDER: Final = {"http": "http://probe.invalid/", "icmp": "probe.invalid"}
_MASK: Final = "<secret>"


def check_type(prober: str) -> type[Check[Any]]:
    """probed's check type for a blackbox prober."""
    module_name, name = _CHECK_TYPES[prober]
    cls: type[Check[Any]] = getattr(importlib.import_module(module_name), name)
    return cls


def _pydantic_problem(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def _validate(module: Module, _path: tuple[Any, ...]) -> str | None:
    """Whether a module's mapped options hold under probed's model (a placeholder target)."""
    try:
        cls = check_type(module.prober)
    except ImportError as exc:
        return f"the {module.prober} prober needs probed's extra ({exc.name} is not installed)"
    target = _PLACEHOLDER.get(module.prober, "127.0.0.1:1")
    try:
        cls.options_model.model_validate(module.options_for(target))
    except ValidationError as exc:
        return _pydantic_problem(exc)
    missing = [name for name in cls.requires if importlib.util.find_spec(name) is None]
    if missing:
        return f"the {module.prober} prober needs probed[{cls.extra}] ({', '.join(missing)})"
    return None


def load_blackbox_modules(path: Path) -> dict[str, Module]:
    """Read and check a blackbox module file (``probed run`` does at start).

    :raises ConfigErrors: every problem, each ``FILE:LINE: field: message``.
    """
    from probed._blackbox_modules import load_modules

    return load_modules(path, _validate)


@dataclass(slots=True)
class _Cached:
    check: Check[Any]
    users: int = 0
    retired: bool = False


class CheckCache:
    """Built checks by (module, target, timeout), least recently used out first.

    A check is built, and its ``setup()`` (an SSL context, a CA store read in a thread) run,
    once per target rather than once per scrape; a check pushed out, or built from a module
    file since re-read, is closed once no probe uses it.
    """

    __slots__ = ("entries", "retired", "size")

    def __init__(self, size: int = CACHED_CHECKS) -> None:
        self.size = size
        self.entries: OrderedDict[tuple[str, str, float], _Cached] = OrderedDict()
        self.retired: list[_Cached] = []

    def acquire(self, key: tuple[str, str, float], build: Callable[[], Check[Any]]) -> _Cached:
        """The check for ``key`` (built now if needed), marked in use."""
        entry = self.entries.get(key)
        if entry is None:
            entry = self.entries[key] = _Cached(build())
            while len(self.entries) > self.size:
                self._retire(self.entries.popitem(last=False)[1])
        else:
            self.entries.move_to_end(key)
        entry.users += 1
        return entry

    def _retire(self, entry: _Cached) -> None:
        entry.retired = True
        self.retired.append(entry)

    def clear(self) -> None:
        """Retire every check (the module file changed)."""
        for entry in self.entries.values():
            self._retire(entry)
        self.entries.clear()

    async def release(self, entry: _Cached) -> None:
        """Mark ``entry`` no longer in use; close the retired checks nobody uses."""
        entry.users -= 1
        if not self.retired:
            return
        idle = [e for e in self.retired if e.users == 0]
        self.retired = [e for e in self.retired if e.users > 0]
        for done in idle:
            await done.check.close()


@dataclass(slots=True)
class ProbeEndpoint:
    """The module file read last (by path and stat signature) and the probes in flight."""

    limit: int = MAX_IN_FLIGHT
    in_flight: int = 0
    path: Path | None = None
    signature: tuple[int, int, int] | None = None
    modules: dict[str, Module] = field(default_factory=dict)
    errors: tuple[ConfigError, ...] = ()
    loaded: bool = False
    checks: CheckCache = field(default_factory=CheckCache)
    config: Callable[[], Any] = lambda: None
    """The running configuration (``settings.blackbox_config``, ``redact``), looked up per
    request so a reload's new settings apply (:func:`probed.server.make_app` sets it)."""
    _lock: asyncio.Lock | None = None

    async def current(self, path: Path) -> dict[str, Module]:
        """The modules of ``path``, re-read when the path or the file changed.

        :raises ConfigErrors: the file never read cleanly.
        """
        try:
            stat = os.stat(path)
            signature: tuple[int, int, int] | None = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
        except OSError:
            signature = None
        if path != self.path or signature != self.signature:
            if self._lock is None:
                self._lock = asyncio.Lock()
            async with self._lock:
                if path != self.path or signature != self.signature:
                    await self._read(path, signature)
        if not self.loaded:
            raise ConfigErrors(self.errors)
        return self.modules

    async def _read(self, path: Path, signature: tuple[int, int, int] | None) -> None:
        try:
            modules = await asyncio.to_thread(load_blackbox_modules, path)
        except ConfigErrors as exc:
            errors = tuple(exc.errors)
        else:
            first = self.path is None
            self.checks.clear()
            self.path, self.signature, self.modules = path, signature, modules
            self.errors, self.loaded = (), True
            log.info(
                "blackbox modules %s from %s: %s",
                "read" if first else "re-read",
                path,
                ", ".join(sorted(modules)) or "none",
                extra={"event": "blackbox_modules_loaded"},
            )
            return
        if path != self.path:  # another file: the old modules are not its modules
            self.modules, self.loaded = {}, False
            self.checks.clear()
        self.path, self.signature, self.errors = path, signature, errors
        for error in errors:
            log.error(
                "blackbox module file: %s%s",
                error,
                " (keeping the modules read before)" if self.loaded else "",
                extra={"event": "blackbox_modules_invalid"},
            )


PROBES: Final = web.AppKey("probes", ProbeEndpoint)
"""The ``/probe`` endpoint's state (set by :func:`probed.server.make_app`)."""


def _module_file(state: ProbeEndpoint) -> Path | None:
    settings = getattr(state.config(), "settings", None)
    path = getattr(settings, "blackbox_config", None)
    return Path(path) if path is not None else None


def probe_timeout(module: Module, header: str | None) -> float:
    """Seconds the probe may take: blackbox's rule (scrape timeout minus the offset, or the
    module's ``timeout`` when shorter; 120 s when neither is set).

    :raises ValueError: the header is not a number.
    """
    seconds = DEFAULT_TIMEOUT
    if header:
        seconds = float(header)
        if not seconds == seconds or seconds < 0:  # NaN or negative
            raise ValueError(header)
        seconds = seconds or DEFAULT_TIMEOUT
    most = seconds - TIMEOUT_OFFSET
    if (0 < module.timeout < most) or most < 0:
        return module.timeout or seconds
    return most


def _bad(text: str, status: int = 400) -> web.Response:
    return web.Response(status=status, text=text.rstrip("\n") + "\n")


def _mask(text: str, secrets: tuple[str, ...]) -> str:
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            text = text.replace(secret, _MASK)
    return text


def _shown_options(options: Any, secrets: tuple[str, ...]) -> str:
    dumped = yaml.safe_dump(options, sort_keys=True, default_flow_style=False)
    return _mask(dumped, secrets)


def _build(module: Module, options: dict[str, Any], seconds: float) -> Check[Any]:
    cls = check_type(module.prober)
    spec = CheckSpec(
        **common_values(
            {
                "name": f"probe_{module.name}",
                "type": cls.type_name,
                "interval": max(seconds * 2, 1.0),
                "timeout": seconds,
            },
            timing=False,
        ),
        options=cls.options_model.model_validate(options),
    )
    return cls(spec)


async def _run(state: ProbeEndpoint, entry: _Cached, seconds: float) -> tuple[Result, float]:
    start = time.perf_counter()
    try:
        async with asyncio.timeout(seconds):  # setup included: the scraper waits no longer
            result = await execute(entry.check, seconds)
    except TimeoutError:
        result = Result.fail("timeout", f"no answer within the probe timeout of {seconds:g}s")
    finally:
        await state.checks.release(entry)
    return result, time.perf_counter() - start


async def probe(request: web.Request) -> web.Response:
    """``GET /probe``: one probe of ``target`` with ``module``, answered in blackbox's names."""
    state = request.app[PROBES]
    path = _module_file(state)
    if path is None:
        return _bad(
            "/probe needs a blackbox module file: start probed with --blackbox-config FILE "
            "(or set blackbox_config in probed.yaml)",
            404,
        )
    from probed._blackbox_metrics import render, series
    from probed._blackbox_modules import TargetError

    try:
        modules = await state.current(path)
    except ConfigErrors as exc:
        redact = _redactor(request)
        return _bad(
            "the blackbox module file has errors:\n"
            + "\n".join(redact(str(e)) for e in exc.errors),
            503,
        )
    query = request.query
    name = query.get("module") or DEFAULT_MODULE
    module = modules.get(name)
    if module is None:
        known = ", ".join(sorted(modules)) or "none"
        return _bad(f"Unknown module {name!r} (modules in {path}: {known})")
    target = query.get("target")
    if target is None or not target.strip():
        return _bad("Target parameter is missing")
    try:
        options = module.options_for(target)
    except TargetError as exc:
        return _bad(f"Bad target: {exc}")
    header = request.headers.get("X-Prometheus-Scrape-Timeout-Seconds")
    try:
        seconds = probe_timeout(module, header)
    except ValueError:
        return _bad(f"X-Prometheus-Scrape-Timeout-Seconds: not a number of seconds: {header!r}")
    if state.in_flight >= state.limit:
        return _bad(f"too many probes in flight ({state.limit}): try again at the next scrape", 503)
    try:  # the options are validated when the check is built, once per target
        entry = state.checks.acquire(
            (module.name, target, seconds), lambda: _build(module, options, seconds)
        )
    except ValidationError as exc:
        return _bad(f"Bad target {target!r} for module {name!r}: {_pydantic_problem(exc)}")
    debug = query.get("debug", "").lower() == "true"
    state.in_flight += 1
    try:
        result, duration = await _run(state, entry, seconds)
    finally:
        state.in_flight -= 1
    rows = series(module, target, result, duration)
    body = render(rows)
    if not debug:
        return web.Response(
            text=body,
            content_type="text/plain",
            charset="utf-8",
            headers={"Cache-Control": "no-store"},
        )
    return web.Response(text=_debug(request, module, target, seconds, result, duration, body))


def _redactor(request: web.Request) -> Callable[[str], str]:
    redact: Callable[[str], str] | None = getattr(request.app[PROBES].config(), "redact", None)
    return redact if redact is not None else (lambda text: text)


def _debug(
    request: web.Request,
    module: Module,
    target: str,
    seconds: float,
    result: Result,
    duration: float,
    body: str,
) -> str:
    """blackbox's debug page: the probe's log, the metrics, the module (secrets masked)."""
    secrets = module.secrets()
    verdict = "succeeded" if result.status.passed else "failed"
    phases = ", ".join(f"{k}={v * 1000:.3f}ms" for k, v in result.phases.items()) or "none"
    lines = [
        "Logs for the probe:",
        f'module={module.name} target={target} level=info msg="Beginning probe" '
        f"probe={module.prober} timeout_seconds={seconds:g}",
        f'module={module.name} target={target} level=info msg="probed check" '
        f"type={check_type(module.prober).type_name} status={result.status.label}"
        + (f" reason={result.reason}" if result.reason else ""),
        f'module={module.name} target={target} level=info msg="{result.message}"',
        f'module={module.name} target={target} level=info msg="phases" {phases}',
        f"module={module.name} target={target} level={'info' if result.status.passed else 'error'} "
        f'msg="Probe {verdict}" duration_seconds={duration:.6f}',
        "",
        "",
        "Metrics that would have been returned:",
        body,
        "",
        "Module configuration (as probed runs it):",
        f"prober: {module.prober}",
        f"timeout: {module.timeout:g}s" if module.timeout else "timeout: (none: scrape timeout)",
        f"probed check type {check_type(module.prober).type_name} options:",
        _shown_options(dict(module.options), secrets),
    ]
    text = "\n".join(lines)
    return str(_redactor(request)(_mask(text, secrets)))
