"""blackbox's ``http`` prober options onto probed's ``http`` check options (every option
probed has under blackbox's name is mapped; the others are errors naming them)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from probed._blackbox_read import (
    CREDENTIAL_HEADERS,
    IP_UNSUPPORTED,
    Path_,
    Reader,
    ip_options,
    tls_config,
)

__all__ = ["map_http"]


def map_http(reader: Reader, block: dict[str, Any], path: Path_, base: Path) -> dict[str, Any]:
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
            elif str(name).lower() in CREDENTIAL_HEADERS:
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

    def tls(value: Any, where: Path_) -> None:
        out["tls"] = tls_config(reader, value, where, base)

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
        "tls_config": tls,
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
        **ip_options(reader, block, path, out, "preferred_ip_protocol"),
    }
    reader.walk(
        block,
        path,
        handlers,
        {
            **IP_UNSUPPORTED,
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
