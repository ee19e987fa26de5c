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

from probed._yaml import format_path, line_at, load_yaml
from probed.errors import ConfigError, ConfigErrors

__all__ = ["Module", "TargetError", "load_modules", "parse_duration"]

PROBERS: Final = ("http", "tcp", "dns", "icmp", "grpc")
_DURATION_RE: Final = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNITS: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_CREDENTIAL_HEADERS: Final = frozenset({"authorization", "proxy-authorization", "cookie"})

Path_ = tuple[Any, ...]


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
    else:
        host, _, port_text = target.rpartition(":")
        if ":" in host:  # a bare IPv6 address without brackets
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


# -- reading the file ----------------------------------------------------------------------------


class _Reader:
    """Walks one module's mapping, collecting errors with the file's line numbers."""

    def __init__(self, source: str, tree: Any) -> None:
        self.source = source
        self.tree = tree
        self.errors: list[ConfigError] = []
        self.secrets: list[str] = []

    def error(self, path: Path_, message: str) -> None:
        self.errors.append(
            ConfigError(self.source, line_at(self.tree, path), format_path(path), message)
        )

    def unsupported(self, path: Path_, why: str = "") -> None:
        self.error(
            path,
            "blackbox option not supported by probed's /probe"
            + (f": {why}" if why else "")
            + " (remove it, or run this module with blackbox_exporter; see "
            "docs/blackbox-migration.md)",
        )

    def mapping(self, value: Any, path: Path_) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.error(path, f"expected a mapping, got {type(value).__name__}")
            return {}
        return value

    def string(self, value: Any, path: Path_) -> str | None:
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            return str(value)
        self.error(path, f"expected a string, got {type(value).__name__}")
        return None

    def boolean(self, value: Any, path: Path_) -> bool | None:
        if isinstance(value, bool):
            return value
        self.error(path, f"expected true or false, got {value!r}")
        return None

    def string_list(self, value: Any, path: Path_) -> list[str] | None:
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return list(value)
        self.error(path, "expected a list of strings")
        return None

    def secret_file(self, value: Any, path: Path_, base: Path) -> str | None:
        name = self.string(value, path)
        if name is None:
            return None
        file = base / name
        try:
            text = file.read_text().strip()
        except OSError as exc:
            self.error(path, f"cannot read {file}: {exc.strerror or exc}")
            return None
        self.secrets.append(text)
        return text

    def walk(
        self,
        block: dict[str, Any],
        path: Path_,
        handlers: Mapping[str, Callable[[Any, Path_], None]],
        unsupported: Mapping[str, str],
    ) -> None:
        for key, value in block.items():
            where = (*path, key)
            if key in handlers:
                handlers[key](value, where)
            elif key in unsupported:
                self.unsupported(where, unsupported[key])
            else:
                self.error(where, f"unknown {path[-1]} option {key!r} (not a blackbox option)")


_IP_UNSUPPORTED: Final = {"source_ip_address": "probed picks the source address by routing"}


def _ip_options(
    reader: _Reader, block: dict[str, Any], path: Path_, out: dict[str, Any], family_key: str
) -> dict[str, Callable[[Any, Path_], None]]:
    """Handlers for ``preferred_ip_protocol`` and ``ip_protocol_fallback``."""
    state: dict[str, Any] = {"preferred": None, "fallback": True}

    def preferred(value: Any, where: Path_) -> None:
        text = reader.string(value, where)
        if text is not None and text not in ("ip4", "ip6"):
            reader.error(where, f"expected ip4 or ip6, got {text!r}")
            return
        state["preferred"] = text
        _apply()

    def fallback(value: Any, where: Path_) -> None:
        flag = reader.boolean(value, where)
        if flag is not None:
            state["fallback"] = flag
            _apply()

    def _apply() -> None:
        if family_key == "preferred_ip_protocol":  # http: probed has blackbox's own options
            # blackbox prefers ip6 when a module gives only ip_protocol_fallback (probed's
            # http refuses ip_protocol_fallback without preferred_ip_protocol)
            out["preferred_ip_protocol"] = state["preferred"] or "ip6"
            out["ip_protocol_fallback"] = state["fallback"]
            return
        # other probers: without fallback the preferred family is the only one; with it
        # probed tries every address the name has (see docs/blackbox-migration.md)
        out[family_key] = (
            state["preferred"] if state["preferred"] and not state["fallback"] else "any"
        )

    return {"preferred_ip_protocol": preferred, "ip_protocol_fallback": fallback}


