"""Address selection of the ``http`` check: ``preferred_ip_protocol`` + ``ip_protocol_fallback``.

Real aiohttp servers on ``127.0.0.1`` and/or ``::1``. This machine's resolver has no name for
both loopbacks (``localhost`` is IPv4 only), so the event loop's ``getaddrinfo`` answers for
``dual.test`` (``::1`` then ``127.0.0.1``, as glibc orders a dual-stack name) and ``v4.test``
(``127.0.0.1`` only), honouring the family asked, and passes every other name to the real one.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from pydantic import ValidationError

from probed.check import Reason, Status
from probed.checks.http import HttpCheck, HttpOptions
from probed.checks.json_api import JsonApiCheck
from probed.probe_endpoint import load_blackbox_modules
from probed.testing import make_spec, run_check
from tests._require import ipv6_loopback, requires

pytestmark = requires(ipv6_loopback, "no IPv6 on loopback (::1)")

_NAMES = {
    "dual.test": [(socket.AF_INET6, "::1"), (socket.AF_INET, "127.0.0.1")],
    "v4.test": [(socket.AF_INET, "127.0.0.1")],
}


@pytest.fixture
async def resolver(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Answer for the test names; record the family each lookup asked for."""
    loop = asyncio.get_running_loop()
    real = loop.getaddrinfo
    asked: list[int] = []

    async def fake(host: Any, port: Any, *, family: int = 0, **kwargs: Any) -> Any:
        if host not in _NAMES:
            return await real(host, port, family=family, **kwargs)
        asked.append(int(family))
        found = [
            (
                fam,
                socket.SOCK_STREAM,
                6,
                "",
                (ip, port) if fam == socket.AF_INET else (ip, port, 0, 0),
            )
            for fam, ip in _NAMES[host]
            if family in (socket.AF_UNSPEC, fam)
        ]
        if not found:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return found

    monkeypatch.setattr(loop, "getaddrinfo", fake)
    return asked


@contextlib.asynccontextmanager
async def serving(*hosts: str) -> AsyncIterator[tuple[int, list[str]]]:
    """One app on the same port of each of ``hosts``; yields (port, peer addresses seen)."""
    seen: list[str] = []

    async def hello(request: web.Request) -> web.Response:
        seen.append(str(request.remote))
        return web.Response(text="hello")

    app = web.Application()
    app.router.add_get("/", hello)
    for _ in range(20):  # the first family picks the port; the second may find it taken
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            first = web.TCPSite(runner, hosts[0], 0)
            await first.start()
            port = int(runner.addresses[0][1])
            for host in hosts[1:]:
                await web.TCPSite(runner, host, port).start()
        except OSError:
            await runner.cleanup()
            continue
        try:
            yield port, seen
        finally:
            await runner.cleanup()
        return
    raise AssertionError("no port free on both loopbacks")


@pytest.mark.parametrize(("prefer", "peer"), [("ip6", "::1"), ("ip4", "127.0.0.1")])
async def test_preferred_family_is_connected_to_first_on_a_dual_stack_name(
    resolver: list[int], prefer: str, peer: str
) -> None:
    async with serving("::1", "127.0.0.1") as (port, seen):
        result = await run_check(
            HttpCheck, url=f"http://dual.test:{port}/", preferred_ip_protocol=prefer
        )
    assert result.status is Status.OK, result.message
    assert seen == [peer]
    assert resolver == [socket.AF_UNSPEC]  # one lookup of every family, then ordered
    assert set(result.phases) >= {"resolve", "connect", "processing", "transfer"}


@pytest.mark.parametrize(
    ("listen", "prefer", "peer"), [("127.0.0.1", "ip6", "127.0.0.1"), ("::1", "ip4", "::1")]
)
async def test_falls_back_to_the_other_family_when_the_preferred_one_refuses(
    resolver: list[int], listen: str, prefer: str, peer: str
) -> None:
    async with serving(listen) as (port, seen):
        result = await run_check(
            HttpCheck, url=f"http://dual.test:{port}/", preferred_ip_protocol=prefer
        )
    assert result.status is Status.OK, result.message
    assert seen == [peer]


