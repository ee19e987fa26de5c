"""The one owner of secrets in output: the mask, which names are secret, and how text is scrubbed.

Everything that shows text to a person or a machine (logs, the HTTP API, health bodies,
``/metrics`` labels, ``probed once`` reports, ``probed validate`` and configuration errors,
Sentry events, check result messages) goes through this module; no other module has its own
mask or secret-name rule.

- :data:`MASK` (``***``) is the only mask shown anywhere; pydantic's ``SecretStr`` dump
  (``**********``) is turned into it by :func:`redact_data`.
- :func:`is_secret_key` (mapping keys, header names), :func:`is_secret_param` (URL query and
  ``key=value`` DSN parameters) and :func:`is_secret_env` (environment variable names) say
  which names hold secrets.
- :func:`redact_text` masks secrets that have a recognisable *shape*: a URL's userinfo
  password (also one containing ``/``, ``@`` or ``%2F``), secret URL query parameters
  (``?token=``, ``&api_key=``), ``password=`` in a libpq ``key=value`` DSN, credential
  headers (``Authorization: ...``, ``X-Api-Key: ...``, ``Cookie: ...``) and secret keys in
  JSON or Python-literal text (``"password": "..."``). :func:`redact_url` is the same for one URL.
- :class:`Redactor` masks *known* secret values (from ``${file:...}``, secret-looking
  ``${ENV}`` variables and secret options) in any text, raw or in the forms they take on the
  way out: URL-encoded, JSON- or Python-escaped, base64 (also inside ``Basic`` credentials);
  then applies :func:`redact_text`.
- :func:`redact_data` walks JSON-like data: secret-keyed values become ``***``, every string
  goes through :func:`redact_url` and the redactor.
- :func:`hide` keeps interpolated (not necessarily secret) values out of configuration errors.

A URL with a port *and* an ``@`` later in its path or query (``http://h:80/a@b``) is masked
from the port on: it cannot be told apart from a password containing ``/``, and showing a
shortened URL is better than showing a password.
"""

from __future__ import annotations

import base64
import enum
import re
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final
from urllib.parse import unquote, unquote_plus

from probed._redact_forms import Matcher, all_forms

__all__ = [
    "CREDENTIAL_HEADERS",
    "MASK",
    "MIN_SECRET_LENGTH",
    "Redactor",
    "hide",
    "is_secret_env",
    "is_secret_key",
    "is_secret_param",
    "option_secrets",
    "redact_data",
    "redact_text",
    "redact_url",
    "url_secrets",
]

MASK: Final = "***"
"""What a secret is replaced with, everywhere."""

MIN_SECRET_LENGTH: Final = 4
"""Shorter values are not treated as secrets: redacting ``on`` or ``1`` would mangle text."""

_PYDANTIC_MASK: Final = "**********"  # how pydantic dumps SecretStr; shown as MASK
# Values longer than _CUT are shown in errors as their first and last characters.
_CUT, _CUT_HEAD, _CUT_TAIL = 40, 20, 10

_SECRET_KEY: Final = re.compile(
    r"pass(word|wd|phrase)?$|^pwd$|secret|token|credential|authorization|^auth$|_auth$"
    r"|api_?key|private_?key|access_?key|secret_?key|cookie|session_?id|signature$|^sig$",
)
_SECRET_PARAM: Final = re.compile(
    r"pass(word|wd)?$|^pwd$|secret|token|credential|^auth|api_?key|^key$|access_?key"
    r"|signature|^sig$|^code$|session_?id$",
)
_SECRET_ENV: Final = re.compile(
    r"PASS|PWD|(?:^|_)PW(?:$|_)|SECRET|TOKEN|KEY|AUTH|CREDENTIAL|DSN|COOKIE|SESSION|PRIVATE"
    r"|BEARER|(?:^|_)SIG(?:NATURE)?(?:$|_)",
    re.IGNORECASE,
)

