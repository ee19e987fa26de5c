"""Reading a blackbox module file's prober blocks: :class:`Reader` (errors with the file's
lines, secrets kept aside), and the options several probers share (``tls_config``,
``preferred_ip_protocol``/``ip_protocol_fallback``). Used by :mod:`probed._blackbox_http` and
:mod:`probed._blackbox_probers`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

from probed._yaml import format_path, line_at
from probed.errors import ConfigError

__all__ = ["CREDENTIAL_HEADERS", "IP_UNSUPPORTED", "Path_", "Reader", "ip_options", "tls_config"]

CREDENTIAL_HEADERS: Final = frozenset({"authorization", "proxy-authorization", "cookie"})

Path_ = tuple[Any, ...]


class Reader:
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


IP_UNSUPPORTED: Final = {"source_ip_address": "probed picks the source address by routing"}


def ip_options(
    reader: Reader, block: dict[str, Any], path: Path_, out: dict[str, Any], family_key: str
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


TLS_VERSIONS: Final = {"TLS10": "1.0", "TLS11": "1.1", "TLS12": "1.2", "TLS13": "1.3"}


def tls_config(reader: Reader, value: Any, path: Path_, base: Path) -> dict[str, Any]:
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
        if text is not None and text not in TLS_VERSIONS:
            reader.error(where, f"expected one of {', '.join(TLS_VERSIONS)}, got {text!r}")
        elif text is not None:
            tls["min_version"] = TLS_VERSIONS[text]

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
