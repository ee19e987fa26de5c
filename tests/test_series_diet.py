"""The series diet for large daemons: exact series per check under each setting, the
large-scale settings' size for 50,000 checks, and what each ``metrics:`` key renders.

Counts come from the renderer itself (``benchmarks/series.py`` builds the checks and counts
the lines); they are the figures of the table in ``docs/metrics.md``."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from prometheus_client.parser import text_string_to_metric_families

from probed import Result
from probed.errors import ConfigErrors
from probed.exposition import ExpositionOptions, Renderer, TypeMetrics, render_checks
from probed.settings import load_settings
from probed.state import CheckState
from probed.testing import make_spec
from tests._require import require
from tests.fakes import ScriptCheck

ROOT = Path(__file__).resolve().parent.parent
TYPES = TypeMetrics([("script", ScriptCheck.metrics)])


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_series", ROOT / "benchmarks/series.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_series"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


SERIES = _bench()

EXPECTED = {  # series per check: passing, failing (two reasons), labelled
    "default": (38, 34, 38),
    "info added": (39, 35, 39),
    "info instead of config gauges": (36, 32, 36),
    "histogram off": (25, 21, 25),
    "labels on info only": (39, 35, 39),
    "zero counters off": (34, 30, 34),
    "large-scale": (6, 8, 6),
}


def _rows() -> dict[str, object]:
    return {s.name: SERIES.measure(s, 20) for s in SERIES.SETTINGS}


ROWS = _rows()


def test_each_setting_renders_exactly_the_documented_series_per_check() -> None:
    got = {name: tuple(row.series[k] for k in SERIES.KINDS) for name, row in ROWS.items()}  # type: ignore[attr-defined]
    assert got == EXPECTED


def test_the_large_scale_settings_keep_50000_checks_under_25_mb_of_text() -> None:
    row = ROWS[SERIES.LARGE_SCALE]
    default = ROWS["default"]
    assert row.body_mb(50_000) <= 25.0  # type: ignore[attr-defined]
    assert default.body_mb(50_000) > 100.0  # type: ignore[attr-defined]  # it is a diet


def test_the_documented_tables_hold_the_figures_the_script_prints() -> None:
    for doc in ("docs/metrics.md", "benchmarks/README.md"):
        text = (ROOT / doc).read_text()
        for name, counts in EXPECTED.items():
            cells = " | ".join(str(c) for c in counts)
            assert f"| {name} | {cells} |" in text, (doc, name)


def _documented_profile(tmp_path: Path) -> ExpositionOptions:
    text = (ROOT / "docs/metrics.md").read_text()
    section = text[text.index("## Large-scale settings") :]
    block = re.search(r"```yaml\n(.*?)```", section, re.DOTALL)
    assert block is not None
    path = tmp_path / "probed.yaml"
    path.write_text(block.group(1))
    settings = load_settings(path, {})
    assert settings.defaults.duration_histogram is False
    return settings.metrics


def test_the_documented_large_scale_yaml_is_the_measured_setting(tmp_path: Path) -> None:
    measured = next(s for s in SERIES.SETTINGS if s.name == SERIES.LARGE_SCALE)
    assert _documented_profile(tmp_path) == measured.options
    assert measured.histogram is False


def _samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [
        (s.name, dict(s.labels), s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def _state(name: str, **keys: object) -> CheckState:
    return CheckState(make_spec(ScriptCheck, name=name, interval=60, timeout=5, **keys))


def test_check_info_carries_the_static_facts_as_labels_with_value_1() -> None:
    s = _state("web", labels={"team": "a"}, readiness=False)
    text = render_checks([s], TYPES, False, ExpositionOptions(check_info=True))
    info = [x for x in _samples(text) if x[0] == "probed_check_info"]
    assert info == [
        (
            "probed_check_info",
            {
                "check": "web",
                "type": "script",
                "team": "a",
                "interval": "60",
                "timeout": "5",
                "readiness": "false",
            },
            1.0,
        )
    ]


def test_an_own_label_named_like_an_info_label_stays_off_the_info_series_only() -> None:
    s = _state("web", labels={"interval": "hourly"})
    text = render_checks([s], TYPES, False, ExpositionOptions(check_info=True))
    samples = _samples(text)  # the parser refuses a series with a label given twice
    [info] = [labels for name, labels, _ in samples if name == "probed_check_info"]
    assert info["interval"] == "60"
    [up] = [labels for name, labels, _ in samples if name == "probed_check_up"]
    assert up["interval"] == "hourly"


def test_with_labels_on_info_only_every_other_series_carries_just_the_check() -> None:
    s = _state("web", labels={"team": "a"})
    s.record(Result.fail("timeout", "slow", duration=0.2, timestamp=1.5, phases={"connect": 0.1}))
    text = render_checks([s], TYPES, False, ExpositionOptions(check_labels="info"))
    own = {"result", "reason", "phase", "status", "le"}  # a family's own label
    for name, labels, _ in _samples(text):
        if name == "probed_check_info":
            assert labels["team"] == "a" and labels["type"] == "script"
        else:
            assert set(labels) - own == {"check"}, name


def test_dropped_families_have_neither_lines_nor_a_header() -> None:
    s = _state("web")
    s.record(Result.ok(duration=0.1, timestamp=1.0, values={"probed_script_value": 3.0}))
    drop = frozenset({"probed_check_status", "probed_script_value", "probed_check_timeout_seconds"})
    text = render_checks([s], TYPES, False, ExpositionOptions(drop=drop))
    for name in drop:
        assert name not in text
    assert "probed_check_interval_seconds{" in text


def test_zero_counters_off_leaves_a_counter_out_until_it_first_counts() -> None:
    renderer = Renderer(TYPES, ExpositionOptions(zero_counters=False))
    s = _state("web")
    s.record(Result.ok(duration=0.1, timestamp=1.0))
    first = renderer.render([s], openmetrics=False)
    assert 'result="ok"} 1' in first and 'result="fail"' not in first
    assert "probed_check_skipped_runs_total{" not in first
    s.record(Result.fail("timeout", "x", duration=0.1, timestamp=2.0))
    assert 'probed_check_runs_total{check="web",type="script",result="fail"} 1' in (
        renderer.render([s], openmetrics=False)
    )


def test_a_check_without_histogram_exports_its_last_duration_beside_one_that_keeps_it() -> None:
    lean, full = _state("lean", duration_histogram=False), _state("full")
    for s in (lean, full):
        s.record(Result.ok(duration=0.25, timestamp=1.0))
    samples = _samples(render_checks([lean, full], TYPES, False))
    buckets = {labels["check"] for n, labels, _ in samples if n.endswith("_bucket")}
    assert buckets == {"full"}
    last = [(labels["check"], v) for n, labels, v in samples if "last_duration" in n]
    assert last == [("lean", 0.25)]


def test_with_every_histogram_off_the_histogram_family_has_no_header() -> None:
    s = _state("lean", duration_histogram=False)
    text = render_checks([s], TYPES, True)  # OpenMetrics: a header without samples is legal,
    assert "probed_check_duration_seconds " not in text  # but says nothing


def test_the_default_options_render_what_a_renderer_without_options_does() -> None:
    s = _state("web", labels={"team": "a"})
    s.record(Result.fail("timeout", "x", duration=0.1, timestamp=2.0, phases={"tls": 0.01}))
    assert render_checks([s], TYPES, False, ExpositionOptions()) == render_checks([s], TYPES, False)
    assert "probed_check_info" not in render_checks([s], TYPES, False)


@pytest.mark.parametrize(
    ("written", "message"),
    [
        ("drop: [probed_check_sucess]", "unknown per-check family 'probed_check_sucess'"),
        ("drop: [up]", "'up' is not a per-check metric family name"),
        ("check_labels: some", "all_series"),
        ("zero_counter: false", "unknown key 'zero_counter'"),
    ],
)
def test_a_wrong_metrics_block_is_a_configuration_error_naming_the_key(
    tmp_path: Path, written: str, message: str
) -> None:
    path = tmp_path / "probed.yaml"
    path.write_text(f"metrics:\n  {written}\n")
    with pytest.raises(ConfigErrors) as caught:
        load_settings(path, {})
    assert "probed.yaml:2: metrics." in str(caught.value)
    assert message in str(caught.value)


def test_the_large_scale_output_passes_promtool_check_metrics(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    require(promtool is not None, "needs promtool (Debian: prometheus)")
    assert promtool is not None
    measured = next(s for s in SERIES.SETTINGS if s.name == SERIES.LARGE_SCALE)
    states = [st for kind in SERIES.KINDS for st in SERIES.build(kind, 3, measured.histogram)]
    text = render_checks(states, SERIES.TYPES, False, measured.options)
    done = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_series_labels_stay_on_every_series_with_labels_on_info_only(tmp_path: Path) -> None:
    path = tmp_path / "probed.yaml"
    path.write_text("metrics:\n  check_labels: info\n  series_labels: [team]\n")
    options = load_settings(path, {}).metrics
    s = _state("web", labels={"team": "a", "env": "prod", "replica": "1"})
    s.record(Result.ok(duration=0.1, timestamp=1.0))
    for name, labels, _ in _samples(render_checks([s], TYPES, False, options)):
        if name != "probed_check_info":
            assert {"check", "team"} <= set(labels) and not {"env", "replica"} & set(labels)
    default = ExpositionOptions(check_labels="info")  # replica by default
    [up] = [x[1] for x in _samples(render_checks([s], TYPES, False, default)) if "_up" in x[0]]
    assert up == {"check": "web", "replica": "1"}
