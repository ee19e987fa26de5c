"""blackbox's ``tcp``, ``dns``, ``icmp`` and ``grpc`` prober options onto probed's check options
of the same type (``http``: :mod:`probed._blackbox_http`); :data:`MAPPERS` by prober name."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from probed._blackbox_http import map_http
from probed._blackbox_read import (
    CREDENTIAL_HEADERS,
    IP_UNSUPPORTED,
    Path_,
    Reader,
    ip_options,
    tls_config,
)

__all__ = ["MAPPERS"]


def _tcp(reader: Reader, block: dict[str, Any], path: Path_, base: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    state: dict[str, Any] = {"tls": False, "tls_config": None}

    def tls(value: Any, where: Path_) -> None:
        state["tls"] = reader.boolean(value, where)

    def tls_block(value: Any, where: Path_) -> None:
        state["tls_config"] = tls_config(reader, value, where, base)

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
            out[key] = text + "\n" if key == "send" else text  # blackbox adds the newline

    reader.walk(
        block,
        path,
        {
            "tls": tls,
            "tls_config": tls_block,
            "query_response": query_response,
            **ip_options(reader, block, path, out, "ip_version"),
        },
        dict(IP_UNSUPPORTED),
    )
    if state["tls"]:
        out["tls"] = state["tls_config"] or {"expiry_warn_days": None}
    elif state["tls_config"] is not None:
        reader.unsupported((*path, "tls_config"), "without tls: true it has no effect")
    return out


def _dns(reader: Reader, block: dict[str, Any], path: Path_, base: Path) -> dict[str, Any]:
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
            **ip_options(reader, block, path, out, "ip_version_unused"),
        },
        {
            **IP_UNSUPPORTED,
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


def _icmp(reader: Reader, block: dict[str, Any], path: Path_, base: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"count": 1}

    def payload(value: Any, where: Path_) -> None:
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            out["payload_size"] = value
        else:
            reader.error(where, f"expected a number of bytes, got {value!r}")

    reader.walk(
        block,
        path,
        {"payload_size": payload, **ip_options(reader, block, path, out, "ip_version")},
        {
            **IP_UNSUPPORTED,
            "dont_fragment": "probed does not set the DF bit",
            "ttl": "probed sends with the system's default TTL",
        },
    )
    return out


def _grpc(reader: Reader, block: dict[str, Any], path: Path_, base: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    state: dict[str, Any] = {"tls": False, "tls_config": None}

    def service(value: Any, where: Path_) -> None:
        out["service"] = reader.string(value, where) or ""

    def tls(value: Any, where: Path_) -> None:
        state["tls"] = reader.boolean(value, where)

    def tls_block(value: Any, where: Path_) -> None:
        state["tls_config"] = tls_config(reader, value, where, base)

    def metadata(value: Any, where: Path_) -> None:
        plain: dict[str, str] = {}
        secret: dict[str, str] = {}
        for name, v in reader.mapping(value, where).items():
            items = v if isinstance(v, list) else [v]
            if len(items) != 1:
                reader.unsupported((*where, name), "probed sends one value per key")
                continue
            target = secret if str(name).lower() in CREDENTIAL_HEADERS else plain
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
            "tls_config": tls_block,
            "metadata": metadata,
            **ip_options(reader, block, path, out, "ip_version"),
        },
        dict(IP_UNSUPPORTED),
    )
    if state["tls"]:
        out["tls"] = state["tls_config"] or {"expiry_warn_days": None}
    elif state["tls_config"] is not None:
        # blackbox too ignores tls_config unless tls is set: say so rather than copy that
        reader.unsupported((*path, "tls_config"), "without tls: true it has no effect")
    return out


MAPPERS: Final = {"http": map_http, "tcp": _tcp, "dns": _dns, "icmp": _icmp, "grpc": _grpc}
