"""Acceptance of the status page in a real browser (headless Chromium driven by Playwright)
against a real ``probed run`` on loopback: no console errors, every check with the status the
daemon reports, a check whose target goes away shown as down within the refresh period without
a reload, the filter, the check page, keyboard-only use, and the page with JavaScript off.
Screenshots (light, dark, phone) go to ``artifacts/screenshots/`` (tests/servers/browser.py)."""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from probed.testing_daemon import RunningDaemon, start_daemon
from tests.harness import write
from tests.servers.browser import PageErrors, new_page, screenshot

pytestmark = pytest.mark.timeout(60)

REFRESH = 1.0  # status_page.refresh: the page's polling period (the smallest allowed)
CONFIG = f"status_page: {{refresh: {REFRESH:g}s, title: Shop status}}\n"
SH = sys.executable  # a command every machine has, for exec checks of each status


def exec_check(name: str, code: int, message: str, group: str) -> str:
    command = f'["{SH}", "-c", "print({message!r}); raise SystemExit({code})"]'
    return (
        f"  - {{name: {name}, type: exec, command: {command}, interval: 1m, timeout: 10s, "
        f"failure_threshold: 1, labels: {{group: {group}}}}}\n"
    )


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A TCP listener on 127.0.0.1 for tcp checks (closing it makes them fail)."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server


def tcp_check(name: str, port: int, group: str) -> str:
    return (
        f"  - {{name: {name}, type: tcp, address: '127.0.0.1:{port}', interval: 500ms, "
        f"timeout: 400ms, failure_threshold: 1, labels: {{group: {group}}}}}\n"
    )


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


EXPECTED = {"cart": "ok", "payments": "fail", "search": "warn", "ledger": "unknown"}


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDaemon]:
    """A daemon with a check of each verdict, all decided before a test looks (one for the
    module: its tests only read)."""
    checks = tmp_path_factory.mktemp("checks")
    with socket.create_server(("127.0.0.1", 0)) as up:
        text = (
            "checks:\n"
            + tcp_check("cart", up.getsockname()[1], "shop")
            + tcp_check("payments", closed_port(), "shop")
            + exec_check("search", 1, "index is 9 minutes behind", "web")
            + exec_check("ledger", 3, "plugin said 3", "back-office")
        )
        write(checks / "checks.yaml", text)
        with start_daemon(checks, config=CONFIG) as d:
            d.wait_for(lambda: statuses(d) == EXPECTED)
            yield d


def statuses(d: RunningDaemon) -> dict[str, str]:
    """What the daemon's own JSON says each check's status is."""
    answer = d.get("/api/v1/status")
    return {c["name"]: c["status"] for c in answer.json()["checks"]} if answer.status else {}


def rows(page: Page) -> dict[str, str]:
    """Every check row of the page as ``{name: data-status}``."""
    found: dict[str, str] = page.eval_on_selector_all(
        "tr[data-check]",
        "rows => Object.fromEntries(rows.map(r => [r.dataset.check, r.dataset.status]))",
    )
    return found


def shown(page: Page) -> set[str]:
    """The names of the rows a person can see (not hidden by the filter)."""
    return {
        row.get_attribute("data-check") or ""
        for row in page.locator("tr[data-check]").all()
        if row.is_visible()
    }


def one_row_left(page: Page) -> None:
    """Wait until the filter hides every row but one."""
    page.wait_for_function("document.querySelectorAll('tr[data-check]:not([hidden])').length == 1")


def wait_shown(page: Page, names: set[str]) -> None:
    """Wait until exactly ``names`` are the rows left by the filter: after two changes in a row
    (clear the text, then pick a status) the first one's result must not be taken for the
    second's."""
    page.wait_for_function(
        """names => {
            const rows = [...document.querySelectorAll('tr[data-check]:not([hidden])')];
            const shown = rows.map(r => r.dataset.check).sort();
            return JSON.stringify(shown) === JSON.stringify(names);
        }""",
        arg=sorted(names),
    )


