"""``/metrics`` as Prometheus sees it: per-check up/success/status series for every state a check
can be in, and gzip when the scraper accepts it (README "Metrics reference")."""

from __future__ import annotations

import asyncio
import gzip
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from tests.fakes import CONTROL
from tests.harness import scripted_daemon as daemon
from tests.harness import write


def by_check(text: str, name: str, **labels: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                out[sample.labels["check"]] = sample.value
    return out


async def test_up_success_and_status_series_follow_each_checks_thresholded_state(
    tmp_path: Path,
) -> None:
    write(
        tmp_path / "c.yaml",
        """
        defaults: {interval: 1h, timeout: 1s}
        checks:
          - {name: fine, type: outcome, status: ok}
          - {name: slow, type: outcome, status: warn, reason: threshold}
          - {name: down, type: outcome, status: fail, reason: assertion, failure_threshold: 1}
          - {name: not-yet-down, type: outcome, status: fail, reason: assertion,
             failure_threshold: 3}
          - {name: recovering, type: outcome, status: ok, success_threshold: 2}
          - {name: unrun, type: script, mode: gate, timeout: 50m}
        """,
    )
    async with daemon(tmp_path) as r:
        for name in ("fine", "slow", "down", "not-yet-down", "recovering"):
            await r.runs(name, 1)
        _, text, _ = await r.get("/metrics")
    assert by_check(text, "probed_check_up") == {
        "fine": 1,
        "slow": 1,
        "down": 0,
        "not-yet-down": 0,
        "recovering": 0,
        "unrun": 0,
    }
    assert by_check(text, "probed_check_success") == {
        "fine": 1,
        "slow": 1,
        "down": 0,
        "not-yet-down": 0,
        "recovering": 1,
    }
    current = {
        check: status
        for status in ("ok", "warn", "fail", "unknown")
        for check, value in by_check(text, "probed_check_status", status=status).items()
        if value == 1
    }
    assert current == {
        "fine": "ok",
        "slow": "warn",
        "down": "fail",
        "not-yet-down": "unknown",
        "recovering": "unknown",
        "unrun": "unknown",
    }
    assert "probed_health_ready 0.0" in text


async def test_up_drops_to_0_when_a_check_goes_down_and_back_to_1_when_it_recovers(
    tmp_path: Path,
) -> None:
    write(
        tmp_path / "c.yaml",
        """
        checks:
          - {name: flips, type: script, interval: 100ms, timeout: 80ms, failure_threshold: 1}
        """,
    )
    async with daemon(tmp_path) as r:
        await r.runs("flips", 1)
        _, text, _ = await r.get("/metrics")
        assert by_check(text, "probed_check_up") == {"flips": 1}
        CONTROL["flips"] = "fail"
        seen = sum(r.state("flips").runs)
        await r.runs("flips", seen + 2)
        _, text, _ = await r.get("/metrics")
        assert by_check(text, "probed_check_up") == {"flips": 0}
        del CONTROL["flips"]
        seen = sum(r.state("flips").runs)
        await r.runs("flips", seen + 2)
        _, text, _ = await r.get("/metrics")
        assert by_check(text, "probed_check_up") == {"flips": 1}


async def test_metrics_are_gzipped_when_the_scraper_accepts_gzip(tmp_path: Path) -> None:
    write(
        tmp_path / "c.yaml",
        "checks:\n  - {name: fine, type: outcome, interval: 1h, timeout: 1s}\n",
    )
    async with daemon(tmp_path) as r:
        await r.runs("fine", 1)
        async with aiohttp.ClientSession(auto_decompress=False) as raw:
            async with raw.get(r.url + "/metrics", headers={"Accept-Encoding": "gzip"}) as resp:
                assert resp.status == 200
                assert resp.headers.get("Content-Encoding") == "gzip"
                assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
                compressed = await resp.read()
            async with raw.get(r.url + "/metrics", headers={"Accept-Encoding": "identity"}) as resp:
                assert "Content-Encoding" not in resp.headers
                plain = await resp.read()
    text = (await asyncio.to_thread(gzip.decompress, compressed)).decode()
    assert len(compressed) < len(text) // 3
    assert len(plain) > 4096  # over the documented threshold, so compression applies
    assert by_check(text, "probed_check_success") == {"fine": 1}
    assert "probed_build_info" in text
    assert {f.name for f in text_string_to_metric_families(text)} == {
        f.name for f in text_string_to_metric_families(plain.decode())
    }
