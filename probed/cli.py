"""The command line: ``probed [run]``, ``validate``, ``once``, ``plugins``, ``schema``.

Every option also reads ``PROBED_<OPTION>`` from the environment (sidecars are configured by
environment). Options that take several values (``--checks-dir``) split the variable on ``:``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, TypeVar

import click

from probed import __version__
from probed._loop import LOOP_OPTION, run_loop
from probed.errors import ConfigErrors, PluginError
from probed.plugins import ProbedPluginManager, check_types, describe_plugins, get_plugin_manager
from probed.settings import Settings

__all__ = ["cli", "main"]

F = TypeVar("F", bound=Callable[..., Any])

PLUGINS_DIR_OPTION: Final = click.option(
    "--plugins-dir",
    "plugins_dirs",
    envvar="PROBED_PLUGINS_DIR",
    multiple=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory of one-file plugins (repeatable).",
)

_CONFIG_OPTIONS: list[Callable[[F], F]] = [
    click.option(
        "--config",
        "config_file",
        envvar="PROBED_CONFIG",
        type=click.Path(dir_okay=False, path_type=Path),
        help="probed.yaml to read.",
    ),
    click.option(
        "--checks-dir",
        "checks_dirs",
        envvar="PROBED_CHECKS_DIR",
        multiple=True,
        type=click.Path(file_okay=False, path_type=Path),
        help="Directory of *.yaml check files (repeatable).",
    ),
    PLUGINS_DIR_OPTION,
    click.option(
        "--disable-plugin",
        "disabled_plugins",
        envvar="PROBED_DISABLE_PLUGIN",
        multiple=True,
        help="Plugin name to disable (repeatable; see `probed plugins`).",
    ),
    click.option("--listen", envvar="PROBED_LISTEN", help="HOST:PORT to serve on [0.0.0.0:9333]."),
    click.option(
        "--web-config",
        "web_config",
        envvar="PROBED_WEB_CONFIG",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Web configuration (exporter-toolkit format: TLS, client certs, basic auth).",
    ),
    click.option(
        "--blackbox-config",
        "blackbox_config",
        envvar="PROBED_BLACKBOX_CONFIG",
        type=click.Path(dir_okay=False, path_type=Path),
        help="blackbox_exporter module file served at /probe (docs/blackbox-migration.md).",
    ),
    click.option(
        "--replicas",
        "replicas_count",
        envvar="PROBED_REPLICAS",
        type=click.IntRange(1, 1024),
        help="Replicas splitting the checks (a StatefulSet's N; docs/deployment.md).",
    ),
    click.option(
        "--replica-ordinal",
        "replicas_ordinal",
        envvar="PROBED_REPLICA_ORDINAL",
        type=click.IntRange(0, 1023),
        help="This replica's ordinal [from POD_NAME/HOSTNAME ending in -<ordinal>].",
    ),
    click.option(
        "--replica-redundancy",
        "replicas_redundancy",
        envvar="PROBED_REPLICA_REDUNDANCY",
        type=click.IntRange(1, 1024),
        help="Replicas running each check, with a 'replica' label when above 1 [1].",
    ),
    click.option(
        "--health-listen",
        envvar="PROBED_HEALTH_LISTEN",
        help="HOST:PORT of a second listener serving only /health/* (no TLS, no auth).",
    ),
    click.option(
        "--live-listen",
        envvar="PROBED_LIVE_LISTEN",
        help="HOST:PORT answering /health/live from threads, off the event loop.",
    ),
    click.option(
        "--log-format",
        envvar="PROBED_LOG_FORMAT",
        type=click.Choice(["json", "text"]),
        help="Log line format [json].",
    ),
    click.option("--log-level", envvar="PROBED_LOG_LEVEL", help="Log level [INFO]."),
]


def config_options(fn: F) -> F:
    """Decorate a command with the shared configuration options."""
    for option in reversed(_CONFIG_OPTIONS):
        fn = option(fn)
    return fn


_ADDRESSES = ("listen", "health_listen", "live_listen")


def _overrides(kwargs: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("checks_dirs", "plugins_dirs", "disabled_plugins"):
        if kwargs.get(key):
            out[key] = tuple(kwargs[key])
    for key in (*_ADDRESSES, "web_config", "blackbox_config", "log_format", "log_level"):
        if kwargs.get(key):
            out[key] = kwargs[key]
    replicas = {
        key: kwargs[f"replicas_{key}"]
        for key in ("count", "ordinal", "redundancy")
        if kwargs.get(f"replicas_{key}") is not None
    }
    if replicas:
        out["replicas"] = replicas
    return out


def _fail(message: str, code: int = 1) -> None:
    click.echo(f"probed: {message}", err=True)
    sys.exit(code)


def build(
    kwargs: dict[str, Any], error_code: int = 1
) -> tuple[Settings, ProbedPluginManager, dict[str, Any]]:
    """Settings and plugin manager from command-line/environment options, or exit with errors.

    :param error_code: the exit code for a configuration or plugin error (``once`` and
        ``gate`` exit 3, Nagios UNKNOWN).
    """
    from probed.config import load_settings

    overrides = _overrides(kwargs)
    config_file = kwargs.get("config_file")
    if config_file is None and not overrides.get("checks_dirs"):
        overrides["use_embedded_checks"] = True
    try:
        settings = load_settings(config_file, overrides)
    except ConfigErrors as exc:
        for error in exc.errors:
            click.echo(str(error), err=True)
        sys.exit(error_code)
    for flag, address in (
        ("--listen", settings.listen),
        ("--health-listen", settings.health_listen),
        ("--live-listen", settings.live_listen),
    ):
        _, sep, port = (address or "").rpartition(":")
        if address is not None and not (sep and port.isdigit() and int(port) <= 65535):
            _fail(
                f"{flag} {address!r}: expected HOST:PORT such as 127.0.0.1:9333 or [::1]:9333",
                error_code,
            )
    if settings.web_config is not None:
        from probed.webconfig import load_web_config

        try:
            load_web_config(settings.web_config)
        except ConfigErrors as exc:
            for error in exc.errors:
                click.echo(str(error), err=True)
            sys.exit(error_code)
    if settings.checks_dirs and settings.use_embedded_checks:
        from dataclasses import replace

        settings = replace(settings, use_embedded_checks=False)
    try:
        pm = get_plugin_manager(
            plugins_dirs=settings.plugins_dirs, disabled=settings.disabled_plugins
        )
    except PluginError as exc:
        _fail(str(exc), error_code)
    for warning in pm.warnings:
        click.echo(f"probed: warning: {warning}", err=True)
    return settings, pm, overrides


class _Commands(click.Group):
    """The root group: the built-in commands, and those plugins add with
    ``probed_register_commands``. Plugins are asked only for a name that is not built in (or
    for ``--help``), so every command builds exactly one plugin manager."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        try:
            added = _plugin_commands(ctx).commands
        except PluginError:
            added = {}  # --help still lists the built-in commands
        return sorted({*super().list_commands(ctx), *added})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        builtin = super().get_command(ctx, cmd_name)
        if builtin is not None:
            return builtin
        try:
            return _plugin_commands(ctx).get_command(ctx, cmd_name)
        except PluginError as exc:
            _fail(str(exc))
            raise  # unreachable: _fail exits