_TLS_VERSIONS: Final = {"TLS10": "1.0", "TLS11": "1.1", "TLS12": "1.2", "TLS13": "1.3"}


def _tls_config(reader: _Reader, value: Any, path: Path_, base: Path) -> dict[str, Any]:
    block = reader.mapping(value, path)
    tls: dict[str, Any] = {}

    def files(name: str) -> Callable[[Any, Path_], None]:
        def handle(v: Any, where: Path_) -> None:
            text = reader.string(v, where)
            if text is not None:
                tls[name] = str(base / text)

        return handle

    def skip_verify(v: Any, where: Path_) -> None:
        flag = reader.boolean(v, where)
        if flag is not None:
            tls["verify"] = not flag

    def server_name(v: Any, where: Path_) -> None:
        tls["server_name"] = reader.string(v, where)

    def min_version(v: Any, where: Path_) -> None:
        text = reader.string(v, where)
        if text is not None and text not in _TLS_VERSIONS:
            reader.error(where, f"expected one of {', '.join(_TLS_VERSIONS)}, got {text!r}")
        elif text is not None:
            tls["min_version"] = _TLS_VERSIONS[text]

    reader.walk(
        block,
        path,
        {
            "insecure_skip_verify": skip_verify,
            "ca_file": files("ca_file"),
            "cert_file": files("cert_file"),
            "key_file": files("key_file"),
            "server_name": server_name,
            "min_version": min_version,
        },
        {
            "max_version": "probed offers every version from min_version up",
            "ca": "inline PEM: put it in a file and use ca_file",
            "cert": "inline PEM: put it in a file and use cert_file",
            "key": "inline PEM: put it in a file and use key_file",
            "key_file_secret": "",
            "ca_ref": "",
            "cert_ref": "",
            "key_ref": "",
        },
    )
    # blackbox does not judge expiry: a probe passes until the certificate has expired
    tls.setdefault("expiry_warn_days", None)
    return tls


