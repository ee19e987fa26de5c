"""Replica ownership (probed.replicas): N daemons split the checks by rendezvous hashing.

The daemon tests run three real ``probed run`` processes on loopback, each told its ordinal the
way a StatefulSet pod is (``POD_NAME=probed-<i>``), all with HTTP checks against one loopback
server that counts the requests per check: a check must be run by exactly its owners.
"""

from __future__ import annotations

import re
import signal
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from probed.config import load_settings
from probed.errors import ConfigErrors
from probed.replicas import Replicas, ordinal_from_env, owners, spread, weight
from probed.testing_daemon import RunningDaemon, start_daemon, wait_until

NAMES = [f"check-{i:04d}" for i in range(1000)]
CHECKS = [f"site-{i:02d}" for i in range(24)]
TOKEN = "replica-test-token-0123456789"


# -- the hash ----------------------------------------------------------------------------------


def test_owners_are_pinned_values_not_salted_by_the_process() -> None:
    # Pinned: a change of the hash would move checks in every running deployment at upgrade
    # (and Python's hash() would differ between the pods).
    assert weight("web", 0) == 0xF9EDF42B926BC5D6
    assert [owners(n, 3)[0] for n in ("web", "db", "api", "cache")] == [0, 1, 0, 2]
    assert owners("web", 5, 3) == (0, 2, 1)
    assert len({weight("web", o) for o in range(64)}) == 64


def test_one_owner_each_and_the_split_is_even_within_ten_percent() -> None:
    runs = spread(NAMES, 3)
    assert sum(runs) == len(NAMES)
    assert all(abs(r - 1000 / 3) < 1000 / 3 * 0.1 for r in runs), runs


def test_redundancy_gives_distinct_owners_best_first() -> None:
    for name in NAMES[:200]:
        two = owners(name, 5, 2)
        assert len(set(two)) == 2
        assert two[0] == owners(name, 5)[0]  # the best owner of R=1 is among R=2's
        assert weight(name, two[0]) > weight(name, two[1])
    assert sum(spread(NAMES, 3, 2)) == 2 * len(NAMES)


def test_going_from_3_to_4_replicas_moves_about_a_quarter_only_to_the_new_one() -> None:
    before = {n: owners(n, 3)[0] for n in NAMES}
    after = {n: owners(n, 4)[0] for n in NAMES}
    moved = [n for n in NAMES if before[n] != after[n]]
    assert 0.15 <= len(moved) / len(NAMES) <= 0.35, len(moved)
    assert {after[n] for n in moved} == {3}


def test_going_from_4_to_3_replicas_moves_only_the_removed_replicas_checks() -> None:
    before = {n: owners(n, 4)[0] for n in NAMES}
    after = {n: owners(n, 3)[0] for n in NAMES}
    assert all(before[n] == after[n] for n in NAMES if before[n] != 3)


def test_ordinal_comes_from_pod_name_then_hostname() -> None:
    assert ordinal_from_env({"POD_NAME": "probed-12", "HOSTNAME": "x-3"}) == (
        12,
        "POD_NAME=probed-12",
    )
    assert ordinal_from_env({"HOSTNAME": "probed-sharded-3"}) == (3, "HOSTNAME=probed-sharded-3")
    assert ordinal_from_env({"HOSTNAME": "laptop"}) is None
    assert ordinal_from_env({"HOSTNAME": "probed-7d9f8b-x2k4q"}) is None  # a Deployment pod


def test_replicas_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match="ordinal"):
        Replicas(3, 3)
    with pytest.raises(ValueError, match="redundancy"):
        Replicas(3, 0, 4)


# -- settings ----------------------------------------------------------------------------------


def _settings_errors(tmp_path: Path, text: str, **overrides: object) -> list[str]:
    path = tmp_path / "probed.yaml"
    path.write_text(text)
    with pytest.raises(ConfigErrors) as caught:
        load_settings(path, overrides)
    return [str(e) for e in caught.value.errors]


def test_replicas_section_is_typed_with_file_and_line(tmp_path: Path) -> None:
    where = tmp_path / "probed.yaml"
    text = "listen: 127.0.0.1:9333\nreplicas:\n  count: 3\n  redundancy: 4\n"
    assert _settings_errors(tmp_path, text) == [
        f"{where}:2: replicas: redundancy must be at most count (3), got 4"
    ]
    errors = _settings_errors(tmp_path, "replicas:\n  count: two\n  shards: 3\n")
    assert errors[0].startswith(f"{where}:2: replicas.count: Input should be a valid integer")
    assert errors[1] == f"{where}:3: replicas.shards: unknown key 'shards'"
    assert _settings_errors(tmp_path, "replicas:\n  count: true\n") == [
        f"{where}:2: replicas.count: must be a whole number, not true/false"
    ]
    errors = _settings_errors(tmp_path, "replicas:\n  count: 2000\n")
    assert len(errors) == 1 and errors[0].startswith(f"{where}:2: replicas.count:"), errors


