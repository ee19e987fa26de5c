"""``--web-config FILE``: TLS, client certificates, basic auth and response headers.

The file has the format of the Prometheus exporter-toolkit web configuration
(``tls_server_config``, ``http_server_config``, ``basic_auth_users``), so a file written for
node_exporter works here. Differences (each a clear error, never silently ignored):
``RequestClientCert`` and ``RequireAnyClientCert`` are refused (Python's ``ssl`` cannot accept
a client certificate without verifying it), ``curve_preferences`` and ``rate_limit`` are not
supported, and ``http2`` is accepted but has no effect (probed speaks HTTP/1.1).

:func:`load_web_config` reads and checks the file and builds everything once (the TLS context,
the users); a reload builds a new :class:`WebConfig` and swaps it in only when it is valid.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import os
import secrets
import ssl
import tempfile
import warnings
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from probed._document import Document, pydantic_problems, read_bytes, read_document
from probed._interpolate import Interpolator
from probed.errors import ConfigError, ConfigErrors

__all__ = ["BasicAuth", "WebConfig", "load_web_config"]

ClientAuth = Literal[
    "NoClientCert",
    "RequestClientCert",
    "RequireAnyClientCert",
    "RequireClientCert",
    "VerifyClientCertIfGiven",
    "RequireAndVerifyClientCert",
]
TLSVersionName = Literal["TLS10", "TLS11", "TLS12", "TLS13"]

_VERSIONS: Final = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}

# Go's names (tls.CipherSuites()) for the TLS 1.2 suites, and OpenSSL's for the same suite.
_CIPHERS_TLS12: Final = {
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
}
# TLS 1.3 suites cannot be chosen (in Go either): listing them is accepted and changes nothing.
_CIPHERS_TLS13: Final = frozenset(
    {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"}
)

# The headers exporter-toolkit lets a web config set, with the values allowed (None: any).
_HEADERS: Final[dict[str, tuple[str, ...] | None]] = {
    "Strict-Transport-Security": None,
    "X-Content-Type-Options": ("nosniff",),
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-XSS-Protection": None,
    "Content-Security-Policy": None,
}

# A bcrypt hash (cost 10) of a random password: compared against for unknown users, so an
# unknown user costs the same time as a wrong password.
_DUMMY_HASH: Final = b"$2b$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi"

CACHE_SIZE: Final = 256
"""Basic-auth successes remembered, and as many failures (per user, stored hash and password)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _TLSServerConfig(_Strict):
    cert: str | None = None
    key: str | None = None
    client_ca: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    client_auth_type: ClientAuth = "NoClientCert"
    client_ca_file: str | None = None
    client_allowed_sans: list[str] | None = None
    min_version: TLSVersionName = "TLS12"
    max_version: TLSVersionName = "TLS13"
    cipher_suites: list[str] | None = None
    prefer_server_cipher_suites: bool = True
    curve_preferences: list[str] | None = None


class _HTTPServerConfig(_Strict):
    http2: bool = True
    headers: dict[str, str] | None = None


class _WebConfigFile(_Strict):
    tls_server_config: _TLSServerConfig | None = None
    http_server_config: _HTTPServerConfig | None = None
    basic_auth_users: dict[str, str] | None = None
    rate_limit: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class WebConfig:
    """A web configuration ready to serve with (the default: plain HTTP, nobody asked).

    :param source: the file it came from.
    :param tls: the server's TLS context, or ``None`` for plain HTTP.
    :param allowed_sans: a client certificate must carry one of these SANs (when set).
    :param auth: checks basic-auth credentials, or ``None`` when no users are configured.
    :param headers: added to every response of the main listener.
    """

    source: str | None = None
    tls: ssl.SSLContext | None = None
    allowed_sans: frozenset[str] | None = None
    auth: BasicAuth | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def verifies_clients(self) -> bool:
        """Whether client certificates are verified against a CA."""
        return self.tls is not None and self.tls.verify_mode != ssl.CERT_NONE

    def describe(self) -> str:
        """One line for the log: what a client of the main listener must present."""
        if self.tls is None:
            parts = ["plain HTTP"]
        elif self.tls.verify_mode == ssl.CERT_REQUIRED:
            parts = ["TLS, client certificate required"]
        elif self.tls.verify_mode == ssl.CERT_OPTIONAL:
            parts = ["TLS, client certificate verified if given"]
        else:
            parts = ["TLS"]
        users = len(self.auth.users) if self.auth is not None else 0
        parts.append(f"basic auth for {users} user(s)" if users else "no basic auth")
        if self.headers:
            parts.append(f"headers {', '.join(self.headers)}")
        return "; ".join(parts)


