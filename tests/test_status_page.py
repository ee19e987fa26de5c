"""The status page at ``/`` read from a real daemon over loopback: what it shows, the filter
without JavaScript, the check page, the JSON it polls, ``public: false``, the off switch, and
that no secret, credential or traceback ever reaches it."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.harness import Running, scripted_daemon, write

HTML = {"Accept": "text/html,application/xhtml+xml"}
FAST = "interval: 50ms, timeout: 40ms, failure_threshold: 1"


class Rows(HTMLParser):
    """Every ``<tr data-check>`` of a page as ``{name: status}``, and every link and tag."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, str] = {}
        self.srcs: list[str] = []
        self.labels: set[str] = set()
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "tr" and a.get("data-check"):
            self.rows[a["data-check"] or ""] = a.get("data-status") or ""
        for key in ("src", "href"):
            if a.get(key):
                self.srcs.append(a[key] or "")
        if tag == "label":
            self.labels.add(a.get("for") or "")
        if a.get("id"):
            self.ids.add(a["id"] or "")


def parse(body: str) -> Rows:
    rows = Rows()
    rows.feed(body)
    return rows


def checks(tmp_path: Path, text: str) -> Path:
    write(tmp_path / "checks" / "checks.yaml", text)
    return tmp_path / "checks"


async def page(r: Running, path: str = "/") -> str:
    status, body, headers = await r.get(path, headers=HTML)
    assert status == 200, body
    assert headers["Content-Type"].startswith("text/html")
    return body


MIXED = f"""
checks:
  - {{name: pay-api, type: outcome, {FAST}, labels: {{group: payments}}}}
  - {{name: pay-db, type: outcome, {FAST}, status: fail, reason: timeout,
      message: "no answer from db", labels: {{group: payments}}}}
  - {{name: search, type: outcome, {FAST}, status: warn, message: "slow <b>index</b>",
      labels: {{group: web}}}}
  - {{name: odd, type: outcome, {FAST}, status: unknown, message: "plugin said 3"}}
  - {{name: hidden-one, type: outcome, {FAST}, public: false, message: "private bits"}}
"""


async def test_a_browser_gets_every_public_check_with_its_status_and_curl_gets_text(
    tmp_path: Path,
) -> None:
    async with scripted_daemon(checks(tmp_path, MIXED)) as r:
        for name in ("pay-api", "pay-db", "search", "odd", "hidden-one"):
            await r.runs(name, 2)
        body = await page(r)
        assert parse(body).rows == {
            "pay-api": "ok",
            "pay-db": "fail",
            "search": "warn",
            "odd": "unknown",
        }
        assert "hidden-one" not in body and "private bits" not in body
        # grouped by the `group` label, the ungrouped last under "other"
        groups = re.findall(r'data-group="([^"]+)"', body)
        assert groups == ["payments", "web", "other"]
        assert "slow &lt;b&gt;index&lt;/b&gt;" in body  # messages are escaped
        assert "4 checks: 1 ok, 1 warn, 1 fail, 1 unknown" in body
        status, text, headers = await r.get("/")  # aiohttp's client sends Accept: */*
        assert status == 200 and headers["Content-Type"].startswith("text/plain")
        assert "/metrics" in text and "<html" not in text


async def test_the_filter_works_without_javascript(tmp_path: Path) -> None:
    async with scripted_daemon(checks(tmp_path, MIXED)) as r:
        for name in ("pay-api", "pay-db", "search", "odd"):
            await r.runs(name, 1)
        assert set(parse(await page(r, "/?q=PAY")).rows) == {"pay-api", "pay-db"}
        assert set(parse(await page(r, "/?q=payments&status=fail")).rows) == {"pay-db"}
        assert set(parse(await page(r, "/?q=index")).rows) == {"search"}  # the message
        assert set(parse(await page(r, "/?status=warn")).rows) == {"search"}
        none = await page(r, "/?q=nothing-matches-this")
        assert parse(none).rows == {}
        assert '<p id="none" class="none">No check matches the filter.</p>' in none
        # an unknown status is ignored, an overlong query cut (bounded input)
        assert len(parse(await page(r, "/?status=bogus")).rows) == 4
        assert 'value="' + "x" * 200 + '"' in await page(r, "/?q=" + "x" * 5000)


