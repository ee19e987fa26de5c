"""The ``json_api`` check type against real aiohttp servers on 127.0.0.1: the fault matrix,
every assertion operator, the health formats and their per-component series."""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydantic
import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestServer

from probed.check import Reason, Result, Status
from probed.checks import json_api
from probed.checks._json_assert import json_equal
from probed.checks._json_path import JsonPath, PathMissingError
from probed.checks.json_api import UNHEALTHY, JsonApiCheck, JsonApiOptions
from probed.testing import run_check
from tests.servers._util import free_port

ROOT: Path = Path(__file__).parents[2]
EXAMPLE: Path = ROOT / "checks.d" / "json_api.yaml"


@dataclass
class JsonTarget:
    """What the test server answers; tests change it between runs."""

    url: str = ""
    status: int = 200
    body: bytes = b"{}"
    content_type: str = "application/json"
    silent: bool = False
    release: asyncio.Event = field(default_factory=asyncio.Event)
    requests: list[web.Request] = field(default_factory=list)

    def serve(
        self, payload: Any, *, status: int = 200, content_type: str = "application/json"
    ) -> None:
        """Answer with ``payload`` as JSON."""
        self.body = json.dumps(payload).encode()
        self.status = status
        self.content_type = content_type


@pytest.fixture
async def target() -> AsyncIterator[JsonTarget]:
    """A real aiohttp server on 127.0.0.1 answering whatever the ``JsonTarget`` says."""
    state = JsonTarget()

    async def handler(request: web.Request) -> web.Response:
        state.requests.append(request)
        if state.silent:
            await state.release.wait()  # never set during the test: the target hangs
        return web.Response(status=state.status, body=state.body, content_type=state.content_type)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    state.url = str(server.make_url("/health"))
    try:
        yield state
    finally:
        state.release.set()  # let a hanging handler finish so the server closes promptly
        await server.close()


def samples(result: Result) -> dict[tuple[str, tuple[str, ...]], float]:
    """Result samples keyed by (metric, labels)."""
    return {(s.name, s.labels): s.value for s in result.samples}


def component_state(result: Result, component: str) -> str:
    """The status whose state-set sample is 1 for ``component``."""
    on = [
        labels[1]
        for (name, labels), value in samples(result).items()
        if name == "probed_component_status" and labels[0] == component and value == 1.0
    ]
    assert len(on) == 1, f"{component}: {on}"
    return on[0]


def component_up(result: Result, component: str) -> float:
    """The ``probed_component_up`` value of ``component``."""
    return samples(result)[("probed_component_up", (component,))]


# -- the basic matrix --------------------------------------------------------------------------


async def test_passes_when_the_body_is_healthy_and_every_assertion_holds(
    target: JsonTarget,
) -> None:
    target.serve({"status": "ok", "db": {"latency_ms": 12}, "items": [1, 2, 3]})
    result = await run_check(
        JsonApiCheck,
        url=target.url,
        assertions=[
            {"path": "db.latency_ms", "op": "lt", "value": 500},
            {"path": "items", "op": "length", "value": 3},
        ],
    )
    assert result.status is Status.OK, result.message
    assert result.reason == ""
    assert result.values["probed_http_status_code"] == 200
    assert "service reports ok (plain status)" in result.message
    assert "2 assertion(s) hold" in result.message
    assert {"connect", "processing"} <= set(result.phases)
    assert "json" in (target.requests[0].headers.get("Accept") or "")


async def test_a_large_body_is_decoded_in_the_json_api_worker_pool(target: JsonTarget) -> None:
    # Above 64 KiB the JSON is parsed in probed's bounded pool for the type (run_blocking), not
    # on the loop and not in asyncio's shared default executor.
    from probed.threads import pool_stats

    target.serve({"status": "ok", "items": list(range(40_000))})
    result = await run_check(
        JsonApiCheck, url=target.url, assertions=[{"path": "items", "op": "length", "value": 40000}]
    )
    assert result.status is Status.OK, result.message
    assert "json_api" in pool_stats()


