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


# The real-Prometheus quiet test watches a five-minute window in a background thread: its
# first test (which starts the window) runs first, its last (which joins it) runs last, and
# the rest of the session runs in between (tests/contrib/test_alerts_quiet_live.py).
_QUIET_LIVE = "tests/contrib/test_alerts_quiet_live.py::"
_RUN_FIRST = (_QUIET_LIVE + "test_simulated_series_match_a_real_scrape",)
_RUN_LAST = (_QUIET_LIVE + "test_real_prometheus_shows_no_alert_for_a_healthy_daemon",)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Put the quiet window's opening test first and its closing test last (after
    pytest-randomly's shuffle, which runs in a wrapper before this hook)."""
    first = [i for i in items if i.nodeid in _RUN_FIRST]
    last = [i for i in items if i.nodeid in _RUN_LAST]
    if first or last:
        rest = [i for i in items if i.nodeid not in _RUN_FIRST and i.nodeid not in _RUN_LAST]
        items[:] = first + rest + last


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
