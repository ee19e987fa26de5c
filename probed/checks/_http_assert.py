"""Response assertions of ``http`` and ``json_api`` beyond status and body (blackbox's names).

- :class:`AssertionOptions`: ``fail_if_ssl``, ``fail_if_not_ssl``, ``fail_if_header_matches``
  and ``fail_if_header_not_matches`` (lists of ``{header, regexp, allow_missing}`` judged on
  every value of a repeated header, as blackbox_exporter does) and ``header_must_not_match``
  (header name -> regex, the counterpart of ``header_must_match``; a missing header passes),
  mixed into :class:`~probed.checks._http.HttpOptions`.
- :class:`ResponseAssertions`: those options compiled once per check, with ``compression``'s
  Content-Encoding requirement (:mod:`probed.checks._http_decode`); :func:`response_assertions`
  gives ``None`` when nothing is configured, so the default path does no work.

Each failure is reason ``assertion`` with a message naming the option.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Final

from pydantic import Field, field_validator, model_validator

from probed.check import CheckOptions, Reason
from probed.checks._http_decode import coding_matches, content_coding

if TYPE_CHECKING:
    from probed.checks._httpclient import HttpResponse

__all__ = ["AssertionOptions", "HeaderMatch", "ResponseAssertions", "response_assertions"]

_TOKEN_RE: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_NO_BODY: Final = frozenset({204, 304})


def _regex(pattern: str, where: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"{where}: invalid regular expression {pattern!r}: {exc}") from None


def _header_name(name: str) -> str:
    if not _TOKEN_RE.fullmatch(name):
        raise ValueError(f"invalid header name {name!r}")
    return name


class HeaderMatch(CheckOptions):
    """One header assertion, as blackbox_exporter writes it."""

    header: str = Field(description="Response header name (any letter case).")
    regexp: str = Field(description="Regular expression searched in each value of the header.")
    allow_missing: bool = Field(
        default=False, description="Pass when the header is absent (else absence fails)."
    )

    @field_validator("header")
    @classmethod
    def _name(cls, value: str) -> str:
        return _header_name(value)

    @field_validator("regexp")
    @classmethod
    def _pattern(cls, value: str) -> str:
        _regex(value, "regexp")
        return value


class AssertionOptions(CheckOptions):
    """``fail_if_ssl``, ``fail_if_not_ssl`` and the header assertions of ``http``/``json_api``."""

    fail_if_ssl: bool = Field(
        default=False, description="Fail when the final response came over TLS."
    )
    fail_if_not_ssl: bool = Field(
        default=False, description="Fail when the final response did not come over TLS."
    )
    fail_if_header_matches: list[HeaderMatch] = Field(
        default_factory=list,
        description="Fail when any value of the header matches regexp (blackbox's option).",
    )
    fail_if_header_not_matches: list[HeaderMatch] = Field(
        default_factory=list,
        description="Fail unless some value of the header matches regexp (blackbox's option).",
    )
    header_must_not_match: dict[str, str] = Field(
        default_factory=dict,
        description="Response header name -> regex no value of it may match (absent passes).",
    )

    @field_validator("header_must_not_match")
    @classmethod
    def _not_match(cls, value: dict[str, str]) -> dict[str, str]:
        for name, pattern in value.items():
            _header_name(name)
            _regex(pattern, f"header_must_not_match.{name}")
        return value

    @model_validator(mode="after")
    def _ssl_both(self) -> AssertionOptions:
        if self.fail_if_ssl and self.fail_if_not_ssl:
            raise ValueError("fail_if_ssl and fail_if_not_ssl together can never pass: set one")
        return self


def _excerpt(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


class ResponseAssertions:
    """The assertions of one check, compiled once; :meth:`problem` judges a final response."""

    __slots__ = ("compression", "fail_if_not_ssl", "fail_if_ssl", "forbidden", "required")

    def __init__(self, options: AssertionOptions, compression: str | None) -> None:
        self.compression = compression
        self.fail_if_ssl = options.fail_if_ssl
        self.fail_if_not_ssl = options.fail_if_not_ssl
        # (option, header, regex, allow_missing)
        self.forbidden = [
            ("fail_if_header_matches", m.header, re.compile(m.regexp), m.allow_missing)
            for m in options.fail_if_header_matches
        ] + [
            ("header_must_not_match", name, re.compile(p), True)
            for name, p in options.header_must_not_match.items()
        ]
        self.required = [
            ("fail_if_header_not_matches", m.header, re.compile(m.regexp), m.allow_missing)
            for m in options.fail_if_header_not_matches
        ]

    def problem(self, response: HttpResponse, method: str) -> tuple[str, str] | None:
        """(reason, detail) of the first assertion the response fails, or None."""
        tls = response.url.scheme == "https"
        if self.fail_if_ssl and tls:
            return (
                Reason.ASSERTION,
                f"fail_if_ssl: the final response came over TLS ({response.url})",
            )
        if self.fail_if_not_ssl and not tls:
            return (
                Reason.ASSERTION,
                f"fail_if_not_ssl: the final response came without TLS ({response.url})",
            )
        if self.compression is not None:
            found = self._coding_problem(response, method)
            if found:
                return Reason.ASSERTION, found
        for option, name, pattern, allow_missing in self.forbidden:
            values = response.headers.get_all(name)
            if not values and not allow_missing:
                return Reason.ASSERTION, f"{option}: response header {name} is missing"
            for value in values:
                if pattern.search(value):
                    return (
                        Reason.ASSERTION,
                        f"{option}: response header {name}: {_excerpt(value)} matches "
                        f"forbidden /{pattern.pattern}/",
                    )
        for option, name, pattern, allow_missing in self.required:
            values = response.headers.get_all(name)
            if not values:
                if allow_missing:
                    continue
                return Reason.ASSERTION, f"{option}: response header {name} is missing"
            if not any(pattern.search(value) for value in values):
                shown = ", ".join(_excerpt(v) for v in values[:3])
                return (
                    Reason.ASSERTION,
                    f"{option}: response header {name}: {shown} does not match /{pattern.pattern}/",
                )
        return None

    def _coding_problem(self, response: HttpResponse, method: str) -> str | None:
        value = response.headers.get("content-encoding")
        wanted = self.compression
        assert wanted is not None
        if coding_matches(wanted, value):
            return None
        if method == "HEAD" or response.status in _NO_BODY or response.status < 200:
            return None
        if not response.body_size:
            return None  # no body to decode
        shown = "none" if value is None else _excerpt(content_coding(value))
        return (
            f"compression: {wanted}: the response's Content-Encoding is {shown}, "
            f"expected {wanted if wanted != 'identity' else 'none (identity)'}"
        )


def response_assertions(
    options: AssertionOptions, compression: str | None
) -> ResponseAssertions | None:
    """The compiled assertions of a check, or ``None`` when it configures none."""
    if (
        options.fail_if_ssl
        or options.fail_if_not_ssl
        or options.fail_if_header_matches
        or options.fail_if_header_not_matches
        or options.header_must_not_match
        or compression is not None
    ):
        return ResponseAssertions(options, compression)
    return None
