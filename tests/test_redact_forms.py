"""The forms a secret takes on its way out, and what redaction must leave exactly as it was.

``test_redact.py`` covers the main cases; here: key spellings (spaces, dashes, case), URLs whose
text must not be rewritten when there is nothing to mask, empty passwords and parameters, the
shape of masked containers (tuples stay tuples, ``None`` stays ``None``) and non-string keys.
"""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from pydantic import BaseModel, SecretStr

from probed.redact import (
    MASK,
    Redactor,
    hide,
    is_secret_key,
    option_secrets,
    redact_data,
    redact_text,
    redact_url,
)


@pytest.mark.parametrize(
    "key",
    [" pwd ", "PWD", "PassPhrase", "session-id", "Session_ID", "api-key", "Private-Key",
     "basic-auth", " auth", "X-Signature", "sig", "Set-Cookie", "access-key"],
)  # fmt: skip
def test_secret_keys_are_recognised_whatever_their_case_spaces_or_dashes(key: str) -> None:
    assert is_secret_key(key)


@pytest.mark.parametrize(
    "key",
    ["pwdx", "sigma", "signatures_count", "auth_method", "password_policy_url", "keyword"],
)
def test_keys_that_only_contain_a_secret_word_at_the_wrong_place_are_not_secret(key: str) -> None:
    assert not is_secret_key(key)


def test_a_redactor_ignores_empty_secrets_and_masks_the_rest() -> None:
    redact = Redactor(["", "hunter2", ""])
    assert redact.secrets == frozenset({"hunter2"})
    assert redact("pw=hunter2") == "pw=***"
    assert redact("") == ""
    assert bool(redact) is True


def test_overlapping_secrets_are_masked_whole_whatever_the_order_given() -> None:
    for secrets in (["abc", "abcdef"], ["abcdef", "abc"]):
        assert Redactor(secrets)("x abcdef y abc") == "x *** y ***"


@pytest.mark.parametrize(
    "url",
    [
        "http://h/x?",  # an empty query: urlunsplit would drop the '?'
        "http://h/x#",
        "https://user:@h/x",  # an empty password: nothing to hide
        "https://user@h/x?page=2&q=",
        "https://h/x?token=&page=1",
        "https://h/x?token",
        "HTTP://H/X?Q=1",
    ],
)
def test_urls_with_nothing_to_mask_come_back_exactly_as_given(url: str) -> None:
    assert redact_url(url) == url


def test_only_the_password_of_the_last_at_sign_userinfo_is_masked() -> None:
    assert redact_url("https://a@b:pw@h/x") == f"https://a@b:{MASK}@h/x"
    assert redact_url("https://u:p:w@h/") == f"https://u:{MASK}@h/"


def test_masking_the_query_keeps_the_path_fragment_and_other_parameters() -> None:
    url = "https://u:pw@h:1/a/b;p?x=1&Access-Key=k&x=2#frag"
    assert redact_url(url) == f"https://u:{MASK}@h:1/a/b;p?x=1&Access-Key={MASK}&x=2#frag"


def test_secret_parameters_are_recognised_by_normalised_name() -> None:
    assert redact_url("https://h/?Api-Key=1&CODE=2&keys=3") == (
        f"https://h/?Api-Key={MASK}&CODE={MASK}&keys=3"
    )


def test_redact_data_keeps_containers_their_type_and_masks_inside_them() -> None:
    data = {"token": ("a", ["b", None, ""], {"x": "c"}), "list": ("u", "https://u:p@h/")}
    assert redact_data(data) == {
        "token": (MASK, [MASK, None, ""], {"x": MASK}),
        "list": ("u", f"https://u:{MASK}@h/"),
    }


def test_redact_data_shows_one_mask_for_secrets_and_leaves_empty_secret_values_alone() -> None:
    # pydantic's SecretStr dump (ten asterisks) is shown as the one mask, *** (issue 7).
    data = {
        "password": "**********",
        "token": "",
        "secret": None,
        "api_key": 0,
        "secret_headers": {"X-Custom": "**********"},
    }
    assert redact_data(data) == {"password": MASK, "token": "", "secret": None,
                                 "api_key": MASK, "secret_headers": {"X-Custom": MASK}}  # fmt: skip
    assert redact_data({"headers": {"X-Custom": "**********"}}) == {"headers": {"X-Custom": MASK}}


