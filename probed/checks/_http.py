"""What the ``http`` and ``json_api`` check types share: options, request building, judging.

Check types do not import each other: :class:`HttpProbe` lives here and each type subclasses
it (``checks/http.py`` for ``type: http``, ``checks/json_api.py`` for ``type: json_api``). The
request itself is sent by :mod:`probed.checks._httpclient`.
"""

from __future__ import annotations

import asyncio
import base64
import re
import time
from typing import Any, ClassVar, Final

from pydantic import Field, SecretStr, field_validator, model_validator

from probed.check import Check, CheckOptions, MetricDef, Reason, Result, Status
from probed.checks._http2 import Http2Options, version_problem
from probed.checks._http_address import AddressSelection
from probed.checks._http_assert import (
    AssertionOptions,
    ResponseAssertions,
    response_assertions,
)
from probed.checks._http_decode import CompressionOptions
from probed.checks._http_oauth2 import OAuth2Options, TokenSource
from probed.checks._http_shared import parse_status_codes, shared_client, status_ranges
from probed.checks._httpclient import (
    BodyTooLargeError,
    ClientConfig,
    HttpRequest,
    HttpResponse,
    ProbeError,
    Url,
    fetch,
)
from probed.checks._httpparse import DEFAULT_MAX_HEAD
from probed.checks._httpproxy import ProxyOptions, proxy_config
from probed.checks._net import address_policy
from probed.checks._tls import (
    CERT_EXPIRY_METRIC,
    TlsOptions,
    build_context,
    default_context,
    expiry_verdict,
)
from probed.checks._tlschain import (
    LAST_CHAIN_METRIC,
    LEAF_EXPIRY_METRIC,
    chain_values,
    earliest_name,
)
from probed.options import Size
from probed.redact import CREDENTIAL_HEADERS

__all__ = [
    "HTTP_METRICS",
    "BasicAuth",
    "HttpOptions",
    "HttpProbe",
    "build_request",
    "parse_status_codes",
]

_TOKEN_RE: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")

# offered by ALPN with enable_http2 (as probed.checks._http2.alpn_context does)
_H2_ALPN: Final = ("h2", "http/1.1")


def _compile(pattern: str, field: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"{field}: invalid regular expression {pattern!r}: {exc}") from None


class BasicAuth(CheckOptions):
    """HTTP basic authentication; the password is a secret (use ``${ENV}``/``${file:...}``)."""

    username: str
    password: SecretStr

    def secrets(self) -> set[str]:
        """The password and ``username:password``, the form a ``Basic`` header encodes (so a
        target echoing the header, base64 or decoded, is masked whole)."""
        password = self.password.get_secret_value()
        return {password, f"{self.username}:{password}"} if password else set()