def test_every_check_shows_the_daemons_status_without_console_errors_light_and_dark(
    daemon: RunningDaemon, chromium: Browser, page_errors: PageErrors
) -> None:
    backgrounds = {}
    for scheme in ("light", "dark"):
        page = new_page(chromium, page_errors, scheme=scheme)
        try:
            response = page.goto(daemon.url + "/", wait_until="networkidle")
            assert response is not None and response.status == 200
            assert page.title() == "Shop status"
            assert rows(page) == statuses(daemon) == EXPECTED
            # each status in words and a symbol, not by colour alone
            for name, status in EXPECTED.items():
                badge = page.locator(f'tr[data-check="{name}"] .badge')
                assert status in badge.inner_text()
            assert (
                "index is 9 minutes behind" in page.locator('tr[data-check="search"]').inner_text()
            )
            backgrounds[scheme] = page.evaluate("getComputedStyle(document.body).backgroundColor")
            assert screenshot(page, f"status-page-{scheme}").stat().st_size > 1000
            page.locator('a[href="checks/payments"]').click()
            page.wait_for_url("**/checks/payments")
            screenshot(page, f"check-page-{scheme}")
        finally:
            page.context.close()
    assert backgrounds["light"] != backgrounds["dark"]  # the dark scheme follows the system
    assert page_errors.messages == []


def test_a_check_whose_target_goes_away_is_shown_down_within_the_refresh_without_a_reload(
    tmp_path: Path, listener: socket.socket, browser_page: Page, page_errors: PageErrors
) -> None:
    port = listener.getsockname()[1]
    write(tmp_path / "checks" / "checks.yaml", "checks:\n" + tcp_check("api", port, "shop"))
    with start_daemon(tmp_path / "checks", config=CONFIG) as d:
        d.wait_for(lambda: statuses(d) == {"api": "ok"})
        page = browser_page
        page.goto(d.url + "/", wait_until="networkidle")
        assert rows(page) == {"api": "ok"}
        page.evaluate("window.__sameDocument = true")

        listener.close()  # the target goes away
        d.wait_for(lambda: statuses(d) == {"api": "fail"})
        down_at = time.monotonic()
        page.wait_for_selector(
            'tr[data-check="api"][data-status="fail"]', timeout=(REFRESH + 2.0) * 1000
        )
        shown_after = time.monotonic() - down_at
        assert page.evaluate("window.__sameDocument === true")  # no reload happened
        assert "fail" in page.locator('tr[data-check="api"] .badge').inner_text()
        assert "fail" in page.locator("#counts").inner_text()
        assert shown_after <= REFRESH + 1.0, f"shown {shown_after:.2f}s after the daemon knew"
    assert page_errors.messages == []


def test_the_filter_keeps_matching_rows_by_text_and_by_status(
    daemon: RunningDaemon, browser_page: Page, page_errors: PageErrors
) -> None:
    page = browser_page
    page.goto(daemon.url + "/", wait_until="networkidle")
    assert shown(page) == set(EXPECTED)
    page.fill("#q", "pay")  # typing filters in place, no submit needed
    one_row_left(page)
    assert shown(page) == {"payments"}
    page.fill("#q", "minutes behind")  # the message matches too
    page.wait_for_function("!document.querySelector('tr[data-check=search]').hidden")
    assert shown(page) == {"search"}
    page.fill("#q", "")
    page.select_option("#status", "fail")
    wait_shown(page, {"payments"})
    assert shown(page) == {"payments"}
    page.fill("#q", "nothing-like-this")
    page.wait_for_selector("#none", state="visible")
    assert shown(page) == set()
    page.fill("#q", "")
    page.select_option("#status", "")
    page.wait_for_selector("#none", state="hidden")
    wait_shown(page, set(EXPECTED))
    assert shown(page) == set(EXPECTED)
    assert page_errors.messages == []


