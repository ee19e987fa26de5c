"""The ``http`` check type: one HTTP(S) request per run on a fresh connection, every phase timed.

Options are :class:`HttpOptions`; the judging lives in :class:`~probed.checks._http.HttpProbe`,
shared with ``json_api``, and the request is sent by :mod:`probed.checks._httpclient`.
"""

from __future__ import annotations

from typing import Any, ClassVar

from probed import hookimpl
from probed.check import Check
from probed.checks._http import (
    HTTP_METRICS,
    BasicAuth,
    HttpOptions,
    HttpProbe,
    parse_status_codes,
)

__all__ = ["HTTP_METRICS", "BasicAuth", "HttpCheck", "HttpOptions", "parse_status_codes"]


class HttpCheck(HttpProbe):
    """Request a URL and judge the status, headers, body and TLS certificate."""

    type_name: ClassVar[str] = "http"
    description: ClassVar[str] = "HTTP(S) request with phase timings, status/body/TLS checks"


@hookimpl
def probed_register_check_types() -> list[type[Check[Any]]]:
    """Register the ``http`` check type."""
    return [HttpCheck]