class HttpOptions(
    ProxyOptions,
    Http2Options,
    CompressionOptions,
    OAuth2Options,
    AssertionOptions,
    AddressSelection,
):
    """Options of the ``http`` check type (``json_api`` extends this model); the proxy options
    come from :class:`~probed.checks._httpproxy.ProxyOptions`, the HTTP/2 ones from
    :class:`~probed.checks._http2.Http2Options`."""

    url: str = Field(description="http:// or https:// URL; IPv6 literals in brackets.")
    method: str = Field(default="GET", description="Request method.")
    headers: dict[str, str] = Field(default_factory=dict, description="Request headers.")
    secret_headers: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Request headers with secret values (API keys); sent to the origin only.",
    )
    body: str | None = Field(default=None, description="Request body (sent as UTF-8).")
    basic_auth: BasicAuth | None = Field(default=None, description="username + password.")
    bearer_token: SecretStr | None = Field(
        default=None, description="Sent as Authorization: Bearer."
    )
    follow_redirects: bool = Field(default=True, description="Follow 301/302/303/307/308.")
    max_redirects: int = Field(default=10, ge=0, le=100, description="Redirects followed at most.")
    follow_redirects_to_link_local: bool = Field(
        default=False,
        description="Follow a redirect to another host at a link-local (169.254.0.0/16, "
        "fe80::/10) or cloud metadata address (169.254.169.254, fd00:ec2::254).",
    )
    follow_redirects_to_private: bool = Field(
        default=True,
        description="Follow a redirect to another host at a private address (10/8, "
        "172.16/12, 192.168/16, 100.64/10, loopback, fc00::/7).",
    )
    valid_status_codes: list[int | str] = Field(
        default_factory=lambda: list[int | str](["2xx"]),
        description="Accepted final status codes: 200, '2xx', '200-299'.",
    )
    body_must_match: list[str] = Field(
        default_factory=list, description="Regexes that must all match the body."
    )
    body_must_not_match: list[str] = Field(
        default_factory=list, description="Regexes none of which may match the body."
    )
    header_must_match: dict[str, str] = Field(
        default_factory=dict, description="Response header name -> regex its value must match."
    )
    max_body_size: Size = Field(
        default=10 * 1024 * 1024, ge=0, description="Larger bodies fail with reason body_size."
    )
    max_header_size: Size = Field(
        default=DEFAULT_MAX_HEAD,
        ge=256,
        description="Bytes of response status line and headers; more fails with reason "
        "header_size (a line over 64 KiB or over 2000 header fields fail too).",
    )
    tls: TlsOptions = Field(
        default_factory=lambda: TlsOptions(), description="TLS settings for https."
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        Url.parse(value)
        return value.strip()

    @field_validator("method")
    @classmethod
    def _method(cls, value: str) -> str:
        if not _TOKEN_RE.fullmatch(value):
            raise ValueError(f"invalid HTTP method {value!r}")
        return value.upper()

    @field_validator("headers", "secret_headers")
    @classmethod
    def _headers(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name, val in value.items():
            if not _TOKEN_RE.fullmatch(name):
                raise ValueError(f"invalid header name {name!r}")
            text = val.get_secret_value() if isinstance(val, SecretStr) else str(val)
            if "\r" in text or "\n" in text:
                raise ValueError(f"header {name!r}: value must not contain line breaks")
        return value

    @field_validator("valid_status_codes")
    @classmethod
    def _status(cls, value: list[int | str]) -> list[int | str]:
        parse_status_codes(value)
        return value

    @field_validator("body_must_match", "body_must_not_match")
    @classmethod
    def _regexes(cls, value: list[str]) -> list[str]:
        for pattern in value:
            _compile(pattern, "body regex")
        return value

    @field_validator("header_must_match")
    @classmethod
    def _header_regexes(cls, value: dict[str, str]) -> dict[str, str]:
        for name, pattern in value.items():
            _compile(pattern, f"header_must_match.{name}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> HttpOptions:
        if self.basic_auth is not None and self.bearer_token is not None:
            raise ValueError("set basic_auth or bearer_token, not both")
        if self.oauth2 is not None and (self.basic_auth or self.bearer_token) is not None:
            raise ValueError("set oauth2 or basic_auth/bearer_token, not both")
        for name in self.headers:
            if name.lower() in CREDENTIAL_HEADERS:
                # Not "headers.<name>: ...": redaction masks text after "Authorization:".
                raise ValueError(
                    f"header {name!r} in headers carries credentials: put it in basic_auth, "
                    "bearer_token or secret_headers so it stays secret"
                )
        problem = self.host_problem(Url.parse(self.url).host)
        if problem is not None:
            raise ValueError(problem)
        return self


HTTP_METRICS: Final = (
    MetricDef("probed_http_status_code", "Status code of the final HTTP response."),
    MetricDef(
        "probed_http_content_length_bytes", "Body bytes received in the final HTTP response."
    ),
    MetricDef("probed_http_redirects", "Redirects followed."),
    MetricDef("probed_http_version", "HTTP version of the final response (e.g. 1.1)."),
    CERT_EXPIRY_METRIC,
    LEAF_EXPIRY_METRIC,
    LAST_CHAIN_METRIC,
)


def build_request(options: HttpOptions, url: Url) -> HttpRequest:
    """The :class:`HttpRequest` for ``options``, secrets in ``auth_headers``."""
    auth: list[tuple[str, str]] = []
    if options.basic_auth is not None:
        raw = f"{options.basic_auth.username}:{options.basic_auth.password.get_secret_value()}"
        auth.append(("Authorization", "Basic " + base64.b64encode(raw.encode()).decode("ascii")))
    if options.bearer_token is not None:
        auth.append(("Authorization", "Bearer " + options.bearer_token.get_secret_value()))
    auth.extend((name, value.get_secret_value()) for name, value in options.secret_headers.items())
    headers = tuple(options.headers.items())
    if options.compression and not any(n.lower() == "accept-encoding" for n, _ in headers):
        headers += (("Accept-Encoding", options.compression),)
    return HttpRequest(
        url=url,
        method=options.method,
        headers=headers,
        auth_headers=tuple(auth),
        body=(options.body or "").encode("utf-8"),
    )


def _excerpt(text: str, limit: int = 60) -> str:
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return repr(text)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}ms"


class HttpProbe(Check[HttpOptions]):
    """Request a URL and judge the status, headers, body and TLS certificate.

    The body of the ``http`` and ``json_api`` check types: each subclasses it with its own
    ``type_name``; ``json_api`` overrides :meth:`evaluate` and :meth:`check_response`.
    """

    options_model: ClassVar[type[CheckOptions]] = HttpOptions
    metrics: ClassVar[tuple[MetricDef, ...]] = HTTP_METRICS

    # What most checks leave unset is a class default: an instance (one per configured
    # check) sets only what its options need.
    body_must: tuple[re.Pattern[str], ...] = ()
    body_must_not: tuple[re.Pattern[str], ...] = ()
    header_res: tuple[tuple[str, re.Pattern[str]], ...] = ()
    assertions: ResponseAssertions | None = None
    oauth: TokenSource | None = None
    http_versions: tuple[str, ...] = ()
    _tls_error: str | None = None

    def __init__(self, spec: Any) -> None:
        super().__init__(spec)
        options = self.options
        url = Url.parse(options.url)
        self.request = build_request(options, url)
        # Tuples: equal status specs share one parsed copy.
        self.status_ranges = status_ranges(tuple(options.valid_status_codes))
        if options.body_must_match:
            self.body_must = tuple(_compile(p, "body regex") for p in options.body_must_match)
        if options.body_must_not_match:
            self.body_must_not = tuple(
                _compile(p, "body regex") for p in options.body_must_not_match
            )
        if options.header_must_match:
            self.header_res = tuple(
                (name, _compile(p, name)) for name, p in options.header_must_match.items()
            )
        assertions = response_assertions(options, options.compression)
        if assertions is not None:
            self.assertions = assertions
        if options.oauth2 is not None:
            self.oauth = TokenSource(options.oauth2)
        if options.valid_http_versions:
            self.http_versions = tuple(options.valid_http_versions)
        # Built by setup(). Assigned here: an attribute first assigned later may cost the
        # instance a dict of its own (see Check.__init__).
        self.client: ClientConfig | None = None

    @property
    def url(self) -> Url:
        """The URL requested (the request's)."""
        return self.request.url

    @property
    def prefix(self) -> str:
        """``METHOD URL``, how every message of the check starts (built when a message is:
        not kept, ~75 bytes a check)."""
        request = self.request
        return f"{request.method} {request.url}"

    async def setup(self) -> None:
        """Build the SSL context once (reading CA/cert files in a thread)."""
        options = self.options
        ctx = None
        if self.url.scheme == "https" or options.tls != TlsOptions() or options.enable_http2:
            try:
                alpn = _H2_ALPN if options.enable_http2 else ()
                ctx = await asyncio.to_thread(build_context, options.tls, alpn)
            except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
                self._tls_error = f"cannot load the TLS configuration: {exc}"
        if ctx is None and options.follow_redirects:
            # A redirect to https needs the system CA store: load it here, off the loop.
            await asyncio.to_thread(default_context)
        self.client = shared_client(
            ClientConfig(
                ssl_context=ctx,
                server_name=options.tls.server_name,
                follow_redirects=options.follow_redirects,
                max_redirects=options.max_redirects,
                max_body_size=options.max_body_size,
                family=options.socket_family(),
                max_header_size=options.max_header_size,
                redirect_check=address_policy(
                    options.follow_redirects_to_link_local, options.follow_redirects_to_private
                ),
                proxy=proxy_config(options),
                compression=options.compression,
                http2=options.enable_http2,
            )
        )

    async def run(self) -> Result:
        """Fetch the URL once and judge the response."""
        if self.client is None:
            await self.setup()
        assert self.client is not None
        if self._tls_error:
            return Result.fail(Reason.TLS, f"{self.prefix}: {self._tls_error}")
        if self.oauth is not None:
            return await self.oauth.run(self._fetch, self.request, self.client, self.prefix)
        return await self._fetch(self.request)

    async def _fetch(self, request: HttpRequest) -> Result:
        assert self.client is not None
        try:
            response = await fetch(request, self.client)
        except BodyTooLargeError as exc:
            values = {"probed_http_status_code": float(exc.status)}
            if exc.version:
                values["probed_http_version"] = float(exc.version)
            return Result.fail(
                exc.reason, f"{self.prefix}: {exc.detail}", phases=exc.phases, values=values
            )
        except ProbeError as exc:
            return exc.result(self.prefix)
        return await self.evaluate(response)

    async def evaluate(self, response: HttpResponse) -> Result:
        """Judge a received response; subclasses (``json_api``) extend this to read the body."""
        return self.judge(response)

    def judge(self, response: HttpResponse) -> Result:
        """Turn a response into a Result: status, headers, body, extra checks, certificate."""
        values: dict[str, float] = {
            "probed_http_status_code": float(response.status),
            "probed_http_content_length_bytes": float(response.body_size),
            "probed_http_redirects": float(len(response.redirects)),
        }
        if response.version:
            values["probed_http_version"] = float(response.version)
        if response.earliest_cert_expiry is not None:
            values["probed_tls_cert_expiry_timestamp_seconds"] = response.earliest_cert_expiry
            values.update(chain_values(response.cert))
        phases = response.phases
        problem = self._check_status(response) or self.check_response(response, values)
        if problem is None and self.http_versions:
            problem = version_problem(
                self.http_versions, response.version, self.options.enable_http2
            )
        if problem is not None:
            reason, detail = problem
            return Result.fail(reason, f"{self.prefix}: {detail}", phases=phases, values=values)
        if response.earliest_cert_expiry is not None:
            verdict = expiry_verdict(response.earliest_cert_expiry, self.options.tls, time.time())
            if verdict is not None:
                status, reason, detail = verdict
                who = earliest_name(response.cert, response.earliest_cert_expiry)
                return Result(
                    status, reason, f"{self.prefix}: {who}{detail}", phases=phases, values=values
                )
        via = f" after {len(response.redirects)} redirect(s)" if response.redirects else ""
        status_line = f"{response.status} {response.reason}".strip()
        return Result(
            Status.OK,
            "",
            f"{self.prefix}: {status_line}{via} in {_ms(sum(phases.values()))}",
            phases,
            values,
        )

    def _check_status(self, response: HttpResponse) -> tuple[str, str] | None:
        status = response.status
        for low, high in self.status_ranges:
            if low <= status <= high:
                return None
        expected = ", ".join(str(s) for s in self.options.valid_status_codes)
        detail = f"status {status} {response.reason}".rstrip() + f", expected {expected}"
        location = response.headers.get("location")
        if location and 300 <= status < 400:
            if not self.options.follow_redirects:
                detail += f" (redirect to {location} not followed: follow_redirects is false)"
            elif len(response.redirects) >= self.options.max_redirects:
                detail += (
                    f" (stopped after {len(response.redirects)} redirects, "
                    f"max_redirects={self.options.max_redirects}; next Location {location})"
                )
        elif response.redirects:
            detail += f" at {response.url} after {len(response.redirects)} redirect(s)"
        return Reason.STATUS, detail

    def check_response(
        self, response: HttpResponse, values: dict[str, float]
    ) -> tuple[str, str] | None:
        """Header and body assertions; subclasses extend this (call ``super()`` first).

        :param values: metric values of this run; a subclass may add its own.
        :return: (reason, detail) of the first failure, or None when everything holds.
        """
        if self.assertions is not None:
            problem = self.assertions.problem(response, self.options.method)
            if problem is not None:
                return problem
        for name, pattern in self.header_res:
            value = response.headers.get(name)
            if value is None:
                return Reason.ASSERTION, f"response header {name} is missing"
            if not pattern.search(value):
                return (
                    Reason.ASSERTION,
                    f"response header {name}: {_excerpt(value)} does not match /{pattern.pattern}/",
                )
        if self.body_must or self.body_must_not:
            text = response.text()
            for pattern in self.body_must:
                if not pattern.search(text):
                    return (
                        Reason.ASSERTION,
                        f"body ({response.body_size} bytes) does not match /{pattern.pattern}/",
                    )
            for pattern in self.body_must_not:
                found = pattern.search(text)
                if found:
                    return (
                        Reason.ASSERTION,
                        f"body matches forbidden /{pattern.pattern}/: {_excerpt(found.group(0))}",
                    )
        return None