def _plugin_commands(ctx: click.Context) -> click.Group:
    """The commands plugins add (one plugin manager per invocation, built on first use)."""
    meta = ctx.find_root().meta
    if "probed.plugin_commands" not in meta:
        dirs = [d for d in meta.get("probed.plugins_dirs", ()) if d.is_dir()]
        added = click.Group()
        get_plugin_manager(plugins_dirs=dirs).hook.probed_register_commands(cli=added)
        meta["probed.plugin_commands"] = added
    group: click.Group = meta["probed.plugin_commands"]
    return group


def _remember_plugins_dirs(ctx: click.Context, _param: click.Parameter, value: Any) -> None:
    ctx.meta["probed.plugins_dirs"] = tuple(value or ())


@click.group(
    cls=_Commands,
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(__version__, prog_name="probed")
@click.option(
    "--plugins-dir",
    "_plugins_dirs",
    envvar="PROBED_PLUGINS_DIR",
    multiple=True,
    expose_value=False,
    is_eager=True,
    callback=_remember_plugins_dirs,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory of one-file plugins whose commands to add (before the command name).",
)
@click.pass_context
def cli(ctx: click.Context) -> None:
    """probed: health checks and synthetic monitoring for Prometheus and Kubernetes.

    With no command, runs the daemon (`probed run`).
    """
    if ctx.invoked_subcommand is None:  # only when called as a library; main() inserts `run`
        ctx.invoke(run)


@cli.command()
@config_options
@LOOP_OPTION
def run(event_loop: str | None, **kwargs: Any) -> None:
    """Run the daemon: schedule checks, serve /metrics, /health/* and the API."""
    from probed.lifecycle import EarlySignals

    early = EarlySignals()
    early.install()  # before anything slow: settings, plugins, checks (see probed.lifecycle)

    from probed.daemon import Daemon
    from probed.logs import configure_logging, flush_logs
    from probed.server import make_app

    settings, pm, overrides = build(kwargs)
    if settings.replicas is not None and settings.replicas.missing is not None:
        _fail(str(settings.replicas.missing).removeprefix("probed: "))
    configure_logging(settings.log_format, settings.log_level, queued=True)

    async def main() -> None:
        daemon = Daemon(settings, pm, overrides=overrides, tune_gc=True)
        await daemon.serve(make_app(daemon), early=early)

    try:
        run_loop(main(), event_loop)
    except OSError as exc:
        flush_logs()
        addresses = (settings.listen, settings.health_listen, settings.live_listen)
        where = " or ".join(a for a in addresses if a)
        _fail(f"cannot listen on {where}: {exc.strerror or exc}", 1)
    except PluginError as exc:
        flush_logs()
        _fail(str(exc))
    except ConfigErrors as exc:  # the web config, changed since build() read it
        flush_logs()
        for error in exc.errors:
            click.echo(str(error), err=True)
        sys.exit(1)
    finally:
        flush_logs()


@cli.command()
@config_options
def validate(**kwargs: Any) -> None:
    """Check the configuration; print every error as FILE:LINE: field: message.

    Exits 0 when valid, 1 otherwise.
    """
    from probed.config import load_checks
    from probed.redact import Redactor

    settings, pm, _ = build(kwargs)
    loaded = load_checks(settings, check_types(pm), extra_files=_embedded(settings))
    redact = Redactor(loaded.secrets)
    for error in loaded.errors:
        click.echo(redact(str(error)), err=True)
    if loaded.errors:
        click.echo(f"{len(loaded.errors)} error(s); {len(loaded.specs)} valid check(s)", err=True)
        sys.exit(1)
    click.echo(f"configuration valid: {len(loaded.specs)} check(s)")


READINESS_ONLY_OPTION: Final = click.option(
    "--readiness-only",
    is_flag=True,
    envvar="PROBED_READINESS_ONLY",
    help="Run only readiness checks (readiness: true, those behind /health/ready).",
)


def _embedded(settings: Settings) -> list[Path]:
    from probed.daemon import embedded_checks_file

    return [embedded_checks_file()] if settings.use_embedded_checks else []


@cli.command()
@config_options
@click.option("--check", "names", multiple=True, help="Check to run (repeatable; default all).")
@READINESS_ONLY_OPTION
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "junit", "nagios"]),
    default="text",
    show_default=True,
    help="Output format (nagios: one plugin status line with perfdata).",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the report to this file instead of standard output.",
)
def once(
    names: tuple[str, ...], readiness_only: bool, fmt: str, output: Path | None, **kwargs: Any
) -> None:
    """Run checks once and exit with the worst status.

    Exit codes follow Nagios: 0 ok, 1 warn, 2 fail, 3 unknown (also for configuration errors
    in the selected checks, a --check name that is not configured, and nothing to run).
    """
    from probed.once import nagios_report, report, run_once

    settings, pm, _ = build(kwargs, error_code=3)
    code, results, errors = run_loop(
        run_once(settings, pm, names, _embedded(settings), readiness_only=readiness_only)
    )
    for error in errors:
        click.echo(error, err=True)
    text = nagios_report(code, results, errors) if fmt == "nagios" else report(results, fmt)
    if output is not None:
        output.write_text(text)
    else:
        click.echo(text, nl=False)
    sys.exit(code)


