"""The health endpoints' contract, over real sockets to a running daemon.

- ``/health/ready``: pass/warn/fail aggregation over readiness checks only, ``?exclude=``
  (repeatable), every ``application/health+json`` field, and content negotiation
  (``Accept: text/plain`` or ``?verbose`` give kube-apiserver style lines).
- ``/health/startup``: 503 until every readiness check ran once, then 200 for good, across
  reloads that add checks which have not run yet.
- ``/health/live``: never depends on check results; 503 when the scheduler is stopped or its
  timer is stuck (the earliest due run more than ``STUCK_AFTER`` seconds late).

Checks are ``outcome`` checks (tests/data/plugins/outcome.py) with a fixed result, plus the
``script`` check's ``gate`` mode (tests/fakes.py) for a first run that has not finished yet.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from probed.health import HEALTH_JSON, STUCK_AFTER
from tests.fakes import GATES
from tests.harness import Running, wait_for, write
from tests.harness import scripted_daemon as daemon

ISO_SECONDS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


def gate(name: str) -> asyncio.Event:
    return GATES.setdefault(name, asyncio.Event())


async def health(r: Running, path: str, **kwargs: Any) -> tuple[int, dict[str, Any], str]:
    """Status, JSON body and content type of a health endpoint (asserting it is health+json)."""
    status, body, headers = await r.get(path, **kwargs)
    assert headers["Content-Type"].startswith(HEALTH_JSON), headers
    assert headers["Cache-Control"] == "no-store"
    return status, json.loads(body), headers["Content-Type"]


# -- /health/ready aggregation ----------------------------------------------------------------


async def test_ready_is_200_with_status_warn_when_every_check_is_up_and_one_warns(
    tmp_path: Path,
) -> None:
    write(
        tmp_path / "c.yaml",
        """
        defaults: {interval: 1s, timeout: 500ms}
        checks:
          - {name: fine, type: outcome, status: ok, message: all good}
          - {name: slow, type: outcome, status: warn, reason: threshold, message: p99 high}
        """,
    )
    async with daemon(tmp_path) as r:
        await r.runs("fine", 1)
        await r.runs("slow", 1)
        status, body, _ = await health(r, "/health/ready")
        assert status == 200
        assert body["status"] == "warn"
        assert body["checks"]["slow"][0]["status"] == "warn"
        assert body["checks"]["slow"][0]["reason"] == "threshold"
        assert body["checks"]["fine"][0]["status"] == "pass"

        status, text, _ = await r.get("/health/ready?verbose")
        assert status == 200
        assert text == "[+]fine ok\n[+]slow ok\nreadyz check passed\n"


async def test_ready_is_pass_when_no_check_warns_and_fail_when_one_fails_beside_a_warn(
    tmp_path: Path,
) -> None:
    write(
        tmp_path / "c.yaml",
        """
        defaults: {interval: 1s, timeout: 500ms, failure_threshold: 1}
        checks:
          - {name: fine, type: outcome, status: ok}
          - {name: slow, type: outcome, status: warn, reason: threshold, message: p99 high}
          - {name: down, type: outcome, status: fail, reason: assertion, message: got 500}
        """,
    )
    async with daemon(tmp_path) as r:
        for name in ("fine", "slow", "down"):
            await r.runs(name, 1)
        status, body, _ = await health(r, "/health/ready")
        assert status == 503 and body["status"] == "fail"
        assert [body["checks"][n][0]["status"] for n in ("fine", "slow", "down")] == [
            "pass",
            "warn",
            "fail",
        ]
        status, body, _ = await health(r, "/health/ready?exclude=down&exclude=slow")
        assert status == 200 and body["status"] == "pass"


async def test_checks_with_readiness_false_are_left_out_of_ready_and_startup(
    tmp_path: Path,
) -> None:
    write(
        tmp_path / "c.yaml",
        """
        defaults: {interval: 1s, timeout: 500ms, failure_threshold: 1}
        checks:
          - {name: core, type: outcome, status: ok}
          - {name: optional-down, type: outcome, status: fail, reason: assertion,
             readiness: false}
          - {name: optional-slow, type: script, mode: gate, readiness: false,
             interval: 1h, timeout: 50m}
        """,
    )
    async with daemon(tmp_path) as r:
        await r.runs("core", 1)
        await r.runs("optional-down", 1)
        assert not r.state("optional-down").up and r.state("optional-slow").last is None

        status, body, _ = await health(r, "/health/ready")
        assert status == 200, body
        assert set(body["checks"]) == {"core"}
        status, body, _ = await health(r, "/health/startup")
        assert status == 200, body
        assert set(body["checks"]) == {"core"}
        _, text, _ = await r.get("/health/ready", headers={"Accept": "text/plain"})
        assert "optional" not in text

        _, metrics, _ = await r.get("/metrics")
        assert "probed_health_ready 1.0" in metrics
        assert "probed_health_started 1.0" in metrics
        assert 'probed_check_readiness{check="optional-down",type="outcome"} 0' in metrics
        _, listing, _ = await r.get("/api/v1/checks")
        readiness = {c["name"]: c["readiness"] for c in json.loads(listing)["checks"]}
        assert readiness == {"core": True, "optional-down": False, "optional-slow": False}


async def test_repeated_exclude_leaves_out_every_named_check(tmp_path: Path) -> None:
    write(
        tmp_path / "c.yaml",
        """
        defaults: {interval: 1s, timeout: 500ms, failure_threshold: 1}
        checks:
          - {name: fine, type: outcome, status: ok}
          - {name: down-a, type: outcome, status: fail, reason: assertion, message: a broke}
          - {name: down-b, type: outcome, status: fail, reason: assertion, message: b broke}
        """,
    )
    async with daemon(tmp_path) as r:
        for name in ("fine", "down-a", "down-b"):
            await r.runs(name, 1)
        status, body, _ = await health(r, "/health/ready?exclude=down-a")
        assert status == 503 and set(body["checks"]) == {"fine", "down-b"}
        status, body, _ = await health(r, "/health/ready?exclude=down-b")
        assert status == 503 and set(body["checks"]) == {"fine", "down-a"}
        status, body, _ = await health(r, "/health/ready?exclude=down-a&exclude=down-b")
        assert status == 200 and set(body["checks"]) == {"fine"}
        status, text, _ = await r.get("/health/ready?verbose&exclude=down-b&exclude=down-a")
        assert status == 200 and text == "[+]fine ok\nreadyz check passed\n"
        # an unknown name excludes nothing
        status, _, _ = await health(r, "/health/ready?exclude=nope&exclude=down-a")
        assert status == 503


# -- content negotiation ----------------------------------------------------------------------


async def test_content_negotiation_of_every_health_endpoint(tmp_path: Path) -> None:
    write(
        tmp_path / "c.yaml",
        """
        defaults: {interval: 1s, timeout: 500ms, failure_threshold: 1}
        checks:
          - {name: fine, type: outcome, status: ok}
          - {name: down, type: outcome, status: fail, reason: assertion, message: got 500}
        """,
    )
    async with daemon(tmp_path) as r:
        await r.runs("fine", 1)
        await r.runs("down", 1)
        ready_text = "[+]fine ok\n[-]down failed: got 500\nreadyz check failed\n"
        for path, code, text in [
            ("/health/ready", 503, ready_text),
            ("/health/startup", 200, "[+]fine ok\n[+]down ok\nstartupz check passed\n"),
            ("/health/live", 200, "livez check passed\n"),
        ]:
            for kwargs in (
                {"headers": {"Accept": "text/plain"}},
                {"headers": {"Accept": "text/plain;q=0.9, */*;q=0.1"}},
                {"params": {"verbose": ""}},
                {"params": {"verbose": ""}, "headers": {"Accept": "application/json"}},
            ):
                status, body, headers = await r.get(path, **kwargs)
                assert (status, body) == (code, text), (path, kwargs)
                assert headers["Content-Type"].startswith("text/plain"), (path, kwargs)
                assert headers["Cache-Control"] == "no-store"
            for accept in (
                None,
                "*/*",
                "application/health+json",
                "application/json",
                "application/json, text/plain",
            ):
                headers = {"Accept": accept} if accept else {}
                status, body, _ = await health(r, path, headers=headers)
                assert status == code, (path, accept)
                assert body["status"] == ("fail" if code == 503 else "pass")


# -- every application/health+json field ------------------------------------------------------


async def test_health_json_fields_of_passing_failing_recovering_and_unrun_checks(
    tmp_path: Path,
) -> None:
    write(
        tmp_path / "c.yaml",
        """
        defaults: {interval: 1h, timeout: 1s}
        checks:
          - {name: fine, type: outcome, status: ok, message: HTTP 200}
          - {name: down, type: outcome, status: fail, reason: assertion, message: got 500,
             failure_threshold: 1}
          - {name: recovering, type: outcome, status: ok, message: ok again,
             success_threshold: 3}
          - {name: first-run, type: script, mode: gate, timeout: 50m}
        """,
    )
    async with daemon(tmp_path) as r:
        for name in ("fine", "down", "recovering"):
            await r.runs(name, 1)
        before = time.time()
        status, body, content_type = await health(r, "/health/ready")
        assert status == 503 and content_type == HEALTH_JSON
        assert set(body) == {"status", "checks"}
        assert body["status"] == "fail"
        assert list(body["checks"]) == ["fine", "down", "recovering", "first-run"]
        assert all(len(entries) == 1 for entries in body["checks"].values())
        fine, down, recovering, unrun = (body["checks"][n][0] for n in body["checks"])

        _, listing, _ = await r.get("/api/v1/checks")
        api = {c["name"]: c for c in json.loads(listing)["checks"]}
        for name, entry in (("fine", fine), ("down", down), ("recovering", recovering)):
            assert entry["componentType"] == "outcome"
            assert ISO_SECONDS.fullmatch(entry["time"]), entry
            assert api[name]["last_result"]["time"].startswith(entry["time"][:-1])
            assert isinstance(entry["observedValue"], float)
            assert entry["observedValue"] == api[name]["last_result"]["duration_seconds"]
            assert entry["observedUnit"] == "s"
        for name, entry in (("fine", fine), ("down", down)):
            seen = datetime.fromisoformat(entry["time"].replace("Z", "+00:00")).timestamp()
            assert abs(seen - r.state(name).last.timestamp) < 1.0
            assert before - 60 < seen <= before + 1

        assert set(fine) == {
            "componentType",
            "status",
            "output",
            "time",
            "observedValue",
            "observedUnit",
        }
        assert (fine["status"], fine["output"]) == ("pass", "HTTP 200")
        assert set(down) == set(fine) | {"reason"}
        assert (down["status"], down["output"], down["reason"]) == ("fail", "got 500", "assertion")
        assert set(recovering) == set(fine)
        assert recovering["status"] == "fail"
        assert recovering["output"] == "recovering: 1/3 passing runs"
        assert unrun == {"componentType": "script", "status": "fail", "output": "not run yet"}

        status, body, _ = await health(r, "/health/startup")
        assert status == 503 and body["status"] == "fail"
        startup = {name: entries[0] for name, entries in body["checks"].items()}
        assert startup["fine"]["status"] == "pass"
        assert startup["fine"]["output"] == "first run finished"
        assert startup["down"]["status"] == "pass"  # it finished; startup ignores the outcome
        assert startup["first-run"] == unrun

        status, text, _ = await r.get("/health/ready?verbose")
        assert text.splitlines() == [
            "[+]fine ok",
            "[-]down failed: got 500",
            "[-]recovering failed: recovering: 1/3 passing runs",
            "[-]first-run failed: not run yet",
            "readyz check failed",
        ]


# -- /health/startup latch --------------------------------------------------------------------


async def test_startup_stays_200_after_a_reload_adds_a_check_that_has_not_run(
    tmp_path: Path,
) -> None:
    write(
        tmp_path / "a.yaml",
        "checks:\n  - {name: first, type: outcome, status: ok, interval: 1s, timeout: 500ms}\n",
    )
    async with daemon(tmp_path) as r:
        await r.runs("first", 1)
        status, body, _ = await health(r, "/health/startup")
        assert status == 200 and body["status"] == "pass"

        write(
            tmp_path / "b.yaml",
            """
            checks:
              - {name: late, type: script, mode: gate, interval: 1h, timeout: 50m}
            """,
        )
        reload_status, reload_body = await r.post("/-/reload")
        assert reload_status == 200, reload_body
        assert r.state("late").last is None
        status, body, _ = await health(r, "/health/startup")
        assert status == 200, body
        assert body["status"] == "pass"
        assert body["checks"]["late"][0]["output"] == "not run yet"
        _, metrics, _ = await r.get("/metrics")
        assert "probed_health_started 1.0" in metrics
        # readiness is not latched: the new check is not up yet
        status, _, _ = await health(r, "/health/ready")
        assert status == 503
        gate("late").set()
        await r.runs("late", 1)
        status, _, _ = await health(r, "/health/ready")
        assert status == 200


async def test_startup_is_503_before_the_first_run_even_after_a_reload(tmp_path: Path) -> None:
    write(
        tmp_path / "a.yaml",
        "checks:\n  - {name: slow, type: script, mode: gate, interval: 1h, timeout: 50m}\n",
    )
    async with daemon(tmp_path) as r:
        status, body, _ = await health(r, "/health/startup")
        assert status == 503 and body["status"] == "fail"
        assert (await r.post("/-/reload"))[0] == 200
        status, _, _ = await health(r, "/health/startup")
        assert status == 503
        _, metrics, _ = await r.get("/metrics")
        assert "probed_health_started 0.0" in metrics
        gate("slow").set()
        await r.runs("slow", 1)
        status, _, _ = await health(r, "/health/startup")
        assert status == 200


# -- /health/live -----------------------------------------------------------------------------


async def test_live_is_200_while_every_check_fails(tmp_path: Path) -> None:
    write(
        tmp_path / "c.yaml",
        """
        checks:
          - {name: down, type: outcome, status: fail, reason: assertion, interval: 100ms,
             timeout: 80ms, failure_threshold: 1}
        """,
    )
    async with daemon(tmp_path) as r:
        await r.runs("down", 3)
        status, body, _ = await health(r, "/health/live")
        assert status == 200 and body == {"status": "pass", "checks": {}}


async def test_live_is_503_when_the_scheduler_timer_is_stuck(tmp_path: Path) -> None:
    write(
        tmp_path / "c.yaml",
        "checks:\n  - {name: tick, type: outcome, interval: 100ms, timeout: 80ms}\n",
    )
    async with daemon(tmp_path) as r:
        await r.runs("tick", 2)
        scheduler = r.daemon.scheduler
        assert scheduler.overdue() < STUCK_AFTER
        # Simulate a timer that stopped firing STUCK_AFTER + 5 s ago (waiting a real minute
        # with a blocked loop is not a unit of test time): disarm it and move every due time
        # back. The heap order is unchanged by a uniform shift.
        assert scheduler._timer is not None
        scheduler._timer.cancel()
        scheduler._heap[:] = [(due - STUCK_AFTER - 5, job) for due, job in scheduler._heap]
        runs = sum(r.state("tick").runs)

        status, body, _ = await health(r, "/health/live")
        assert status == 503 and body["status"] == "fail"
        assert body["checks"] == {}
        assert re.fullmatch(r"scheduler stuck: the earliest run is 6\ds overdue", body["output"])
        status, text, headers = await r.get("/health/live?verbose")
        assert status == 503 and headers["Content-Type"].startswith("text/plain")
        assert text.splitlines()[-1] == "livez check failed"
        assert text.startswith("scheduler stuck: the earliest run is")
        assert sum(r.state("tick").runs) <= runs + 1  # the stuck timer really runs nothing
        # readiness is a different question: the checks' last results still stand
        status, _, _ = await health(r, "/health/ready")
        assert status == 200


async def test_live_is_503_once_the_scheduler_has_stopped(tmp_path: Path) -> None:
    write(
        tmp_path / "c.yaml",
        "checks:\n  - {name: tick, type: outcome, interval: 100ms, timeout: 80ms}\n",
    )
    async with daemon(tmp_path) as r:
        await r.runs("tick", 1)
        assert (await health(r, "/health/live"))[0] == 200
        await r.daemon.scheduler.stop(1.0)
        await wait_for(lambda: not r.daemon.scheduler.alive, 5, "scheduler to stop")
        status, body, _ = await health(r, "/health/live")
        assert status == 503 and body["status"] == "fail"
        assert body["output"].startswith("scheduler stuck")