async def test_the_controls_have_labels_and_the_page_needs_nothing_from_elsewhere(
    tmp_path: Path,
) -> None:
    async with scripted_daemon(checks(tmp_path, MIXED)) as r:
        await r.runs("pay-api", 1)
        body = await page(r)
        parsed = parse(body)
        assert {"q", "status"} <= parsed.labels and {"q", "status"} <= parsed.ids
        assert '<meta name="viewport"' in body and 'name="color-scheme"' in body
        # every link is relative (works under a proxy's path prefix), none leaves probed
        assert all(not re.match(r"/|[a-z]+:", s) for s in parsed.srcs), parsed.srcs
        assert "status-assets/status.js" in parsed.srcs
        for src in ("/status-assets/status.css", "/status-assets/status.js"):
            status, asset, _ = await r.get(src)
            assert status == 200 and len(asset) > 1000
            assert "http://" not in asset and "https://" not in asset
        assert "prefers-color-scheme: dark" in (await r.get("/status-assets/status.css"))[1]
        status, _, _ = await r.get("/status-assets/../server.py")
        assert status == 404
        status, _, _ = await r.get("/status-assets/nope.js")
        assert status == 404


async def test_the_check_page_shows_runs_reasons_phases_uptime_and_a_latency_chart(
    tmp_path: Path,
) -> None:
    async with scripted_daemon(checks(tmp_path, MIXED)) as r:
        await r.runs("pay-db", 3)
        body = await page(r, "/checks/pay-db")
        assert re.search(
            r'<main id="main" data-check="pay-db" data-status="fail" data-version="\d+">', body
        )
        assert "<dt>Reason</dt><dd>timeout</dd>" in body
        assert "no answer from db" in body
        assert re.search(r"0\.0% of the last \d+ runs \(0 ok, 0 warn, \d+ fail", body)
        assert '<svg viewBox="0 0 600 140" role="img" aria-label="Latency of the last' in body
        assert body.count('<rect class="bad"') >= 3  # failed runs are marked
        assert body.count('<tr data-status="fail">') >= 3  # recent runs
        ok = await page(r, "/checks/pay-api")
        assert "100% of the last" in ok and '<rect class="bad"' not in ok
        for missing in ("/checks/hidden-one", "/checks/no-such-check"):
            status, text, _ = await r.get(missing, headers=HTML)
            assert status == 404 and "No such check" in text
            assert "private bits" not in text


async def test_the_check_page_shows_the_phase_timings_of_the_last_run(tmp_path: Path) -> None:
    from probed.check import Result

    async with scripted_daemon(checks(tmp_path, MIXED)) as r:
        await r.runs("pay-api", 1)
        state = r.state("pay-api")
        state.record(Result.ok("fine", duration=0.3, phases={"connect": 0.012, "tls": 0.25}))
        body = await page(r, "/checks/pay-api")
        assert '<th scope="row">connect</th><td>12.0 ms</td>' in body
        assert '<th scope="row">tls</th><td>250.0 ms</td>' in body


SLOW = """
checks:
  - {name: api, type: outcome, interval: 1h, timeout: 1s, labels: {group: core}}
  - {name: db, type: outcome, interval: 1h, timeout: 1s, status: fail, reason: timeout,
     failure_threshold: 1, message: "no answer from db", labels: {group: core}}
  - {name: secret-job, type: outcome, interval: 1h, timeout: 1s, public: false}
"""


async def test_the_json_endpoint_follows_changes_and_answers_304_while_nothing_changed(
    tmp_path: Path,
) -> None:
    from probed.check import Result

    async with scripted_daemon(checks(tmp_path, SLOW)) as r:
        for name in ("api", "db", "secret-job"):
            await r.runs(name, 1)
        async with r.session.get(r.url + "/api/v1/status") as resp:
            assert resp.status == 200
            etag = resp.headers["ETag"]
            data = json.loads(await resp.text())
        assert data["refresh_seconds"] == 5.0 and data["title"] == "probed"
        by_name = {c["name"]: c for c in data["checks"]}
        assert set(by_name) == {"api", "db"}
        db = by_name["db"]
        assert db["status"] == "fail" and db["group"] == "core"
        assert db["message"] == "no answer from db" and db["uptime"] == 0.0
        assert isinstance(db["since"], float) and db["duration_seconds"] >= 0
        assert by_name["api"]["uptime"] == 1.0
        async with r.session.get(r.url + "/api/v1/status", headers={"If-None-Match": etag}) as resp:
            assert resp.status == 304 and await resp.read() == b""
        r.state("api").record(Result.fail("refused", "connection refused"))
        async with r.session.get(r.url + "/api/v1/status", headers={"If-None-Match": etag}) as resp:
            assert resp.status == 200 and resp.headers["ETag"] != etag
            api = {c["name"]: c for c in (await resp.json())["checks"]}["api"]
        # failure_threshold 3 (the default): one failed run is not yet a fail
        assert api["status"] == "ok" and api["uptime"] == 0.5
        assert api["message"] == "connection refused"