@cli.command()
@config_options
@click.option("--check", "names", multiple=True, help="Check to watch (repeatable; default all).")
@READINESS_ONLY_OPTION
@click.option(
    "--for", "window", default="5m", show_default=True, help="Length of the watch window."
)
@click.option("--every", default="10s", show_default=True, help="Time between rounds of checks.")
@click.option(
    "--max-failure-ratio",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Largest share of failed runs that still passes the gate.",
)
def gate(
    names: tuple[str, ...],
    readiness_only: bool,
    window: str,
    every: str,
    max_failure_ratio: float,
    **kwargs: Any,
) -> None:
    """Run checks repeatedly for a window; exit 0 if the failure ratio stays low enough.

    Rounds run every --every, the last one when --for has passed, so a passing gate has
    watched the whole window. Exits 2 as soon as the window can no longer pass (so a deploy
    pipeline rolls back early), 3 on configuration problems. Made for blue-green watch
    windows: `probed gate --for 5m --max-failure-ratio 0.01`.
    """
    from probed._durations import parse_duration
    from probed.gate import round_line, run_gate, verdict

    try:
        window_s, every_s = parse_duration(window), parse_duration(every)
    except ValueError as exc:
        _fail(str(exc), 3)
    settings, pm, _ = build(kwargs, error_code=3)
    code, report = run_loop(
        run_gate(
            settings,
            pm,
            names,
            window=window_s,
            every=every_s,
            max_failure_ratio=max_failure_ratio,
            extra_files=_embedded(settings),
            on_round=lambda report, line: click.echo(round_line(report, line)),
            readiness_only=readiness_only,
        )
    )
    for error in report.errors:
        click.echo(error, err=True)
    click.echo(verdict(code, report, max_failure_ratio))
    sys.exit(code)