async def test_connection_refused_fails_with_reason_connection_refused() -> None:
    port = free_port()
    result = await run_check(JsonApiCheck, url=f"http://127.0.0.1:{port}/health")
    assert result.status is Status.FAIL
    assert result.reason == Reason.CONNECTION_REFUSED
    assert f"127.0.0.1:{port}" in result.message
    assert result.samples == ()


async def test_silent_target_ends_at_the_timeout(target: JsonTarget) -> None:
    target.silent = True
    result = await run_check(JsonApiCheck, timeout=0.5, url=target.url)
    assert result.status is Status.FAIL
    assert result.reason == Reason.TIMEOUT
    assert 0.5 <= result.duration < 2.0
    assert len(target.requests) == 1


async def test_invalid_json_fails_with_reason_protocol_and_the_parser_position(
    target: JsonTarget,
) -> None:
    target.body = b"<html>hello</html>"
    target.content_type = "text/html"
    result = await run_check(JsonApiCheck, url=target.url)
    assert result.status is Status.FAIL
    assert result.reason == Reason.PROTOCOL
    assert "response is not JSON: Expecting value at line 1 column 1" in result.message
    assert "text/html" in result.message


async def test_invalid_json_error_page_reports_the_http_status_instead(target: JsonTarget) -> None:
    target.body = b"<html>502 Bad Gateway</html>"
    target.status = 502
    target.content_type = "text/html"
    result = await run_check(JsonApiCheck, url=target.url)
    assert result.status is Status.FAIL
    assert result.reason == Reason.STATUS
    assert "502" in result.message


async def test_invalid_utf8_is_not_json(target: JsonTarget) -> None:
    target.body = b'{"status": "\xff"}'
    result = await run_check(JsonApiCheck, url=target.url)
    assert result.reason == Reason.PROTOCOL
    assert "invalid UTF-8" in result.message


async def test_missing_path_fails_saying_where_the_walk_stopped(target: JsonTarget) -> None:
    target.serve({"db": {"ok": True}})
    result = await run_check(
        JsonApiCheck, url=target.url, assertions=[{"path": "db.latency_ms", "op": "lt", "value": 5}]
    )
    assert result.status is Status.FAIL
    assert result.reason == Reason.ASSERTION
    assert "$.db.latency_ms is missing ($.db has no key 'latency_ms')" in result.message


async def test_string_where_a_number_is_expected_fails_naming_the_type(
    target: JsonTarget,
) -> None:
    target.serve({"db": {"latency_ms": "812"}})
    result = await run_check(
        JsonApiCheck,
        url=target.url,
        assertions=[{"path": "db.latency_ms", "op": "lt", "value": 500}],
    )
    assert result.status is Status.FAIL
    assert result.reason == Reason.ASSERTION
    assert '$.db.latency_ms = "812" (a string), expected a number < 500' in result.message


async def test_failing_assertion_message_shows_value_and_expectation(target: JsonTarget) -> None:
    target.serve({"db": {"latency_ms": 812}})
    result = await run_check(
        JsonApiCheck,
        url=target.url,
        assertions=[{"path": "$.db.latency_ms", "op": "lt", "value": 500}],
    )
    assert result.reason == Reason.ASSERTION
    assert "$.db.latency_ms = 812, expected < 500" in result.message


DOC: dict[str, Any] = {
    "status": "ok",
    "version": "2.4.1",
    "db": {"latency_ms": 120, "name": "orders"},
    "data": {"items": [{"name": "a"}, {"name": "b"}, {"name": "c"}]},
    "flag": True,
    "nothing": None,
}