# Characters that end a secret in text: whitespace, quotes, angle brackets and backslashes
# (so masking never eats the closing quote or an escape of JSON or Python text).
_STOP: Final = r"\s\"'<>\\`"
_URL: Final = re.compile(rf"[A-Za-z][A-Za-z0-9+.-]*://[^{_STOP}]*")
# scheme://user:password@ up to the *last* '@' of the URL: a password may hold '/' '@' ':'.
_USERINFO: Final = re.compile(rf"^(?P<pre>[^:]+://[^{_STOP}:/?#]*:)[^{_STOP}]+(?=@)")
_QUERY_PARAM: Final = re.compile(r"(?P<pre>(?:^|[?&;])(?P<name>[^=&;#?]+)=)(?P<value>[^&#]+)")
# libpq key=value DSN parameters outside URLs (password='x y', sslpassword=...), and command
# line options in that form (--password=x, -pass=x: an exec check's argument list).
_DSN_PARAM: Final = re.compile(
    rf"(?P<pre>(?<![\w.-])(?P<name>-{{0,2}}[A-Za-z_][\w-]*)\s*=\s*)"
    rf"(?P<value>'(?:[^'\\]|\\.)*'|[^{_STOP}&,;]+)"
)
# A URL without a scheme (a redirect's path, "GET /x?token=..." in a log line, host/path?q):
# a word holding '/' or '.' before the '?'; "a?token=t" in prose is left alone.
# Possessive, from a word's start only: linear on hostile text (a long word of dots, no '?').
_BARE_URL: Final = re.compile(
    rf"(?P<pre>(?<![^{_STOP}?])[^{_STOP}?/.]*+[/.][^{_STOP}?]*+\?)(?P<query>[^{_STOP}#]++)"
)
_DSN_SECRET: Final = re.compile(r"(ssl)?pass(word|wd)?$|^pwd$")
# Credential headers in text: "Authorization: Bearer x", "X-Api-Key: x", "Cookie: a=b".
_HEADER: Final = re.compile(
    rf"(?P<pre>\b(?:(?:Proxy-)?Authorization|(?:Set-)?Cookie|X-[\w-]*(?:Key|Token|Secret|Auth)"
    rf"|Api-Key)\s*:\s*)(?P<value>[^\r\n{_STOP}]+(?:[ \t]+[^\r\n{_STOP}]+)*)",
    re.IGNORECASE,
)
# Secret keys in JSON / Python-literal text: "password": "x", 'token': 'x'.
_QUOTED_PAIR: Final = re.compile(
    r"(?P<pre>(?P<q>[\"'])(?P<name>[\w .-]+)(?P=q)\s*:\s*(?P<q2>[\"']))"
    r"(?P<value>(?:(?!(?P=q2))[^\\]|\\.)+)(?=(?P=q2))"
)


def _normal(key: str) -> str:
    return key.strip().lower().replace("-", "_")


def is_secret_key(key: str) -> bool:
    """Whether a mapping key or header name names a secret (``password``, ``X-Api-Key``...)."""
    return _SECRET_KEY.search(_normal(key)) is not None


def is_secret_param(name: str) -> bool:
    """Whether a URL query or DSN parameter names a secret (``token``, ``api_key``, ``sig``...)."""
    return _SECRET_PARAM.search(_normal(name)) is not None


CREDENTIAL_HEADERS: Final = frozenset({"authorization", "proxy-authorization", "cookie"})
"""Request headers that carry credentials by definition (lower case): a check must take their
values from a secret option, never from plain ``headers``."""


def is_secret_env(name: str) -> bool:
    """Whether an environment variable's name says it holds a secret (``DB_PASSWORD``...)."""
    return _SECRET_ENV.search(name) is not None


def _mask_value(m: re.Match[str]) -> str:
    return m["pre"] + MASK


def _mask_query(query: str) -> str:
    def one(m: re.Match[str]) -> str:
        return m["pre"] + MASK if is_secret_param(m["name"]) else m[0]

    return _QUERY_PARAM.sub(one, query)


def _mask_url(url: str) -> str:
    if "@" in url:
        url = _USERINFO.sub(_mask_value, url, count=1)
    head, q, rest = url.partition("?")
    if not q:
        return url
    query, hash_, fragment = rest.partition("#")
    return f"{head}?{_mask_query(query)}{hash_}{fragment}"