async def test_the_page_can_be_turned_off_and_then_keeps_no_run_history(tmp_path: Path) -> None:
    from probed._status_settings import StatusPage

    off = StatusPage(enabled=False)
    async with scripted_daemon(checks(tmp_path, SLOW), status_page=off) as r:
        await r.runs("api", 1)
        status, text, headers = await r.get("/", headers=HTML)
        assert status == 200 and headers["Content-Type"].startswith("text/plain")
        assert "status page" not in text
        for path in ("/checks/api", "/api/v1/status", "/status-assets/status.js"):
            status, _, _ = await r.get(path, headers=HTML)
            assert status == 404, path
        assert r.state("api").runlog is None


async def test_title_group_label_and_history_length_come_from_probed_yaml(tmp_path: Path) -> None:
    config = write(
        tmp_path / "probed.yaml",
        """
        status_page:
          title: Payments <on call>
          group_by: team
          history: 3
          refresh: 2s
        defaults:
          public: false
        checks:
          - {name: a, type: outcome, interval: 50ms, timeout: 40ms, public: true,
             labels: {team: blue}}
          - {name: b, type: outcome, interval: 50ms, timeout: 40ms}
        """,
    )
    (tmp_path / "empty").mkdir()
    async with scripted_daemon(tmp_path / "empty", config_file=config) as r:
        await r.runs("a", 5)
        body = await page(r)
        assert "<title>Payments &lt;on call&gt;</title>" in body
        assert 'data-refresh="2"' in body and '<h2 id="g0">team: blue' in body
        assert parse(body).rows == {"a": "ok"}  # b is private through defaults
        assert len(r.state("a").runlog) == 3  # only the last three runs are kept
        assert "100% of the last 3 runs" in await page(r, "/checks/a")


@pytest.mark.parametrize(
    ("written", "error"),
    [
        ("status_page: {group_by: 1team}", "status_page.group_by: '1team' is not a label name"),
        ("status_page: {history: 0}", "status_page.history"),
        ("status_page: {refresh: 100ms}", "status_page.refresh: refresh must be between 1s"),
        ("status_page: {colour: red}", "status_page.colour"),
        ("status_page: {enabled: maybe}", "status_page.enabled"),
    ],
)
def test_a_bad_status_page_setting_is_an_error_naming_file_and_line(
    tmp_path: Path, written: str, error: str
) -> None:
    from probed.errors import ConfigErrors
    from probed.settings import load_settings

    config = tmp_path / "probed.yaml"
    config.write_text(f"log_level: info\n{written}\n")
    with pytest.raises(ConfigErrors) as caught:
        load_settings(config, {})
    assert str(caught.value.errors[0]).startswith(f"{config}:2: {error}")


TOKEN = "pg-Tok3n-s3cret-77"
PASSWORD = "hunter2-Pa55"


async def test_no_secret_credential_or_traceback_ever_reaches_the_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROBED_TEST_PAGE_TOKEN", TOKEN)
    text = f"""
    checks:
      - name: leaky
        type: outcome
        interval: 50ms
        timeout: 40ms
        failure_threshold: 1
        status: fail
        reason: exception
        description: "talks to https://admin:{PASSWORD}@db.internal/"
        message: "token ${{PROBED_TEST_PAGE_TOKEN}} refused by https://bob:{PASSWORD}@db.internal/x\\n\\
          Traceback (most recent call last):\\n  File \\"/srv/app.py\\", line 3, in run\\n\\
          ValueError: internal detail"
    """
    async with scripted_daemon(checks(tmp_path, text)) as r:
        await r.runs("leaky", 2)
        outputs = [await page(r), await page(r, "/checks/leaky"), await page(r, "/?q=token")]
        outputs.append((await r.get("/api/v1/status"))[1])
        for out in outputs:
            assert TOKEN not in out and PASSWORD not in out
            assert "Traceback" not in out and "internal detail" not in out
            assert "/srv/app.py" not in out
            assert "***" in out  # masked where the secret was, not just left out
        assert parse(outputs[0]).rows == {"leaky": "fail"}
        # the premise: the API (an operator's tool) does carry the trace the page leaves out
        api = (await r.get("/api/v1/checks/leaky"))[1]
        assert "Traceback" in api and TOKEN not in api


