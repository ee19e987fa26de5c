"""Helpers shared by the contrib tests: paths, running validators, reading PromQL.

Every contrib file is checked by the real tool for its kind; these helpers only run the tools
and collect their output so a failing assertion shows what the tool said.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Final

import yaml

ROOT: Final = Path(__file__).resolve().parents[2]
CONTRIB: Final = ROOT / "contrib"
PROMETHEUS: Final = CONTRIB / "prometheus"
RULE_FILES: Final = tuple(sorted((PROMETHEUS / "rules").glob("*.rules.yml")))

# Metric names as they appear in PromQL: probed's own series, process_* and up.
_METRIC_RE: Final = re.compile(r"(?<![\w:\"'])(probed_[a-z0-9_]+|process_[a-z0-9_]+)\b")
_HISTOGRAM_SUFFIXES: Final = ("_bucket", "_sum", "_count")


def run(
    args: Sequence[str], *, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run a validator and capture its output (never raises on a non-zero exit)."""
    return subprocess.run(
        list(args), cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


def output(proc: subprocess.CompletedProcess[str]) -> str:
    """Both streams of a finished process, for assertion messages."""
    return f"exit {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"


def load_yaml(path: Path) -> Any:
    """Parse one YAML document."""
    return yaml.safe_load(path.read_text())


def alert_rules() -> Iterator[dict[str, Any]]:
    """Every alerting rule in contrib/prometheus/rules."""
    for path in RULE_FILES:
        for group in load_yaml(path)["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    yield rule


def recording_rules() -> Iterator[dict[str, Any]]:
    """Every recording rule in contrib/prometheus/rules."""
    for path in RULE_FILES:
        for group in load_yaml(path)["groups"]:
            for rule in group["rules"]:
                if "record" in rule:
                    yield rule


def metric_names(expr: str) -> set[str]:
    """Names of probed_*/process_* series an expression reads (histogram suffixes removed)."""
    names = set()
    for name in _METRIC_RE.findall(expr):
        for suffix in _HISTOGRAM_SUFFIXES:
            if name.endswith(suffix):
                name = name[: -len(suffix)]
                break
        names.add(name)
    return names


def probed_cli_missing() -> str | None:
    """Why the daemon cannot be started yet, or None when ``probed.cli`` imports."""
    if importlib.util.find_spec("probed.cli") is None:
        return "probed.cli does not exist yet (the daemon is being written)"
    try:
        importlib.import_module("probed.cli")
    except Exception as exc:  # any import failure means "not ready", whatever it is
        return f"probed.cli does not import yet: {exc!r}"
    return None
