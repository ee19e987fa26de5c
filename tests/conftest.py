"""Test configuration: real-server fixture plugins, the skip policy, shared state reset.

Every module in tests/servers/ is a fixture plugin (real servers). ``requires`` marks are
probed before a test's fixtures start (see tests/_require.py); under
``PROBED_REQUIRE_SERVICES=1`` a skip from anywhere is reported as a failure.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from tests import fakes
from tests._require import MARKER, REQUIRE_SERVICES, check_marks

pytest_plugins = sorted(
    f"tests.servers.{p.stem}"
    for p in (Path(__file__).parent / "servers").glob("*.py")
    if not p.name.startswith("_")
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(available, reason): needs a capability of the machine; skips without it, "
        "fails under PROBED_REQUIRE_SERVICES=1 (tests/_require.py)",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    check_marks(item)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if REQUIRE_SERVICES and report.skipped and not hasattr(report, "wasxfail"):
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under PROBED_REQUIRE_SERVICES=1, which forbids skips: {reason}"
    return report


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    """The random order's seed, also with ``-q`` (which hides the header that names it)."""
    seed = getattr(config.option, "randomly_seed", None)
    if config.pluginmanager.has_plugin("randomly") and isinstance(seed, int):
        terminalreporter.write_line(f"random test order: replay it with --randomly-seed={seed}")


@pytest.fixture(autouse=True)
def _reset_script_controls() -> Iterator[None]:
    """``tests.fakes.CONTROL``/``GATES`` are module-level: empty before and after every test,
    whether it passed or not, so one test's flipped check cannot leak into the next."""
    fakes.CONTROL.clear()
    fakes.GATES.clear()
    try:
        yield
    finally:
        fakes.CONTROL.clear()
        fakes.GATES.clear()