def test_the_check_page_opens_with_its_runs_and_chart(
    daemon: RunningDaemon, browser_page: Page, page_errors: PageErrors
) -> None:
    page = browser_page
    page.goto(daemon.url + "/", wait_until="networkidle")
    page.get_by_role("link", name="payments", exact=True).click()
    page.wait_for_url(daemon.url + "/checks/payments")
    main = page.locator("main#main")
    assert main.get_attribute("data-check") == "payments"
    assert main.get_attribute("data-status") == "fail"
    assert page.locator("h1").inner_text() == "payments"
    assert page.locator("svg[role=img]").count() == 1  # the latency chart
    assert "connection_refused" in page.locator("table.runs").inner_text()
    page.get_by_role("link", name="← Shop status").click()
    page.wait_for_url(daemon.url + "/")
    assert rows(page) == EXPECTED
    assert page_errors.messages == []


def focused(page: Page) -> str:
    """The focused element, as ``tag#id`` or ``a:href``."""
    description: str = page.evaluate(
        """() => { const e = document.activeElement;
                   if (!e || e === document.body) return "body";
                   if (e.tagName === "A") return "a:" + e.getAttribute("href");
                   return e.tagName.toLowerCase() + (e.id ? "#" + e.id : "")
                          + (e.type ? ":" + e.type : ""); }"""
    )
    return description


def test_the_keyboard_alone_reaches_every_control_and_uses_them(
    daemon: RunningDaemon, browser_page: Page, page_errors: PageErrors
) -> None:
    page = browser_page
    page.goto(daemon.url + "/", wait_until="networkidle")
    wanted = {
        "a:#main",  # skip link
        "input#q:search",
        "select#status:select-one",
        "button:submit",
        *(f"a:checks/{name}" for name in EXPECTED),
        "a:api/v1/status",
        "a:metrics",
    }
    reached: list[str] = []
    for _ in range(40):
        page.keyboard.press("Tab")
        reached.append(focused(page))
        if wanted <= set(reached):
            break
    assert wanted <= set(reached), f"never focused: {wanted - set(reached)}; order: {reached}"
    assert reached[0] == "a:#main"  # "Skip to the checks" comes first
    # every focused control shows a visible focus indicator
    page.focus("#q")
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"
    # filter with the keyboard only, then open a check with Enter
    page.keyboard.type("pay")
    one_row_left(page)
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    assert focused(page) == "button:submit"
    page.keyboard.press("Enter")  # Apply: the filter is kept in the address
    page.wait_for_url("**/?q=pay*")
    assert shown(page) == {"payments"}
    page.focus('a[href="checks/payments"]')
    page.keyboard.press("Enter")
    page.wait_for_url("**/checks/payments")
    assert page_errors.messages == []


def test_the_page_renders_and_filters_with_javascript_off(
    daemon: RunningDaemon, chromium: Browser
) -> None:
    page = new_page(chromium, javascript=False)
    try:
        page.goto(daemon.url + "/", wait_until="load")
        assert rows(page) == EXPECTED
        assert "index is 9 minutes behind" in page.locator('tr[data-check="search"]').inner_text()
        page.fill("#q", "ledger")
        page.press("#q", "Enter")  # a plain GET form: the server answers the filtered page
        page.wait_for_url("**/?q=ledger*")
        assert set(rows(page)) == {"ledger"}
        page.goto(daemon.url + "/?status=fail", wait_until="load")
        assert set(rows(page)) == {"payments"}
        page.get_by_role("link", name="payments", exact=True).click()
        page.wait_for_url("**/checks/payments")
        assert page.locator("main#main").get_attribute("data-status") == "fail"
        screenshot(page, "check-page-no-javascript")
    finally:
        page.context.close()


def test_at_a_phones_width_every_check_is_readable_without_sideways_scrolling(
    daemon: RunningDaemon, chromium: Browser, page_errors: PageErrors
) -> None:
    page = new_page(chromium, page_errors, width=375, height=740)
    try:
        page.goto(daemon.url + "/", wait_until="networkidle")
        assert rows(page) == EXPECTED
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"the page is {overflow}px wider than a phone's screen"
        for name in EXPECTED:
            box = page.locator(f'tr[data-check="{name}"]').bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 375
        screenshot(page, "status-page-phone")
    finally:
        page.context.close()
    assert page_errors.messages == []
