"""A blackbox_exporter module file (``blackbox.yml``) read into probed check options.

:func:`load_modules` reads the file and maps every module's ``http``, ``tcp``, ``dns``, ``icmp``
and ``grpc`` prober options onto the options of probed's check type of the same name, and
reports every problem as a :class:`~probed.errors.ConfigError` (``FILE:LINE: field: message``):
a YAML error, an unknown prober, a malformed value and every blackbox option probed does not
support (named, never ignored). A :class:`Module` keeps the mapped options without the target;
:meth:`Module.options_for` adds the target (400 for a form the module does not allow) and
:meth:`Module.secrets` lists what the debug output must mask.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from probed._blackbox_probers import MAPPERS
from probed._blackbox_read import Path_, Reader
from probed._yaml import load_yaml
from probed.errors import ConfigError, ConfigErrors

__all__ = ["Module", "TargetError", "load_modules", "parse_duration"]

PROBERS: Final = ("http", "tcp", "dns", "icmp", "grpc")
_DURATION_RE: Final = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNITS: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


class TargetError(ValueError):
    """A target the module cannot probe (answered 400, nothing is probed)."""


def parse_duration(text: Any) -> float:
    """Seconds from a Prometheus duration (``5s``, ``1m30s``, ``500ms``).

    :raises ValueError: anything else.
    """
    value = str(text).strip()
    pos, total = 0, 0.0
    for match in _DURATION_RE.finditer(value):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if not value or pos != len(value):
        raise ValueError(f"invalid duration {text!r}: use a Prometheus duration like 5s or 500ms")
    return total


@dataclass(frozen=True, slots=True)
class Module:
    """One module: its prober, timeout (seconds, 0: none set) and probed options sans target."""

    name: str
    prober: str
    timeout: float
    options: Mapping[str, Any]
    secret_values: tuple[str, ...] = ()
    ip_version: str = "any"
    extras: Mapping[str, Any] = field(default_factory=dict)

    def options_for(self, target: str) -> dict[str, Any]:
        """The check options for ``target``.

        :raises TargetError: the target's form is not one this module's prober takes.
        """
        target = target.strip()
        if not target:
            raise TargetError("the target parameter is empty")
        if any(c.isspace() for c in target):
            raise TargetError(f"target {target!r} contains white space")
        options = dict(self.options)
        if self.prober == "http":
            scheme, sep, _ = target.partition("://")
            if not sep:
                target = "http://" + target
            elif scheme.lower() not in ("http", "https"):
                raise TargetError(
                    f"module {self.name!r} (prober http) takes http:// or https:// URLs or "
                    f"host:port, not a {scheme}:// target"
                )
            options["url"] = target
            return options
        if "://" in target or "/" in target:
            raise TargetError(
                f"module {self.name!r} (prober {self.prober}) takes "
                + ("a host name or IP address" if self.prober == "icmp" else "host:port")
                + f", not {target!r}"
            )
        if self.prober == "icmp":
            host = target[1:-1] if target.startswith("[") and target.endswith("]") else target
            options["host"] = host
            return options
        host, port = _split_host_port(target, self.name, self.prober)
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        if self.prober == "dns":
            options["server"] = where
        else:
            options["address"] = where
        return options

    def secrets(self) -> tuple[str, ...]:
        """Secret values of the module (passwords, tokens, credential headers)."""
        return self.secret_values


def _split_host_port(target: str, module: str, prober: str) -> tuple[str, int]:
    if target.startswith("["):
        host, _, rest = target[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif target.count(":") == 1:
        host, _, port_text = target.partition(":")
    else:  # no port, or a bare IPv6 address without brackets
        host, port_text = target, ""
    if prober == "dns" and not port_text:
        port_text = "53"
        host = host or target.strip("[]")
    if not host or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise TargetError(
            f"module {module!r} (prober {prober}) takes host:port (or [IPv6]:port), not {target!r}"
        )
    return host, int(port_text)


def ip_literal_version(host: str) -> int | None:
    """4 or 6 for an IP address literal, else None."""
    try:
        return ipaddress.ip_address(host.strip("[]")).version
    except ValueError:
        return None


def _module(reader: Reader, name: str, block: Any, base: Path) -> Module | None:
    path: Path_ = ("modules", name)
    before = len(reader.errors)
    body = reader.mapping(block, path)
    prober = body.get("prober")
    if prober is None:
        reader.error(path, "a module needs prober (http, tcp, dns, icmp or grpc)")
        return None
    if prober not in PROBERS:
        reader.error(
            (*path, "prober"),
            f"prober {prober!r} is not supported by probed's /probe; "
            f"supported: {', '.join(PROBERS)}",
        )
        return None
    timeout = 0.0
    if "timeout" in body:
        try:
            timeout = parse_duration(body["timeout"])
        except ValueError as exc:
            reader.error((*path, "timeout"), str(exc))
    for key in body:
        if key in ("prober", "timeout", prober):
            continue
        if key in PROBERS:
            reader.error((*path, key), f"options for prober {key} in a {prober} module")
        else:
            reader.error((*path, key), f"unknown module option {key!r}")
    start = len(reader.secrets)
    options = MAPPERS[prober](
        reader, reader.mapping(body.get(prober), (*path, prober)), (*path, prober), base
    )
    if len(reader.errors) > before:
        return None
    return Module(
        name=str(name),
        prober=str(prober),
        timeout=timeout,
        options=options,
        secret_values=tuple(s for s in reader.secrets[start:] if s),
    )


def load_modules(path: Path, validate: Callable[[Module, Path_], str | None]) -> dict[str, Module]:
    """Every module of the blackbox module file at ``path``.

    :param validate: checks a module's mapped options with probed's models (``None`` when
        they hold, else the problem), so a bad value is reported at load, not at probe time.
    :raises ConfigErrors: every problem found, each naming file, line and field.
    """
    source = str(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigErrors(
            [ConfigError(source, 0, "", f"cannot read: {exc.strerror or exc}")]
        ) from None
    try:
        tree = load_yaml(text, source)
    except ConfigError as exc:  # a syntax error, or a document over the size limits
        raise ConfigErrors([exc]) from None
    reader = Reader(source, tree)
    modules: dict[str, Module] = {}
    if not isinstance(tree, dict) or not isinstance(tree.get("modules"), dict):
        reader.error((), "expected a mapping with modules: (a blackbox_exporter module file)")
    else:
        for key in tree:
            if key != "modules":
                reader.error((key,), f"unknown top-level key {key!r} (expected modules)")
        for name, block in tree["modules"].items():
            module = _module(reader, str(name), block, path.parent)
            if module is None:
                continue
            problem = validate(module, ("modules", name, module.prober))
            if problem is not None:
                reader.error(("modules", name, module.prober), problem)
                continue
            modules[str(name)] = module
    if reader.errors:
        raise ConfigErrors(sorted(reader.errors, key=lambda e: e.line))
    return modules