def redact_url(url: str) -> str:
    """``url`` with the userinfo password and secret query parameters masked.

    ``postgresql://u:pw@h/db`` gives ``postgresql://u:***@h/db``, ``redis://:p/w@h`` gives
    ``redis://:***@h``, ``https://h/x?token=abc&page=2`` gives ``https://h/x?token=***&page=2``.
    Text that is not a URL comes back unchanged (the same object when nothing was masked).
    """
    return _URL.sub(lambda m: _mask_url(m[0]), url) if "://" in url else url


def _mask_bare_url(m: re.Match[str]) -> str:
    return m["pre"] + _mask_query(m["query"])


def _mask_dsn(m: re.Match[str]) -> str:
    return m["pre"] + MASK if _DSN_SECRET.search(_normal(m["name"])) else m[0]


def _mask_pair(m: re.Match[str]) -> str:
    return m["pre"] + MASK if is_secret_key(m["name"]) else m[0]


# Every shaped secret but a URL password needs a secret-looking name near it: text without
# any of these words (lower-cased) and without '@' is returned without running a regex.
_HINTS: Final = ("pass", "pwd", "secret", "token", "credential", "auth", "key", "cookie",
                 "session", "sig", "code")  # fmt: skip
_HEADER_HINTS: Final = ("authorization", "cookie", "x-", "api-key")


def redact_text(text: str) -> str:
    """``text`` with every secret that has a recognisable shape masked (see the module doc)."""
    low = text.lower()
    hinted = False
    for hint in _HINTS:  # a loop, not any(generator): half the time on every result message
        if hint in low:
            hinted = True
            break
    if not hinted and "@" not in text:
        return text  # the common case: a result message with nothing to mask
    if "://" in text:
        text = redact_url(text)
    if not hinted:
        return text
    if "?" in text and "=" in text:
        text = _BARE_URL.sub(_mask_bare_url, text)
    if "=" in text and ("pass" in low or "pwd" in low):
        text = _DSN_PARAM.sub(_mask_dsn, text)
    if ":" in text:
        if any(name in low for name in _HEADER_HINTS):
            text = _HEADER.sub(_mask_value, text)
        if '"' in text or "'" in text:
            text = _QUOTED_PAIR.sub(_mask_pair, text)
    return text


_last: list[tuple[frozenset[str], Matcher]] = []  # the latest matcher built, for reuse


def _matcher(secrets: frozenset[str]) -> Matcher:
    """The matcher of ``secrets``; a reload whose secrets did not change reuses the last one
    (building one for 10,000 secrets takes ~0.2-0.7 s)."""
    last = _last[-1] if _last else None
    if last is not None and last[0] == secrets:
        return last[1]
    matcher = Matcher(all_forms(secrets, MIN_SECRET_LENGTH))
    if len(secrets) > 8:  # the configuration's redactor, not a check's own
        _last[:] = [(secrets, matcher)]
    return matcher


class Redactor:
    """Masks every known secret value, in every form it may take (see
    :mod:`probed._redact_forms`: raw, URL-encoded, JSON- or Python-escaped, base64 also inside
    ``Basic`` credentials, each line of a multi-line secret, any letter case), then applies
    :func:`redact_text`; longest forms first, so a secret containing another is masked whole.

    A redactor built from no secrets still masks shaped secrets (URL passwords, ``?token=``...)
    and returns text with nothing to mask unchanged (the same object). Callers leave out values
    shorter than :data:`MIN_SECRET_LENGTH` (see :func:`option_secrets`); ``add_secret`` does.
    """

    __slots__ = ("_matcher", "secrets")

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets: frozenset[str] = frozenset(s for s in secrets if s)
        self._matcher = _matcher(self.secrets)

    def add_secret(self, *values: str) -> None:
        """Mask ``values`` too from now on (a credential a check learns or sends at run time,
        such as a request header value): rebuilt once per call, so pass them together."""
        new = {v for v in values if len(v) >= MIN_SECRET_LENGTH} - self.secrets
        if new:
            secrets = self.secrets | new
            # One assignment each: a logging thread sees the old or the new matcher, never half.
            self._matcher = _matcher(secrets)
            self.secrets = secrets

    def __call__(self, text: str) -> str:
        """``text`` with each secret replaced by ``***``."""
        if not text:
            return text
        return redact_text(self._matcher.sub(text, MASK))

    def __bool__(self) -> bool:
        """Whether any secret value is known."""
        return bool(self._matcher)


