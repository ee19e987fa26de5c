"""Notifications in a real running daemon: ``notifications:`` in probed.yaml with the URL from
``${ENV}``, delivered through the ``probed_check_state_changed`` hook to a real JSON webhook,
counted in ``/metrics``; an unreachable (hanging) receiver delays no check run (measured
scheduler lag) and is counted; the URL's token is in no output."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from probed import Check, CheckOptions, Result, hookimpl
from probed.notifications import active_runner
from tests._notify_receivers import blackhole, json_receiver
from tests.fakes import CONTROL, ScriptPlugin
from tests.harness import probed_logs, running_daemon, wait_for, write

TOKEN = "S3cretHookToken77"
ENV = "PROBED_TEST_HOOK_URL"


class FlipCheck(Check[CheckOptions]):
    """Fails and passes in turn: every run is a status change (with thresholds of 1)."""

    type_name: ClassVar[str] = "flip"
    options_model: ClassVar[type[CheckOptions]] = CheckOptions
    description: ClassVar[str] = "test check alternating fail and ok"

    total: ClassVar[list[int]] = [0]  # runs of every flip check

    def __init__(self, spec: Any) -> None:
        super().__init__(spec)
        self.runs = 0

    async def run(self) -> Result:
        self.runs += 1
        FlipCheck.total[0] += 1
        return Result.fail("assertion", "flipped") if self.runs % 2 else Result.ok("flopped")


class FlipPlugin:
    @hookimpl
    def probed_register_check_types(self) -> list[type[Check[Any]]]:
        return [FlipCheck]


@pytest.fixture
def control() -> Iterator[dict[str, Any]]:
    yield CONTROL
    CONTROL.clear()


def config(tmp_path: Path, extra: str = "") -> Path:
    return write(
        tmp_path / "probed.yaml",
        f"""
        notifications:
          min_duration: 0s
          digest_after: 0
          {extra}
          routes:
            - name: core
              urls: ["${{{ENV}}}"]
              labels: {{team: core}}
        """,
    )


def sample(metrics: str, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in metrics.splitlines():
        if line.startswith(f"{name}{{{want}}} " if want else f"{name} "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {name}{{{want}}} in /metrics")


async def test_a_check_going_down_and_up_notifies_through_the_hook(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, control: dict[str, Any]
) -> None:
    checks = write(
        tmp_path / "checks" / "c.yaml",
        """
        checks:
          - {name: api, type: script, interval: 100ms, timeout: 50ms, labels: {team: core}}
          - {name: other, type: script, interval: 100ms, timeout: 50ms, mode: fail}
        """,
    ).parent
    async with json_receiver() as hook:
        monkeypatch.setenv(ENV, hook.url(f"notify/{TOKEN}"))
        with probed_logs() as logs:
            async with running_daemon(
                checks,
                builtins=("probed.notifications",),
                plugins=[("script", ScriptPlugin())],
                config_file=config(tmp_path),
            ) as r:
                await wait_for(lambda: r.daemon.started(), 10, "first runs")
                control["api"] = "fail"
                await wait_for(lambda: len(hook.posts) == 1, 10, "the fail message")
                control["api"] = "ok"
                await wait_for(lambda: len(hook.posts) == 2, 10, "the recovery message")
                await wait_for(lambda: _counted(r) == 2, 10, "the deliveries counted")
                _, metrics, _ = await r.get("/metrics")
                outputs = [metrics, logs.getvalue()]
                for path in ("/api/v1/checks", "/api/v1/checks/api", "/", "/health/ready"):
                    outputs.append((await r.get(path))[1])
    assert hook.posts[0]["title"] == "[FAIL] api is down (fail, was ok) [assertion]"
    assert hook.posts[1]["title"].startswith("[OK] api recovered after")
    assert sample(metrics, "probed_notifications_total", route="core", result="sent") == 2
    assert sample(metrics, "probed_notifications_total", route="core", result="failed") == 0
    for text in outputs:
        assert TOKEN not in text
    assert active_runner() is None  # stopped with the daemon


async def test_a_hanging_receiver_delays_no_check_run_and_is_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checks = write(
        tmp_path / "checks" / "flip.yaml",
        "checks:\n"
        + "".join(
            f"  - {{name: flip-{i:02d}, type: flip, interval: 100ms, timeout: 50ms,"
            " failure_threshold: 1, labels: {team: core}}\n"
            for i in range(30)
        ),
    ).parent
    extra = "timeout: 1s\n          retries: 1\n          backoff: 100ms\n          queue_size: 20"
    async with blackhole() as (port, accepted):
        monkeypatch.setenv(ENV, f"json://127.0.0.1:{port}/notify/{TOKEN}")
        with probed_logs() as logs:
            async with running_daemon(
                checks,
                builtins=("probed.notifications",),
                plugins=[("flip", FlipPlugin())],
                config_file=config(tmp_path, extra),
            ) as r:
                # Every run of every check is a change: 300 notifications a second, all hanging.
                await wait_for(lambda: len(accepted) >= 4, 10, "deliveries hanging")
                start, runs_before = time.monotonic(), FlipCheck.total[0]
                await wait_for(lambda: FlipCheck.total[0] - runs_before >= 600, 20, "600 runs")
                elapsed = time.monotonic() - start
                _, after, _ = await r.get("/metrics")
    lags = _lag_buckets(after)
    total = lags[float("inf")]
    within_25ms = lags[0.025] / total
    print(
        f"600 runs of 30 checks every 100ms took {elapsed:.2f}s while every delivery hung; "
        f"scheduler lag <= 25ms for {within_25ms:.3f} of {total:g} runs, <= 10ms for "
        f"{lags[0.01] / total:.3f}"
    )
    assert elapsed < 3.0  # 2s of schedule: the checks kept running while deliveries hung
    assert within_25ms >= 0.95, lags  # and on time
    assert sample(after, "probed_notifications_total", route="core", result="dropped") > 0
    assert sample(after, "probed_notifications_total", route="core", result="sent") == 0
    assert 0 < sample(after, "probed_notifications_queued") <= 20
    assert TOKEN not in logs.getvalue() and TOKEN not in after
    assert logs.getvalue().count("notification route core: delivery failed") <= 2


def _counted(r: Any) -> int:
    runner = active_runner()
    if runner is None:
        return 0
    return sum(runner.delivery.counters.totals.values())


def _runs(metrics: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("probed_check_runs_total{")
    )


def _lag_buckets(metrics: str) -> dict[float, float]:
    out: dict[float, float] = {}
    for line in metrics.splitlines():
        m = re.match(r'probed_scheduler_lag_seconds_bucket\{le="([^"]+)"\} (\S+)', line)
        if m:
            out[float(m[1])] = float(m[2])
    return out


async def test_a_reload_turns_notifications_on_and_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, control: dict[str, Any]
) -> None:
    checks = write(
        tmp_path / "checks" / "c.yaml",
        "checks:\n  - {name: api, type: script, interval: 100ms, timeout: 50ms,"
        " labels: {team: core}}\n",
    ).parent
    plain = write(tmp_path / "probed.yaml", "log_level: info\n")
    async with json_receiver() as hook:
        monkeypatch.setenv(ENV, hook.url(f"notify/{TOKEN}"))
        async with running_daemon(
            checks,
            builtins=("probed.notifications",),
            plugins=[("script", ScriptPlugin())],
            config_file=plain,
        ) as r:
            await wait_for(lambda: r.daemon.started(), 10, "first runs")
            assert active_runner() is None
            config(tmp_path)  # now with a route
            assert await r.daemon.reload() == (True, ())
            assert active_runner() is not None
            control["api"] = "fail"
            await wait_for(lambda: len(hook.posts) == 1, 10, "the fail message")
            write(tmp_path / "probed.yaml", "notifications: {enabled: false}\n")
            assert await r.daemon.reload() == (True, ())
            assert active_runner() is None
            _, metrics, _ = await r.get("/metrics")
    assert "probed_notifications_total" not in metrics
    assert hook.titles() == ["[FAIL] api is down (fail, was ok) [assertion]"]
