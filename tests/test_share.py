"""probed._share: equal immutable values of many specs become one object, nothing else changes."""

from __future__ import annotations

import pickle
from pathlib import Path

from probed._share import share_equal
from probed.checkfile import load_checks
from probed.plugins import check_types, get_plugin_manager
from probed.settings import Settings


def _specs(tmp_path: Path, count: int) -> list:
    checks = tmp_path / "checks.d"
    checks.mkdir()
    lines = ["defaults:", "  interval: 3600s", "checks:"]
    lines += [f"  - {{name: c{i}, type: http, url: 'http://127.0.0.1:1/'}}" for i in range(count)]
    (checks / "a.yaml").write_text("\n".join(lines) + "\n")
    loaded = load_checks(Settings(checks_dirs=(checks,)), check_types(get_plugin_manager()))
    assert not loaded.errors
    return list(loaded.specs.values())


def test_shared_specs_compare_equal_and_share_values_and_fields_sets(tmp_path: Path) -> None:
    specs = _specs(tmp_path, 3)
    before = pickle.loads(pickle.dumps(specs))
    assert specs[0].options.url is not specs[1].options.url
    share_equal(specs)
    assert specs == before
    assert [s.options.model_dump() for s in specs] == [s.options.model_dump() for s in before]
    assert specs[0].options.url is specs[1].options.url
    assert specs[0].interval is specs[2].interval
    fields_set = specs[0].options.__pydantic_fields_set__
    assert fields_set is specs[1].options.__pydantic_fields_set__ == {"url"}
    # mutable values stay per spec
    assert specs[0].options.headers is not specs[1].options.headers


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
