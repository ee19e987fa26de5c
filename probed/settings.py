"""``Settings``: daemon-wide configuration from ``probed.yaml``, the command line and ``PROBED_*``.

Precedence, highest first: command-line option, ``PROBED_<OPTION>`` environment variable,
``probed.yaml``, built-in default. :func:`load_settings` reads ``probed.yaml`` (its ``checks:``
are :mod:`probed.checkfile`'s business); problems are ``FILE:LINE: field: message`` errors.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    ValidationError,
    field_validator,
)

from probed._document import Problem, pydantic_problems, read_bytes, read_document
from probed._interpolate import Interpolator
from probed._notify_settings import Notifications, NotificationsFile
from probed._status_settings import StatusPage, StatusPageFile
from probed._yaml import to_plain
from probed.common import CheckDefaults, PositiveInt, merge_defaults
from probed.errors import ConfigError, ConfigErrors
from probed.exposition import CORE_FAMILIES, OPTIONAL_FAMILIES, ExpositionOptions
from probed.options import Duration, parse_duration
from probed.replicas import Replicas, ReplicasFile, resolve_replicas

__all__ = ["DEFAULT_LISTEN", "CheckDefaults", "Settings", "load_settings"]

DEFAULT_LISTEN: Final = "0.0.0.0:9333"
LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


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
    :param web_config: exporter-toolkit web configuration (TLS, basic auth, headers); see
        :mod:`probed.webconfig`. The listener settings below are read at start only.
    :param health_listen: ``HOST:PORT`` of a second listener serving only ``/health/*``.
    :param live_listen: ``HOST:PORT`` of a listener served by a thread, not the event loop,
        answering ``/health/live`` even while a check blocks the loop (:mod:`probed.livez`).
    :param reload_endpoint: who may ``POST /-/reload`` (see :mod:`probed.listen`).
    :param max_connections: open connections per listener; more are closed at once.
    :param header_timeout: seconds a new connection has to send a whole request.
    :param idle_timeout: seconds an idle keep-alive connection stays open.
    :param state_change_log_limit: state-change log lines per check per minute (0: no limit).
    :param secrets_dirs: directories ``${file:...}`` may read files under, besides the
        directory of the file that refers to them; ``None``: the default allow-list
        (``/run/secrets``, ``/var/run/secrets``, ``/etc/probed``, ``$CREDENTIALS_DIRECTORY``
        and the directory of ``probed.yaml``). ``/proc``, ``/sys`` and ``/dev`` are never read.
    :param max_checks: most checks loaded; checks past it are not run and are reported.
    :param status_page: the built-in status page at ``/`` (:mod:`probed.status_page`).
    :param notifications: direct notifications through Apprise (:mod:`probed.notifications`).
    :param state_file: where run history is kept across restarts (:mod:`probed.statefile`);
        ``None``: nowhere. Read at start only.
    :param state_file_interval: seconds between saves of the state file (also saved on stop).
    :param blackbox_config: a blackbox_exporter module file served at ``/probe``
        (:mod:`probed.probe_endpoint`); ``None``: no ``/probe``. Re-read on reload.
    :param replicas: this daemon's share of the checks when N replicas split them
        (:mod:`probed.replicas`); ``None``: every check runs here. Re-read on reload.
    :param metrics: which per-check series ``/metrics`` exports (``metrics:`` in
        ``probed.yaml``: :class:`~probed.exposition.ExpositionOptions`). Read at start only.
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
    web_config: Path | None = None
    health_listen: str | None = None
    live_listen: str | None = None
    reload_endpoint: Literal["protected", "open", "off"] = "protected"
    max_connections: int = 1000
    header_timeout: float = 10.0
    idle_timeout: float = 30.0
    state_change_log_limit: int = 5
    secrets_dirs: tuple[Path, ...] | None = None
    max_checks: int = 50_000
    status_page: StatusPage = field(default_factory=StatusPage)
    notifications: Notifications = field(default_factory=Notifications)
    state_file: Path | None = None
    state_file_interval: float = 60.0
    blackbox_config: Path | None = None
    replicas: Replicas | None = None
    metrics: ExpositionOptions = field(default_factory=ExpositionOptions)

    @property
    def host_port(self) -> tuple[str, int]:
        """``listen`` split into host and port (``[::1]:9333`` style IPv6 accepted)."""
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]") or "0.0.0.0", int(port)


# -- probed.yaml -------------------------------------------------------------------------------


def non_negative_duration(value: Any) -> float:
    """Like :func:`parse_duration`, but ``0`` is allowed (for ``startup_spread``)."""
    if value == 0 and not isinstance(value, bool):
        return 0.0
    if isinstance(value, str) and value.strip() in ("0", "0s", "0ms"):
        return 0.0
    return parse_duration(value)


def _str_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


NonNegativeDuration = Annotated[float, BeforeValidator(non_negative_duration)]


def _watch_interval(value: float) -> float:
    if value < MIN_WATCH_INTERVAL:
        raise ValueError("watch_interval must be at least 10ms (it is how often files are read)")
    return value


MIN_WATCH_INTERVAL: Final = 0.01


def _state_file_interval(value: float) -> float:
    if value < 1.0:
        raise ValueError("state_file_interval must be at least 1s (each save writes the file)")
    return value


StateFileInterval = Annotated[Duration, AfterValidator(_state_file_interval)]
WatchInterval = Annotated[Duration, AfterValidator(_watch_interval)]
StrList = Annotated[list[str], BeforeValidator(_str_list)]
NonNegativeInt = Annotated[StrictInt, Field(ge=0, le=1_000_000)]


_CHECK_FAMILIES: Final = frozenset(f.name for f in CORE_FAMILIES + OPTIONAL_FAMILIES)
_FAMILY_NAME: Final = re.compile(r"probed_[a-z][a-z0-9_]*")


def _family(name: str) -> str:
    if not _FAMILY_NAME.fullmatch(name):
        raise ValueError(f"{name!r} is not a per-check metric family name (probed_...)")
    if name.startswith("probed_check_") and name not in _CHECK_FAMILIES:
        known = ", ".join(sorted(_CHECK_FAMILIES))
        raise ValueError(f"unknown per-check family {name!r}; known: {known}")
    return name


def _label_name(name: str) -> str:
    if not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", name):
        raise ValueError(f"{name!r} is not a label name")
    return name


class MetricsFile(BaseModel):
    """The ``metrics:`` block of ``probed.yaml``: which per-check series are exported."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    drop: (
        Annotated[list[Annotated[str, AfterValidator(_family)]], BeforeValidator(_str_list)] | None
    ) = None
    check_info: bool | None = None
    check_labels: Literal["all_series", "info"] | None = None
    series_labels: (
        Annotated[list[Annotated[str, AfterValidator(_label_name)]], BeforeValidator(_str_list)]
        | None
    ) = None
    zero_counters: bool | None = None

    def settings(self) -> ExpositionOptions:
        """The options these keys give (a key not written keeps its default)."""
        base = ExpositionOptions()
        return ExpositionOptions(
            drop=base.drop if self.drop is None else frozenset(self.drop),
            check_info=base.check_info if self.check_info is None else self.check_info,
            check_labels=base.check_labels if self.check_labels is None else self.check_labels,
            series_labels=base.series_labels
            if self.series_labels is None
            else frozenset(self.series_labels),
            zero_counters=base.zero_counters if self.zero_counters is None else self.zero_counters,
        )


