"""OAuth2 client credentials for ``http`` and ``json_api`` (blackbox's ``oauth2`` block).

- :class:`OAuth2` (``oauth2: {client_id, client_secret, token_url, scopes, endpoint_params}``)
  in :class:`OAuth2Options`, mixed into :class:`~probed.checks._http.HttpOptions`.
- :class:`TokenSource`: one per check. The token is fetched with probed's own client
  (:func:`probed.checks._httpclient.fetch`: same TLS settings, address family and proxies as the
  check, no redirects) by ``POST token_url`` with ``grant_type=client_credentials``; the client
  credentials go in HTTP basic auth first and, when the endpoint answers 400/401 to that, in the
  form body (what Go's ``oauth2`` package, and so blackbox_exporter, does). The token is cached
  until shortly before ``expires_in`` runs out (10 % of it, at most 10 s), fetched again after,
  and dropped when the target answers 401. The token response is bounded
  (:data:`MAX_TOKEN_RESPONSE`).
- A token that cannot be had fails the run with reason ``auth`` and a message naming the token
  endpoint, its status and OAuth2 ``error``: the target is not blamed (and the run reports no
  phases: the token endpoint's timings are not the target's). Neither the secret nor the
  token is ever shown: the secret is an option secret (masked everywhere by
  :mod:`probed.redact`), and the token, which only this check knows, is masked out of the run's
  message here (a target echoing it).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final
from urllib.parse import quote_plus, urlencode

from pydantic import Field, SecretStr, field_validator

from probed.check import CheckOptions, Reason, Result
from probed.checks._httpclient import ClientConfig, HttpRequest, HttpResponse, Url, fetch
from probed.checks._net import ProbeError
from probed.phase import CURRENT_PHASE, set_phase
from probed.redact import MIN_SECRET_LENGTH, Redactor

__all__ = ["MAX_TOKEN_RESPONSE", "OAuth2", "OAuth2Options", "TokenSource"]

MAX_TOKEN_RESPONSE: Final = 64 * 1024
"""Bytes of a token endpoint's response body read at most."""
MAX_EXPIRY_MARGIN: Final = 10.0
"""A token is fetched again this many seconds (at most 10 % of its lifetime) before expiry."""
_RETRY_IN_BODY: Final = frozenset({400, 401})


class OAuth2(CheckOptions):
    """OAuth2 client credentials grant (RFC 6749 4.4)."""

    client_id: str = Field(min_length=1, description="The client id.")
    client_secret: SecretStr = Field(
        description="The client secret; use ${file:...} or ${ENV} (never shown)."
    )
    token_url: str = Field(description="http:// or https:// URL of the token endpoint.")
    scopes: list[str] = Field(default_factory=list, description="Scopes asked for.")
    endpoint_params: dict[str, str] = Field(
        default_factory=dict, description="Extra form parameters sent to the token endpoint."
    )

    @field_validator("token_url")
    @classmethod
    def _url(cls, value: str) -> str:
        Url.parse(value)
        return value.strip()

    @field_validator("scopes")
    @classmethod
    def _scopes(cls, value: list[str]) -> list[str]:
        for scope in value:
            if not scope or any(c.isspace() for c in scope):
                raise ValueError(f"invalid scope {scope!r}: scopes are non-empty words")
        return value

    def secrets(self) -> set[str]:
        """The secret, and ``id:secret`` as the Basic credentials encode it (raw and
        form-encoded), so an endpoint echoing them is masked whole."""
        secret = self.client_secret.get_secret_value()
        if not secret:
            return set()
        return {
            secret,
            quote_plus(secret),
            f"{self.client_id}:{secret}",
            f"{quote_plus(self.client_id)}:{quote_plus(secret)}",
        }


class OAuth2Options(CheckOptions):
    """The ``oauth2`` option of ``http`` and ``json_api``."""

    oauth2: OAuth2 | None = Field(
        default=None,
        description="OAuth2 client credentials: the token is fetched from token_url, cached "
        "until shortly before it expires and sent as Authorization: Bearer.",
    )