async def test_a_web_config_protects_the_page_its_assets_and_its_json(tmp_path: Path) -> None:
    import base64

    import bcrypt  # the test extra has it (test_webconfig imports it too)

    hashed = bcrypt.hashpw(b"s3cret-page", bcrypt.gensalt(4)).decode()
    web = write(tmp_path / "web.yml", f"basic_auth_users:\n  ops: {hashed}\n")
    async with scripted_daemon(checks(tmp_path, SLOW), web_config=web) as r:
        for name in ("api", "db"):
            await r.runs(name, 1)
        for path in ("/", "/checks/api", "/api/v1/status", "/status-assets/status.js"):
            status, _, _ = await r.get(path, headers=HTML)
            assert status == 401, path
        auth = {**HTML, "Authorization": "Basic " + base64.b64encode(b"ops:s3cret-page").decode()}
        status, body, _ = await r.get("/", headers=auth)
        assert status == 200 and parse(body).rows == {"api": "ok", "db": "fail"}


async def test_a_hidden_check_stays_in_the_api_and_metrics(tmp_path: Path) -> None:
    async with scripted_daemon(checks(tmp_path, SLOW)) as r:
        await r.runs("secret-job", 1)
        assert '"name": "secret-job"' in (await r.get("/api/v1/checks"))[1]
        assert 'check="secret-job"' in (await r.get("/metrics"))[1]
        assert "secret-job" not in await page(r)


async def test_a_cold_page_of_many_checks_yields_to_the_event_loop_while_it_renders() -> None:
    import asyncio

    from probed._status_settings import StatusPage
    from probed.check import Result
    from probed.redact import Redactor
    from probed.state import CheckState, StateStore
    from probed.status_page import BATCH, PageCache, PageViews, render_list
    from probed.testing import make_spec
    from tests.fakes import ScriptCheck

    states = {}
    for i in range(BATCH * 3):
        state = CheckState(make_spec(ScriptCheck, name=f"c{i:04d}"), runlog=5)
        state.record(Result.ok("fine"))
        states[state.spec.name] = state
    views = PageViews(StateStore(states), Redactor(()), StatusPage())
    cache = PageCache()
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    try:
        entries = await cache.fresh(views)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert len(entries) == BATCH * 3 and ticks >= 3  # the loop ran between the batches
    # the same rows as the synchronous render, and nothing is rendered again when unchanged
    assert render_list(views, cache, entries=entries).count("<tr data-check=") == BATCH * 3
    assert all(a is b for a, b in zip(entries, cache.entries(views), strict=True))


async def test_a_large_page_and_its_json_are_compressed_when_the_client_accepts_it(
    tmp_path: Path,
) -> None:
    many = "checks:\n" + "".join(
        f"  - {{name: c{i:03d}, type: outcome, interval: 1h, timeout: 1s, message: m{i}}}\n"
        for i in range(300)
    )
    async with scripted_daemon(checks(tmp_path, many)) as r:
        await r.runs("c299", 1)
        for path, accept in (("/", "text/html"), ("/api/v1/status", "application/json")):
            gz = {"Accept": accept, "Accept-Encoding": "gzip"}
            async with r.session.get(r.url + path, headers=gz, auto_decompress=False) as resp:
                packed = await resp.read()
                assert resp.headers["Content-Encoding"] == "gzip"
            plain = {"Accept": accept, "Accept-Encoding": "identity"}
            async with r.session.get(r.url + path, headers=plain) as resp:
                body = await resp.read()
                assert "Content-Encoding" not in resp.headers
            assert len(body) > 16 * 1024 and len(packed) < len(body) / 4


async def test_the_status_page_settings_are_kept_from_startup_by_a_reload(tmp_path: Path) -> None:
    config = tmp_path / "probed.yaml"
    check = "  - {name: a, type: outcome, interval: 1h, timeout: 1s}\n"
    config.write_text(f"status_page: {{history: 3}}\nchecks:\n{check}")
    (tmp_path / "empty").mkdir()
    async with scripted_daemon(tmp_path / "empty", config_file=config) as r:
        await r.runs("a", 1)
        config.write_text(
            "status_page: {history: 7, enabled: false}\nchecks:\n" + check
            + "  - {name: b, type: outcome, interval: 1h, timeout: 1s}\n"
        )  # fmt: skip
        assert (await r.post("/-/reload"))[0] == 200
        await r.runs("b", 1)
        assert r.state("b").runlog is not None and r.state("b").runlog.length == 3
        assert parse(await page(r)).rows == {"a": "ok", "b": "ok"}