_PLAIN: Final = (str, bytes, int, float, bool)


_SECRET_FIELDS: Final[dict[type[Any], tuple[str, ...]]] = {}  # a memo, per model class


def _fields_that_may_hold_secrets(model: type[Any]) -> tuple[str, ...]:
    """Fields of a pydantic model whose annotation may hold a secret (worked out once per class:
    most option fields are numbers, strings or enums)."""
    names = _SECRET_FIELDS.get(model)
    if names is None:
        fields = getattr(model, "__pydantic_fields__", {})
        _SECRET_FIELDS[model] = tuple(fields)  # every field, while a recursive model is judged
        names = tuple(n for n, info in fields.items() if _may_hold_secret(info.annotation))
        _SECRET_FIELDS[model] = names
    return names


_TEXT_FIELDS: Final[dict[type[Any], tuple[str, ...]]] = {}  # a memo, per model class


def _text_fields(model: type[Any]) -> tuple[str, ...]:
    """Fields of a pydantic model that may hold a plain string (a URL with a password or a
    ``?token=``)."""
    names = _TEXT_FIELDS.get(model)
    if names is None:
        fields = getattr(model, "__pydantic_fields__", {})
        names = tuple(n for n, info in fields.items() if _may_be_text(info.annotation))
        _TEXT_FIELDS[model] = names
    return names


def _may_be_text(annotation: Any) -> bool:
    if annotation is str:
        return True
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated or (origin is not None and origin is not typing.Literal):
        return any(_may_be_text(arg) for arg in typing.get_args(annotation))
    return False


def url_secrets(text: str) -> set[str]:
    """Secret values written in a URL: its userinfo password and the values of secret-named
    query parameters (``?api_key=``, ``&X-Amz-Signature=``), as written and decoded; a target
    echoing them back (in a body, a redirect) is then masked like any known secret."""
    found: set[str] = set()
    if "://" in text and "@" in text:
        match = _USERINFO.search(text)
        if match is not None:
            password = match[0][len(match["pre"]) :]
            found |= {password, unquote(password)}
    if "?" in text:
        query = text.partition("?")[2].partition("#")[0]
        for part in re.split(r"[&;]", query):
            name, eq, value = part.partition("=")
            if eq and value and is_secret_param(unquote_plus(name)):
                found |= {value, unquote_plus(value)}
    return {s for s in found if len(s) >= MIN_SECRET_LENGTH}