def _http(reader: _Reader, block: dict[str, Any], path: Path_, base: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"valid_status_codes": ["2xx"], "follow_redirects": True}
    headers: dict[str, str] = {}
    secret_headers: dict[str, str] = {}
    basic: dict[str, Any] = {}

    def status_codes(value: Any, where: Path_) -> None:
        if isinstance(value, list) and all(isinstance(v, int) for v in value):
            if value:
                out["valid_status_codes"] = list(value)
        else:
            reader.error(where, "expected a list of status codes (integers)")

    def versions(value: Any, where: Path_) -> None:
        items = reader.string_list(value, where)
        if items:
            out["valid_http_versions"] = items

    def method(value: Any, where: Path_) -> None:
        out["method"] = reader.string(value, where)

    def header_map(value: Any, where: Path_) -> None:
        for name, text in reader.mapping(value, where).items():
            if not isinstance(text, str):
                reader.error((*where, name), "expected a string")
            elif str(name).lower() in _CREDENTIAL_HEADERS:
                secret_headers[str(name)] = text
                reader.secrets.append(text)
            else:
                headers[str(name)] = text

    def body(value: Any, where: Path_) -> None:
        out["body"] = reader.string(value, where)

    def no_follow(value: Any, where: Path_) -> None:
        flag = reader.boolean(value, where)
        if flag is not None:
            out["follow_redirects"] = not flag

    def follow(value: Any, where: Path_) -> None:
        flag = reader.boolean(value, where)
        if flag is not None:
            out["follow_redirects"] = flag

    def flag(name: str) -> Callable[[Any, Path_], None]:
        def handle(value: Any, where: Path_) -> None:
            checked = reader.boolean(value, where)
            if checked is not None:
                out[name] = checked

        return handle

    def regexes(name: str) -> Callable[[Any, Path_], None]:
        def handle(value: Any, where: Path_) -> None:
            items = reader.string_list(value, where)
            if items is not None:
                out[name] = items

        return handle

    def header_matches(name: str) -> Callable[[Any, Path_], None]:
        def handle(value: Any, where: Path_) -> None:
            if not isinstance(value, list):
                reader.error(where, "expected a list of {header, regexp, allow_missing}")
                return
            items = []
            for i, item in enumerate(value):
                block_ = reader.mapping(item, (*where, i))
                unknown = set(block_) - {"header", "regexp", "allow_missing"}
                for key in sorted(unknown):
                    reader.error((*where, i, key), f"unknown option {key!r}")
                items.append(dict(block_))
            out[name] = items

        return handle

    def tls_config(value: Any, where: Path_) -> None:
        out["tls"] = _tls_config(reader, value, where, base)

    def basic_auth(value: Any, where: Path_) -> None:
        block_ = reader.mapping(value, where)
        for key, v in block_.items():
            if key == "username":
                basic["username"] = reader.string(v, (*where, key))
            elif key == "password":
                text = reader.string(v, (*where, key))
                if text is not None:
                    basic["password"] = text
                    reader.secrets.append(text)
            elif key == "password_file":
                basic["password"] = reader.secret_file(v, (*where, key), base)
            else:
                reader.error((*where, key), f"unknown basic_auth option {key!r}")

    def bearer(value: Any, where: Path_) -> None:
        text = reader.string(value, where)
        if text is not None:
            out["bearer_token"] = text
            reader.secrets.append(text)

    def bearer_file(value: Any, where: Path_) -> None:
        out["bearer_token"] = reader.secret_file(value, where, base)

    def oauth2(value: Any, where: Path_) -> None:
        block_ = reader.mapping(value, where)
        oauth: dict[str, Any] = {}
        for key, v in block_.items():
            at = (*where, key)
            if key in ("client_id", "token_url"):
                oauth[key] = reader.string(v, at)
            elif key == "client_secret":
                oauth[key] = reader.string(v, at)
                if oauth[key]:
                    reader.secrets.append(oauth[key])
            elif key == "client_secret_file":
                oauth["client_secret"] = reader.secret_file(v, at, base)
            elif key == "scopes":
                oauth[key] = reader.string_list(v, at)
            elif key == "endpoint_params":
                oauth[key] = {str(k): str(x) for k, x in reader.mapping(v, at).items()}
            elif key in ("tls_config", "proxy_url", "no_proxy", "proxy_from_environment"):
                reader.unsupported(at, "the token endpoint is reached like the target")
            else:
                reader.error(at, f"unknown oauth2 option {key!r}")
        out["oauth2"] = oauth

    def proxy_url(value: Any, where: Path_) -> None:
        text = reader.string(value, where)
        if text is not None:
            out["proxy_url"] = text
            if "@" in text:
                reader.secrets.append(text)

    def no_proxy(value: Any, where: Path_) -> None:
        out["no_proxy"] = reader.string(value, where)

    def proxy_connect_header(value: Any, where: Path_) -> None:
        block_ = reader.mapping(value, where)
        for v in block_.values():
            for item in v if isinstance(v, list) else [v]:
                reader.secrets.append(str(item))
        out["proxy_connect_header"] = dict(block_)

    def compression(value: Any, where: Path_) -> None:
        text = reader.string(value, where)
        if text:
            out["compression"] = text

    def body_limit(value: Any, where: Path_) -> None:
        if isinstance(value, int) and not isinstance(value, bool):
            if value > 0:
                out["max_body_size"] = value
        elif isinstance(value, str):
            out["max_body_size"] = value
        else:
            reader.error(where, f"expected a size, got {value!r}")

    handlers: dict[str, Callable[[Any, Path_], None]] = {
        "valid_status_codes": status_codes,
        "valid_http_versions": versions,
        "method": method,
        "headers": header_map,
        "body": body,
        "no_follow_redirects": no_follow,
        "follow_redirects": follow,
        "fail_if_ssl": flag("fail_if_ssl"),
        "fail_if_not_ssl": flag("fail_if_not_ssl"),
        "fail_if_body_matches_regexp": regexes("body_must_not_match"),
        "fail_if_body_not_matches_regexp": regexes("body_must_match"),
        "fail_if_header_matches": header_matches("fail_if_header_matches"),
        "fail_if_header_not_matches": header_matches("fail_if_header_not_matches"),
        "tls_config": tls_config,
        "basic_auth": basic_auth,
        "bearer_token": bearer,
        "bearer_token_file": bearer_file,
        "oauth2": oauth2,
        "proxy_url": proxy_url,
        "no_proxy": no_proxy,
        "proxy_from_environment": flag("proxy_from_environment"),
        "proxy_connect_header": proxy_connect_header,
        "enable_http2": flag("enable_http2"),
        "compression": compression,
        "body_size_limit": body_limit,
        **_ip_options(reader, block, path, out, "preferred_ip_protocol"),
    }
    reader.walk(
        block,
        path,
        handlers,
        {
            **_IP_UNSUPPORTED,
            "skip_resolve_phase_with_proxy": "",
            "enable_http1": "probed always speaks HTTP/1.1 (HTTP/2 with enable_http2)",
            "http_headers": "use headers",
            "authorization": "use bearer_token or basic_auth",
            "follow_redirect": "",
        },
    )
    if headers:
        out["headers"] = headers
    if secret_headers:
        out["secret_headers"] = secret_headers
    if basic:
        basic.setdefault("password", "")
        out["basic_auth"] = basic
    if "tls" not in out:
        out["tls"] = {"expiry_warn_days": None}
    return out