class SettingsFile(BaseModel):
    """The keys of ``probed.yaml`` as written (``defaults:`` is read by merge_defaults)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    listen: str | None = None
    checks_dirs: StrList | None = None
    plugins_dirs: StrList | None = None
    log_format: Literal["json", "text"] | None = None
    log_level: str | None = None
    disabled_plugins: StrList | None = None
    max_concurrency: PositiveInt | None = None
    startup_spread: NonNegativeDuration | None = None
    history: PositiveInt | None = None
    hook_timeout: Duration | None = None
    watch: bool | None = None
    watch_interval: WatchInterval | None = None
    web_config: str | None = None
    health_listen: str | None = None
    live_listen: str | None = None
    reload_endpoint: Literal["protected", "open", "off"] | None = None
    max_connections: PositiveInt | None = None
    header_timeout: Duration | None = None
    idle_timeout: Duration | None = None
    state_change_log_limit: NonNegativeInt | None = None
    secrets_dirs: StrList | None = None
    max_checks: PositiveInt | None = None
    status_page: StatusPageFile | None = None
    notifications: NotificationsFile | None = None
    state_file: str | None = None
    state_file_interval: StateFileInterval | None = None
    blackbox_config: str | None = None
    replicas: ReplicasFile | None = None
    metrics: MetricsFile | None = None
    defaults: Any = None
    plugins: dict[str, dict[str, Any] | None] | None = None
    checks: list[Any] | None = None

    @field_validator("listen", "health_listen", "live_listen")
    @classmethod
    def _listen(cls, value: str | None) -> str | None:
        if value is None:  # `listen: null` (or `listen:`) means the default, like no key
            return None
        _, sep, port = value.rpartition(":")
        if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(
                f"expected HOST:PORT such as 127.0.0.1:9333 or [::1]:9333, got {value!r}"
            )
        return value

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if value.upper() not in LOG_LEVELS:
            raise ValueError(f"unknown log level {value!r}; use one of {', '.join(LOG_LEVELS)}")
        return value.upper()


def _settings_values(path: Path) -> dict[str, Any]:
    """Settings field values from a ``probed.yaml``.

    :raises ConfigErrors: every problem in the file (its ``checks:`` are left to load_checks).
    """
    content = read_bytes(path)
    if isinstance(content, ConfigError):
        raise ConfigErrors([content])
    interpolator = Interpolator(base=path.parent)
    doc = read_document(
        str(path),
        content,
        interpolator,
        shape="a mapping",
        say_kind=False,
        in_scope=lambda where: where[:1] != ("checks",),
        prepare=lambda tree: _allow_written(interpolator, tree, path.parent),
    )
    if doc.tree is None and not doc.errors:
        return {}
    errors = list(doc.errors)
    failed = {p for p in doc.failed if p[:1] != ("checks",)}
    problems: list[Problem] = []
    model = SettingsFile()
    defaults = CheckDefaults()
    if doc.tree is not None:
        try:
            model = SettingsFile.model_validate(doc.tree)
        except ValidationError as exc:
            problems += pydantic_problems(exc, SettingsFile)
        defaults, default_problems = merge_defaults(defaults, doc.tree.get("defaults"))
        problems += [(("defaults", *loc), m) for loc, m in default_problems]
    seen: set[Problem] = set()
    for loc, message in problems:
        if (loc, message) not in seen and not any(loc[: len(f)] == f for f in failed):
            seen.add((loc, message))
            errors.append(doc.error(loc, message))
    if errors:
        raise ConfigErrors(sorted(errors, key=lambda e: e.line))

    values: dict[str, Any] = {}
    base = path.parent
    for name in model.model_fields_set:
        value = getattr(model, name)
        if value is None or name == "checks":
            continue
        if name in ("checks_dirs", "plugins_dirs", "secrets_dirs"):
            value = tuple(base / Path(v).expanduser() for v in value)
        elif name in ("web_config", "state_file", "blackbox_config"):
            value = base / Path(value).expanduser()
        elif name == "disabled_plugins":
            value = tuple(value)
        elif name == "defaults":
            value = defaults
        elif name in ("status_page", "notifications", "metrics"):
            value = value.settings()
        elif name == "plugins":
            value = {k: to_plain(v) if v is not None else {} for k, v in value.items()}
        elif name == "replicas":  # resolved with the command line's in load_settings
            value = (value.values(), doc.line(("replicas",)))
        values[name] = value
    return values


def _allow_written(interpolator: Interpolator, tree: Mapping[Any, Any], base: Path) -> None:
    """Let ``probed.yaml``'s own ``${file:}`` read under the ``secrets_dirs`` it sets (read as
    written: a list of paths cannot itself come from a reference)."""
    written = _str_list(tree.get("secrets_dirs"))
    if isinstance(written, list) and all(isinstance(d, str) and "$" not in d for d in written):
        interpolator.allow(base / Path(d).expanduser() for d in written)


def load_settings(config_file: Path | None, overrides: Mapping[str, Any]) -> Settings:
    """Read ``probed.yaml`` (optional) into :class:`Settings`; ``overrides`` win.

    Relative ``checks_dirs``/``plugins_dirs`` in the file are relative to the file's directory.

    :param config_file: the file, or ``None`` for built-in defaults.
    :param overrides: values from the command line and ``PROBED_*`` variables, keyed by
        Settings field name and already typed.
    :raises ConfigErrors: every problem in the file, each ``FILE:LINE: field: message`` (and
        in the ``blackbox_config`` module file, when one is set).
    """
    values: dict[str, Any] = {"config_file": config_file}
    if config_file is not None:
        values.update(_settings_values(config_file))
    given, line = values.pop("replicas", ({}, 0))
    given = {**given, **overrides.get("replicas", {})}
    values.update(overrides)
    where = str(config_file) if config_file is not None and line else "probed"
    values["replicas"] = resolve_replicas(given, where, line)
    settings = Settings(**values)
    if settings.blackbox_config is not None:  # /probe's module file: checked with the rest
        from probed.probe_endpoint import load_blackbox_modules

        load_blackbox_modules(settings.blackbox_config)
    return settings