# (op, path, value that holds on DOC, value that does not, expected fragment of the failure)
OPERATORS = [
    ("eq", "db.name", "orders", "billing", '$.db.name = "orders", expected "billing"'),
    ("eq", "/data/items/1/name", "b", "x", '/data/items/1/name = "b", expected "x"'),
    ("ne", "db.name", "billing", "orders", 'expected anything but "orders"'),
    ("lt", "db.latency_ms", 121, 120, "$.db.latency_ms = 120, expected < 120"),
    ("le", "db.latency_ms", 120, 119.5, "$.db.latency_ms = 120, expected <= 119.5"),
    ("gt", "db.latency_ms", 119, 120, "$.db.latency_ms = 120, expected > 120"),
    ("ge", "db.latency_ms", 120, 121, "$.db.latency_ms = 120, expected >= 121"),
    ("regex", "version", r"^2\.\d+", r"^3\.", r'$.version = "2.4.1", expected to match /^3\./'),
    ("in", "db.name", ["orders", "x"], ["x", "y"], 'expected one of ["x","y"]'),
    ("exists", "data.items[2].name", True, False, '$.data.items[2].name = "c", expected it to be'),
    ("exists", "data.items[3]", False, True, "$.data.items[3] is missing ($.data.items has 3"),
    ("length", "data.items", 3, {"ge": 4}, "$.data.items has length 3, expected >= 4"),
    ("length", "version", {"gt": 1, "lt": 10}, 4, "$.version has length 5, expected == 4"),
    ("eq", "flag", True, 1, "$.flag = true, expected 1"),
    ("eq", "nothing", None, 0, "$.nothing = null, expected 0"),
]


@pytest.mark.parametrize(
    ("op", "path", "holds", "fails", "fragment"),
    OPERATORS,
    ids=[f"{op}-{path}" for op, path, *_ in OPERATORS],
)
async def test_each_operator_passes_and_fails(
    target: JsonTarget, op: str, path: str, holds: Any, fails: Any, fragment: str
) -> None:
    target.serve(DOC)
    ok = await run_check(
        JsonApiCheck, url=target.url, assertions=[{"path": path, "op": op, "value": holds}]
    )
    assert ok.status is Status.OK, ok.message
    bad = await run_check(
        JsonApiCheck, url=target.url, assertions=[{"path": path, "op": op, "value": fails}]
    )
    assert bad.status is Status.FAIL
    assert bad.reason == Reason.ASSERTION
    assert fragment in bad.message


async def test_length_of_a_number_fails_as_wrong_type(target: JsonTarget) -> None:
    target.serve(DOC)
    result = await run_check(
        JsonApiCheck,
        url=target.url,
        assertions=[{"path": "db.latency_ms", "op": "length", "value": 3}],
    )
    assert result.reason == Reason.ASSERTION
    assert "(a number) has no length" in result.message


async def test_warn_only_assertion_warns_and_a_hard_failure_still_fails(
    target: JsonTarget,
) -> None:
    target.serve({"db": {"latency_ms": 300}, "queue": {"depth": 9000}})
    slow = {"path": "db.latency_ms", "op": "lt", "value": 250, "warn_only": True}
    result = await run_check(JsonApiCheck, url=target.url, assertions=[slow])
    assert result.status is Status.WARN
    assert result.reason == Reason.ASSERTION
    assert "$.db.latency_ms = 300, expected < 250 (warn_only)" in result.message

    deep = {"path": "queue.depth", "op": "le", "value": 1000}
    result = await run_check(JsonApiCheck, url=target.url, assertions=[slow, deep])
    assert result.status is Status.FAIL
    # the hard failure leads, the warning is counted
    assert result.message.split(": ", 1)[1].startswith("$.queue.depth = 9000, expected <= 1000")
    assert "(and 1 more failed assertion(s))" in result.message


# -- health formats ----------------------------------------------------------------------------

HEALTH_JSON = "application/health+json"


def health_json(status: str, db: str = "pass", cache: str = "pass") -> dict[str, Any]:
    """An application/health+json document with two components (db has two instances)."""
    return {
        "status": status,
        "version": "1",
        "checks": {
            "postgres:responseTime": [
                {"componentId": "a1", "status": "pass", "observedValue": 12},
                {
                    "componentId": "a2",
                    "status": db,
                    "observedValue": 812,
                    "output": "replica lagging",
                },
            ],
            "redis:connections": [{"status": cache, "observedValue": 3}],
        },
    }


