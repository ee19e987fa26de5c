"""Sentry: report daemon errors and check plugin exceptions, with secrets scrubbed.

A built-in plugin that stays inert (and never imports ``sentry_sdk``) until a DSN is given by
``SENTRY_DSN`` or by ``probed.yaml``::

    plugins:
      sentry:
        dsn: https://KEY@sentry.example.com/42   # SENTRY_DSN wins when both are set
        environment: production                  # SENTRY_ENVIRONMENT wins when both are set
        traces: false                            # or true / a sample rate: HTTP API transactions
        rate_limit: 10m                          # one event per check / error source per window

What becomes an event:

- **daemon errors**: ``ERROR`` log records of the ``probed`` loggers (plugin hook failures,
  configuration errors, ...), plus ``asyncio`` and ``aiohttp.server`` errors (a task that died,
  an API handler that raised) and uncaught exceptions. ``INFO`` records of ``probed`` become
  breadcrumbs. Configuration errors are grouped by ``file:line``, plugin failures by plugin
  and hook.
- **check plugin exceptions**: a run whose result has reason ``exception`` (the daemon caught
  what the check's ``run()`` or ``setup()`` raised), tagged ``check``, ``type`` and ``reason``.

Every source is rate-limited (once per ``rate_limit`` per check, per config error location,
per plugin and hook), never one event per run. Every string of every event and breadcrumb
goes through the daemon's redactor (secrets from ``${file:...}`` and secret-looking
environment variables) and :func:`probed.redact.redact_data` (secret-looking keys, URL
passwords); secret request headers are dropped; personal data (``send_default_pii``) and local
variables are not sent.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Final

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, ValidationError

from probed import __version__, hookimpl
from probed._durations import Duration
from probed.check import Reason, Result
from probed.logs import current_redactor
from probed.redact import is_secret_key, redact_data

if TYPE_CHECKING:
    from probed.spec import CheckSpec

__all__ = [
    "CONFIG_KEY",
    "ENV_DSN",
    "INSTALL_HINT",
    "RateLimiter",
    "SentryConfig",
    "before_breadcrumb",
    "before_send",
    "is_active",
]

log = logging.getLogger("probed.integrations.sentry")

ENV_DSN: Final = "SENTRY_DSN"
ENV_ENVIRONMENT: Final = "SENTRY_ENVIRONMENT"
CONFIG_KEY: Final = "sentry"
"""The key of this plugin's section under ``plugins:`` in ``probed.yaml``."""
INSTALL_HINT: Final = "pip install 'probed[sentry]'"
EVENT_LOGGERS: Final = ("probed", "asyncio", "aiohttp.server")
"""Loggers whose ``ERROR`` records become events (``probed`` covers every ``probed.*``)."""
BREADCRUMB_LOGGER: Final = "probed"
CLOSE_TIMEOUT: Final = 2.0
"""Seconds to wait for queued events when stopping."""


def _traces(value: Any) -> Any:
    # ``traces: true`` samples every transaction, ``false`` none; a number is a sample rate.
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    return value


class SentryConfig(BaseModel):
    """The ``plugins: {sentry: ...}`` section of ``probed.yaml``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    dsn: SecretStr | None = None
    environment: str | None = None
    traces: Annotated[float, BeforeValidator(_traces), Field(ge=0.0, le=1.0)] = 0.0
    rate_limit: Duration = 600.0


class RateLimiter:
    """Lets one event per key through per ``window`` seconds (thread-safe, bounded memory)."""

    _MAX_KEYS: Final = 10_000

    def __init__(self, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.window = window
        self._clock = clock
        self._last: dict[Hashable, float] = {}
        self._lock = threading.Lock()

    def allow(self, key: Hashable) -> bool:
        """True if nothing for ``key`` was allowed within the window (and remember now)."""
        now = self._clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.window:
                return False
            if len(self._last) >= self._MAX_KEYS:  # removed checks, rotated files...
                self._last = {k: t for k, t in self._last.items() if now - t < self.window}
            self._last[key] = now
            return True


# -- scrubbing ----------------------------------------------------------------------------------


def _scrub(data: Any) -> Any:
    """Every string through the daemon's current redactor, secret-keyed values masked."""
    return redact_data(data, current_redactor())


def _strip_request(event: dict[str, Any]) -> None:
    request = event.get("request")
    if not isinstance(request, dict):
        return
    headers = request.get("headers")
    if isinstance(headers, dict):
        request["headers"] = {k: v for k, v in headers.items() if not is_secret_key(str(k))}
    for key in ("cookies", "data", "env"):
        request.pop(key, None)


