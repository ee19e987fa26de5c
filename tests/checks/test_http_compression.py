"""``compression`` of the ``http`` and ``json_api`` check types against real loopback servers.

An aiohttp server serves gzip, deflate (zlib-wrapped and raw), br and plain bodies with the
matching ``Content-Encoding`` and answers 406 unless ``Accept-Encoding`` is what the check
asked for; decompression bombs (an endless gzip stream of 16 MiB members, a 256 MiB br stream of
a few hundred bytes) fail with ``body_size`` after reading little; broken and truncated streams
fail with ``protocol``; a response in another coding fails with ``assertion``.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import zlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import brotli
import pytest
from aiohttp import web
from pydantic import ValidationError

from probed.check import Reason, Status
from probed.checks._http_decode import DecodeError, new_decoder
from probed.checks.http import HttpCheck, HttpOptions
from probed.checks.json_api import JsonApiCheck
from probed.testing import run_check
from tests.checks.test_http import serve
from tests.servers.tls import TlsFiles

TEXT = b"compressed hello: all systems nominal. " * 200
ZEROS = bytes(16 << 20)
GZIP_MEMBER = gzip.compress(ZEROS, compresslevel=1)  # 16 MiB of zeros in ~16 KiB
BR_BOMB = brotli.compress(bytes(256 << 20), quality=5)  # 256 MiB in a few hundred bytes


def _raw_deflate(data: bytes) -> bytes:
    obj = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    return obj.compress(data) + obj.flush()


ENCODED = {
    "gzip": gzip.compress(TEXT),
    "deflate": zlib.compress(TEXT),  # RFC 9110's deflate: the zlib format
    "deflate-raw": _raw_deflate(TEXT),  # what some servers send as deflate
    "br": brotli.compress(TEXT),
}


class Served:
    """What the server saw and sent."""

    def __init__(self) -> None:
        self.accept: list[str | None] = []
        self.bomb_bytes = 0
        self.bomb_done = asyncio.Event()


def make_app(seen: Served) -> web.Application:
    async def encoded(request: web.Request) -> web.Response:
        kind = request.match_info["kind"]
        coding = "deflate" if kind == "deflate-raw" else kind
        seen.accept.append(request.headers.get("Accept-Encoding"))
        if request.headers.get("Accept-Encoding") != coding:
            return web.Response(status=406, text="wrong Accept-Encoding")
        return web.Response(body=ENCODED[kind], headers={"Content-Encoding": coding})

    async def plain(request: web.Request) -> web.Response:
        seen.accept.append(request.headers.get("Accept-Encoding"))
        return web.Response(body=TEXT)

    async def labelled(request: web.Request) -> web.Response:
        # Content-Encoding from the query, body as is: a liar or a mismatch.
        body = ENCODED["gzip"] if request.query.get("body") == "gzip" else TEXT
        return web.Response(body=body, headers={"Content-Encoding": request.query["ce"]})

    async def multi(request: web.Request) -> web.Response:
        body = gzip.compress(b"first member; ") + gzip.compress(b"second member")
        return web.Response(body=body, headers={"Content-Encoding": "gzip"})

    async def truncated(request: web.Request) -> web.Response:
        return web.Response(body=ENCODED["gzip"][:-12], headers={"Content-Encoding": "gzip"})

    async def trailing(request: web.Request) -> web.Response:
        body = ENCODED["deflate"] + b"junk after the stream"
        return web.Response(body=body, headers={"Content-Encoding": "deflate"})

    async def gzip_bomb(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Encoding": "gzip"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            for _ in range(65536):  # 1 TiB decoded, 1 GiB sent, if nobody stops reading
                await response.write(GZIP_MEMBER)
                seen.bomb_bytes += len(GZIP_MEMBER)
        except (ConnectionError, RuntimeError):
            pass
        finally:
            seen.bomb_done.set()
        return response

    async def br_bomb(request: web.Request) -> web.Response:
        return web.Response(body=BR_BOMB, headers={"Content-Encoding": "br"})

    async def redirect(request: web.Request) -> web.Response:
        return web.Response(status=302, text="moved, plain", headers={"Location": "/enc/gzip"})

    async def json_gz(request: web.Request) -> web.Response:
        body = gzip.compress(json.dumps({"status": "UP", "pad": "x" * 500}).encode())
        return web.Response(
            body=body, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"}
        )

    app = web.Application()
    app.router.add_get("/enc/{kind}", encoded)
    app.router.add_route("*", "/plain", plain)
    app.router.add_get("/labelled", labelled)
    app.router.add_get("/multi", multi)
    app.router.add_get("/truncated", truncated)
    app.router.add_get("/trailing", trailing)
    app.router.add_get("/bomb/gzip", gzip_bomb)
    app.router.add_get("/bomb/br", br_bomb)
    app.router.add_get("/redirect", redirect)
    app.router.add_get("/json", json_gz)
    return app


@pytest.fixture
async def seen() -> Served:
    return Served()


@pytest.fixture
async def base(seen: Served) -> AsyncIterator[str]:
    async with serve(app=make_app(seen)) as url:
        yield url


# -- decoding -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "compression"),
    [("gzip", "gzip"), ("deflate", "deflate"), ("deflate-raw", "deflate"), ("br", "br")],
)
async def test_each_coding_is_asked_for_required_and_decoded(
    base: str, seen: Served, kind: str, compression: str
) -> None:
    result = await run_check(
        HttpCheck,
        url=f"{base}/enc/{kind}",
        compression=compression,
        body_must_match=["^compressed hello: all systems nominal\\. compressed"],
    )
    assert result.status is Status.OK, result.message
    assert seen.accept == [compression]
    assert result.values["probed_http_content_length_bytes"] == len(TEXT)  # decoded bytes


async def test_identity_sends_identity_and_passes_a_plain_body(base: str, seen: Served) -> None:
    result = await run_check(HttpCheck, url=f"{base}/plain", compression="identity")
    assert result.status is Status.OK, result.message
    assert seen.accept == ["identity"]


async def test_no_compression_sends_no_accept_encoding(base: str, seen: Served) -> None:
    result = await run_check(HttpCheck, url=f"{base}/plain", method="POST")
    assert result.status is Status.OK, result.message
    assert seen.accept == [None]


async def test_an_accept_encoding_header_of_the_check_is_kept(base: str, seen: Served) -> None:
    result = await run_check(
        HttpCheck,
        url=f"{base}/labelled?ce=gzip&body=gzip",
        compression="gzip",
        headers={"Accept-Encoding": "gzip, br"},
        body_must_match=["all systems nominal"],
    )
    assert result.status is Status.OK, result.message


async def test_gzip_with_several_members_is_decoded_whole(base: str) -> None:
    result = await run_check(
        HttpCheck,
        url=f"{base}/multi",
        compression="gzip",
        body_must_match=["^first member; second member$"],
    )
    assert result.status is Status.OK, result.message


async def test_plain_redirect_then_compressed_final_response_passes(base: str) -> None:
    result = await run_check(HttpCheck, url=f"{base}/redirect", compression="gzip")
    assert result.status is Status.OK, result.message
    assert result.values["probed_http_redirects"] == 1


async def test_json_api_reads_a_compressed_json_body(base: str) -> None:
    result = await run_check(
        JsonApiCheck,
        url=f"{base}/json",
        compression="gzip",
        assertions=[{"path": "status", "op": "eq", "value": "UP"}],
    )
    assert result.status is Status.OK, result.message


# -- required coding ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("compression", "path", "shown"),
    [
        ("gzip", "/plain", "Content-Encoding is none, expected gzip"),
        ("br", "/labelled?ce=gzip&body=gzip", "Content-Encoding is 'gzip', expected br"),
        ("identity", "/labelled?ce=gzip&body=gzip", "expected none (identity)"),
    ],
)
async def test_a_response_in_another_coding_fails_with_assertion(
    base: str, compression: str, path: str, shown: str
) -> None:
    result = await run_check(HttpCheck, url=f"{base}{path}", compression=compression)
    assert result.status is Status.FAIL
    assert result.reason == Reason.ASSERTION
    assert f"compression: {compression}" in result.message
    assert shown in result.message


async def test_a_body_that_is_not_gzip_fails_with_protocol(base: str) -> None:
    result = await run_check(HttpCheck, url=f"{base}/labelled?ce=gzip", compression="gzip")
    assert result.status is Status.FAIL
    assert result.reason == Reason.PROTOCOL
    assert "the gzip body does not decode" in result.message


async def test_a_truncated_gzip_body_fails_with_protocol(base: str) -> None:
    result = await run_check(HttpCheck, url=f"{base}/truncated", compression="gzip")
    assert result.status is Status.FAIL
    assert result.reason == Reason.PROTOCOL
    assert "ends in the middle of the gzip stream" in result.message


async def test_data_after_a_deflate_stream_fails_with_protocol(base: str) -> None:
    result = await run_check(HttpCheck, url=f"{base}/trailing", compression="deflate")
    assert result.status is Status.FAIL
    assert result.reason == Reason.PROTOCOL
    assert "after the end of the deflate stream" in result.message


# -- bombs --------------------------------------------------------------------------------------


async def test_an_endless_gzip_bomb_fails_with_body_size_after_reading_little(
    base: str, seen: Served
) -> None:
    result = await run_check(
        HttpCheck, url=f"{base}/bomb/gzip", compression="gzip", max_body_size="1MiB", timeout=20
    )
    assert result.status is Status.FAIL
    assert result.reason == Reason.BODY_SIZE
    assert "max_body_size of 1048576 bytes" in result.message
    async with asyncio.timeout(10):
        await seen.bomb_done.wait()  # the server's write failed: the client hung up
    # What the server got out before the client hung up (socket buffers included) is a sliver of
    # the 1 GiB it would send: reading stopped at the budget.
    assert seen.bomb_bytes < 16 << 20, seen.bomb_bytes  # 4 MiB measured


async def test_a_br_bomb_fails_with_body_size(base: str) -> None:
    result = await run_check(HttpCheck, url=f"{base}/bomb/br", compression="br", timeout=20)
    assert result.status is Status.FAIL
    assert result.reason == Reason.BODY_SIZE
    assert "max_body_size of 10485760 bytes" in result.message


@pytest.mark.parametrize(
    ("coding", "bomb"),
    [("gzip", GZIP_MEMBER), ("br", BR_BOMB), ("deflate", zlib.compress(ZEROS, 1))],
)
def test_a_decoder_never_returns_much_more_than_the_room_left(coding: str, bomb: bytes) -> None:
    decoder = new_decoder(coding)
    assert decoder is not None
    out = decoder.feed(bomb, 1000)
    assert 1000 < len(out) <= 1 << 20  # over the room (so the caller stops), yet bounded


def test_a_decoder_rejects_garbage() -> None:
    decoder = new_decoder("br")
    assert decoder is not None
    with pytest.raises(DecodeError, match="br stream is invalid"):
        decoder.feed(b"this is not brotli at all" * 10, 1 << 20)


# -- options ------------------------------------------------------------------------------------


def test_compression_is_validated_and_case_insensitive() -> None:
    options = HttpOptions.model_validate({"url": "http://127.0.0.1/", "compression": "GZIP"})
    assert options.compression == "gzip"
    with pytest.raises(ValidationError, match="compression"):
        HttpOptions.model_validate({"url": "http://127.0.0.1/", "compression": "zip"})


def test_compression_appears_in_the_schema() -> None:
    schema: dict[str, Any] = HttpOptions.model_json_schema()
    assert "compression" in schema["properties"]


# -- HTTP/2 -------------------------------------------------------------------------------------


async def test_http2_bodies_are_decoded_and_bombs_cut(
    h2_servers: Callable[[str], str], tls_files: TlsFiles
) -> None:
    base = h2_servers("alpn")
    tls: dict[str, Any] = {"tls": {"ca_file": tls_files.ca_file}}
    result = await run_check(
        HttpCheck,
        url=f"{base}/gzip",
        enable_http2=True,
        compression="gzip",
        valid_http_versions=["HTTP/2.0"],
        body_must_match=["^h2 gzip hello h2 gzip hello"],
        **tls,
    )
    assert result.status is Status.OK, result.message
    assert result.values["probed_http_content_length_bytes"] == len(b"h2 gzip hello " * 100)
    bomb = await run_check(
        HttpCheck,
        url=f"{base}/gzip-bomb",
        enable_http2=True,
        compression="gzip",
        max_body_size="1MiB",
        timeout=20,
        **tls,
    )
    assert bomb.status is Status.FAIL
    assert bomb.reason == Reason.BODY_SIZE, bomb.message