@pytest.mark.parametrize(
    ("status", "db", "cache", "expected", "reason"),
    [
        ("pass", "pass", "pass", Status.OK, ""),
        ("warn", "warn", "pass", Status.WARN, UNHEALTHY),
        ("fail", "fail", "warn", Status.FAIL, UNHEALTHY),
    ],
)
async def test_health_json_maps_pass_warn_fail_and_exports_each_component(
    target: JsonTarget, status: str, db: str, cache: str, expected: Status, reason: str
) -> None:
    target.serve(health_json(status, db, cache), content_type=HEALTH_JSON)
    result = await run_check(JsonApiCheck, url=target.url)
    assert result.status is expected, result.message
    assert result.reason == reason
    assert "application/health+json" in result.message
    # the worst instance decides the component's state
    assert component_state(result, "postgres:responseTime") == {"pass": "ok"}.get(db, db)
    assert component_state(result, "redis:connections") == {"pass": "ok"}.get(cache, cache)
    assert component_up(result, "postgres:responseTime") == (0.0 if db == "fail" else 1.0)
    assert component_up(result, "redis:connections") == 1.0
    names = {labels[0] for name, labels in samples(result)}
    assert names == {"postgres:responseTime", "redis:connections"}
    # one state-set sample per status per component
    assert len(result.samples) == 2 * (1 + 4)
    if db == "fail":
        assert "postgres:responseTime fail (replica lagging)" in result.message


async def test_health_json_is_recognised_by_its_shape_without_the_content_type(
    target: JsonTarget,
) -> None:
    target.serve(health_json("fail", db="fail"))
    result = await run_check(JsonApiCheck, url=target.url)
    assert result.reason == UNHEALTHY
    assert component_state(result, "postgres:responseTime") == "fail"


def actuator(status: str, primary: str = "UP", redis: str = "UP") -> dict[str, Any]:
    """A Spring Boot Actuator health document with a nested composite ``db``."""
    worst = "DOWN" if "DOWN" in (primary, redis) else status
    return {
        "status": status,
        "components": {
            "db": {
                "status": worst if primary != "UP" else "UP",
                "components": {
                    "primary": {"status": primary, "details": {"database": "PostgreSQL"}},
                    "reporting": {"status": "UP", "details": {"database": "PostgreSQL"}},
                },
            },
            "diskSpace": {"status": "UP", "details": {"free": 1, "threshold": 0}},
            "redis": {"status": redis, "details": {"version": "7.0.11"}},
        },
    }


async def test_actuator_up_exports_nested_components(target: JsonTarget) -> None:
    target.serve(actuator("UP"), content_type="application/vnd.spring-boot.actuator.v3+json")
    result = await run_check(JsonApiCheck, url=target.url)
    assert result.status is Status.OK, result.message
    assert "service reports UP (Spring Boot Actuator), 5 component(s) ok" in result.message
    for name in ("db", "db/primary", "db/reporting", "diskSpace", "redis"):
        assert component_state(result, name) == "ok"
        assert component_up(result, name) == 1.0


async def test_actuator_down_with_503_fails_as_unhealthy_naming_the_component(
    target: JsonTarget,
) -> None:
    # Spring answers DOWN with 503; the body says more than the status code.
    target.serve(actuator("DOWN", primary="DOWN"), status=503)
    result = await run_check(JsonApiCheck, url=target.url)
    assert result.status is Status.FAIL
    assert result.reason == UNHEALTHY
    assert "service reports DOWN (Spring Boot Actuator)" in result.message
    assert "db/primary DOWN" in result.message
    assert "status 503" in result.message
    assert component_state(result, "db/primary") == "fail"
    assert component_up(result, "db/primary") == 0.0
    assert component_state(result, "db/reporting") == "ok"
    assert result.values["probed_http_status_code"] == 503


