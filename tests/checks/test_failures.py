"""The one failure classifier: each exception shape maps to one reason, in every check type."""

from __future__ import annotations

import errno
import socket
import ssl

import pytest

from probed.check import Reason
from probed.checks._failures import UNREACHABLE_ERRNOS, classify, describe, network_failure


def _tls_error() -> ssl.SSLError:
    exc = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number")
    exc.reason = "WRONG_VERSION_NUMBER"  # set by the ssl module on real errors
    return exc


def _cert_error() -> ssl.SSLCertVerificationError:
    exc = ssl.SSLCertVerificationError(1, "certificate verify failed")
    exc.verify_code = 19
    exc.verify_message = "self-signed certificate in certificate chain"
    return exc


SHAPES: list[tuple[str, BaseException, str | None]] = [
    (
        "refused",
        ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"),
        "connection_refused",
    ),
    (
        "reset",
        ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"),
        "connection_reset",
    ),
    ("broken pipe", BrokenPipeError(errno.EPIPE, "Broken pipe"), "connection_reset"),
    ("aborted", ConnectionAbortedError(errno.ECONNABORTED, "aborted"), "connection_reset"),
    ("resolver", socket.gaierror(socket.EAI_NONAME, "Name or service not known"), "dns"),
    ("tls", _tls_error(), "tls"),
    ("certificate", _cert_error(), "tls"),
    ("asyncio timeout", TimeoutError(), "timeout"),
    ("socket timeout", TimeoutError("timed out"), "timeout"),
    ("connect timeout", TimeoutError(errno.ETIMEDOUT, "Connection timed out"), "timeout"),
    *[
        (errno.errorcode[code], OSError(code, "no route"), "unreachable")
        for code in sorted(UNREACHABLE_ERRNOS)
    ],
    # OSError(ECONNREFUSED, ...) is built as a ConnectionRefusedError by Python itself.
    ("refused errno", OSError(errno.ECONNREFUSED, "Connection refused"), "connection_refused"),
    ("other OSError", OSError(errno.EACCES, "Permission denied"), None),
    ("not an OSError", ValueError("bad"), None),
]


@pytest.mark.parametrize(("shape", "exc", "reason"), SHAPES, ids=[s[0] for s in SHAPES])
def test_each_exception_shape_has_one_reason(
    shape: str, exc: BaseException, reason: str | None
) -> None:
    assert classify(exc) == reason
    described = describe(exc, "db.internal:5432")
    if reason is None:
        assert described is None
    else:
        assert described is not None
        assert described[0] == reason
        assert "db.internal:5432" in described[1]


def test_reasons_are_the_well_known_ones() -> None:
    known = {v for k, v in vars(Reason).items() if k.isupper()}
    assert {reason for _, _, reason in SHAPES if reason is not None} <= known


def test_a_driver_error_wrapping_a_network_error_is_classified_by_its_cause() -> None:
    class DriverError(Exception):
        pass

    try:
        try:
            raise ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
        except OSError as cause:
            raise DriverError("could not connect") from cause
    except DriverError as exc:
        wrapped = exc
    found = network_failure(wrapped, "127.0.0.1:6379")
    assert found is not None
    assert found[0] == Reason.CONNECTION_REFUSED
    assert found[1].startswith("connection refused by 127.0.0.1:6379")
    assert network_failure(DriverError("syntax error"), "h") is None


def test_the_certificate_sentence_says_why_it_was_not_accepted() -> None:
    found = describe(_cert_error(), "h:443")
    assert found is not None
    assert found[1].startswith("h:443: TLS certificate verify failed")
