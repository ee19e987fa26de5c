"""``probed schema`` against every example checks file in the repository, and the common keys'
single source: each key of :mod:`probed.common` reaches the schema, the defaults, the spec, the
API view and the testing helper (so a derivation that someone forgets or hand-writes fails)."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any, ClassVar

import jsonschema
import pytest
import yaml

from probed import Check, CheckOptions, Result
from probed.api import check_view
from probed.common import (
    COMMON_KEYS,
    DEFAULT_KEYS,
    REQUIRED_KEYS,
    CheckDefaults,
    CommonKeys,
    key_fields,
    key_of,
    merge_defaults,
)
from probed.spec import CheckSpec
from probed.state import CheckState
from probed.testing import make_spec

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "contrib" / "plugin-template"
# Drop-in plugin directories whose check types the examples use: the repository's plugins/ and
# the plugin template's module (it imports only from probed, so it loads as a drop-in too).
PLUGIN_DIRS = (ROOT / "plugins", TEMPLATE / "src" / "probed_hello")


def example_files() -> list[Path]:
    """Every checks file the repository ships as an example."""
    found = [
        *sorted((ROOT / "checks.d").glob("*.y*ml")),
        *sorted((ROOT / "contrib").rglob("checks.d/*.y*ml")),
        *sorted((ROOT / "contrib" / "deploy" / "smoke.d").glob("*.y*ml")),
        ROOT / "probed" / "embedded_checks.yaml",
    ]
    return found


def example_documents() -> dict[str, Any]:
    """Every example checks document by where it is: files, checks files inside Kubernetes
    ConfigMaps, and the plugin template README's example."""
    docs: dict[str, Any] = {
        str(p.relative_to(ROOT)): yaml.safe_load(p.read_text()) for p in example_files()
    }
    for path in sorted((ROOT / "contrib" / "kubernetes").rglob("*.yaml")):
        for manifest in yaml.safe_load_all(path.read_text()):
            if isinstance(manifest, dict) and manifest.get("kind") == "ConfigMap":
                for key, text in (manifest.get("data") or {}).items():
                    content = yaml.safe_load(text) if key.endswith((".yaml", ".yml")) else None
                    if isinstance(content, dict) and "checks" in content:
                        docs[f"{path.relative_to(ROOT)}:{key}"] = content
    readme = (TEMPLATE / "README.md").read_text()
    [heredoc] = re.findall(r"<<'YAML'\n(.*?)\nYAML\n", readme, re.DOTALL)
    docs["contrib/plugin-template/README.md"] = yaml.safe_load(heredoc)
    return docs


@cache
def cli_schema() -> dict[str, Any]:
    """What ``probed schema`` prints, run as a user runs it."""
    args = [arg for d in PLUGIN_DIRS for arg in ("--plugins-dir", str(d))]
    # The template's plugin module imports its own package for its version.
    path = os.pathsep.join(filter(None, [str(TEMPLATE / "src"), os.environ.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-m", "probed", "schema", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": path},
        check=True,
    )
    schema: dict[str, Any] = json.loads(result.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    return schema


def problems(document: Any) -> list[str]:
    validator = jsonschema.Draft202012Validator(cli_schema())
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(document)
    ]


def test_the_examples_are_many_and_cover_plugin_and_template_types() -> None:
    docs = example_documents()
    types = {c["type"] for d in docs.values() for c in (d or {}).get("checks") or []}
    assert len(docs) >= 14, sorted(docs)
    assert {"file_age", "hello", "http", "postgres", "redis", "disk"} <= types


@pytest.mark.parametrize("where", sorted(example_documents()))
def test_probed_schema_accepts_every_example_checks_file(where: str) -> None:
    assert problems(example_documents()[where]) == []


@pytest.mark.parametrize(
    "document",
    [
        {"checks": [{"name": "a", "type": "http", "url": "http://127.0.0.1/", "colour": "red"}]},
        {"checks": [{"name": "a", "type": "http", "url": "http://127.0.0.1/", "intervall": "1s"}]},
        {"defaults": {"interval": "10s", "colour": "red"}, "checks": []},
        {"checks": [], "colour": "red"},
    ],
    ids=["option", "misspelt-common-key", "defaults", "top-level"],
)
def test_probed_schema_rejects_a_file_with_an_unknown_key(document: Any) -> None:
    assert problems(document)


# -- the one model of the common keys ----------------------------------------------------------


class PingCheck(Check[CheckOptions]):
    type_name: ClassVar[str] = "ping"

    async def run(self) -> Result:
        return Result.ok()


def _other(value: Any) -> Any:
    """A valid value of the same kind as ``value`` but different (and not empty)."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value + 1
    if isinstance(value, str):
        return value + "x"
    assert isinstance(value, tuple), value
    return () if value else (("team", "x"),)


def _changed(spec: CheckSpec, keys: tuple[str, ...]) -> CheckSpec:
    return dataclasses.replace(spec, **{k: _other(getattr(spec, k)) for k in keys if k != "type"})


def test_every_field_of_the_common_model_is_a_declared_key() -> None:
    spec_only = {"options", "source", "line"}
    assert {f.name for f in dataclasses.fields(CheckSpec)} - spec_only == set(COMMON_KEYS)
    assert {f.name for f in dataclasses.fields(CommonKeys)} == set(COMMON_KEYS)
    assert {f.name for f in dataclasses.fields(CheckDefaults)} == set(DEFAULT_KEYS)
    assert set(DEFAULT_KEYS) < set(COMMON_KEYS)


def test_every_common_key_is_in_the_schema_of_every_type_and_defaults_keys_in_defaults() -> None:
    schema = cli_schema()
    branches = schema["properties"]["checks"]["items"]["oneOf"]
    assert len(branches) > 5
    for branch in branches:
        assert set(COMMON_KEYS) <= set(branch["properties"]), branch["title"]
        assert set(branch["required"]) >= set(REQUIRED_KEYS)
    assert set(schema["properties"]["defaults"]["properties"]) == set(DEFAULT_KEYS)


def test_every_common_key_is_in_the_api_view_and_round_trips_through_the_testing_helper() -> None:
    full = _changed(make_spec(PingCheck), COMMON_KEYS)
    view = check_view(CheckState(full), str)
    shown = {f.name: view[key_of(f).api or f.name] for f in key_fields()}
    assert set(shown) == set(COMMON_KEYS)
    # What the API shows is what a check file (and the testing helper) accepts.
    given = {k: v for k, v in shown.items() if k != "type"}
    assert make_spec(PingCheck, **given) == full


def test_every_defaults_key_can_be_set_by_a_defaults_block() -> None:
    base = CheckDefaults()
    spec = _changed(
        make_spec(PingCheck, interval=base.interval, timeout=base.timeout), DEFAULT_KEYS
    )
    view = check_view(CheckState(spec), str)
    block = {f.name: view[key_of(f).api or f.name] for f in key_fields(CheckDefaults)}
    merged, found = merge_defaults(base, block)
    assert found == []
    for name in DEFAULT_KEYS:
        assert getattr(merged, name) == getattr(spec, name) != getattr(base, name), name


def test_every_common_key_is_documented_in_the_configuration_reference() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text()
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", text, re.MULTILINE))
    assert set(COMMON_KEYS) <= documented, set(COMMON_KEYS) - documented
