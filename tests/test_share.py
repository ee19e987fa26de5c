"""probed._share: equal immutable values of many specs become one object, nothing else changes."""

from __future__ import annotations

import pickle
from pathlib import Path

from probed._share import share_equal
from probed.check import CheckOptions
from probed.checkfile import load_checks
from probed.plugins import check_types, get_plugin_manager
from probed.settings import Settings


def _specs(tmp_path: Path, urls: list[str]) -> list:
    checks = tmp_path / "checks.d"
    checks.mkdir()
    lines = ["defaults:", "  interval: 3600s", "checks:"]
    lines += [f"  - {{name: c{i}, type: http, url: '{url}'}}" for i, url in enumerate(urls)]
    (checks / "a.yaml").write_text("\n".join(lines) + "\n")
    loaded = load_checks(Settings(checks_dirs=(checks,)), check_types(get_plugin_manager()))
    assert not loaded.errors
    return list(loaded.specs.values())


def test_shared_specs_compare_equal_and_share_values_and_fields_sets(tmp_path: Path) -> None:
    specs = _specs(tmp_path, ["http://127.0.0.1:1/"] * 3)
    before = pickle.loads(pickle.dumps(specs))
    assert specs[0].options.url is not specs[1].options.url
    assert specs[0].options is not specs[1].options
    share_equal(specs)
    assert specs == before
    assert [s.options.model_dump() for s in specs] == [s.options.model_dump() for s in before]
    assert specs[0].options.url is specs[1].options.url
    assert specs[0].interval is specs[2].interval
    fields_set = specs[0].options.__pydantic_fields_set__
    assert fields_set is specs[1].options.__pydantic_fields_set__ == {"url"}
    # equal options of a built-in type are one model
    assert specs[0].options is specs[1].options is specs[2].options


def test_built_in_options_that_differ_share_their_equal_containers_and_nested_models(
    tmp_path: Path,
) -> None:
    specs = _specs(tmp_path, ["http://127.0.0.1:1/a", "http://127.0.0.1:1/b"])
    before = pickle.loads(pickle.dumps(specs))
    a, b = specs[0].options, specs[1].options
    assert a.headers is not b.headers and a.tls is not b.tls
    share_equal(specs)
    assert specs == before
    assert specs[0].options is a and a is not b
    assert (a.url, b.url) == ("http://127.0.0.1:1/a", "http://127.0.0.1:1/b")
    assert a.headers is b.headers == {} and a.body_must_match is b.body_must_match == []
    assert a.valid_status_codes is b.valid_status_codes == ["2xx"]
    assert a.tls is b.tls == before[0].options.tls
    # and pickle (the compaction right after) keeps the sharing
    a2, b2 = (s.options for s in pickle.loads(pickle.dumps(specs)))
    assert a2.headers is b2.headers and a2.tls is b2.tls


class _PluginOptions(CheckOptions):
    """A plugin's options model (defined outside probed): its containers are its own."""

    targets: list[str] = []
    extra: dict[str, str] = {}


def test_a_plugins_options_keep_their_own_containers() -> None:
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Spec:
        options: _PluginOptions

    specs = [Spec(_PluginOptions(targets=["a"], extra={"k": "v"})) for _ in range(2)]
    share_equal(specs)
    a, b = specs[0].options, specs[1].options
    assert a == b and a is not b
    assert a.targets is not b.targets and a.extra is not b.extra


def test_negative_zero_and_true_are_not_merged_with_zero_and_one() -> None:
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Spec:
        value: object

    specs = [Spec(0.0), Spec(-0.0), Spec(1), Spec(True), Spec((0, 1)), Spec((0, 1))]
    share_equal(specs)
    assert str(specs[1].value) == "-0.0"
    assert specs[3].value is True and type(specs[2].value) is int
    assert specs[4].value is specs[5].value


def test_unpickled_specs_share_equal_numbers_as_the_compaction_leaves_them(
    tmp_path: Path,
) -> None:
    # pickle copies floats and ints: the specs' own __setstate__ shares them again
    specs = _specs(tmp_path, ["http://127.0.0.1:1/a", "http://127.0.0.1:1/b"])
    share_equal(specs)
    a, b = pickle.loads(pickle.dumps(specs))
    assert [a, b] == specs and a.options is not b.options
    assert a.interval is b.interval == 3600.0 and a.timeout is b.timeout
    assert a.options.max_body_size is b.options.max_body_size == 10 * 1024 * 1024


def test_number_sharing_keeps_negative_zero_and_booleans_apart() -> None:
    from probed.spec import _interned

    zero, minus_zero = _interned(float("0.0")), _interned(float("-0.0"))
    assert str(zero) == "0.0" and str(minus_zero) == "-0.0"
    assert _interned(True) is True and type(_interned(1000)) is int
    assert _interned(float("1e300")) is _interned(float("1e300"))