def test_ordinal_without_count_names_the_missing_key(tmp_path: Path) -> None:
    errors = _settings_errors(tmp_path, "log_level: info\nreplicas:\n  ordinal: 1\n")
    assert errors == [
        f"{tmp_path / 'probed.yaml'}:2: replicas.count: required when replicas.ordinal or "
        "replicas.redundancy is set (--replicas, PROBED_REPLICAS)"
    ]


def test_command_line_completes_and_overrides_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POD_NAME", "probed-1")
    path = tmp_path / "probed.yaml"
    path.write_text("replicas:\n  count: 3\n  redundancy: 2\n")
    settings = load_settings(path, {})
    assert settings.replicas == Replicas(3, 1, 2)
    assert settings.replicas is not None and settings.replicas.source == "POD_NAME=probed-1"
    settings = load_settings(path, {"replicas": {"count": 4, "ordinal": 3}})
    assert settings.replicas == Replicas(4, 3, 2)
    with pytest.raises(ConfigErrors, match="ordinal must be between 0 and count-1"):
        load_settings(path, {"replicas": {"ordinal": 5}})
    assert load_settings(None, {}).replicas is None


def test_unknown_ordinal_lets_validate_pass_and_run_refuse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("POD_NAME", raising=False)
    monkeypatch.setenv("HOSTNAME", "ci-runner")
    path = tmp_path / "probed.yaml"
    path.write_text("replicas:\n  count: 3\nchecks: []\n")
    replicas = load_settings(path, {}).replicas
    assert replicas is not None and replicas.ordinal is None
    assert replicas.missing is not None
    assert str(replicas.missing).startswith(f"{path}:1: replicas.ordinal: not set")
    from click.testing import CliRunner

    from probed.cli import cli

    assert CliRunner().invoke(cli, ["validate", "--config", str(path)]).exit_code == 0
    result = CliRunner().invoke(cli, ["run", "--config", str(path), "--listen", "127.0.0.1:0"])
    assert result.exit_code == 1
    assert "replicas.ordinal: not set" in result.output


# -- three daemons on loopback -----------------------------------------------------------------


