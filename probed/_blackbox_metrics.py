"""A probe's :class:`~probed.check.Result` written the way blackbox_exporter writes its answer.

:func:`render` gives the Prometheus text of one ``/probe``: ``probe_success``,
``probe_duration_seconds`` and the prober's own series under blackbox's names, each only as far
as probed measures the concept (``docs/blackbox-migration.md`` lists what is and is not there).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Final

from probed._blackbox_modules import Module
from probed.check import Reason, Result, Status

__all__ = ["fnv32a", "render"]

_HELP: Final = {
    "probe_success": "Displays whether or not the probe was a success",
    "probe_duration_seconds": "Returns how long the probe took to complete in seconds",
    "probe_dns_lookup_time_seconds": "Returns the time taken for probe dns lookup in seconds",
    "probe_ip_protocol": "Specifies whether probe ip protocol is IP4 or IP6",
    "probe_ip_addr_hash": "Specifies the hash of IP address. It's useful to detect if the IP "
    "address changes.",
    "probe_failed_due_to_regex": "Indicates if probe failed due to regex",
    "probe_http_duration_seconds": "Duration of http request by phase, summed over all redirects",
    "probe_http_content_length": "Length of http content response",
    "probe_http_uncompressed_body_length": "Length of uncompressed response body",
    "probe_http_redirects": "The number of redirects",
    "probe_http_ssl": "Indicates if SSL was used for the final redirect",
    "probe_http_status_code": "Response HTTP status code",
    "probe_http_version": "Returns the version of HTTP of the probe response",
    "probe_ssl_earliest_cert_expiry": "Returns last SSL chain expiry in unixtime",
    "probe_ssl_last_chain_expiry_timestamp_seconds": "Returns last SSL chain expiry in timestamp",
    "probe_dns_duration_seconds": "Duration of DNS request by phase",
    "probe_dns_answer_rrs": "Returns number of entries in the answer resource record list",
    "probe_dns_authority_rrs": "Returns number of entries in the authority resource record list",
    "probe_dns_additional_rrs": "Returns number of entries in the additional resource record list",
    "probe_dns_query_succeeded": "Displays whether or not the query was executed successfully",
    "probe_icmp_duration_seconds": "Duration of icmp request by phase",
    "probe_grpc_duration_seconds": "Duration of gRPC request by phase",
    "probe_grpc_healthcheck_response": "Response HealthCheck response",
    "probe_grpc_ssl": "Indicates if SSL was used for the connection",
    "probe_grpc_status_code": "Response gRPC status code",
}
_SERVING: Final = ("NOT_SERVING", "SERVICE_UNKNOWN", "SERVING", "UNKNOWN")
_CERT: Final = "probed_tls_cert_expiry_timestamp_seconds"
_CHAIN: Final = "probed_tls_last_chain_expiry_timestamp_seconds"

Series = tuple[str, tuple[tuple[str, str], ...], float]


def fnv32a(data: bytes) -> int:
    """32-bit FNV-1a of ``data`` (blackbox's ``probe_ip_addr_hash`` hashes the address'
    bytes: 4 for IPv4, 16 for IPv6)."""
    value = 0x811C9DC5
    for byte in data:
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return value


def _fmt(value: float) -> str:
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _address(module: Module, target: str) -> list[Series]:
    """``probe_ip_protocol`` and ``probe_ip_addr_hash`` when the target is an IP literal
    (probed's result does not carry the address a name resolved to)."""
    host = target.strip()
    if module.prober == "http":
        host = host.partition("://")[2] or host
        host = host.split("/", 1)[0].rpartition("@")[2]
    if host.startswith("["):
        host = host[1:].partition("]")[0]
    elif module.prober != "icmp" and host.count(":") == 1:
        host = host.rpartition(":")[0]
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return []
    return [
        ("probe_ip_addr_hash", (), float(fnv32a(address.packed))),
        ("probe_ip_protocol", (), float(address.version)),
    ]


def _regex_failed(result: Result) -> bool:
    """A body or header regular expression failed (blackbox's flag: not the other checks)."""
    message = result.message
    return result.reason == Reason.ASSERTION and (
        "match /" in message or "matches forbidden /" in message
    )


def _http(result: Result, module: Module) -> list[Series]:
    values, phases = result.values, result.phases
    redirects = values.get("probed_http_redirects", 0.0)
    status = values.get("probed_http_status_code", 0.0)
    if not module.options.get("follow_redirects", True) and 300 <= status < 400:
        redirects = 1.0  # blackbox counts the redirect it was told not to follow
    size = values.get("probed_http_content_length_bytes", 0.0)
    out: list[Series] = [
        ("probe_dns_lookup_time_seconds", (), phases.get("resolve", 0.0)),
        ("probe_failed_due_to_regex", (), float(_regex_failed(result))),
        ("probe_http_content_length", (), size),
    ]
    out += [
        ("probe_http_duration_seconds", (("phase", p),), phases.get(p, 0.0))
        for p in ("connect", "processing", "resolve", "tls", "transfer")
    ]
    tls = _CERT in values
    out += [
        ("probe_http_redirects", (), redirects),
        ("probe_http_ssl", (), float(tls)),
        ("probe_http_status_code", (), values.get("probed_http_status_code", 0.0)),
        ("probe_http_uncompressed_body_length", (), size),
        ("probe_http_version", (), values.get("probed_http_version", 0.0)),
    ]
    return out + _tls(values)


def _tls(values: Mapping[str, float]) -> list[Series]:
    out: list[Series] = []
    if _CERT in values:
        out.append(("probe_ssl_earliest_cert_expiry", (), values[_CERT]))
    if _CHAIN in values:
        out.append(("probe_ssl_last_chain_expiry_timestamp_seconds", (), values[_CHAIN]))
    return out


def _tcp(result: Result, module: Module) -> list[Series]:
    failed_regex = result.reason == Reason.ASSERTION and "expect" in module.options
    out: list[Series] = [
        ("probe_dns_lookup_time_seconds", (), result.phases.get("resolve", 0.0)),
        ("probe_failed_due_to_regex", (), float(failed_regex)),
    ]
    return out + _tls(result.values)


def _dns(result: Result) -> list[Series]:
    values, phases = result.values, result.phases
    return [
        ("probe_dns_additional_rrs", (), values.get("probed_dns_additional_count", 0.0)),
        ("probe_dns_answer_rrs", (), values.get("probed_dns_answer_count", 0.0)),
        ("probe_dns_authority_rrs", (), values.get("probed_dns_authority_count", 0.0)),
        # probed times the exchange as one: its connect is inside "request"
        ("probe_dns_duration_seconds", (("phase", "connect"),), 0.0),
        ("probe_dns_duration_seconds", (("phase", "request"),), phases.get("lookup", 0.0)),
        ("probe_dns_duration_seconds", (("phase", "resolve"),), phases.get("resolve", 0.0)),
        ("probe_dns_lookup_time_seconds", (), phases.get("resolve", 0.0)),
        ("probe_dns_query_succeeded", (), float("probed_dns_rcode" in values)),
    ]


def _icmp(result: Result) -> list[Series]:
    rtt = next(
        (
            s.value
            for s in result.samples
            if s.name == "probed_icmp_rtt_seconds" and s.labels == ("avg",)
        ),
        0.0,
    )
    resolve = result.phases.get("resolve", 0.0)
    return [
        ("probe_dns_lookup_time_seconds", (), resolve),
        ("probe_icmp_duration_seconds", (("phase", "resolve"),), resolve),
        ("probe_icmp_duration_seconds", (("phase", "rtt"),), rtt),
        # socket setup is not timed apart by probed: counted in the probe's duration
        ("probe_icmp_duration_seconds", (("phase", "setup"),), 0.0),
    ]


def _grpc(result: Result, module: Module) -> list[Series]:
    values, phases = result.values, result.phases
    answered = {
        s.labels[0]: s.value for s in result.samples if s.name == "probed_grpc_healthcheck_response"
    }
    tls = "tls" in module.options
    out: list[Series] = [
        ("probe_dns_lookup_time_seconds", (), phases.get("resolve", 0.0)),
        ("probe_grpc_duration_seconds", (("phase", "check"),), phases.get("rpc", 0.0)),
        ("probe_grpc_duration_seconds", (("phase", "resolve"),), phases.get("resolve", 0.0)),
    ]
    out += [
        ("probe_grpc_healthcheck_response", (("serving_status", s),), answered.get(s, 0.0))
        for s in _SERVING
    ]
    out += [
        ("probe_grpc_ssl", (), float(tls and _CERT in values)),
        ("probe_grpc_status_code", (), values.get("probed_grpc_status_code", 14.0)),
        ("probe_ssl_earliest_cert_expiry", (), float(values.get(_CERT, 0.0))),
    ]
    return out


def series(module: Module, target: str, result: Result, duration: float) -> list[Series]:
    """Every series of one probe, sorted by name like blackbox's answer."""
    out: list[Series] = [
        ("probe_duration_seconds", (), duration),
        ("probe_success", (), float(result.status in (Status.OK, Status.WARN))),
    ]
    prober = module.prober
    if prober == "http":
        out += _http(result, module)
    elif prober == "tcp":
        out += _tcp(result, module)
    elif prober == "dns":
        out += _dns(result)
    elif prober == "icmp":
        out += _icmp(result)
    else:
        out += _grpc(result, module)
    if result.reason not in (Reason.DNS,):
        out += _address(module, target)
    return sorted(out, key=lambda s: (s[0], s[1]))


def render(rows: Iterable[Series]) -> str:
    """Prometheus text (0.0.4) of ``rows``, one HELP/TYPE per name."""
    lines: list[str] = []
    seen: set[str] = set()
    for name, labels, value in rows:
        if name not in seen:
            seen.add(name)
            lines.append(f"# HELP {name} {_HELP.get(name, name)}")
            lines.append(f"# TYPE {name} gauge")
        label_text = ",".join(f'{k}="{v}"' for k, v in labels)
        lines.append(f"{name}{{{label_text}}} {_fmt(value)}" if labels else f"{name} {_fmt(value)}")
    return "\n".join(lines) + "\n"
