"""probed.redact: secrets never leave through messages, URLs or API data."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, SecretStr

from probed.redact import Redactor, is_secret_key, redact_data, redact_url


def test_redactor_masks_every_secret_longest_first() -> None:
    redact = Redactor(["secret", "secret-long-value", "other"])
    text = "a secret-long-value, a secret and another"
    assert redact(text) == "a ***, a *** and an***"


def test_redactor_without_secrets_returns_text_unchanged() -> None:
    redact = Redactor([])
    text = "nothing to hide"
    assert redact(text) is text
    assert not redact
    assert Redactor([""]).secrets == frozenset()


def test_redactor_treats_secrets_literally() -> None:
    redact = Redactor(["a.b*c", "(x|y)"])
    assert redact("a.b*c axbbc (x|y) x") == "*** axbbc *** x"


@given(
    st.lists(st.text(alphabet="abcxyz-1", min_size=1, max_size=8), max_size=5),
    st.text(alphabet="abcxyz-1 ", max_size=60),
)
def test_redacted_text_contains_no_secret(secrets: list[str], text: str) -> None:
    redacted = Redactor(secrets)(text)
    for secret in secrets:
        assert secret not in redacted


def test_redact_url_masks_userinfo_password() -> None:
    assert redact_url("postgresql://u:pw@h/db") == "postgresql://u:***@h/db"
    assert redact_url("redis://:pw@127.0.0.1:6379/0") == "redis://:***@127.0.0.1:6379/0"
    assert redact_url("https://user:p%40ss@h:8443/x#frag") == "https://user:***@h:8443/x#frag"


def test_redact_url_masks_secret_query_parameters_only() -> None:
    url = "https://h/x?page=2&token=abc&api_key=k&Password=p&key=g&sig=s&empty_token=&q=1"
    assert redact_url(url) == (
        "https://h/x?page=2&token=***&api_key=***&Password=***&key=***&sig=***&empty_token=&q=1"
    )


def test_redact_url_leaves_other_text_alone() -> None:
    for text in ("http://127.0.0.1:8080/healthz", "not a url", "", "user@host", "mailto:a@b"):
        assert redact_url(text) == text
    assert redact_url("https://user@h/") == "https://user@h/"


def test_redact_url_falls_back_for_unparsable_urls() -> None:
    # urlsplit rejects the unbalanced bracket; the password must still go.
    assert redact_url("http://u:pw@[::1/x") == "http://u:***@[::1/x"


def test_secret_key_names() -> None:
    for key in (
        "password",
        "PASSWORD",
        "db_password",
        "passwd",
        "token",
        "access_token",
        "client_secret",
        "Authorization",
        "X-Api-Key",
        "api_key",
        "apikey",
        "private_key",
        "Cookie",
        "auth",
        "basic_auth",
        "credentials",
    ):
        assert is_secret_key(key), key
    for key in ("url", "key", "keyspace", "author", "authority", "username", "host", "monkey"):
        assert not is_secret_key(key), key


class _Options(BaseModel):
    password: SecretStr
    url: str


def test_redact_data_masks_secret_keys_urls_and_known_secrets() -> None:
    data = {
        "url": "https://u:pw@h/?token=t&x=1",
        "headers": {"Authorization": "Bearer abc", "Accept": "text/plain"},
        "nested": [{"api_key": "k1", "name": "keep"}, "mentions tok-123456"],
        "password": None,
        "client_secret": {"a": "b", "c": ["d"]},
        "count": 3,
        "options": _Options(password=SecretStr("pw"), url="x").model_dump(mode="json"),
    }
    assert redact_data(data, Redactor(["tok-123456"])) == {
        "url": "https://u:***@h/?token=***&x=1",
        "headers": {"Authorization": "***", "Accept": "text/plain"},
        "nested": [{"api_key": "***", "name": "keep"}, "mentions ***"],
        "password": None,
        "client_secret": {"a": "***", "c": ["***"]},
        "count": 3,
        "options": {"password": "***", "url": "x"},  # SecretStr's own mask becomes ours
    }
    # The input is not modified.
    assert data["headers"] == {"Authorization": "Bearer abc", "Accept": "text/plain"}


def test_password_options_on_a_command_line_are_masked_without_being_declared() -> None:
    """An exec check's argument list written with the password in it (``--password=x``)
    shows masked in its messages and the API, like a DSN's ``password=x``."""
    redact = Redactor(())
    assert redact("check_mysql --password=hunter2 -H db") == "check_mysql --password=*** -H db"
    assert redact("x -pass=hunter2") == "x -pass=***"
    assert redact("--sslpassword=abc") == "--sslpassword=***"
    assert redact("--user=admin --host=db") == "--user=admin --host=db"
    assert redact("a.password=x") == "a.password=x"  # a dotted name is not an option
