"""The Nagios plugin output and perfdata parser (probed.checks._nagios): examples from the plugin
API spec and from the monitoring-plugins, plus properties over bounded random input."""

from __future__ import annotations

import math

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from probed.checks._nagios import (
    MAX_LABEL,
    MAX_MESSAGE,
    PerfData,
    format_perfdata,
    parse_output,
    parse_perfdata,
    quote_label,
)

# The multi-line example of the Nagios plugin API documentation ("Plugin Output").
SPEC_OUTPUT = (
    "DISK OK - free space: / 3326 MB (56%); | /=2643MB;5948;5958;0;5968\n"
    "/ 15272 MB (77%);\n"
    "/boot 68 MB (69%);\n"
    "/home 69357 MB (27%);\n"
    "/var/log 819 MB (84%); | /boot=68MB;88;93;0;98\n"
    "/home=69357MB;253404;253409;0;253414\n"
    "/var/log=818MB;970;975;0;980\n"
)
MB = 1024.0**2


def test_multiline_output_splits_message_long_text_and_perfdata_per_the_spec() -> None:
    out = parse_output(SPEC_OUTPUT)
    assert out.message == "DISK OK - free space: / 3326 MB (56%);"
    assert out.long_lines == (
        "/ 15272 MB (77%);",
        "/boot 68 MB (69%);",
        "/home 69357 MB (27%);",
        "/var/log 819 MB (84%);",
    )
    perf = parse_perfdata(out.perfdata)
    assert [p.label for p in perf.items] == ["/", "/boot", "/home", "/var/log"]
    assert perf.items[0] == PerfData("/", 2643 * MB, "MB", 5948 * MB, 5958 * MB, 0.0, 5968 * MB)
    assert (perf.dropped, perf.invalid) == (0, 0)


def test_single_line_without_perfdata_is_just_the_message() -> None:
    out = parse_output("OK: all good\n")
    assert (out.message, out.long_lines, out.perfdata) == ("OK: all good", (), "")
    assert parse_output("") == parse_output("\n\n")


def test_control_characters_in_the_message_become_spaces() -> None:
    assert parse_output("\x1b[31mCRIT\x1b[0m\x00 x\n").message == "[31mCRIT [0m  x"


def test_message_is_cut_at_its_limit() -> None:
    out = parse_output("x" * 5000 + " | a=1")
    assert len(out.message) == MAX_MESSAGE and out.message.endswith("…")
    assert parse_perfdata(out.perfdata).items[0].value == 1.0


@pytest.mark.parametrize(
    ("text", "value", "uom"),
    [
        ("t=1.5s", 1.5, "s"),
        ("t=250ms", 0.25, "ms"),
        ("t=40us", 40e-6, "us"),
        ("t=512B", 512.0, "B"),
        ("t=2KB", 2048.0, "KB"),
        ("t=3kb", 3072.0, "kb"),
        ("t=1GB", 1024.0**3, "GB"),
        ("t=2TB", 2 * 1024.0**4, "TB"),
        ("t=80%", 0.8, "%"),
        ("t=1234c", 1234.0, "c"),
        ("t=-3.5", -3.5, ""),
        ("t=7furlongs", 7.0, "furlongs"),  # unknown unit: the number as it is
    ],
)
def test_units_are_normalised_to_base_units(text: str, value: float, uom: str) -> None:
    (item,) = parse_perfdata(text).items
    assert item.value == pytest.approx(value) and item.uom == uom


def test_thresholds_min_max_take_the_value_unit_and_ranges_are_not_numbers() -> None:
    (a, b, c) = parse_perfdata("a=5ms;100;200;0;1000 b=50%;80:;@10:20;0;100 c=U;1;2").items
    assert (a.warn, a.crit, a.min, a.max) == pytest.approx((0.1, 0.2, 0.0, 1.0))
    assert (b.value, b.warn, b.crit, b.min, b.max) == pytest.approx((0.5, None, None, 0.0, 1.0))
    assert (c.value, c.warn, c.crit) == (None, 1.0, 2.0)


def test_quoted_labels_keep_spaces_equals_and_doubled_quotes() -> None:
    items = parse_perfdata("'free space'=1 'it''s'=2 'a=b'=3 plain=4").items
    assert [i.label for i in items] == ["free space", "it's", "a=b", "plain"]


def test_garbage_is_counted_not_fatal_and_does_not_swallow_later_items() -> None:
    perf = parse_perfdata("junk =1 x=abc ok=1 'q'nope ok2=2s 'unterminated=2 ok3=3")
    assert [i.label for i in perf.items] == ["ok", "ok2", "ok3"]
    assert perf.invalid == 5


def test_item_count_and_label_length_are_capped_and_repeats_dropped() -> None:
    text = " ".join(f"m{i}=1" for i in range(100))
    perf = parse_perfdata(text, max_items=32)
    assert len(perf.items) == 32 and perf.dropped == 68
    long = parse_perfdata(f"{'x' * 500}=1 {'x' * 499}=2").items
    assert len(long) == 1 and long[0].label == "x" * MAX_LABEL and long[0].value == 1.0


def test_format_quotes_labels_only_when_needed() -> None:
    assert format_perfdata("web_duration", 0.0125, "s", min=0, max=10) == (
        "web_duration=0.0125s;;;0;10"
    )
    assert format_perfdata("free space", 3, warn=1, crit=2) == "'free space'=3;1;2"
    assert format_perfdata("it's", None) == "'it''s'=U"
    assert quote_label("a=b") == "'a=b'" and quote_label("db.main-1") == "db.main-1"
    assert format_perfdata("tiny", 1e-7, "s") == "tiny=0.0000001s"


labels = st.text(
    st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1, max_size=40
).filter(lambda s: s.strip() == s and " ".join(s.split()) == s and "=" not in s[:1])
numbers = st.floats(min_value=-1e12, max_value=1e12, allow_nan=False).map(lambda f: round(f, 6))
optional = st.none() | numbers


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(labels, optional, optional, optional, optional, optional), max_size=8))
@example([("a b", 1.0, None, None, 0.0, None)])
def test_what_format_writes_parse_reads_back(
    rows: list[tuple[str, float | None, float | None, float | None, float | None, float | None]],
) -> None:
    unique = list({row[0]: row for row in rows}.values())
    text = " ".join(
        format_perfdata(label, v, warn=w, crit=c, min=lo, max=hi)
        for label, v, w, c, lo, hi in unique
    )
    perf = parse_perfdata(text)
    assert perf.invalid == 0 and perf.dropped == 0
    assert [i.label for i in perf.items] == [row[0] for row in unique]
    for item, (_, v, w, c, lo, hi) in zip(perf.items, unique, strict=True):
        got = (item.value, item.warn, item.crit, item.min, item.max)
        assert [g is None for g in got] == [x is None for x in (v, w, c, lo, hi)]
        assert [g for g in got if g is not None] == pytest.approx(
            [x for x in (v, w, c, lo, hi) if x is not None], rel=1e-9, abs=1e-6
        )


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=2000))
def test_any_output_parses_within_bounds(text: str) -> None:
    out = parse_output(text)
    assert len(out.message) <= MAX_MESSAGE and out.message.isprintable()
    perf = parse_perfdata(out.perfdata, max_items=5, max_label=10)
    assert len(perf.items) <= 5
    for item in perf.items:
        assert 0 < len(item.label) <= 10
        assert all(
            x is None or math.isfinite(x)
            for x in (item.value, item.warn, item.crit, item.min, item.max)
        )