@pytest.mark.parametrize(
    ("listen", "prefer", "tried"), [("127.0.0.1", "ip6", "[::1]"), ("::1", "ip4", "127.0.0.1")]
)
async def test_without_fallback_only_the_preferred_family_is_tried(
    resolver: list[int], listen: str, prefer: str, tried: str
) -> None:
    async with serving(listen) as (port, seen):
        result = await run_check(
            HttpCheck,
            url=f"http://dual.test:{port}/",
            preferred_ip_protocol=prefer,
            ip_protocol_fallback=False,
        )
    assert result.status is Status.FAIL
    assert result.reason == Reason.CONNECTION_REFUSED
    assert f"{tried}:{port}" in result.message
    assert seen == []
    family = socket.AF_INET6 if prefer == "ip6" else socket.AF_INET
    assert resolver == [family]


async def test_a_name_without_the_preferred_family_falls_back_or_fails_as_dns(
    resolver: list[int],
) -> None:
    async with serving("127.0.0.1") as (port, seen):
        url = f"http://v4.test:{port}/"
        fallback = await run_check(HttpCheck, url=url, preferred_ip_protocol="ip6")
        strict = await run_check(
            HttpCheck, url=url, preferred_ip_protocol="ip6", ip_protocol_fallback=False
        )
    assert fallback.status is Status.OK, fallback.message
    assert seen == ["127.0.0.1"]
    assert strict.status is Status.FAIL
    assert strict.reason == Reason.DNS
    assert "cannot resolve IPv6 address of v4.test" in strict.message


async def test_without_preference_every_address_is_tried_in_the_resolvers_order(
    resolver: list[int],
) -> None:
    async with serving("127.0.0.1") as (port, seen):
        result = await run_check(HttpCheck, url=f"http://dual.test:{port}/")
        only6 = await run_check(HttpCheck, url=f"http://dual.test:{port}/", ip_version="ip6")
    assert result.status is Status.OK, result.message  # ::1 refused, then 127.0.0.1
    assert seen == ["127.0.0.1"]
    assert only6.reason == Reason.CONNECTION_REFUSED


async def test_json_api_inherits_the_preference(resolver: list[int]) -> None:
    async def data(request: web.Request) -> web.Response:
        return web.json_response({"peer": request.remote})

    app = web.Application()
    app.router.add_get("/", data)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "::1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        ok = await run_check(
            JsonApiCheck,
            url=f"http://dual.test:{port}/",
            preferred_ip_protocol="ip4",
            assertions=[{"path": "peer", "op": "eq", "value": "::1"}],
        )
    finally:
        await runner.cleanup()
    assert ok.status is Status.OK, ok.message


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"ip_version": "ip4", "preferred_ip_protocol": "ip6"},
            "set ip_version or preferred_ip_protocol, not both",
        ),
        ({"ip_protocol_fallback": False}, "ip_protocol_fallback needs preferred_ip_protocol"),
        (
            {"url": "http://127.0.0.1/", "preferred_ip_protocol": "ip6", "ip_protocol_fallback": 0},
            "url host 127.0.0.1 is an IPv4 address but preferred_ip_protocol is ip6 without "
            "ip_protocol_fallback",
        ),
        ({"url": "http://[::1]/", "ip_version": "ip4"}, "url host ::1 is an IPv6 address"),
        ({"preferred_ip_protocol": "ipv6"}, "preferred_ip_protocol"),
    ],
)
def test_inconsistent_address_options_are_refused(options: dict[str, Any], message: str) -> None:
    options = {"url": "http://example.test/", **options}
    with pytest.raises(ValidationError, match=message.replace("[", r"\[")):
        HttpOptions.model_validate(options)


def test_an_ip_literal_of_the_other_family_is_used_when_fallback_is_on() -> None:
    spec = make_spec(HttpCheck, url="http://127.0.0.1:9/", preferred_ip_protocol="ip6")
    assert HttpCheck(spec).options.socket_family() == socket.AF_UNSPEC


def test_blackbox_modules_map_onto_the_address_options(tmp_path: Path) -> None:
    modules = tmp_path / "blackbox.yml"
    modules.write_text(
        "modules:\n"
        "  only_fallback: {prober: http, http: {ip_protocol_fallback: false}}\n"
        "  ip4: {prober: http, http: {preferred_ip_protocol: ip4}}\n"
        "  none: {prober: http, http: {}}\n"
    )
    loaded = load_blackbox_modules(modules)
    # blackbox's default preference (ip6) applies when only ip_protocol_fallback is given
    assert loaded["only_fallback"].options["preferred_ip_protocol"] == "ip6"
    assert loaded["only_fallback"].options["ip_protocol_fallback"] is False
    assert loaded["ip4"].options["preferred_ip_protocol"] == "ip4"
    assert "preferred_ip_protocol" not in loaded["none"].options