class _Counting(BaseHTTPRequestHandler):
    hits: Counter[str]
    lock: threading.Lock

    def do_GET(self) -> None:
        with self.lock:
            self.hits[self.path.strip("/")] += 1
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def _target() -> Iterator[tuple[str, Counter[str]]]:
    hits: Counter[str] = Counter()
    handler = type("Handler", (_Counting,), {"hits": hits, "lock": threading.Lock()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", hits
    finally:
        server.shutdown()
        server.server_close()


def _checks_dir(tmp_path: Path, url: str) -> Path:
    checks = tmp_path / "checks"
    checks.mkdir()
    lines = ["checks:"]
    for name in CHECKS:  # one run each: a long interval, started at once (startup_spread 0)
        lines += [
            f"  - name: {name}",
            "    type: http",
            f"    url: {url}/{name}",
            "    interval: 1h",
        ]
    lines += [
        "  - name: nightly",
        "    type: heartbeat",
        "    period: 1h",
        "    readiness: false",
    ]
    lines += [f"    token: {TOKEN}"]
    (checks / "sites.yaml").write_text("\n".join(lines) + "\n")
    return checks


def _series_checks(daemon: RunningDaemon) -> dict[str, set[str]]:
    """``{check: {replica label or ''}}`` of every series with a ``check`` label on /metrics."""
    out: dict[str, set[str]] = {}
    for line in daemon.metrics().splitlines():
        if line.startswith("#") or 'check="' not in line:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', line.partition("}")[0]))
        out.setdefault(labels["check"], set()).add(labels.get("replica", ""))
    return out


@contextmanager
def _replicas(checks: Path, count: int, redundancy: int) -> Iterator[list[RunningDaemon]]:
    config = f"replicas:\n  count: {count}\n  redundancy: {redundancy}\n"
    with ExitStack() as stack:
        yield [
            stack.enter_context(
                start_daemon(checks, config=config, env={"POD_NAME": f"probed-sharded-{i}"})
            )
            for i in range(count)
        ]


def _all_ran(hits: Counter[str], runs: int) -> bool:
    return sum(hits.values()) >= runs * len(CHECKS)


@pytest.mark.parametrize("redundancy", [1, 2])
def test_three_replicas_run_every_check_exactly_redundancy_times(
    tmp_path: Path, redundancy: int
) -> None:
    with _target() as (url, hits), _replicas(_checks_dir(tmp_path, url), 3, redundancy) as pods:
        wait_until(lambda: _all_ran(hits, redundancy), 30, "every check ran")
        for pod in pods:  # every replica's first runs have been answered and recorded
            pod.wait_for(lambda pod=pod: pod.get("/health/ready").status == 200, 30)
        assert [pod.metric("probed_config_errors") for pod in pods] == [0, 0, 0]
        exported = [_series_checks(pod) for pod in pods]
        listed = [set(pod.checks()) for pod in pods]
    assert hits == Counter(dict.fromkeys(CHECKS, redundancy))  # nobody ran another's
    for name in CHECKS:
        expected = set(owners(name, 3, redundancy))
        running = {o for o in range(3) if name in exported[o]}
        assert running == expected, name
        assert {o for o in range(3) if name in listed[o]} == expected, name
        for o in expected:
            assert exported[o][name] == ({str(o)} if redundancy > 1 else {""}), name
    # The union of the three /metrics covers every check; the heartbeat runs on exactly one.
    assert set().union(*exported) == {*CHECKS, "nightly"}
    assert [o for o in range(3) if "nightly" in exported[o]] == [owners("nightly", 3)[0]]
    assert sum(len(e) for e in exported) == redundancy * len(CHECKS) + 1


def test_readiness_and_pings_count_only_the_checks_a_replica_owns(tmp_path: Path) -> None:
    with _target() as (url, _hits):
        checks = _checks_dir(tmp_path, url)
        broken = (  # a readiness check nothing answers (port 9, discard, is closed here)
            "  - name: broken\n    type: tcp\n    address: 127.0.0.1:9\n"
            "    interval: 1h\n    failure_threshold: 1\n"
        )
        (checks / "sites.yaml").write_text((checks / "sites.yaml").read_text() + broken)
        down = owners("broken", 3)[0]
        with _replicas(checks, 3, 1) as pods:
            for o, pod in enumerate(pods):
                want = 503 if o == down else 200
                pod.wait_for(lambda pod=pod, want=want: pod.get("/health/ready").status == want, 30)
            assert [pod.metric("probed_config_errors") for pod in pods] == [0, 0, 0]
            owner = owners("nightly", 3)[0]
            for o, pod in enumerate(pods):
                answer = pod.get(f"/ping/nightly?token={TOKEN}")
                assert answer.status == (200 if o == owner else 404), (o, answer.body)


def test_the_replica_label_stays_on_every_series_with_check_labels_info(tmp_path: Path) -> None:
    config = "metrics:\n  check_labels: info\n"
    with _target() as (url, hits):
        checks = _checks_dir(tmp_path, url)
        args = ["--replicas", "2", "--replica-ordinal", "1", "--replica-redundancy", "2"]
        with start_daemon(checks, config=config, args=args) as pod:
            pod.wait_for(lambda: _all_ran(hits, 1), 30)
            pod.wait_for(lambda: pod.metric("probed_check_success", check="site-00") == 1, 30)
            text = pod.metrics()
    success = [line for line in text.splitlines() if line.startswith("probed_check_success{")]
    assert len(success) == len(CHECKS)
    assert all('replica="1"' in line and "team=" not in line for line in success), success[:2]


def test_a_reload_re_evaluates_ownership(tmp_path: Path) -> None:
    with _target() as (url, _hits), _replicas(_checks_dir(tmp_path, url), 1, 1) as (pod,):
        pod.wait_for(lambda: set(pod.checks()) == {*CHECKS, "nightly"}, 30)
        settings = pod.log_path.parent / "probed.yaml"
        text = settings.read_text().replace("count: 1", "count: 4")
        settings.write_text(text)  # POD_NAME=probed-sharded-0: now replica 0 of 4
        pod.proc.send_signal(signal.SIGHUP)
        mine = {n for n in (*CHECKS, "nightly") if owners(n, 4)[0] == 0}
        assert 0 < len(mine) < len(CHECKS)
        pod.wait_for(lambda: set(pod.checks()) == mine, 30)
        pod.wait_for(lambda: set(_series_checks(pod)) == mine, 30)