class BasicAuth:
    """Checks ``Authorization: Basic`` headers against bcrypt hashes.

    bcrypt costs ~50-100 ms a check by design, so verdicts are cached, keyed by an HMAC (with a
    per-process random key) of the user, the stored hash and the presented password: a scrape
    every 15 s costs one bcrypt, not one per scrape; the password itself is never kept.
    Successes and failures have caches of their own, so a client trying passwords cannot evict
    the valid ones. Checks run one at a time in a thread, off the event loop.
    """

    def __init__(self, users: Mapping[str, bytes]) -> None:
        self.users: Mapping[str, bytes] = dict(users)
        self._key = secrets.token_bytes(32)
        self._ok: OrderedDict[bytes, None] = OrderedDict()
        self._bad: OrderedDict[bytes, None] = OrderedDict()
        self._lock = asyncio.Lock()
        self.bcrypt_runs = 0

    def _parse(self, header: str | None) -> tuple[str, bytes] | None:
        if not header or header[:6].lower() != "basic ":
            return None
        try:
            raw = base64.b64decode(header[6:].strip(), validate=True)
        except (binascii.Error, ValueError):
            return None
        user, sep, password = raw.partition(b":")
        if not sep:
            return None
        return user.decode("utf-8", "replace"), password

    def _cached(self, key: bytes) -> bool | None:
        for verdict, cache in ((True, self._ok), (False, self._bad)):
            if key in cache:
                cache.move_to_end(key)
                return verdict
        return None

    async def check(self, header: str | None) -> str | None:
        """The user name when ``header`` carries valid credentials, else ``None``."""
        parsed = self._parse(header)
        if parsed is None:
            return None
        user, password = parsed
        stored = self.users.get(user)
        hashed = stored if stored is not None else _DUMMY_HASH
        key = hmac.new(self._key, b"\0".join((user.encode(), hashed, password)), "sha256").digest()
        verdict = self._cached(key)
        if verdict is None:
            async with self._lock:
                verdict = self._cached(key)  # found by a request that held the lock before
                if verdict is None:
                    verdict = await asyncio.to_thread(_checkpw, password, hashed)
                    self.bcrypt_runs += 1
                    cache = self._ok if verdict else self._bad
                    cache[key] = None
                    if len(cache) > CACHE_SIZE:
                        cache.popitem(last=False)
        return user if verdict and stored is not None else None


def _checkpw(password: bytes, hashed: bytes) -> bool:
    import bcrypt

    try:
        return bool(bcrypt.checkpw(password, hashed))
    except ValueError:
        return False


# -- reading the file ----------------------------------------------------------------------------


def load_web_config(path: Path) -> WebConfig:
    """Read, check and build the web configuration in ``path``.

    Relative file names in it are relative to the file's directory (as in exporter-toolkit).

    :raises ConfigErrors: every problem, each ``FILE:LINE: key: message``.
    """
    content = read_bytes(path)
    if isinstance(content, ConfigError):
        raise ConfigErrors([content])
    doc = read_document(str(path), content, Interpolator(base=path.parent), shape="a mapping")
    if doc.errors:
        raise ConfigErrors(doc.errors)
    if doc.tree is None:
        return WebConfig(source=str(path))
    try:
        model = _WebConfigFile.model_validate(doc.tree)
    except ValidationError as exc:
        raise ConfigErrors(doc.locate(pydantic_problems(exc, _WebConfigFile))) from None
    errors: list[ConfigError] = []
    base = path.parent
    tls = _tls(doc, model.tls_server_config, base, errors)
    auth = _users(doc, model.basic_auth_users or {}, errors)
    headers = _headers(doc, model.http_server_config, errors)
    if model.rate_limit is not None:
        errors.append(
            doc.error(("rate_limit",), "rate_limit is not supported by probed; remove it")
        )
    if errors:
        raise ConfigErrors(errors)
    sans = model.tls_server_config.client_allowed_sans if model.tls_server_config else None
    return WebConfig(
        source=str(path),
        tls=tls,
        allowed_sans=frozenset(sans) if sans is not None else None,
        auth=auth,
        headers=headers,
    )


def _users(doc: Document, users: Mapping[str, str], errors: list[ConfigError]) -> BasicAuth | None:
    if not users:
        return None
    try:
        import bcrypt  # noqa: F401
    except ImportError:
        errors.append(
            doc.error(
                ("basic_auth_users",),
                "basic_auth_users needs the bcrypt package: pip install 'probed[web]'",
            )
        )
        return None
    hashed: dict[str, bytes] = {}
    for user, value in users.items():
        raw = value.encode()
        if not _is_bcrypt(raw):
            errors.append(
                doc.error(
                    ("basic_auth_users", user),
                    "expected a bcrypt hash such as $2y$10$... (make one with "
                    "`htpasswd -nBC 10 \"\" | tr -d ':\\n'`), not a plain password",
                )
            )
            continue
        hashed[user] = raw
    return BasicAuth(hashed)


def _is_bcrypt(raw: bytes) -> bool:
    parts = raw.split(b"$")
    return (
        len(parts) == 4
        and parts[0] == b""
        and parts[1] in (b"2a", b"2b", b"2y")
        and parts[2].isdigit()
        and 4 <= int(parts[2]) <= 31
        and len(parts[3]) == 53
    )


