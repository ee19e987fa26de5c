"""``/metrics?shard=I&shards=N``: split scrapes (docs/endpoints.md "Split scrapes").

A daemon with 200 labelled checks that each ran once (interval 1h: nothing changes between
the scrapes); the union of the shards is the full scrape, every check is in exactly one shard,
and the assignment is a fixed function of the check name (not Python's salted ``hash()``).
"""

from __future__ import annotations

import asyncio
import gzip
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as om_families,
)
from prometheus_client.parser import text_string_to_metric_families

from probed.shards import MAX_SHARDS, Shard, ShardError, parse_shard, shard_of
from tests.harness import Running, write
from tests.harness import scripted_daemon as daemon

CHECKS = 200
# Series whose values move between two scrapes of an idle daemon (CPU, memory, the previous
# render's duration): compared by identity only.
MOVING = ("process_", "probed_metrics_render_seconds", "python_gc_")

Sample = tuple[str, tuple[tuple[str, str], ...], float]


def _config(tmp_path: Path, names: list[str]) -> None:
    lines = ["defaults: {interval: 1h, timeout: 1s}", "checks:"]
    for i, name in enumerate(names):
        status = ("ok", "warn", "fail")[i % 3]
        lines.append(
            f"  - {{name: {name}, type: outcome, status: {status}, reason: assertion, "
            f"labels: {{team: t{i % 5}, tier: 'tier \"{i % 2}\"'}}}}"
        )
    write(tmp_path / "c.yaml", "\n".join(lines) + "\n")


def _samples(text: str, openmetrics: bool = False) -> list[Sample]:
    parse = om_families if openmetrics else text_string_to_metric_families
    return [
        (s.name, tuple(sorted(s.labels.items())), s.value)
        for family in parse(text)
        for s in family.samples
    ]


def _stable(samples: list[Sample]) -> set[Sample]:
    return {
        (name, labels, 0.0 if name.startswith(MOVING) else value) for name, labels, value in samples
    }


async def _ran_all(r: Running, names: list[str]) -> None:
    for name in names:
        await r.runs(name, 1)


async def _scrape(r: Running, query: str = "", **headers: str) -> str:
    status, text, _ = await r.get("/metrics" + query, headers=headers)
    assert status == 200, text
    return text


async def test_union_of_all_shards_is_the_full_scrape_with_no_series_twice(
    tmp_path: Path,
) -> None:
    names = [f"svc-{i:03d}" for i in range(CHECKS)]
    _config(tmp_path, names)
    async with daemon(tmp_path) as r:
        await _ran_all(r, names)
        full = _samples(await _scrape(r))
        for count in (1, 3, 7):
            parts = [_samples(await _scrape(r, f"?shard={i}&shards={count}")) for i in range(count)]
            union = [sample for part in parts for sample in part]
            identities = Counter((name, labels) for name, labels, _ in union)
            assert max(identities.values()) == 1, f"a series in two shards of {count}"
            assert _stable(union) == _stable(full), f"shards={count}"
            owners: dict[str, set[int]] = {}
            for index, part in enumerate(parts):
                for _, labels, _ in part:
                    check = dict(labels).get("check")
                    if check is not None:
                        owners.setdefault(check, set()).add(index)
                    else:
                        assert index == 0, "a daemon-wide series outside shard 0"
            assert owners == {name: {shard_of(name, count)} for name in names}
            if count > 1:
                sizes = [
                    len({dict(lb)["check"] for _, lb, _ in p if "check" in dict(lb)}) for p in parts
                ]
                assert min(sizes) > 0, sizes
    assert len(full) > CHECKS * 20  # the comparison covered every check's series


def test_the_shard_of_a_name_is_fixed_not_salted_per_process() -> None:
    # Fixed expectations: a new process, or a new machine, puts these names where they were.
    assert [shard_of("checkout-api", n) for n in (3, 7, 1024)] == [1, 6, 477]
    assert [shard_of("dns-root", n) for n in (3, 7, 1024)] == [2, 6, 13]
    code = "from probed.shards import shard_of; print(shard_of('payments-db', 1024))"
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        assert out.stdout.strip() == "964"


async def test_a_check_stays_in_its_shard_across_daemon_restarts(tmp_path: Path) -> None:
    names = ["checkout-api", "dns-root", "payments-db"]
    _config(tmp_path, names)
    expected = {"checkout-api": 1, "dns-root": 2, "payments-db": 1}
    for _ in range(2):
        async with daemon(tmp_path) as r:
            await _ran_all(r, names)
            for index in range(3):
                text = await _scrape(r, f"?shard={index}&shards=3")
                got = {dict(lb).get("check") for _, lb, _ in _samples(text)} - {None}
                assert got == {n for n, i in expected.items() if i == index}