def before_send(event: Any, hint: Any) -> Any:
    """Sentry's ``before_send``: drop secret headers, then scrub every string of the event."""
    if isinstance(event, dict):
        _strip_request(event)
    return _scrub(event)


def before_breadcrumb(crumb: Any, hint: Any) -> Any:
    """Scrub a breadcrumb when it is recorded, with the secrets known *now*.

    A later reload may rotate a secret out of the redactor; the breadcrumb must not keep it.
    """
    return _scrub(crumb)


# -- what becomes an event ----------------------------------------------------------------------


def _record_identity(record: logging.LogRecord) -> tuple[tuple[str, ...], dict[str, str]]:
    """Fingerprint (also the rate-limit key) and tags for an error log record."""
    event = getattr(record, "event", None)
    if event == "config_error":
        file, line = getattr(record, "file", None), getattr(record, "line", None)
        where = f"{file}:{line}" if file else current_redactor()(record.getMessage())
        return ("probed-config-error", where), {"event": "config_error"}
    if event == "plugin_error":
        plugin, hook = str(getattr(record, "plugin", "?")), str(getattr(record, "hook", "?"))
        return ("probed-plugin-error", plugin, hook), {
            "event": "plugin_error",
            "plugin": plugin,
            "hook": hook,
        }
    # Anything else: group like Sentry would, by logger and message template.
    return (record.name, str(record.msg)), {}


def _make_event_handler(limiter: RateLimiter) -> logging.Handler:
    from sentry_sdk import new_scope
    from sentry_sdk.integrations.logging import EventHandler

    class ProbedEventHandler(EventHandler):
        """Sentry's logging event handler, rate-limited and grouped by probed's fields."""

        def _emit(self, record: logging.LogRecord) -> None:
            fingerprint, tags = _record_identity(record)
            if not limiter.allow(("log", *fingerprint)):
                return
            with new_scope() as scope:
                scope.fingerprint = list(fingerprint)
                for key, value in tags.items():
                    scope.set_tag(key, value)
                super()._emit(record)

    return ProbedEventHandler(level=logging.ERROR)


def _report_check_exception(spec: CheckSpec, result: Result) -> None:
    import sentry_sdk

    sentry_sdk.capture_event(
        {
            "level": "error",
            "logger": "probed.runner",
            "message": f"check {spec.name} (type {spec.type}): {result.message}",
            "fingerprint": ["probed-check-exception", spec.type, spec.name],
            "tags": {"check": spec.name, "type": spec.type, "reason": result.reason},
            "extra": {
                "where": spec.where,
                "labels": dict(spec.labels),
                "interval_seconds": spec.interval,
                "timeout_seconds": spec.timeout,
                "duration_seconds": result.duration,
            },
        }
    )


# -- lifecycle ----------------------------------------------------------------------------------


@dataclass
class _Active:
    """The running Sentry client and what this plugin attached to logging."""

    key: tuple[str, str | None, float]
    client: Any
    limiter: RateLimiter
    handlers: list[tuple[logging.Logger, logging.Handler]] = field(default_factory=list)

    def detach(self) -> None:
        for logger, handler in self.handlers:
            logger.removeHandler(handler)
        self.handlers.clear()


_active: _Active | None = None
_warned_missing = False


def is_active() -> bool:
    """Whether this plugin has initialised Sentry (a DSN is configured and sentry-sdk loads)."""
    return _active is not None


def _parse(plugin_config: Mapping[str, Any]) -> SentryConfig:
    raw = plugin_config.get(CONFIG_KEY) or {}
    if not isinstance(raw, Mapping):
        raise ValueError(f"plugins.{CONFIG_KEY} in probed.yaml must be a mapping of options")
    try:
        return SentryConfig.model_validate(dict(raw))
    except ValidationError as exc:
        problems = "; ".join(
            f"plugins.{CONFIG_KEY}.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()
        )
        raise ValueError(f"invalid Sentry settings in probed.yaml: {problems}") from None