def _excerpt(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class TokenSource:
    """The cached token of one check; :meth:`run` wraps one run of it."""

    def __init__(self, options: OAuth2) -> None:
        self.options = options
        self.url = Url.parse(options.token_url)
        self.clock: Callable[[], float] = time.monotonic
        self.fetches = 0
        self._token: str | None = None
        self._type = "Bearer"
        self._valid_until = 0.0
        self._in_body: bool | None = None  # where the endpoint wants the client credentials
        self._lock = asyncio.Lock()
        self._redact = Redactor(_long(options.secrets()))

    def invalidate(self) -> None:
        """Forget the token (the target refused it)."""
        self._token = None

    async def run(
        self,
        probe: Callable[[HttpRequest], Awaitable[Result]],
        request: HttpRequest,
        client: ClientConfig,
        prefix: str,
    ) -> Result:
        """Run ``probe`` with ``request`` carrying the token; a token failure is the result."""
        try:
            header = await self.authorization(client)
        except ProbeError as exc:
            return self._scrub(exc.result(prefix))
        authed = dataclasses.replace(
            request, auth_headers=(*request.auth_headers, ("Authorization", header))
        )
        result = await probe(authed)
        if result.values.get("probed_http_status_code") == 401.0:
            self.invalidate()
        return self._scrub(result)

    def _scrub(self, result: Result) -> Result:
        message = self._redact(result.message)
        return result if message is result.message else dataclasses.replace(result, message=message)

    async def authorization(self, client: ClientConfig) -> str:
        """The ``Authorization`` value, fetching a token when none is valid.

        :raises ProbeError: reason ``auth`` (or the connection's own reason wrapped in it).
        """
        async with self._lock:
            if self._token is None or self.clock() >= self._valid_until:
                await self._fetch(client)
            assert self._token is not None
            return f"{self._type} {self._token}"

    async def _fetch(self, client: ClientConfig) -> None:
        config = dataclasses.replace(
            client,
            follow_redirects=False,
            max_body_size=MAX_TOKEN_RESPONSE,
            server_name=None,
            redirect_check=None,
            compression=None,
        )
        started = self.clock()
        response = await self._post(config, in_body=bool(self._in_body))
        if self._in_body is None and response.status in _RETRY_IN_BODY:
            retry = await self._post(config, in_body=True)
            if 200 <= retry.status < 300:
                self._in_body, response = True, retry
        elif self._in_body is None and 200 <= response.status < 300:
            self._in_body = False
        self._accept(response, started)

    async def _post(self, config: ClientConfig, *, in_body: bool) -> HttpResponse:
        opts = self.options
        form: dict[str, str] = {"grant_type": "client_credentials"}
        if opts.scopes:
            form["scope"] = " ".join(opts.scopes)
        form.update(opts.endpoint_params)
        auth: tuple[tuple[str, str], ...] = ()
        secret = opts.client_secret.get_secret_value()
        if in_body:
            form["client_id"] = opts.client_id
            form["client_secret"] = secret
        else:
            raw = f"{quote_plus(opts.client_id)}:{quote_plus(secret)}"
            auth = (("Authorization", "Basic " + base64.b64encode(raw.encode()).decode("ascii")),)
        request = HttpRequest(
            url=self.url,
            method="POST",
            headers=(
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("Accept", "application/json"),
            ),
            auth_headers=auth,
            body=urlencode(form).encode("ascii"),
        )
        self.fetches += 1
        # A timeout names the token endpoint, not the step of fetch() (whose addresses would
        # read as the target's): its own phases are not declared.
        set_phase(f"fetching the OAuth2 token from {self.url}")
        hidden = CURRENT_PHASE.set(None)
        try:
            return await fetch(request, config)
        except ProbeError as exc:
            raise ProbeError(
                Reason.AUTH,
                self._redact(f"OAuth2 token endpoint {self.url}: {exc.detail} ({exc.reason})"),
            ) from None
        finally:
            CURRENT_PHASE.reset(hidden)

    def _accept(self, response: HttpResponse, started: float) -> None:
        where = f"OAuth2 token endpoint {self.url} answered {response.status}"
        where = f"{where} {response.reason}".rstrip()
        try:
            data: Any = json.loads(response.body)
        except ValueError:
            data = None
        if not 200 <= response.status < 300:
            detail = ""
            if isinstance(data, dict) and isinstance(data.get("error"), str):
                detail = f": {_excerpt(data['error'])}"
                if isinstance(data.get("error_description"), str):
                    detail += f" ({_excerpt(data['error_description'])})"
            hint = " (wrong client_id or client_secret?)" if response.status in (400, 401) else ""
            raise ProbeError(Reason.AUTH, self._redact(where + detail + hint))
        token = data.get("access_token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token or any(c in token for c in "\r\n"):
            raise ProbeError(Reason.AUTH, f"{where} without an access_token in a JSON object")
        token_type = data.get("token_type")
        if not isinstance(token_type, str) or not token_type or token_type.lower() == "bearer":
            token_type = "Bearer"
        lifetime = _seconds(data.get("expires_in"))
        self._token = token
        self._type = token_type
        self._redact = Redactor(_long({*self.options.secrets(), token}))
        if lifetime is None:
            self._valid_until = float("inf")  # no expiry given: until the target refuses it
        else:
            self._valid_until = started + lifetime - min(MAX_EXPIRY_MARGIN, lifetime / 10)


def _long(secrets: set[str]) -> set[str]:
    return {s for s in secrets if len(s) >= MIN_SECRET_LENGTH}


def _seconds(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return max(float(value), 0.0)
    if isinstance(value, str):
        try:
            return max(float(value), 0.0)
        except ValueError:
            return None
    return None