async def test_actuator_out_of_service_fails_and_unknown_warns(target: JsonTarget) -> None:
    target.serve(actuator("OUT_OF_SERVICE", redis="OUT_OF_SERVICE"))
    result = await run_check(JsonApiCheck, url=target.url)
    assert result.status is Status.FAIL
    assert result.reason == UNHEALTHY
    assert component_state(result, "redis") == "fail"

    target.serve(actuator("UNKNOWN", redis="UNKNOWN"))
    result = await run_check(JsonApiCheck, url=target.url)
    assert result.status is Status.WARN
    assert result.reason == UNHEALTHY
    assert component_state(result, "redis") == "unknown"
    assert component_up(result, "redis") == 0.0


async def test_actuator_boot2_details_nesting_is_understood(target: JsonTarget) -> None:
    target.serve({"status": "UP", "details": {"db": {"status": "UP", "details": {"x": 1}}}})
    result = await run_check(JsonApiCheck, url=target.url, format="actuator")
    assert result.status is Status.OK
    assert component_state(result, "db") == "ok"


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("ok", Status.OK),
        ("UP", Status.OK),
        ("healthy", Status.OK),
        ("degraded", Status.WARN),
        ("down", Status.FAIL),
        ("broken", Status.FAIL),
    ],
)
async def test_plain_status_maps_to_ok_warn_fail(
    target: JsonTarget, word: str, expected: Status
) -> None:
    target.serve({"status": word})
    result = await run_check(JsonApiCheck, url=target.url, format="plain")
    assert result.status is expected, result.message
    assert result.reason == ("" if expected is Status.OK else UNHEALTHY)
    assert f"service reports {word}" in result.message


async def test_plain_status_down_is_detected_automatically(target: JsonTarget) -> None:
    target.serve({"status": "down"})
    result = await run_check(JsonApiCheck, url=target.url)
    assert result.status is Status.FAIL
    assert result.reason == UNHEALTHY


async def test_format_none_ignores_the_status_field(target: JsonTarget) -> None:
    target.serve({"status": "down"})
    result = await run_check(JsonApiCheck, url=target.url, format="none")
    assert result.status is Status.OK


async def test_explicit_format_on_a_body_without_status_fails_as_protocol(
    target: JsonTarget,
) -> None:
    target.serve([1, 2])
    result = await run_check(JsonApiCheck, url=target.url, format="health_json")
    assert result.status is Status.FAIL
    assert result.reason == Reason.PROTOCOL
    assert "expected a application/health+json document with a 'status', got a list" in (
        result.message
    )


async def test_component_path_exports_components_of_a_custom_document(
    target: JsonTarget,
) -> None:
    target.serve(
        {"status": "ok", "deps": {"db": "ok", "cache": {"status": "degraded"}, "queue": False}}
    )
    result = await run_check(JsonApiCheck, url=target.url, component_path="deps")
    assert result.status is Status.OK  # the service's own verdict stands
    assert component_state(result, "db") == "ok"
    assert component_state(result, "cache") == "warn"
    assert component_up(result, "cache") == 1.0
    assert component_state(result, "queue") == "fail"
    assert "2 of 3 component(s) not ok: cache degraded, queue false" in result.message

    result = await run_check(JsonApiCheck, url=target.url, component_path="services")
    assert result.reason == Reason.ASSERTION
    assert "component_path $.services is missing" in result.message


async def test_component_series_are_capped_by_max_components(target: JsonTarget) -> None:
    checks = {f"svc{i:03d}:ping": [{"status": "pass"}] for i in range(80)}
    target.serve({"status": "pass", "checks": checks}, content_type=HEALTH_JSON)
    result = await run_check(JsonApiCheck, url=target.url)
    exported = {labels[0] for name, labels in samples(result) if name == "probed_component_up"}
    assert len(exported) == 50
    assert "svc000:ping" in exported and "svc079:ping" not in exported
    assert "only 50 of 80 components exported as series (max_components=50)" in result.message

    result = await run_check(JsonApiCheck, url=target.url, max_components=5)
    assert len([s for s in result.samples if s.name == "probed_component_up"]) == 5


