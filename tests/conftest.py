"""Test configuration: every module in tests/servers/ is a fixture plugin (real servers)."""

from pathlib import Path

pytest_plugins = sorted(
    f"tests.servers.{p.stem}"
    for p in (Path(__file__).parent / "servers").glob("*.py")
    if not p.name.startswith("_")
)
