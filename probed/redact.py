"""Keeping secrets out of messages, logs, metrics and the API.

- :class:`Redactor` replaces known secret values (from ``${file:...}`` and secret-looking
  environment variables, see :attr:`probed.config.LoadResult.secrets`) with ``***`` in any text.
- :func:`redact_url` masks the password of a URL's userinfo and secret query parameters.
- :func:`redact_data` walks JSON-like data and masks the values of secret-looking keys.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

__all__ = ["MASK", "Redactor", "is_secret_key", "redact_data", "redact_url"]

MASK: Final = "***"

_SECRET_KEY: Final = re.compile(
    r"pass(word|wd|phrase)?$|^pwd$|secret|token|credential|authorization|^auth$|_auth$"
    r"|api_?key|private_?key|access_?key|secret_?key|cookie|session_?id|signature$|^sig$",
)
_SECRET_PARAM: Final = re.compile(
    r"pass(word|wd)?$|^pwd$|secret|token|credential|^auth|api_?key|^key$|access_?key"
    r"|signature|^sig$|^code$",
)
# Fallback when urlsplit refuses a string: mask ``user:password@`` after a scheme.
_USERINFO: Final = re.compile(r"(?P<pre>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:)[^@\s/]*(?P<at>@)")


def _normal(key: str) -> str:
    return key.strip().lower().replace("-", "_")


def is_secret_key(key: str) -> bool:
    """Whether a mapping key or header name names a secret (``password``, ``X-Api-Key``...)."""
    return _SECRET_KEY.search(_normal(key)) is not None


class Redactor:
    """Replaces every known secret value in a text with ``***``, longest first.

    Calling a redactor built from no secrets returns the text unchanged at almost no cost.
    """

    __slots__ = ("_pattern", "secrets")

    def __init__(self, secrets: Iterable[str]) -> None:
        self.secrets: frozenset[str] = frozenset(s for s in secrets if s)
        # Longest first, so a secret that contains another is masked whole.
        ordered = sorted(self.secrets, key=lambda s: (-len(s), s))
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def __call__(self, text: str) -> str:
        """``text`` with each secret replaced by ``***``."""
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(MASK, text)

    def __bool__(self) -> bool:
        return self._pattern is not None


def _redact_query(query: str) -> str:
    parts = query.split("&")
    for i, part in enumerate(parts):
        name, eq, value = part.partition("=")
        if eq and value and _SECRET_PARAM.search(_normal(name)):
            parts[i] = f"{name}={MASK}"
    return "&".join(parts)


def redact_url(url: str) -> str:
    """``url`` with the userinfo password and secret query parameters masked.

    ``postgresql://u:pw@h/db`` gives ``postgresql://u:***@h/db``, ``redis://:pw@h`` gives
    ``redis://:***@h``, ``https://h/x?token=abc&page=2`` gives ``https://h/x?token=***&page=2``.
    Anything that is not a URL is returned unchanged.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return _USERINFO.sub(rf"\g<pre>{MASK}\g<at>", url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user, colon, password = userinfo.partition(":")
        if colon and password:
            netloc = f"{user}:{MASK}@{hostport}"
    query = _redact_query(parts.query) if parts.query else parts.query
    if netloc == parts.netloc and query == parts.query:
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_data(obj: Any, redactor: Callable[[str], str] | None = None) -> Any:
    """A copy of JSON-like ``obj`` safe to show.

    Values of secret-looking keys (``password``, ``token``, ``Authorization``, ``api_key``...)
    become ``***``; strings that look like URLs go through :func:`redact_url`; every string
    also goes through ``redactor`` when given. Pydantic ``SecretStr`` fields already dump as
    ``**********`` and are left alone.
    """
    if isinstance(obj, str):
        text = redact_url(obj) if "://" in obj else obj
        return redactor(text) if redactor else text
    if isinstance(obj, dict):
        out: dict[Any, Any] = {}
        for key, value in obj.items():
            if isinstance(key, str) and is_secret_key(key) and not _masked(value):
                out[key] = _mask_all(value)
            else:
                out[key] = redact_data(value, redactor)
        return out
    if isinstance(obj, list | tuple):
        return type(obj)(redact_data(v, redactor) for v in obj)
    return obj


def _masked(value: Any) -> bool:
    """Nothing to hide: empty, or already masked (``SecretStr`` dumps as ``**********``)."""
    return value is None or (isinstance(value, str) and value.strip("*") == "")


def _mask_all(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _mask_all(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_mask_all(v) for v in obj)
    return obj if _masked(obj) else MASK