def test_redact_data_accepts_non_string_keys_and_scalars() -> None:
    data = {1: "one", None: "none", "n": 1.5, "b": True}
    assert redact_data(data) == data
    assert redact_data(42) == 42
    assert redact_data(None) is None


def test_redact_data_applies_the_redactor_to_every_string_after_url_masking() -> None:
    redact = Redactor(["s3cr3t-value", "h0st"])
    data = ["see s3cr3t-value", {"url": "https://u:pw@h0st/?token=t", "n": "h0st"}]
    assert redact_data(data, redact) == [
        "see ***",
        {"url": f"https://u:{MASK}@***/?token={MASK}", "n": "***"},
    ]
    assert redact_data("plain", None) == "plain"


def test_a_secret_parameter_value_containing_equals_signs_is_masked_whole() -> None:
    assert redact_url("https://h/?token=ab=cd&x=1") == f"https://h/?token={MASK}&x=1"


def test_a_secret_value_that_is_not_only_asterisks_is_masked() -> None:
    assert redact_data({"password": "XXXX", "token": "*a*"}) == {"password": MASK, "token": MASK}


def test_strings_without_a_scheme_are_not_parsed_as_urls() -> None:
    # Only text with "://" is a URL; a query-like fragment of prose stays as written.
    assert redact_data({"note": "see a?token=t&b=2"}) == {"note": "see a?token=t&b=2"}


# -- one owner: the cases where the five old copies disagreed, and shaped secrets in free text --


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # _db_common.redact left the query parameter, redact_url the password with a '/'.
        ("redis://h:6379/0?api_key=abcd1234", f"redis://h:6379/0?api_key={MASK}"),
        ("postgres://u:p/w@h/db", f"postgres://u:{MASK}@h/db"),
        ("postgres://u:p@ss@h/db", f"postgres://u:{MASK}@h/db"),
        ("postgres://u:p%2Fw%40x@h/db", f"postgres://u:{MASK}@h/db"),
        ("failed: host=db port=5432 password=s3cret dbname=app",
         f"failed: host=db port=5432 password={MASK} dbname=app"),
        ("host=db password='s3 cr\\'et' user=x", f"host=db password={MASK} user=x"),
        ("sslpassword=k3y-pass&x=1", f"sslpassword={MASK}&x=1"),
        ("sent Authorization: Bearer abc.def", f"sent Authorization: {MASK}"),
        ("Proxy-Authorization: Basic dXNlcjpwdw==", f"Proxy-Authorization: {MASK}"),
        ("X-Api-Key: k-123\nAccept: */*", f"X-Api-Key: {MASK}\nAccept: */*"),
        ("Cookie: session=abc; theme=dark", f"Cookie: {MASK}"),
        ('{"password": "x\\"y", "user": "u"}', f'{{"password": "{MASK}", "user": "u"}}'),
        ("{'token': 'tok-1', 'n': 2}", f"{{'token': '{MASK}', 'n': 2}}"),
        ("GET http://h/x?token=t&page=2: status 500",
         f"GET http://h/x?token={MASK}&page=2: status 500"),
    ],
)  # fmt: skip
def test_shaped_secrets_are_masked_in_any_text(text: str, expected: str) -> None:
    assert redact_text(text) == expected
    assert Redactor(())(text) == expected  # a redactor with no known values still masks shapes


@pytest.mark.parametrize(
    "text",
    [
        "GET http://127.0.0.1:8080/healthz: status 200 OK in 1.2ms",
        "timeout 9s must be less than interval 5s",
        "checks[0].options.password: field required",
        "user@host has 3 keys; threshold = 5",
        "see a?token=t&b=2",  # prose, not a URL: only URLs have query parameters
    ],
)
def test_text_without_a_shaped_secret_comes_back_as_it_was(text: str) -> None:
    assert redact_text(text) is text


