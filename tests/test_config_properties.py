"""Property tests of the config loader (issue 8): whatever a checks file or ``probed.yaml``
holds -- random structures, aliases (shared, nested, self-referencing), huge and non-finite
numbers, unicode, wrong types, references, broken YAML -- loading it raises nothing and reports
nothing but located config errors (``FILE:LINE: ...`` or ``FILE: ...``).

Examples are derandomized and bounded so the file runs in a few seconds in CI.
"""

from __future__ import annotations

import atexit
import math
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from probed.common import COMMON_KEYS
from probed.config import load_checks, load_settings
from probed.errors import ConfigError, ConfigErrors
from probed.plugins import check_types, get_plugin_manager
from probed.settings import Settings

PLUGINS = Path(__file__).parent / "data" / "plugins"
TYPES = check_types(get_plugin_manager(plugins_dirs=(PLUGINS,), entry_points=False))
WORK = Path(tempfile.mkdtemp(prefix="probed-properties-"))
atexit.register(shutil.rmtree, WORK, True)
CHECKS = WORK / "checks.d"
CHECKS.mkdir()
CHECKS_FILE = CHECKS / "c.yaml"
CONFIG_FILE = WORK / "probed.yaml"

FAST = settings(
    max_examples=60,
    deadline=10_000,  # ms per example: generous for a loaded CI machine, still bounded
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

KEYS = st.sampled_from(
    [
        *COMMON_KEYS,
        *sorted(TYPES),
        "url",
        "address",
        "host",
        "port",
        "dsn",
        "path",
        "expect_status",
        "headers",
        "message",
        "status",
        "repeat",
        "window",
        "max_age",
        "warn_used_percent",
        "checks",
        "defaults",
        "max_checks",
        "secrets_dirs",
        "listen",
        "history",
        "plugins",
        "<<",
    ]
) | st.text(max_size=12)

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**60, max_value=10**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.inf, -math.inf, math.nan, 1e308, 5e-324, 10**400]),
    st.text(max_size=20),
    st.sampled_from(sorted(TYPES)),
    st.sampled_from(
        [
            "10s",
            "0.0000000001ms",
            "1" + "0" * 400 + "s",
            ".inf",
            ".nan",
            "1e999",
            "-5s",
            "${HOME}",
            "${file:/etc/shadow}",
            "${file:/proc/self/environ}",
            "${file:relative/secret}",
            "${file:}",
            "${UNSET_PROBED_PROPERTY_VAR}",
            "$${literal}",
            "${",
            "http://user:pa55word@127.0.0.1:1/",
            "127.0.0.1:1",
            "/",
            "\u202e\u0000\ud7ff\U0001f600",
        ]
    ),
)

VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=5),
    max_leaves=25,
)

CHECK = st.dictionaries(KEYS, VALUES, max_size=8).map(
    lambda d: {"name": "c", "type": "tcp", **d} if len(d) % 2 else d
)


def share(value: Any, data: st.DataObject) -> Any:
    """Place the same object at several places (yaml.dump writes anchors and aliases) and,
    sometimes, inside itself (a recursive alias)."""
    containers: list[Any] = []

    def collect(node: Any) -> None:
        if isinstance(node, dict | list):
            containers.append(node)
            for child in node.values() if isinstance(node, dict) else node:
                collect(child)

    collect(value)
    for _ in range(data.draw(st.integers(0, 3), label="shares")):
        if not containers:
            break
        target = data.draw(st.sampled_from(containers), label="target")
        shared = data.draw(st.sampled_from(containers), label="shared")
        if isinstance(target, list):
            target.append(shared)
        else:
            target[data.draw(KEYS, label="key")] = shared
    return value


def dump(value: Any) -> str:
    try:
        return yaml.dump(value, allow_unicode=True, sort_keys=False)
    except (yaml.YAMLError, RecursionError, TypeError, ValueError):
        return yaml.safe_dump(repr(value))


MUTATIONS = st.sampled_from(
    ["&a ", "*a", "[", "]", "{", "}", ": ", "- ", "\t", "\n  ", "<<: *a\n", "!!python/object ", "'"]
)


def mutate(text: str, data: st.DataObject) -> str:
    for _ in range(data.draw(st.integers(0, 4), label="mutations")):
        at = data.draw(st.integers(0, len(text)), label="at")
        text = text[:at] + data.draw(MUTATIONS, label="insert") + text[at:]
    return text


LOCATED = re.compile(r"^(?P<file>.+?)(:(?P<line>\d+))?: .+", re.DOTALL)


def assert_located(error: ConfigError, path: Path) -> None:
    assert isinstance(error, ConfigError)
    assert error.file == str(path), str(error)
    assert LOCATED.match(str(error)), str(error)
    assert "Traceback" not in str(error)


def load_checks_text(text: str) -> None:
    CHECKS_FILE.write_text(text, encoding="utf-8", errors="surrogatepass")
    result = load_checks(Settings(checks_dirs=(CHECKS,)), TYPES)
    for error in result.errors:
        assert_located(error, CHECKS_FILE)


@FAST
@given(st.data())
def test_a_checks_file_of_any_structure_gives_only_located_errors(data: st.DataObject) -> None:
    checks = data.draw(st.lists(CHECK | VALUES, max_size=4), label="checks")
    document = data.draw(st.sampled_from(["checks", "defaults+checks", "any"]), label="shape")
    value: Any
    if document == "checks":
        value = {"checks": checks}
    elif document == "defaults+checks":
        value = {"defaults": data.draw(VALUES, label="defaults"), "checks": checks}
    else:
        value = data.draw(VALUES, label="document")
    text = mutate(dump(share(value, data)), data)
    load_checks_text(text)


@FAST
@given(st.data())
def test_a_probed_yaml_of_any_structure_gives_only_located_errors(data: st.DataObject) -> None:
    value = data.draw(st.dictionaries(KEYS, VALUES, max_size=6), label="settings")
    text = mutate(dump(share(value, data)), data)
    CONFIG_FILE.write_text(text, encoding="utf-8", errors="surrogatepass")
    errors: list[ConfigError] = []
    loaded = None
    try:
        loaded = load_settings(CONFIG_FILE, {"checks_dirs": (CHECKS,)})
    except ConfigErrors as exc:
        errors = exc.errors
    for error in errors:
        assert_located(error, CONFIG_FILE)
    if loaded is None:
        assert errors
        return
    CHECKS_FILE.write_text("checks: []\n")
    result = load_checks(loaded, TYPES)
    for error in result.errors:
        assert error.file in (str(CONFIG_FILE), str(CHECKS_FILE)), str(error)
        assert LOCATED.match(str(error)), str(error)


@FAST
@given(
    st.text(
        alphabet=st.sampled_from("&*ab[]{}:-, \n\t'\"!<>|#%@`?0123456789.e+x${}é\u2028"),
        max_size=120,
    )
)
def test_arbitrary_yaml_text_gives_only_located_errors(text: str) -> None:
    load_checks_text(text)


@settings(max_examples=15, deadline=10_000, derandomize=True)
@given(
    depth=st.integers(1, 12),
    width=st.integers(2, 12),
    recursive=st.booleans(),
)
def test_alias_towers_are_refused_quickly_or_loaded(
    depth: int, width: int, recursive: bool
) -> None:
    lines = ["a0: &a0 [x, y]"]
    for level in range(1, depth + 1):
        lines.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * width) + "]")
    if recursive:
        lines.append("loop: &loop {self: *loop}")
    lines.append("checks:\n  - {name: ok, type: outcome}")
    load_checks_text("\n".join(lines) + "\n")
