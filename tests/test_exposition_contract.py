"""The exact /metrics text of a check, in both formats, and the renderer's edge cases.

``test_exposition.py`` parses the output and checks a few samples; here the whole text of one
check is compared with the documented families, so a wrong value, label, order or header in
any family fails.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families as parse_text

from probed import MetricDef, Result, Sample
from probed.exposition import (
    CORE_FAMILIES,
    Family,
    Renderer,
    TypeMetrics,
    escape_label,
    format_value,
    render_checks,
)
from probed.state import CheckState
from probed.testing import make_spec
from tests.fakes import ScriptCheck

TYPES = TypeMetrics([("script", ScriptCheck.metrics)])
L = 'check="web",type="script",team="a"'

EXPECTED_TEXT = f"""\
# HELP probed_check_success 1 if the last run passed (ok or warn), else 0.
# TYPE probed_check_success gauge
probed_check_success{{{L}}} 1
# HELP probed_check_up 1 while the check is up after thresholds, else 0.
# TYPE probed_check_up gauge
probed_check_up{{{L}}} 1
# HELP probed_check_status Thresholded status as a state set: 1 for the current status label, \
0 for the others.
# TYPE probed_check_status gauge
probed_check_status{{{L},status="ok"}} 1
probed_check_status{{{L},status="warn"}} 0
probed_check_status{{{L},status="fail"}} 0
probed_check_status{{{L},status="unknown"}} 0
# HELP probed_check_duration_seconds Duration of check runs.
# TYPE probed_check_duration_seconds histogram
probed_check_duration_seconds_bucket{{{L},le="0.005"}} 0
probed_check_duration_seconds_bucket{{{L},le="0.01"}} 0
probed_check_duration_seconds_bucket{{{L},le="0.025"}} 1
probed_check_duration_seconds_bucket{{{L},le="0.05"}} 1
probed_check_duration_seconds_bucket{{{L},le="0.1"}} 1
probed_check_duration_seconds_bucket{{{L},le="0.25"}} 1
probed_check_duration_seconds_bucket{{{L},le="0.5"}} 1
probed_check_duration_seconds_bucket{{{L},le="1"}} 1
probed_check_duration_seconds_bucket{{{L},le="2.5"}} 1
probed_check_duration_seconds_bucket{{{L},le="5"}} 2
probed_check_duration_seconds_bucket{{{L},le="10"}} 2
probed_check_duration_seconds_bucket{{{L},le="+Inf"}} 2
probed_check_duration_seconds_sum{{{L}}} 3.02
probed_check_duration_seconds_count{{{L}}} 2
# HELP probed_check_runs_total Check runs by result.
# TYPE probed_check_runs_total counter
probed_check_runs_total{{{L},result="ok"}} 1
probed_check_runs_total{{{L},result="warn"}} 0
probed_check_runs_total{{{L},result="fail"}} 1
probed_check_runs_total{{{L},result="unknown"}} 0
# HELP probed_check_failures_total Failed runs by bounded reason.
# TYPE probed_check_failures_total counter
probed_check_failures_total{{{L},reason="timeout"}} 1
# HELP probed_check_last_run_timestamp_seconds Unix time at which the last run finished.
# TYPE probed_check_last_run_timestamp_seconds gauge
probed_check_last_run_timestamp_seconds{{{L}}} 1700000015.5
# HELP probed_check_phase_duration_seconds Duration of each phase of the last run \
(resolve, connect, tls, processing, ...).
# TYPE probed_check_phase_duration_seconds gauge
probed_check_phase_duration_seconds{{{L},phase="connect"}} 0.01
probed_check_phase_duration_seconds{{{L},phase="tls"}} 0.005
# HELP probed_check_state_changes_total Changes of the thresholded status.
# TYPE probed_check_state_changes_total counter
probed_check_state_changes_total{{{L}}} 1
# HELP probed_check_skipped_runs_total Runs skipped because the previous run was still \
in progress.
# TYPE probed_check_skipped_runs_total counter
probed_check_skipped_runs_total{{{L}}} 1
# HELP probed_check_interval_seconds Configured interval between runs.
# TYPE probed_check_interval_seconds gauge
probed_check_interval_seconds{{{L}}} 15
# HELP probed_check_timeout_seconds Configured timeout of one run.
# TYPE probed_check_timeout_seconds gauge
probed_check_timeout_seconds{{{L}}} 2.5
# HELP probed_check_readiness 1 if the check counts toward /health/ready.
# TYPE probed_check_readiness gauge
probed_check_readiness{{{L}}} 1
# HELP probed_script_value A value reported by the script check.
# TYPE probed_script_value gauge
probed_script_value{{{L}}} 42
# HELP probed_script_labelled A labelled value.
# TYPE probed_script_labelled gauge
probed_script_labelled{{{L},part="a"}} 1.5
"""


def web_state() -> CheckState:
    """One failed run (below the failure threshold), one passing run, one skipped run."""
    spec = make_spec(ScriptCheck, name="web", labels={"team": "a"}, interval=15, timeout=2.5)
    s = CheckState(spec)
    s.record(Result.fail("timeout", "slow", duration=3.0, timestamp=1700000000.25))
    s.record(
        Result.ok(
            "fine",
            duration=0.02,
            timestamp=1700000015.5,
            phases={"connect": 0.01, "tls": 0.005},
            values={"probed_script_value": 42.0},
            samples=(Sample("probed_script_labelled", 1.5, ("a",)),),
        )
    )
    s.skipped()
    return s


def test_one_check_renders_every_documented_family_in_order_in_the_text_format() -> None:
    text = render_checks([web_state()], TYPES, openmetrics=False)
    assert text == EXPECTED_TEXT
    assert len(list(parse_text(text))) == len(CORE_FAMILIES) + 2


def test_openmetrics_differs_only_by_counter_family_names_without_total() -> None:
    text = render_checks([web_state()], TYPES, openmetrics=True)
    expected = EXPECTED_TEXT
    for counter in ("runs", "failures", "state_changes", "skipped_runs"):
        for line in ("HELP", "TYPE"):
            expected = expected.replace(
                f"# {line} probed_check_{counter}_total ", f"# {line} probed_check_{counter} "
            )
    assert text == expected
    families = {f.name: f.type for f in parse_openmetrics(text + "# EOF\n")}
    assert families["probed_check_runs"] == "counter"
    assert families["probed_check_duration_seconds"] == "histogram"


def test_a_check_that_never_ran_has_no_success_timestamp_phase_or_failure_series() -> None:
    text = render_checks([CheckState(make_spec(ScriptCheck, name="new"))], TYPES, False)
    series = [line for line in text.splitlines() if not line.startswith("#")]
    names = {line.split("{")[0] for line in series}
    assert "probed_check_success" not in names
    assert "probed_check_last_run_timestamp_seconds" not in names
    assert "probed_check_phase_duration_seconds" not in names
    assert "probed_check_failures_total" not in names
    assert 'probed_check_up{check="new",type="script"} 0' in series
    assert 'probed_check_status{check="new",type="script",status="unknown"} 1' in series
    assert 'probed_check_status{check="new",type="script",status="ok"} 0' in series
    assert 'probed_check_duration_seconds_count{check="new",type="script"} 0' in series
    assert 'probed_check_duration_seconds_sum{check="new",type="script"} 0' in series
    assert 'probed_check_runs_total{check="new",type="script",result="ok"} 0' in series
    assert 'probed_check_skipped_runs_total{check="new",type="script"} 0' in series
    assert 'probed_check_readiness{check="new",type="script"} 1' in series


def test_a_down_check_renders_success_0_up_0_and_its_status_flag() -> None:
    s = CheckState(replace(make_spec(ScriptCheck, name="d"), failure_threshold=1))
    s.record(Result.warn("threshold", "high", timestamp=5.0))
    s.record(Result.unknown("other", "cannot tell", timestamp=6.0))
    lines = render_checks([s], TYPES, openmetrics=False).splitlines()
    assert 'probed_check_success{check="d",type="script"} 0' in lines
    assert 'probed_check_up{check="d",type="script"} 0' in lines
    flags = [line.rsplit(" ", 1)[1] for line in lines if line.startswith("probed_check_status{")]
    assert flags == ["0", "0", "0", "1"]  # ok, warn, fail, unknown
    assert 'probed_check_failures_total{check="d",type="script",reason="other"} 1' in lines
    assert 'probed_check_runs_total{check="d",type="script",result="warn"} 1' in lines


def test_a_warn_run_is_a_success_and_sets_the_warn_flag() -> None:
    s = CheckState(make_spec(ScriptCheck, name="w"))
    s.record(Result.warn("threshold", "high", timestamp=5.0))
    lines = render_checks([s], TYPES, openmetrics=False).splitlines()
    assert 'probed_check_success{check="w",type="script"} 1' in lines
    flags = [line.rsplit(" ", 1)[1] for line in lines if line.startswith("probed_check_status{")]
    assert flags == ["0", "1", "0", "0"]


def test_a_check_left_out_of_readiness_renders_readiness_0() -> None:
    s = CheckState(replace(make_spec(ScriptCheck, name="r"), readiness=False))
    assert 'probed_check_readiness{check="r",type="script"} 0\n' in render_checks(
        [s], TYPES, openmetrics=False
    )


def test_type_families_group_the_lines_of_all_checks_under_one_header() -> None:
    states = []
    for name, value in (("a", 1.0), ("b", 2.0)):
        s = CheckState(make_spec(ScriptCheck, name=name))
        s.record(
            Result.ok(
                values={"probed_script_value": value},
                samples=(
                    Sample("probed_script_labelled", value, ("x",)),
                    Sample("probed_script_labelled", value + 10, ("y",)),
                ),
                timestamp=1.0,
            )
        )
        states.append(s)
    text = render_checks(states, TYPES, openmetrics=False)
    assert text.count("# TYPE probed_script_value gauge") == 1
    assert text.count("# TYPE probed_script_labelled gauge") == 1
    tail = text[text.index("# HELP probed_script_value") :].splitlines()
    assert [line for line in tail if not line.startswith("#")] == [
        'probed_script_value{check="a",type="script"} 1',
        'probed_script_value{check="b",type="script"} 2',
        'probed_script_labelled{check="a",type="script",part="x"} 1',
        'probed_script_labelled{check="a",type="script",part="y"} 11',
        'probed_script_labelled{check="b",type="script",part="x"} 2',
        'probed_script_labelled{check="b",type="script",part="y"} 12',
    ]


def test_samples_with_the_wrong_number_of_labels_or_undeclared_names_are_dropped() -> None:
    s = CheckState(make_spec(ScriptCheck, name="c"))
    s.record(
        Result.ok(
            samples=(
                Sample("probed_script_labelled", 1.0, ()),
                Sample("probed_script_labelled", 2.0, ("a", "b")),
                Sample("probed_not_declared", 3.0, ("a",)),
            ),
            timestamp=1.0,
        )
    )
    text = render_checks([s], TYPES, openmetrics=False)
    assert "probed_script_labelled" not in text
    assert "probed_not_declared" not in text


def test_the_first_declaration_of_a_metric_name_wins_across_check_types() -> None:
    first = MetricDef("probed_shared", "First help.", labels=("x",))
    second = MetricDef("probed_shared", "Second help.", kind="counter", labels=("y", "z"))
    types = TypeMetrics([("one", (first,)), ("two", (second,))])
    assert types.families == {"probed_shared": Family("probed_shared", "First help.", "gauge")}
    assert types.labels == {"probed_shared": ("x",)}


def test_a_conflicting_declaration_is_not_silent_and_a_shared_identical_one_is_quiet(
    caplog: pytest.LogCaptureFixture,
) -> None:
    first = MetricDef("probed_shared", "First help.", labels=("x",))
    same = MetricDef("probed_shared", "First help.", labels=("x",))
    other_help = MetricDef("probed_shared", "Other help.", labels=("x",))
    with caplog.at_level("WARNING", logger="probed"):
        TypeMetrics([("one", (first,)), ("two", (same,))])
        assert caplog.records == []
        TypeMetrics([("one", (first,)), ("two", (same,)), ("three", (other_help,))])
    [record] = caplog.records
    assert record.getMessage() == (
        "metric probed_shared is declared differently by check types one and three; "
        "the declaration of one is used"
    )


def test_a_changed_spec_is_rendered_with_its_new_labels_and_settings() -> None:
    renderer = Renderer(TYPES)  # keeps the old spec's label prefix until the spec changes
    s = CheckState(make_spec(ScriptCheck, name="c", labels={"env": "old"}, interval=10))
    s.record(Result.ok(timestamp=1.0))
    assert 'env="old"' in renderer.render([s], openmetrics=False)
    s.spec = make_spec(ScriptCheck, name="c", labels={"env": "new"}, interval=30)
    s.record(Result.ok(timestamp=2.0))
    text = renderer.render([s], openmetrics=False)
    assert 'env="old"' not in text
    assert 'probed_check_interval_seconds{check="c",type="script",env="new"} 30\n' in text


def test_release_drops_lines_of_checks_at_most_as_slow_as_the_scrape_gap_only() -> None:
    def ran(name: str, interval: float) -> CheckState:
        s = CheckState(replace(make_spec(ScriptCheck, name=name), interval=interval))
        s.record(Result.ok(timestamp=1.0))
        return s

    fast, edge, slow, never = ran("fast", 5), ran("edge", 15), ran("slow", 60), ran("n", 1)
    renderer = Renderer(TYPES)
    before = renderer.render([fast, edge, slow], openmetrics=False)
    assert renderer.release([fast, edge, slow, never], 15.0) == 2  # never rendered: nothing kept
    assert renderer.release([fast, edge, slow], 15.0) == 0  # already released
    assert renderer.render([fast, edge, slow], openmetrics=False) == before


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("plain", "plain"),
        ("a\\b", "a\\\\b"),
        ('say "hi"', 'say \\"hi\\"'),
        ("two\nlines", "two\\nlines"),
        ('\\"\n', '\\\\\\"\\n'),
    ],
)
def test_label_values_escape_backslash_quote_and_newline(raw: str, escaped: str) -> None:
    assert escape_label(raw) == escaped


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0"),
        (3, "3"),
        (-2.0, "-2"),
        (0.1, "0.1"),
        (-math.inf, "-Inf"),
        (math.inf, "+Inf"),
        (999_999_999_999_999.0, "999999999999999"),
        (1e15, "1000000000000000.0"),
        (-1e15, "-1000000000000000.0"),
        (1.5e-7, "1.5e-07"),
    ],
)
def test_sample_values_are_formatted_as_prometheus_parses_them(value: float, text: str) -> None:
    assert format_value(value) == text


def test_family_help_escapes_backslash_and_newline_and_only_counters_lose_total() -> None:
    counter = Family("probed_x_total", "a\\b\nc", "counter")
    assert counter.header(False) == (
        "# HELP probed_x_total a\\\\b\\nc\n# TYPE probed_x_total counter\n"
    )
    assert counter.header(True) == "# HELP probed_x a\\\\b\\nc\n# TYPE probed_x counter\n"
    gauge = Family("probed_y_total", "h", "gauge")
    assert gauge.header(True) == "# HELP probed_y_total h\n# TYPE probed_y_total gauge\n"
    plain = Family("probed_z", "h", "counter")
    assert plain.header(True) == "# HELP probed_z h\n# TYPE probed_z counter\n"


def test_several_failure_reasons_and_labels_are_each_on_their_own_line() -> None:
    pair = MetricDef("probed_pair", "Two labels.", labels=("a", "b"))
    counter = MetricDef("probed_things_total", "Things seen.", kind="counter")
    types = TypeMetrics([("script", (pair, counter))])
    s = CheckState(make_spec(ScriptCheck, name="c"))
    s.record(Result.fail("timeout", "x", timestamp=1.0))
    s.record(
        Result.fail(
            "refused",
            "x",
            timestamp=2.0,
            values={"probed_things_total": 3.0},
            samples=(
                Sample("probed_pair", 1.0, ("only-one",)),  # dropped: one label for two
                Sample("probed_pair", 2.0, ("x", "y")),  # still rendered after a dropped one
            ),
        )
    )
    text = render_checks([s], types, openmetrics=True)
    lines = text.splitlines()
    assert 'probed_check_failures_total{check="c",type="script",reason="timeout"} 1' in lines
    assert 'probed_check_failures_total{check="c",type="script",reason="refused"} 1' in lines
    assert 'probed_pair{check="c",type="script",a="x",b="y"} 2' in lines
    assert "only-one" not in text
    # a type's counter family is named without _total in OpenMetrics too
    assert "# TYPE probed_things counter" in lines
    assert 'probed_things_total{check="c",type="script"} 3' in lines


def test_a_secret_shaped_label_value_is_masked_in_the_exposition() -> None:
    s = CheckState(make_spec(ScriptCheck, name="c", labels={"dsn": "postgres://u:hunter2@db/x"}))
    s.record(Result.ok(timestamp=1.0))
    text = render_checks([s], TYPES, openmetrics=False)
    assert "hunter2" not in text
    assert 'probed_check_up{check="c",type="script",dsn="postgres://u:***@db/x"} 1\n' in text