def _start(key: tuple[str, str | None, float], config: SentryConfig) -> _Active | None:
    global _warned_missing
    try:
        import sentry_sdk
        from sentry_sdk.integrations.dedupe import DedupeIntegration
        from sentry_sdk.integrations.excepthook import ExcepthookIntegration
        from sentry_sdk.integrations.logging import BreadcrumbHandler
    except ImportError:
        if not _warned_missing:
            _warned_missing = True
            log.warning(
                "a Sentry DSN is configured but sentry-sdk is not installed; errors are not "
                "reported to Sentry. Install it with: %s",
                INSTALL_HINT,
                extra={"event": "sentry_unavailable"},
            )
        return None
    dsn, environment, traces = key
    integrations: list[Any] = [DedupeIntegration(), ExcepthookIntegration()]
    if traces:
        from sentry_sdk.integrations.aiohttp import AioHttpIntegration

        integrations.append(AioHttpIntegration())
    try:
        sentry_sdk.init(
            dsn=dsn,
            environment=environment,
            release=f"probed@{__version__}",
            # Only what is listed: no auto-instrumentation of every library in the process.
            default_integrations=False,
            auto_enabling_integrations=False,
            integrations=integrations,
            # send_default_pii is left unset: off by default in every 2.x release, and
            # newer ones deprecate passing it at all (warnings are errors in our tests).
            include_local_variables=False,  # frame locals are where secrets live
            max_breadcrumbs=50,
            before_send=before_send,
            before_send_transaction=before_send,
            before_breadcrumb=before_breadcrumb,
            traces_sample_rate=traces or None,
            trace_propagation_targets=[],  # never add headers to the requests checks send
        )
    except Exception as exc:  # BadDsn and friends; the message must not echo the DSN
        raise ValueError(
            f"Sentry could not start ({type(exc).__name__}); check {ENV_DSN} or "
            f"plugins.{CONFIG_KEY}.dsn (expected https://KEY@HOST/PROJECT)"
        ) from None
    active = _Active(key, sentry_sdk.get_client(), RateLimiter(config.rate_limit))
    for name in EVENT_LOGGERS:
        logger = logging.getLogger(name)
        handler = _make_event_handler(active.limiter)
        logger.addHandler(handler)
        active.handlers.append((logger, handler))
    crumbs = BreadcrumbHandler(level=logging.INFO)
    logging.getLogger(BREADCRUMB_LOGGER).addHandler(crumbs)
    active.handlers.append((logging.getLogger(BREADCRUMB_LOGGER), crumbs))
    log.info(
        "reporting errors to Sentry (environment %s)",
        environment or os.environ.get(ENV_ENVIRONMENT) or "production",
        extra={"event": "sentry_enabled"},
    )
    return active


def _stop(active: _Active) -> Any:
    """Detach from logging and unset the global client; return the client to close."""
    import sentry_sdk

    active.detach()
    sentry_sdk.get_isolation_scope().clear_breadcrumbs()
    sentry_sdk.get_global_scope().set_client(None)
    return active.client


@hookimpl
def probed_configure(plugin_config: Mapping[str, Any]) -> None:
    """Start, restart or stop Sentry to match ``SENTRY_DSN`` and ``plugins.sentry``."""
    global _active
    config = _parse(plugin_config)
    secret = config.dsn.get_secret_value() if config.dsn else ""
    dsn = os.environ.get(ENV_DSN) or secret
    if not config.enabled or not dsn:
        if _active is not None:
            client, _active = _stop(_active), None
            _close_in_background(client)
        return
    key = (dsn, os.environ.get(ENV_ENVIRONMENT) or config.environment, config.traces)
    if _active is not None and _active.key == key:
        _active.limiter.window = config.rate_limit
        return
    if _active is not None:
        client, _active = _stop(_active), None
        _close_in_background(client)
    _active = _start(key, config)


def _close_in_background(client: Any) -> None:
    # Closing flushes queued events over the network: never on the event loop's thread.
    threading.Thread(
        target=client.close, kwargs={"timeout": CLOSE_TIMEOUT}, name="probed-sentry-close"
    ).start()


@hookimpl
async def probed_shutdown() -> None:
    """Send what is queued (up to :data:`CLOSE_TIMEOUT`) and release Sentry."""
    global _active
    if _active is None:
        return
    import asyncio

    client, _active = _stop(_active), None
    await asyncio.to_thread(client.close, timeout=CLOSE_TIMEOUT)


@hookimpl
def probed_check_result(spec: CheckSpec, result: Result) -> None:
    """Report a check whose run raised, at most once per check per ``rate_limit``."""
    active = _active
    if active is None or result.reason != Reason.EXCEPTION:
        return
    if active.limiter.allow(("check", spec.name)):
        _report_check_exception(spec, result)


# Called for every run only while Sentry is configured (see probed.notify.Notifier.has_impls).
probed_check_result.probed_when = is_active  # type: ignore[attr-defined]