def test_a_known_secret_is_masked_in_every_form_it_takes_on_the_way_out() -> None:
    secret = 'pa"ss/wo+rd\\x-42'
    redact = Redactor([secret])
    b64 = base64.b64encode(f"user:{secret}".encode()).decode()
    for shown in (
        secret,
        quote(secret, safe=""),
        quote_plus(secret),
        quote(secret, safe="").lower(),
        json.dumps(secret)[1:-1],
        repr(secret)[1:-1],
        json.dumps(repr(secret))[1:-1],  # a repr'd excerpt inside a JSON log line
        base64.b64encode(secret.encode()).decode(),
        b64,  # Basic credentials: the secret at another byte alignment
    ):
        out = redact(f"<{shown}>")
        assert MASK in out, shown
        assert secret not in out and quote(secret, safe="") not in out, out
        assert shown not in out or len(shown) < 6, (shown, out)


def test_base64_cores_of_short_secrets_are_not_used_to_mask_words() -> None:
    assert Redactor(["abcd"])("YWJjZA and abcd") == "YWJjZA and ***"


def test_hide_masks_long_values_anywhere_and_short_ones_only_quoted() -> None:
    message = "bad value 'on' near on, secret-v4lue and postgres://u:pw@h"
    assert hide(message, ["on", "secret-v4lue", ""]) == (
        f"bad value '{MASK}' near on, {MASK} and postgres://u:{MASK}@h"
    )


def test_option_secrets_finds_secret_strings_and_secret_url_passwords() -> None:
    from probed.checks._db_common import SecretUrl

    class Auth(BaseModel):
        password: SecretStr

    class Options(BaseModel, arbitrary_types_allowed=True):
        auth: Auth
        headers: dict[str, SecretStr]
        dsn: SecretUrl
        short: SecretStr
        plain: str

    options = Options(
        auth=Auth(password=SecretStr("pw-basic-1")),
        headers={"X-Api-Key": SecretStr("key-2222")},
        dsn=SecretUrl("postgresql://u:dsn-pw-3@h/db?token=tok-4444"),
        short=SecretStr("abc"),
        plain="not-a-secret",
    )
    assert option_secrets(options) == {"pw-basic-1", "key-2222", "dsn-pw-3", "tok-4444"}


class _Node(BaseModel):
    name: str
    child: _Node | None = None
    token: SecretStr | None = None
    extra: Any = None


def test_option_secrets_walks_recursive_models_and_untyped_fields() -> None:
    tree = _Node(
        name="a",
        child=_Node(name="b", token=SecretStr("deep-secret")),
        extra={"k": [SecretStr("any-secret")]},
    )
    assert option_secrets(tree) == {"deep-secret", "any-secret"}


def test_secret_environment_names_are_recognised_by_their_words() -> None:
    from probed.redact import is_secret_env

    for name in ("DB_PASSWORD", "api_key", "GITHUB_TOKEN", "PG_DSN", "BasicAuth"):
        assert is_secret_env(name), name
    for name in ("HOME", "PATH", "LANG", "PORT"):
        assert not is_secret_env(name), name


def test_a_query_value_holding_a_question_mark_is_masked_whole() -> None:
    assert redact_url("https://h/p?token=abc?x=1&page=2") == f"https://h/p?token={MASK}&page=2"


def test_a_pwd_parameter_of_a_dsn_is_masked() -> None:
    assert redact_text("host=db pwd=hunter22 user=u") == f"host=db pwd={MASK} user=u"


def test_values_of_exactly_the_minimum_length_are_secrets() -> None:
    assert hide("cannot reach abcd now", ["abcd"]) == f"cannot reach {MASK} now"
    assert hide("cannot reach abc now; got 'abc'", ["abc"]) == f"cannot reach abc now; got '{MASK}'"

    class Options(BaseModel):
        password: SecretStr

    assert option_secrets(Options(password=SecretStr("abcd"))) == {"abcd"}
    assert option_secrets(Options(password=SecretStr("abc"))) == set()
