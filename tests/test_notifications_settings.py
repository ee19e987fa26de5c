"""``notifications:`` in probed.yaml: typed, validated with FILE:LINE errors, URLs never quoted."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from probed._notify_settings import Notifications, Route
from probed.errors import ConfigErrors
from probed.settings import load_settings
from tests.harness import write

TOKEN = "xoxb-Tok3nNeverShown-42"


def errors(path: Path) -> list[str]:
    with pytest.raises(ConfigErrors) as caught:
        load_settings(path, {})
    return [str(e) for e in caught.value.errors]


def test_notification_settings_load_typed_with_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROBED_TEST_SLACK", f"slack://{TOKEN}/B1/C1")
    secret = write(tmp_path / "hook", f"json://127.0.0.1:8080/{TOKEN}")
    config = write(
        tmp_path / "probed.yaml",
        f"""
        notifications:
          min_duration: 2m
          remind_every: 1h
          digest_after: 10
          routes:
            - name: payments
              urls: ["${{PROBED_TEST_SLACK}}", "${{file:{secret}}}"]
              labels: {{team: payments}}
              events: [fail, warn, recovery]
            - name: db
              urls: mailto://127.0.0.1:25?from=a@example.com&to=b@example.com
              checks: ["db-*"]
        """,
    )
    settings = load_settings(config, {}).notifications
    assert settings.min_duration == 120 and settings.remind_every == 3600
    assert settings.digest_after == 10 and settings.digest_within == 10.0
    assert settings.retries == 3 and settings.queue_size == 1000
    pay, db = settings.routes
    assert pay.urls == (f"slack://{TOKEN}/B1/C1", f"json://127.0.0.1:8080/{TOKEN}")
    assert pay.events == {"fail", "warn", "recovery"} and db.events == {"fail", "recovery"}
    assert pay.selects("checkout", {"team": "payments"})
    assert not pay.selects("checkout", {"team": "web"})
    assert db.selects("db-main", {}) and not db.selects("web", {})
    assert TOKEN not in repr(settings) and TOKEN not in repr(load_settings(config, {}))


def test_without_notifications_nothing_is_active(tmp_path: Path) -> None:
    config = write(tmp_path / "probed.yaml", "log_level: info\n")
    assert load_settings(config, {}).notifications == Notifications()
    assert not Notifications().active
    assert not Notifications(enabled=False, routes=(Route("a", ("json://x",)),)).active


@pytest.mark.parametrize(
    ("written", "line", "error"),
    [
        ("  remind_evry: 1h", 2, "notifications.remind_evry: "),
        ("  digest_after: -1", 2, "notifications.digest_after: "),
        (
            "  routes:\n    - name: Bad Name\n      urls: json://h/x",
            3,
            "notifications.routes[0].name",
        ),
        ("  routes:\n    - name: a\n      urls: []", 4, "notifications.routes[0].urls: "),
        (
            "  routes:\n    - {name: a, urls: json://h/x}\n    - {name: a, urls: json://h/y}",
            1,
            "notifications: ",
        ),
        (
            "  routes:\n    - name: a\n      urls: json://h/x\n      events: [down]",
            5,
            "notifications.routes[0].events[0]: ",
        ),
    ],
)
def test_a_bad_notification_setting_is_an_error_naming_file_and_line(
    tmp_path: Path, written: str, line: int, error: str
) -> None:
    config = write(tmp_path / "probed.yaml", f"notifications:\n{written}\n")
    (first,) = errors(config)
    assert first.startswith(f"{config}:{line}: {error}"), first


@pytest.mark.parametrize(
    ("url", "says"),
    [
        (f"{TOKEN}-no-scheme", "not an Apprise URL: expected SCHEME://"),
        (f"nosuchservice://{TOKEN}", "Apprise cannot send to this nosuchservice:// URL"),
    ],
)
def test_a_url_apprise_cannot_use_is_an_error_that_never_quotes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str, says: str
) -> None:
    monkeypatch.setenv("PROBED_TEST_URL", url)
    config = write(
        tmp_path / "probed.yaml",
        'notifications:\n  routes:\n    - name: a\n      urls: ["${PROBED_TEST_URL}"]\n',
    )
    (first,) = errors(config)
    assert first.startswith(f"{config}:4: notifications.routes[0].urls[0]: "), first
    assert says in first
    assert TOKEN not in first


def test_routes_without_apprise_installed_are_an_error_naming_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "apprise", None)  # import apprise raises ImportError
    monkeypatch.setattr("probed._notify_apprise._module", None)  # not imported before
    config = write(
        tmp_path / "probed.yaml",
        "notifications:\n  routes:\n    - {name: a, urls: json://127.0.0.1/x}\n",
    )
    (first,) = errors(config)
    assert "pip install 'probed[notify]'" in first
    assert first.startswith(f"{config}:3: notifications.routes[0].urls[0]: ")


ROOT = Path(__file__).resolve().parent.parent
FALLBACK_URL = "json://127.0.0.1:9/hook"


def _examples() -> list[tuple[str, str]]:
    found = []
    for page in (ROOT / "docs" / "notifications.md", ROOT / "README.md"):
        blocks = re.findall(r"```yaml\n(.*?)```", page.read_text(), re.S)
        found += [(page.name, b) for b in blocks if "notifications:" in b]
    return found


@pytest.mark.parametrize(("page", "block"), _examples())
def test_every_notifications_example_in_the_docs_loads_and_apprise_takes_its_urls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, page: str, block: str
) -> None:
    given = dict(re.findall(r"^# ([A-Z_]+)=(\S+)$", block, re.M))
    for name in re.findall(r"\$\{([A-Z_]+)\}", block):
        monkeypatch.setenv(name, given.get(name, FALLBACK_URL))
    secret = write(tmp_path / "secret-url", next(iter(given.values()), FALLBACK_URL))
    text = re.sub(r"\$\{file:[^}]+\}", f"${{file:{secret}}}", block)
    settings = load_settings(write(tmp_path / "probed.yaml", text), {}).notifications
    assert settings.active
    assert all(url != FALLBACK_URL for url in settings.routes[0].urls) or not given