async def test_target_recovers_from_fail_to_pass(target: JsonTarget) -> None:
    target.serve({"status": "down"}, status=503)
    first = await run_check(JsonApiCheck, url=target.url)
    assert first.status is Status.FAIL
    assert first.reason == UNHEALTHY
    target.serve({"status": "ok"})
    second = await run_check(JsonApiCheck, url=target.url)
    assert second.status is Status.OK, second.message
    assert len(target.requests) == 2


async def test_large_body_is_decoded_off_the_event_loop_thread(
    target: JsonTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[int] = []
    decode = json_api._decode

    def recording_decode(body: bytes) -> tuple[Any, str | None]:
        threads.append(threading.get_ident())
        return decode(body)

    monkeypatch.setattr(json_api, "_decode", recording_decode)
    target.serve({"status": "ok", "items": list(range(50_000))})
    assert len(target.body) > 64 * 1024
    result = await run_check(
        JsonApiCheck,
        url=target.url,
        assertions=[{"path": "items[-1]", "op": "eq", "value": 49_999}],
    )
    assert result.status is Status.OK, result.message
    target.serve({"status": "ok"})
    assert (await run_check(JsonApiCheck, url=target.url)).status is Status.OK
    loop_thread = threading.get_ident()
    assert threads[0] != loop_thread  # large: in a worker thread
    assert threads[1] == loop_thread  # small: cheaper than a thread hop


async def test_bearer_token_is_sent_but_never_shown(target: JsonTarget) -> None:
    token = "s3cr3t-token-value"
    target.serve({"status": "down", "token_echo": "nothing"}, status=503)
    result = await run_check(JsonApiCheck, url=target.url, bearer_token=token)
    assert target.requests[0].headers["Authorization"] == f"Bearer {token}"
    assert result.status is Status.FAIL
    assert token not in result.message
    spec_dump = JsonApiOptions.model_validate({"url": target.url, "bearer_token": token})
    assert token not in repr(spec_dump)
    assert token not in json.dumps(spec_dump.model_dump(mode="json"))


async def test_http_options_still_apply(target: JsonTarget) -> None:
    target.serve({"status": "ok"}, status=201)
    result = await run_check(JsonApiCheck, url=target.url, valid_status_codes=[200])
    assert result.reason == Reason.STATUS
    result = await run_check(
        JsonApiCheck, url=target.url, valid_status_codes=[201], body_must_match=["nope"]
    )
    assert result.reason == Reason.ASSERTION
    assert "does not match /nope/" in result.message


# -- options, paths, registration --------------------------------------------------------------


@pytest.mark.parametrize(
    ("assertion", "message"),
    [
        ({"path": "a", "op": "lt", "value": "x"}, "op lt needs a number as value"),
        ({"path": "a", "op": "eq"}, "op eq needs a value"),
        ({"path": "a", "op": "regex", "value": "("}, "invalid regular expression"),
        ({"path": "a", "op": "in", "value": []}, "op in needs a non-empty list"),
        ({"path": "a", "op": "exists", "value": "yes"}, "op exists takes value true or false"),
        ({"path": "a", "op": "length", "value": {"about": 3}}, "unknown comparison 'about'"),
        ({"path": "a..b", "op": "exists"}, "invalid path 'a..b'"),
        ({"path": "a", "op": "contains", "value": 1}, "'eq', 'ne'"),
        ({"path": "a", "op": "eq", "value": 1, "warn": True}, "Extra inputs are not permitted"),
    ],
)
def test_invalid_assertions_are_rejected_with_a_clear_message(
    assertion: dict[str, Any], message: str
) -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        JsonApiOptions.model_validate({"url": "http://127.0.0.1/", "assertions": [assertion]})
    assert message in str(info.value)


def test_unknown_format_and_bad_component_path_are_rejected() -> None:
    with pytest.raises(pydantic.ValidationError, match="health_json"):
        JsonApiOptions.model_validate({"url": "http://127.0.0.1/", "format": "nagios"})
    with pytest.raises(pydantic.ValidationError, match="invalid path"):
        JsonApiOptions.model_validate({"url": "http://127.0.0.1/", "component_path": "a."})


@pytest.mark.parametrize(
    ("path", "document", "expected"),
    [
        ("checks.0.status", {"checks": [{"status": "up"}]}, "up"),
        ("checks.0.status", {"checks": {"0": {"status": "up"}}}, "up"),
        ("data.items[2].name", {"data": {"items": [0, 1, {"name": "x"}]}}, "x"),
        ("/data/items/2", {"data": {"items": [0, 1, 2]}}, 2),
        ("/a~1b/c~0d", {"a/b": {"c~d": 1}}, 1),
        ("/checks/db:latency/0", {"checks": {"db:latency": ["v"]}}, "v"),
        ("$", [1], [1]),
        ("", {"k": 1}, {"k": 1}),
        ("items[-1]", {"items": [1, 2, 3]}, 3),
    ],
)
def test_path_syntax(path: str, document: Any, expected: Any) -> None:
    assert JsonPath.parse(path).resolve(document) == expected


def test_path_into_a_scalar_says_what_is_in_the_way() -> None:
    with pytest.raises(PathMissingError, match=r"\$\.a is a number \(3\), cannot look up 'b'"):
        JsonPath.parse("a.b").resolve({"a": 3})


def test_booleans_never_equal_numbers() -> None:
    assert not json_equal(True, 1)
    assert json_equal(1, 1.0)
    assert json_equal({"a": [1, "x"]}, {"a": [1.0, "x"]})
    assert not json_equal({"a": 1}, {"a": 1, "b": 2})


async def test_json_api_is_registered_and_its_component_series_reach_the_exposition(
    target: JsonTarget,
) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from probed.exposition import TypeMetrics, render_checks
    from probed.runner import execute
    from probed.state import CheckState
    from probed.testing import make_spec

    assert json_api.probed_register_check_types() == [JsonApiCheck]
    target.serve(health_json("warn", cache="warn"), content_type=HEALTH_JSON)
    spec = make_spec(JsonApiCheck, name="shop", url=target.url)
    check = JsonApiCheck(spec)
    try:
        result = await execute(check, spec.timeout)
    finally:
        await check.close()
    state = CheckState(spec)
    state.record(result)
    text = render_checks([state], TypeMetrics([("json_api", JsonApiCheck.metrics)]), False)
    series = {
        (s.name, s.labels.get("component"), s.labels.get("status")): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.labels.get("check") == "shop"
    }
    assert series[("probed_http_status_code", None, None)] == 200
    assert series[("probed_component_up", "redis:connections", None)] == 1.0
    assert series[("probed_component_status", "redis:connections", "warn")] == 1.0
    assert series[("probed_component_status", "redis:connections", "ok")] == 0.0
    assert series[("probed_component_status", "postgres:responseTime", "ok")] == 1.0


def _defaults_only(value: Any) -> Any:
    """Expand ``${VAR:-default}`` to its default (the example must not need the environment)."""
    if isinstance(value, str):
        return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)
    if isinstance(value, list):
        return [_defaults_only(v) for v in value]
    if isinstance(value, dict):
        return {k: _defaults_only(v) for k, v in value.items()}
    return value


def _validate_example(document: dict[str, Any]) -> None:
    common = {"name", "type", "interval", "timeout", "readiness", "labels"}
    checks = document["checks"]
    assert checks and all(check["type"] == "json_api" for check in checks)
    for check in checks:
        options = {k: v for k, v in _defaults_only(check).items() if k not in common}
        parsed = JsonApiOptions.model_validate(options)
        assert parsed.url.startswith("http://127.0.0.1:")


def test_example_file_validates() -> None:
    _validate_example(yaml.safe_load(EXAMPLE.read_text()))


def test_readme_example_validates() -> None:
    readme = (ROOT / "docs" / "check-types.md").read_text()
    section = readme.split("<!-- section:checks-json_api -->")[1].split("<!-- /section")[0]
    block = section.split("```yaml")[1].split("```")[0]
    _validate_example(yaml.safe_load(block))