def _tcp(reader: _Reader, block: dict[str, Any], path: Path_, base: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    state: dict[str, Any] = {"tls": False, "tls_config": None}

    def tls(value: Any, where: Path_) -> None:
        state["tls"] = reader.boolean(value, where)

    def tls_config(value: Any, where: Path_) -> None:
        state["tls_config"] = _tls_config(reader, value, where, base)

    def query_response(value: Any, where: Path_) -> None:
        if not isinstance(value, list):
            reader.error(where, "expected a list of {expect, send} steps")
            return
        steps: list[tuple[str, str, Path_]] = []
        for i, item in enumerate(value):
            step = reader.mapping(item, (*where, i))
            # blackbox runs a step's expect before its send
            for key in ("expect", "send", "starttls", "expect_bytes"):
                if key not in step:
                    continue
                if key in ("starttls", "expect_bytes"):
                    reader.unsupported((*where, i, key))
                    continue
                text = reader.string(step[key], (*where, i, key))
                if text is not None:
                    steps.append((key, text, (*where, i, key)))
            for key in sorted(set(step) - {"expect", "send", "starttls", "expect_bytes"}):
                reader.error((*where, i, key), f"unknown query_response option {key!r}")
        kinds = [k for k, _, _ in steps]
        if kinds not in ([], ["expect"], ["send"], ["send", "expect"]):
            reader.unsupported(
                where,
                "probed's tcp check sends once and then expects once; this sequence "
                f"({' then '.join(kinds)}) does not map",
            )
            return
        for key, text, _ in steps:
            out[key] = text.replace("\\n", "\n") if key == "send" else text

    reader.walk(
        block,
        path,
        {
            "tls": tls,
            "tls_config": tls_config,
            "query_response": query_response,
            **_ip_options(reader, block, path, out, "ip_version"),
        },
        dict(_IP_UNSUPPORTED),
    )
    if state["tls"]:
        out["tls"] = state["tls_config"] or {"expiry_warn_days": None}
    elif state["tls_config"] is not None:
        reader.unsupported((*path, "tls_config"), "without tls: true it has no effect")
    return out


_VALIDATE_RRS: Final = ("validate_answer_rrs", "validate_authority_rrs", "validate_additional_rrs")


def _dns(reader: _Reader, block: dict[str, Any], path: Path_, base: Path) -> dict[str, Any]:
    # blackbox passes a NOERROR answer without records: probed's default asks for one
    out: dict[str, Any] = {"min_answers": 0, "fallback_tcp": False}

    def text(name: str) -> Callable[[Any, Path_], None]:
        def handle(value: Any, where: Path_) -> None:
            out[name] = reader.string(value, where)

        return handle

    def transport(value: Any, where: Path_) -> None:
        value = reader.string(value, where)
        if value not in ("udp", "tcp"):
            reader.error(where, f"expected udp or tcp, got {value!r}")
        else:
            out["transport"] = value

    def rcodes(value: Any, where: Path_) -> None:
        items = reader.string_list(value, where)
        if items:
            out["valid_rcodes"] = items

    def recursion(value: Any, where: Path_) -> None:
        out["recursion_desired"] = reader.boolean(value, where)

    def query_class(value: Any, where: Path_) -> None:
        if str(value).upper() != "IN":
            reader.unsupported(where, "probed queries class IN only")

    def answers(value: Any, where: Path_) -> None:
        block_ = reader.mapping(value, where)
        for key, v in block_.items():
            at = (*where, key)
            if key == "fail_if_not_matches_regexp":
                items = reader.string_list(v, at)
                if items and len(items) == 1:
                    out["answer_regex"] = items[0]
                elif items:
                    reader.unsupported(at, "probed takes one regular expression here")
            elif key in (
                "fail_if_matches_regexp",
                "fail_if_all_match_regexp",
                "fail_if_none_matches_regexp",
            ):
                reader.unsupported(at)
            else:
                reader.error(at, f"unknown validate_answer_rrs option {key!r}")

    def other_rrs(value: Any, where: Path_) -> None:
        if reader.mapping(value, where):
            reader.unsupported(where, "probed checks the answer section only")

    reader.walk(
        block,
        path,
        {
            "query_name": text("query_name"),
            "query_type": text("query_type"),
            "query_class": query_class,
            "transport_protocol": transport,
            "valid_rcodes": rcodes,
            "recursion_desired": recursion,
            "validate_answer_rrs": answers,
            "validate_authority_rrs": other_rrs,
            "validate_additional_rrs": other_rrs,
            **_ip_options(reader, block, path, out, "ip_version_unused"),
        },
        {
            **_IP_UNSUPPORTED,
            "dns_over_tls": "probed queries over UDP or TCP",
            "tls_config": "probed queries over UDP or TCP",
        },
    )
    if out.get("transport") == "tcp":
        del out["fallback_tcp"]
    family = out.pop("ip_version_unused", "any")
    if family != "any":
        reader.unsupported(
            (*path, "ip_protocol_fallback"), "the dns check reaches the server as given"
        )
    if not out.get("query_name"):
        reader.error((*path, "query_name"), "a dns module needs query_name")
    return out


def _icmp(reader: _Reader, block: dict[str, Any], path: Path_, base: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"count": 1}

    def payload(value: Any, where: Path_) -> None:
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            out["payload_size"] = value
        else:
            reader.error(where, f"expected a number of bytes, got {value!r}")

    reader.walk(
        block,
        path,
        {"payload_size": payload, **_ip_options(reader, block, path, out, "ip_version")},
        {
            **_IP_UNSUPPORTED,
            "dont_fragment": "probed does not set the DF bit",
            "ttl": "probed sends with the system's default TTL",
        },
    )
    return out


def _grpc(reader: _Reader, block: dict[str, Any], path: Path_, base: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    state: dict[str, Any] = {"tls": False, "tls_config": None}

    def service(value: Any, where: Path_) -> None:
        out["service"] = reader.string(value, where) or ""

    def tls(value: Any, where: Path_) -> None:
        state["tls"] = reader.boolean(value, where)

    def tls_config(value: Any, where: Path_) -> None:
        state["tls_config"] = _tls_config(reader, value, where, base)

    def metadata(value: Any, where: Path_) -> None:
        plain: dict[str, str] = {}
        secret: dict[str, str] = {}
        for name, v in reader.mapping(value, where).items():
            items = v if isinstance(v, list) else [v]
            if len(items) != 1:
                reader.unsupported((*where, name), "probed sends one value per key")
                continue
            target = secret if str(name).lower() in _CREDENTIAL_HEADERS else plain
            target[str(name).lower()] = str(items[0])
        if secret:
            reader.secrets.extend(secret.values())
            out["secret_metadata"] = secret
        if plain:
            out["metadata"] = plain

    reader.walk(
        block,
        path,
        {
            "service": service,
            "tls": tls,
            "tls_config": tls_config,
            "metadata": metadata,
            **_ip_options(reader, block, path, out, "ip_version"),
        },
        dict(_IP_UNSUPPORTED),
    )
    if state["tls"]:
        out["tls"] = state["tls_config"] or {"expiry_warn_days": None}
    elif state["tls_config"] is not None:
        # blackbox too ignores tls_config unless tls is set: say so rather than copy that
        reader.unsupported((*path, "tls_config"), "without tls: true it has no effect")
    return out


_MAPPERS: Final = {"http": _http, "tcp": _tcp, "dns": _dns, "icmp": _icmp, "grpc": _grpc}


def _module(reader: _Reader, name: str, block: Any, base: Path) -> Module | None:
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
    options = _MAPPERS[prober](
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
    reader = _Reader(source, tree)
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
