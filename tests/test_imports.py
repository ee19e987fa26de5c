"""Every module imports on its own in a fresh interpreter (no circular imports), and the
public API is what the README promises plugin authors."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import probed

PACKAGE = Path(probed.__file__).parent
MODULES = sorted(
    ".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts)
    for p in PACKAGE.rglob("*.py")
    if p.name != "__main__.py"
)


@pytest.mark.parametrize("module", MODULES)
def test_module_imports_alone(module: str) -> None:
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", f"import {module.removesuffix('.__init__')}"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def test_public_api_is_complete() -> None:
    for name in (
        "Check",
        "CheckOptions",
        "Result",
        "Status",
        "Reason",
        "MetricDef",
        "Sample",
        "Duration",
        "Regex",
        "hookimpl",
        "CheckSpec",
    ):
        assert name in probed.__all__, name
        assert getattr(probed, name) is not None


# -- the import graph of probed/ ------------------------------------------------------------------


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(
        ".__init__"
    )


def _imported(path: Path, module: str, known: set[str]) -> set[str]:
    """Every probed module ``path`` imports anywhere: top level, inside functions and under
    ``if TYPE_CHECKING:`` (a type-only import is still a dependency)."""
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")
                parent = parent[: len(parent) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            # `from probed import x` may import the submodule probed.x
            names = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        else:
            continue
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module:
                found.add(name)
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the probed modules it imports. A module importing a submodule of a package
    depends on that submodule; a package's ``__init__`` is a module like the others."""
    paths = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    known = set(paths)
    return {name: _imported(path, name, known) for name, path in paths.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (``[a, b, ..., a]``), or ``None``."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)) is not None:
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)) is not None:
            return cycle
    return None


def test_find_cycle_sees_a_cycle_and_only_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_the_import_graph_reads_type_only_function_level_and_relative_imports(
    tmp_path: Path,
) -> None:
    source = tmp_path / "mod.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from probed.spec import CheckSpec\n"
        "def f():\n    import probed.state\n    from . import redact\n"
        "from probed import check, __version__\n"
    )
    known = {"probed", "probed.spec", "probed.state", "probed.redact", "probed.check", "probed.x"}
    found = _imported(source, "probed.x", known)
    assert found == {"probed", "probed.spec", "probed.state", "probed.redact", "probed.check"}
    assert "probed.check" in import_graph()["probed.hookspecs"]  # only under TYPE_CHECKING


def test_no_import_cycle_in_probed_not_even_type_only() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or ())


MAX_LINES = 500


def test_no_module_in_probed_is_over_500_lines() -> None:
    """Modules are split by what they hold before they grow past this (house style)."""
    sizes = {
        str(p.relative_to(PACKAGE.parent)): len(p.read_text().splitlines())
        for p in PACKAGE.rglob("*.py")
    }
    over = {path: n for path, n in sorted(sizes.items()) if n > MAX_LINES}
    assert not over, f"modules over {MAX_LINES} lines: {over}"
