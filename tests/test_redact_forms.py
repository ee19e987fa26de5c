"""The forms a secret takes on its way out, and what redaction must leave exactly as it was.

``test_redact.py`` covers the main cases; here: key spellings (spaces, dashes, case), URLs whose
text must not be rewritten when there is nothing to mask, empty passwords and parameters, the
shape of masked containers (tuples stay tuples, ``None`` stays ``None``) and non-string keys.
"""

from __future__ import annotations

import pytest

from probed.redact import MASK, Redactor, is_secret_key, redact_data, redact_url


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
    data = {"password": "**********", "token": "", "secret": None, "api_key": 0,
            "secret_headers": {"X-Custom": "**********"}}
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