async def test_each_shard_negotiates_openmetrics_and_gzip(tmp_path: Path) -> None:
    names = [f"svc-{i:03d}" for i in range(60)]
    _config(tmp_path, names)
    async with daemon(tmp_path) as r:
        await _ran_all(r, names)
        accept = {"Accept": "application/openmetrics-text; version=1.0.0"}
        full = _samples(await _scrape(r, **accept), openmetrics=True)
        union: list[Sample] = []
        for index in range(3):
            status, text, headers = await r.get(f"/metrics?shard={index}&shards=3", headers=accept)
            assert status == 200
            assert headers["Content-Type"].startswith("application/openmetrics-text")
            assert text.endswith("# EOF\n")
            union.extend(_samples(text, openmetrics=True))
        assert _stable(union) == _stable(full)

        async with aiohttp.ClientSession(auto_decompress=False) as raw:
            url = r.url + "/metrics?shard=1&shards=3"
            async with raw.get(url, headers={"Accept-Encoding": "gzip"}) as resp:
                assert resp.status == 200
                assert resp.headers.get("Content-Encoding") == "gzip"
                compressed = await resp.read()
        text = gzip.decompress(compressed).decode()
        checks = {dict(lb).get("check") for _, lb, _ in _samples(text)} - {None}
        assert checks == {n for n in names if shard_of(n, 3) == 1}
        assert not any(name.startswith("probed_build_info") for name, _, _ in _samples(text))


async def test_concurrent_scrapes_of_one_shard_share_one_render(tmp_path: Path) -> None:
    names = [f"svc-{i:03d}" for i in range(60)]
    _config(tmp_path, names)
    async with daemon(tmp_path) as r:
        await _ran_all(r, names)
        exporter = r.daemon.exporter
        one, other = Shard(1, 3), Shard(2, 3)
        shared = await asyncio.gather(*(exporter.scrape(False, True, one) for _ in range(20)))
        assert all(s is shared[0] for s in shared) and shared[0].gzipped
        both = await asyncio.gather(
            exporter.scrape(False, True, one), exporter.scrape(False, True, other)
        )
        assert both[0].body != both[1].body
        whole = await asyncio.gather(
            exporter.scrape(False, False, Shard(0, 1)), exporter.scrape(False, False)
        )
        assert whole[0] is whole[1]  # one shard of one is the full scrape's flight


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("?shard=0", "together"),
        ("?shards=3", "together"),
        ("?shard=a&shards=3", "shard must be a non-negative integer"),
        ("?shard=0&shards=3.5", "shards must be a non-negative integer"),
        ("?shard=-1&shards=3", "shard must be a non-negative integer"),
        ("?shard=3&shards=3", "between 0 and shards-1"),
        ("?shard=0&shards=0", "between 1 and 1024"),
        ("?shard=0&shards=1025", "between 1 and 1024"),
        ("?shard=&shards=2", "non-negative integer"),
    ],
)
async def test_bad_shard_parameters_are_answered_400_in_one_line(
    tmp_path: Path, query: str, message: str
) -> None:
    _config(tmp_path, ["one"])
    async with daemon(tmp_path) as r:
        status, text, headers = await r.get("/metrics" + query)
    assert status == 400
    assert headers["Content-Type"].startswith("text/plain")
    assert message in text
    assert text.count("\n") == 1 and text.endswith("\n")


async def test_one_shard_of_one_is_the_full_scrape(tmp_path: Path) -> None:
    names = [f"svc-{i:03d}" for i in range(20)]
    _config(tmp_path, names)
    async with daemon(tmp_path) as r:
        await _ran_all(r, names)
        full = _samples(await _scrape(r))
        one = _samples(await _scrape(r, "?shard=0&shards=1"))
    assert _stable(one) == _stable(full)


def test_parse_shard_accepts_both_or_neither() -> None:
    assert parse_shard({}) is None
    assert parse_shard({"shard": "2", "shards": "7"}) == Shard(2, 7)
    assert parse_shard({"shard": "0", "shards": str(MAX_SHARDS)}) == Shard(0, MAX_SHARDS)
    with pytest.raises(ShardError):
        parse_shard({"shard": "٣", "shards": "7"})  # a non-ASCII digit


async def test_every_shard_passes_promtool_check_metrics(tmp_path: Path) -> None:
    from tests.servers._util import require_binary

    promtool = require_binary("promtool", "apt-get install prometheus")
    names = [f"svc-{i:03d}" for i in range(30)]
    _config(tmp_path, names)
    async with daemon(tmp_path) as r:
        await _ran_all(r, names)
        texts = [await _scrape(r, f"?shard={i}&shards=3") for i in range(3)]
    for text in texts:
        proc = await asyncio.to_thread(
            subprocess.run,
            [promtool, "check", "metrics"],
            input=text,
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