def _headers(
    doc: Document, config: _HTTPServerConfig | None, errors: list[ConfigError]
) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in ((config.headers if config else None) or {}).items():
        where = ("http_server_config", "headers", name)
        if name not in _HEADERS:
            errors.append(
                doc.error(where, f"header {name!r} cannot be set; use one of {', '.join(_HEADERS)}")
            )
            continue
        allowed = _HEADERS[name]
        if allowed is not None and value not in allowed:
            errors.append(doc.error(where, f"expected one of {', '.join(allowed)}, got {value!r}"))
            continue
        if value:
            out[name] = value
    return out


def _tls(
    doc: Document, config: _TLSServerConfig | None, base: Path, errors: list[ConfigError]
) -> ssl.SSLContext | None:
    if config is None or config == _TLSServerConfig():
        return None
    where = ("tls_server_config",)
    start = len(errors)

    def err(key: str, message: str) -> None:
        errors.append(doc.error((*where, key), message))

    if config.cert is None and config.cert_file is None:
        err("cert_file", "missing one of cert or cert_file")
    if config.key is None and config.key_file is None:
        err("key_file", "missing one of key or key_file")
    if config.cert is not None and config.cert_file is not None:
        err("cert", "give cert or cert_file, not both")
    if config.key is not None and config.key_file is not None:
        err("key", "give key or key_file, not both")
    if config.client_auth_type in (
        "RequestClientCert",
        "RequireAnyClientCert",
        "RequireClientCert",
    ):
        err(
            "client_auth_type",
            f"{config.client_auth_type} is not supported by probed (it cannot accept a client "
            "certificate without verifying it); use RequireAndVerifyClientCert (or "
            "VerifyClientCertIfGiven) with client_ca_file",
        )
    has_ca = config.client_ca_file is not None or config.client_ca is not None
    verify = config.client_auth_type in ("VerifyClientCertIfGiven", "RequireAndVerifyClientCert")
    if verify and not has_ca:
        err("client_ca_file", f"client_auth_type {config.client_auth_type} needs client_ca_file")
    if has_ca and config.client_auth_type == "NoClientCert":
        err("client_auth_type", "client CA configured without a client_auth_type")
    if _VERSIONS[config.min_version] > _VERSIONS[config.max_version]:
        err("min_version", "min_version is above max_version")
    if config.curve_preferences:
        err("curve_preferences", "curve_preferences is not supported by probed; remove it")
    ciphers: list[str] = []
    for name in config.cipher_suites or ():
        if name in _CIPHERS_TLS12:
            ciphers.append(_CIPHERS_TLS12[name])
        elif name not in _CIPHERS_TLS13:
            err("cipher_suites", f"unknown cipher suite {name!r}; use one of Go's tls.CipherSuites")
    if len(errors) > start:
        return None

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLS10/TLS11: asked for explicitly
        ctx.minimum_version = _VERSIONS[config.min_version]
        ctx.maximum_version = _VERSIONS[config.max_version]
    if ciphers:
        try:
            ctx.set_ciphers(":".join(ciphers))
        except ssl.SSLError as exc:
            err("cipher_suites", f"not available in this OpenSSL: {exc}")
            return None
    if config.prefer_server_cipher_suites:
        ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    try:
        _load_chain(ctx, config, base)
    except (OSError, ssl.SSLError, ValueError) as exc:
        key = "cert_file" if config.cert_file is not None else "cert"
        err(key, f"cannot load the certificate and key: {_why(exc)}")
        return None
    if has_ca:
        try:
            if config.client_ca_file is not None:
                ctx.load_verify_locations(cafile=str(base / config.client_ca_file))
            else:
                ctx.load_verify_locations(cadata=config.client_ca)
        except (OSError, ssl.SSLError, ValueError) as exc:
            err("client_ca_file", f"cannot load the client CA: {_why(exc)}")
            return None
        required = config.client_auth_type == "RequireAndVerifyClientCert"
        ctx.verify_mode = ssl.CERT_REQUIRED if required else ssl.CERT_OPTIONAL
    return ctx


def _why(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror} ({exc.filename})" if exc.filename else exc.strerror
    return str(exc) or type(exc).__name__


def _load_chain(ctx: ssl.SSLContext, config: _TLSServerConfig, base: Path) -> None:
    """Load the server certificate and key; inline PEM goes through a private temporary
    directory (``ssl`` reads only files) removed right after."""
    with tempfile.TemporaryDirectory(prefix="probed-tls-") as tmp:
        cert = str(base / config.cert_file) if config.cert_file else _write(tmp, "c", config.cert)
        key = str(base / config.key_file) if config.key_file else _write(tmp, "k", config.key)
        ctx.load_cert_chain(cert, key)


def _write(directory: str, name: str, text: str | None) -> str:
    path = os.path.join(directory, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text or "")
    return path