@cli.command()
@config_options
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)
def plugins(fmt: str, **kwargs: Any) -> None:
    """List every plugin and check type: where it came from and its version.

    Reads plugins as the other commands do (--config's plugins_dirs and disabled_plugins,
    --plugins-dir, --disable-plugin).
    """
    _, pm, _ = build(kwargs)
    click.echo(describe_plugins(pm, fmt), nl=False)


@cli.command()
@config_options
def schema(**kwargs: Any) -> None:
    """Print the JSON Schema of a checks file (for editors and CI linting)."""
    from probed.config import check_file_schema

    _, pm, _ = build(kwargs)
    click.echo(json.dumps(check_file_schema(check_types(pm)), indent=2))


def _value_options() -> set[str]:
    """Every option name, on any command, that takes a value (so its value is skipped)."""
    names: set[str] = set()
    for command in (cli, *cli.commands.values()):
        for param in command.params:
            if isinstance(param, click.Option) and not param.is_flag:
                names.update(param.opts)
    return names


def _default_to_run(argv: list[str]) -> list[str]:
    """``probed`` and ``probed --opt ...`` mean ``probed run ...``; a first argument that is
    not an option names the command (built in, a plugin's, or an unknown one click reports)."""
    takes_value = _value_options()
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in ("-h", "--help", "--version"):
            return argv
        elif arg.startswith("-"):
            skip = "=" not in arg and arg in takes_value
        else:
            return argv
    return ["run", *argv]


def main() -> None:
    """Console-script entry point."""
    cli(args=_default_to_run(sys.argv[1:]), prog_name="probed")