def _may_hold_secret(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return False
    if origin is typing.Annotated:
        return _may_hold_secret(typing.get_args(annotation)[0])
    if origin in (dict, typing.Mapping, Mapping):
        return True  # a secret-named key (a header like X-Api-Key) makes its value secret
    if origin is not None:  # unions, containers
        return any(_may_hold_secret(arg) for arg in typing.get_args(annotation))
    if annotation is None or annotation is type(None):
        return False
    if not isinstance(annotation, type):
        return True  # Any, a TypeVar, a forward reference: look at the value
    if issubclass(annotation, _PLAIN) or issubclass(annotation, enum.Enum):
        return False
    if hasattr(annotation, "__pydantic_fields__"):
        return bool(_fields_that_may_hold_secrets(annotation))
    return True  # SecretStr, SecretUrl, a path, anything else: look at the value


def _credential_parts(value: str) -> list[str]:
    """The secret parts of a header value: ``x`` of ``Bearer x`` (the scheme stays readable),
    ``user:password`` and ``password`` of ``Basic base64(user:password)``, else the value."""
    scheme, _, token = value.strip().partition(" ")
    token = token.strip()
    if not token or not scheme.isalpha() or len(scheme) > 16:
        return [value]
    parts = [token]
    if scheme.lower() == "basic":
        try:
            plain = base64.b64decode(token, validate=True).decode("utf-8")
        except ValueError:  # binascii.Error and UnicodeDecodeError both are
            return parts
        parts.append(plain)
        parts.append(plain.partition(":")[2])
    return parts


def _secret_value(value: Any) -> str | None:
    secret = value.get_secret_value() if hasattr(type(value), "get_secret_value") else value
    return secret if isinstance(secret, str) else None


def option_secrets(options: Any) -> set[str]:
    """Secret values in a check's options.

    ``SecretStr`` values, the passwords of secret URLs, the values of secret-named mapping keys
    (request headers such as ``Authorization``, ``Cookie``, ``X-Api-Key``, also in plain
    ``headers:``; of ``Bearer x`` the ``x``, of ``Basic x`` also the decoded ``user:password``), and
    ``username:password`` when a model has both (the text behind ``Basic`` credentials).

    Walks pydantic models, mappings and sequences; anything with ``secrets()`` (such as
    :class:`~probed.checks._db_common.SecretUrl`) contributes those, anything else with
    ``get_secret_value()`` its value. Values shorter than :data:`MIN_SECRET_LENGTH` are left out.
    """
    found: set[str] = set()

    def walk(value: Any) -> None:
        if value is None or isinstance(value, _PLAIN):
            return  # most option values: nothing to look into
        kind = type(value)  # looked up on the class: a model's __getattr__ is slow to fail
        if callable(getattr(kind, "secrets", None)):
            found.update(value.secrets())
        elif callable(getattr(kind, "get_secret_value", None)):
            secret = value.get_secret_value()
            if isinstance(secret, str):
                found.add(secret)
        elif hasattr(kind, "__pydantic_fields__"):
            for name in _fields_that_may_hold_secrets(kind):
                walk(getattr(value, name, None))
            for name in _text_fields(kind):
                text = getattr(value, name, None)
                if isinstance(text, str) and ("?" in text or "@" in text):
                    found.update(url_secrets(text))
            user = getattr(value, "username", None) or getattr(value, "user", None)
            password = _secret_value(getattr(value, "password", None))
            if isinstance(user, str) and password:
                found.add(f"{user}:{password}")
        elif isinstance(value, dict):
            for key, item in value.items():
                secret = _secret_value(item)
                if secret and isinstance(key, str) and is_secret_key(key):
                    found.update(_credential_parts(secret))
                else:
                    walk(item)
        elif isinstance(value, list | tuple | set | frozenset):
            for item in value:
                walk(item)

    walk(options)
    return {s for s in found if len(s) >= MIN_SECRET_LENGTH}


def redact_data(obj: Any, redactor: Callable[[str], str] | None = None) -> Any:
    """A copy of JSON-like ``obj`` safe to show.

    Values of secret-looking keys (``password``, ``token``, ``Authorization``, ``api_key``...)
    become ``***``, and so does pydantic's ``SecretStr`` dump (``**********``); strings that look
    like URLs go through :func:`redact_url`; every string also goes through ``redactor`` when
    given.
    """
    if isinstance(obj, str):
        if obj == _PYDANTIC_MASK:
            return MASK
        text = redact_url(obj)
        return redactor(text) if redactor else text
    if isinstance(obj, dict):
        out: dict[Any, Any] = {}
        for key, value in obj.items():
            if isinstance(key, str) and is_secret_key(key):
                out[key] = _mask_all(value)
            else:
                out[key] = redact_data(value, redactor)
        return out
    if isinstance(obj, list | tuple):
        return type(obj)(redact_data(v, redactor) for v in obj)
    return obj


def _mask_all(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _mask_all(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_mask_all(v) for v in obj)
    return obj if obj is None or obj == "" else MASK


def hide(message: str, pieces: Iterable[str]) -> str:
    """Keep interpolated values out of a configuration error message.

    Values of at least :data:`MIN_SECRET_LENGTH` characters are masked anywhere and in every
    form (see :class:`Redactor`); shorter ones only where quoted (``'on'``), since masking
    ``on`` everywhere would mangle the message.
    """
    given = [p for p in pieces if p]
    short = {p for p in given if len(p) < MIN_SECRET_LENGTH}
    long = [p for p in given if len(p) >= MIN_SECRET_LENGTH]
    # A long value may be shown cut ('first 20...last 10', probed.options): its ends too.
    ends = [e for p in long if len(p) > _CUT for e in (p[:_CUT_HEAD], p[-_CUT_TAIL:])]
    message = Redactor([*long, *ends])(message)
    for piece in sorted(short, key=len, reverse=True):
        message = message.replace(repr(piece), f"'{MASK}'").replace(f'"{piece}"', f'"{MASK}"')
    return message
