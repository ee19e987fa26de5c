"""The cached exposition renderer: correct text, escaping, caching and removal."""

from __future__ import annotations

import math

from prometheus_client.parser import text_string_to_metric_families

from probed import Result, Sample
from probed.exposition import Renderer, TypeMetrics, format_value, render_checks
from probed.state import CheckState
from probed.testing import make_spec
from tests.fakes import ScriptCheck

TYPES = TypeMetrics([("script", ScriptCheck.metrics)])


def parse(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def state(name: str = "c", **labels: str) -> CheckState:
    return CheckState(make_spec(ScriptCheck, name=name, labels=labels))


def test_label_values_with_quotes_backslashes_newlines_and_percent_round_trip() -> None:
    tricky = 'a "quoted" \\ back\nline 100%s %d'
    s = state(team=tricky)
    s.record(Result.ok(duration=0.003, timestamp=1700000000.5))
    samples = parse(render_checks([s], TYPES, openmetrics=False))
    key = ("probed_check_success", (("check", "c"), ("team", tricky), ("type", "script")))
    assert samples[key] == 1.0
    bucket = (
        "probed_check_duration_seconds_bucket",
        (("check", "c"), ("le", "0.005"), ("team", tricky), ("type", "script")),
    )
    assert samples[bucket] == 1.0


def test_histogram_is_cumulative_and_counts_match() -> None:
    s = state()
    for d in (0.001, 0.02, 0.02, 20.0):
        s.record(Result.fail("timeout", "x", duration=d, timestamp=1.0))
    samples = parse(render_checks([s], TYPES, openmetrics=False))
    base = (("check", "c"), ("type", "script"))

    def bucket(le: str) -> float:
        return samples[("probed_check_duration_seconds_bucket", tuple(sorted((*base, ("le", le)))))]

    assert [bucket(b) for b in ("0.005", "0.025", "10", "+Inf")] == [1, 3, 3, 4]
    assert samples[("probed_check_duration_seconds_count", base)] == 4
    assert math.isclose(samples[("probed_check_duration_seconds_sum", base)], 20.041)
    assert (
        samples[("probed_check_failures_total", tuple(sorted((*base, ("reason", "timeout")))))] == 4
    )


def test_a_changed_state_is_re_rendered_and_an_unchanged_one_is_reused() -> None:
    renderer = Renderer(TYPES)
    s = state()
    s.record(Result.ok(duration=0.001, timestamp=1.0))
    first = renderer.render([s], openmetrics=False)
    [lines] = renderer.refresh([s])
    assert renderer.render([s], openmetrics=False) == first
    assert renderer.refresh([s]) == [lines] and renderer.refresh([s])[0] is lines
    s.record(Result.fail("assertion", "bad", duration=0.001, timestamp=2.0))
    second = renderer.render([s], openmetrics=False)
    assert renderer.refresh([s])[0] is not lines
    assert 'probed_check_success{check="c",type="script"} 0' in second


def test_rendering_only_reads_the_states() -> None:
    s = state()
    s.record(Result.ok(timestamp=1.0))
    before = {name: getattr(s, name) for name in CheckState.__slots__}
    Renderer(TYPES).render([s], openmetrics=True)
    assert {name: getattr(s, name) for name in CheckState.__slots__} == before
    assert not hasattr(s, "__dict__")  # nowhere to hang a cache on a state


def test_a_renderer_forgets_checks_a_reload_removed() -> None:
    renderer = Renderer(TYPES)
    a, b = state("a"), state("b")
    renderer.render([a, b], openmetrics=False)
    renderer.render([a], openmetrics=False)
    assert renderer.release([b], 1e9) == 0  # b's lines are no longer kept
    assert renderer.release([a], 1e9) == 1


def test_type_metrics_and_labelled_samples_are_rendered_only_when_declared() -> None:
    s = state()
    s.record(
        Result.ok(
            values={"probed_script_value": 7.5, "probed_undeclared": 1.0},
            samples=(Sample("probed_script_labelled", 2.0, ("x",)),),
            timestamp=1.0,
        )
    )
    text = render_checks([s], TYPES, openmetrics=False)
    assert 'probed_script_value{check="c",type="script"} 7.5' in text
    assert 'probed_script_labelled{check="c",type="script",part="x"} 2' in text
    assert "probed_undeclared" not in text


def test_a_removed_check_leaves_no_series() -> None:
    a, b = state("a"), state("b")
    for s in (a, b):
        s.record(Result.ok(timestamp=1.0))
    assert 'check="b"' in render_checks([a, b], TYPES, openmetrics=False)
    assert 'check="b"' not in render_checks([a], TYPES, openmetrics=False)


def test_format_value() -> None:
    assert format_value(1.0) == "1"
    assert format_value(0.25) == "0.25"
    assert format_value(math.inf) == "+Inf"
    assert format_value(math.nan) == "NaN"
    assert format_value(1e20) == "1e+20"


async def test_sliced_async_render_equals_the_one_shot_render() -> None:
    from probed.metrics import DaemonMetrics, render, render_async
    from probed.state import StateStore

    states = {f"c{i}": state(f"c{i}") for i in range(7)}
    store = StateStore(states)
    for i, s in enumerate(states.values()):
        s.record(Result.ok(values={"probed_script_value": float(i)}, timestamp=1.0))
    daemon = DaemonMetrics(store, lambda: True)
    sliced = await render_async(store, TYPES, daemon, False, batch=2)
    whole = render(store, TYPES, daemon, False)

    def stable(body: bytes) -> list[str]:  # process and render-time figures change between calls
        return [
            line
            for line in body.decode().splitlines()
            if not line.startswith(("process_", "probed_metrics_render_seconds "))
        ]

    assert stable(sliced) == stable(whole)
    assert sliced.decode().count("probed_script_value{") == 7


def test_an_assembly_in_slices_of_any_size_equals_the_text_assembled_at_once() -> None:
    from probed.exposition import ExpositionOptions, new_assembly

    states = [state(f"c{i}") for i in range(7)]
    for i, s in enumerate(states):
        if i % 2:
            s.record(Result.fail("timeout", "too slow", timestamp=1.0))
        else:
            samples = (Sample("probed_script_labelled", 2.0, ("x",)),) if i % 3 == 0 else ()
            s.record(Result.ok(values={"probed_script_value": float(i)}, samples=samples))
    for options in (ExpositionOptions(), ExpositionOptions(zero_counters=False)):
        renderer = Renderer(TYPES, options)
        caches = renderer.refresh(states)
        whole = new_assembly(TYPES, options)
        whole.add(caches)
        expected = whole.body(False, b"# tail\n")
        assert b'reason="timeout"' in expected and b"probed_script_labelled{" in expected
        for size in (1, 2, 3, 7):
            sliced = new_assembly(TYPES, options)
            for start in range(0, len(caches), size):
                sliced.add(caches[start : start + size])
            assert sliced.body(False, b"# tail\n") == expected
    empty = new_assembly(TYPES).body(True, b"# EOF\n")
    assert empty == (render_checks([], TYPES, True) + "# EOF\n").encode()


def test_checks_keep_their_order_within_every_family_whatever_lines_each_one_has() -> None:
    states = [state(f"c{i}") for i in range(9)]
    for i, s in enumerate(states):
        if i % 3 == 1:
            s.record(Result.fail("timeout", "too slow", timestamp=1.0))
        elif i % 3 == 2:
            s.record(Result.ok(values={"probed_script_value": 1.0}, timestamp=1.0))
    text = render_checks(states, TYPES, False)  # c0, c3, c6 never ran: no success line
    for family, names in (
        ("probed_check_up{", [f"c{i}" for i in range(9)]),
        ("probed_check_success{", [f"c{i}" for i in range(9) if i % 3]),
        ("probed_check_failures_total{", ["c1", "c4", "c7"]),
        ("probed_script_value{", ["c2", "c5", "c8"]),
    ):
        lines = [line for line in text.splitlines() if line.startswith(family)]
        assert [line.split('"')[1] for line in lines] == names, family


def test_a_checks_kept_lines_are_one_tuple_of_the_families_it_has_with_a_shared_layout() -> None:
    a, b = state("a"), state("b")
    for s in (a, b):
        s.record(Result.ok(duration=0.001, timestamp=1.0))
    renderer = Renderer(TYPES)
    first, second = renderer.refresh([a, b])
    version, layout, spec, prefix, *chunks = first
    assert version == a.version and layout is second[1]  # equal layouts: one tuple
    assert spec is a.spec and prefix == '{check="a",type="script"'
    assert layout[0] == 3 and len(chunks) == len(layout) - 1  # 3 static chunks lead
    assert all(type(c) is bytes and c for c in chunks)
    text = renderer.render([a], openmetrics=False)
    samples = [line for line in text.splitlines() if not line.startswith("#")]
    assert sorted(b"".join(chunks).decode().splitlines()) == sorted(samples)
    a.record(Result.ok(duration=0.002, timestamp=2.0))
    [again] = renderer.refresh([a])
    statics = [c for c in chunks if c.startswith(b"probed_check_interval_seconds{")]
    assert statics and all(any(c is s for s in again) for c in statics)  # kept, not re-rendered


def test_young_collections_on_a_clock_collect_the_middle_generation_every_tenth_time() -> None:
    import gc

    from probed._gc import MIDDLE_EVERY, YoungCollections

    seen: list[int] = []

    def record(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            seen.append(info["generation"])

    collect = YoungCollections()
    gc.callbacks.append(record)
    try:
        for _ in range(2 * MIDDLE_EVERY):
            collect()
    finally:
        gc.callbacks.remove(record)
    # (an automatic collection may slip in between; the clock's own ones are these)
    assert seen.count(1) >= 2
    assert seen.count(0) >= 2 * (MIDDLE_EVERY - 1)


def test_gc_settle_freezes_and_raises_thresholds_in_its_own_process() -> None:
    import subprocess
    import sys

    code = (
        "import gc; from probed._gc import return_large_buffers, settle; settle(); "
        "print(gc.get_freeze_count() > 0, *gc.get_threshold(), return_large_buffers())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    # young collections a little less often than by default, full ones far less (see _gc)
    assert out.stdout.split() == ["True", "2000", "10", "2500", "True"]  # glibc here


async def test_lines_of_checks_faster_than_the_scrapes_are_not_kept_between_scrapes() -> None:
    from dataclasses import replace

    from probed.metrics import DaemonMetrics, Exporter
    from probed.state import StateStore

    fast = state("fast")  # interval 10 s (make_spec default)
    slow = CheckState(replace(make_spec(ScriptCheck, name="slow"), interval=300.0))
    store = StateStore({"fast": fast, "slow": slow})
    for s in (fast, slow):
        s.record(Result.ok(timestamp=1.0))
    exporter = Exporter(store, TYPES, DaemonMetrics(store, lambda: True))
    first = await exporter.render_async(False)
    assert exporter.last_scrape is not None
    exporter.last_scrape -= 15  # the next scrape 15 s later: longer than fast's interval
    second = await exporter.render_async(False)
    # fast's lines were let go after the second scrape (nothing left to release); slow's kept
    assert exporter.renderer.release([fast], 1e9) == 0
    assert exporter.renderer.release([slow], 1e9) == 1
    third = await exporter.render_async(False)
    for body in (first, second, third):
        assert b'probed_check_success{check="fast",type="script"} 1' in body
        assert b'probed_check_success{check="slow",type="script"} 1' in body


def test_compact_copies_picklable_objects_and_keeps_others() -> None:
    from probed._gc import compact

    spec = make_spec(ScriptCheck, name="x", labels={"a": "b"})
    copy = compact(lambda: {"spec": spec}, lambda _obj: True)
    assert copy == {"spec": spec}
    assert copy["spec"] is not spec
    original = {"spec": spec}
    assert compact(lambda: original, lambda _obj: False) is original
    unpicklable = {"f": lambda: None}
    assert compact(lambda: unpicklable, lambda _obj: True) is unpicklable


async def test_a_scrape_keeps_its_body_in_pieces_and_gzips_them_as_one_body() -> None:
    import gzip

    from probed.metrics import RENDER_BATCH, DaemonMetrics, Exporter
    from probed.state import StateStore

    states = {f"c{i}": state(f"c{i}") for i in range(2 * RENDER_BATCH + 1)}
    for s in states.values():
        s.record(Result.ok(duration=0.001, timestamp=1.0))
    store = StateStore(states)
    exporter = Exporter(store, TYPES, DaemonMetrics(store, lambda: True))
    plain = await exporter.scrape(False)
    # a family's header, then one piece per slice of checks: never joined into one copy
    ups = [c for c in plain.chunks if c.startswith(b"probed_check_up{")]
    assert len(ups) == 3 and sum(c.count(b"\n") for c in ups) == len(states)
    assert plain.size == len(plain.body) and not plain.gzipped
    assert _samples_of(plain.body) == _samples_of(exporter.renderer.render(list(store), False))
    zipped = await exporter.scrape(False, accepts_gzip=True)
    assert zipped.gzipped and _samples_of(gzip.decompress(zipped.body)) == _samples_of(plain.body)


def _samples_of(body: bytes | str) -> set[str]:
    text = body.decode() if isinstance(body, bytes) else body
    return {line for line in text.splitlines() if line.startswith("probed_check_")}
