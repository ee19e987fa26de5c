"""Which interpolated values count as secrets: length floor, secret-looking names, files.

Values shorter than ``MIN_SECRET_LENGTH`` (4, as the README documents) are never secrets:
masking ``on`` or ``1`` everywhere would mangle every message. Checked on the interpolator
and through ``probed once``, where a user sees the message masked or not.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from probed._interpolate import Interpolator
from tests.harness import write

PLUGINS = Path(__file__).parent / "data" / "plugins"


@pytest.mark.parametrize(
    ("value", "secret"),
    [("", False), ("a", False), ("abc", False), ("abcd", True), ("abcdefgh", True)],
)
def test_secret_looking_variables_are_secrets_from_four_characters(
    value: str, secret: bool
) -> None:
    result, pieces, secrets = Interpolator({"API_TOKEN": value}).string("t=${API_TOKEN}")
    assert result == f"t={value}" and pieces == [value]
    assert secrets == ([value] if secret else [])


@pytest.mark.parametrize(("content", "secret"), [("xyz\n", False), ("wxyz\n", True)])
def test_file_contents_are_secrets_from_four_characters(
    tmp_path: Path, content: str, secret: bool
) -> None:
    path = tmp_path / "s"
    path.write_text(content)
    result, _pieces, secrets = Interpolator({}, allowed=[tmp_path]).string(f"${{file:{path}}}")
    assert result == content.rstrip("\n")
    assert secrets == ([result] if secret else [])


def test_variables_with_ordinary_names_are_never_secrets() -> None:
    _result, _pieces, secrets = Interpolator({"HOSTNAME": "db.internal.example"}).string(
        "${HOSTNAME}"
    )
    assert secrets == []


def run_once(tmp_path: Path, token: str) -> str:
    write(
        tmp_path / "c.yaml",
        """
        checks:
          - {name: echo, type: outcome, status: fail, reason: auth, message: "token=${API_TOKEN}"}
        """,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROBED_")}
    env["API_TOKEN"] = token
    command = [sys.executable, "-m", "probed", "once", "--format", "json"]
    command += ["--checks-dir", str(tmp_path), "--plugins-dir", str(PLUGINS)]
    result = subprocess.run(
        command,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    [check] = json.loads(result.stdout)
    return str(check["message"])


def test_once_masks_a_four_character_token_but_shows_a_three_character_one(
    tmp_path: Path,
) -> None:
    assert run_once(tmp_path, "wxyz") == "token=***"
    assert run_once(tmp_path, "xyz") == "token=xyz"


# --- Edge cases of the reference forms, file reads, suggestions, digests and the node budget ---

import probed._interpolate as interpolate_module  # noqa: E402
from probed._interpolate import InterpolationError, escape  # noqa: E402


def interpolation_error(interpolator: Interpolator, text: str) -> str:
    with pytest.raises(InterpolationError) as caught:
        interpolator.string(text)
    return str(caught.value)


@pytest.mark.parametrize("text", ["${", "a${b}c", "$${x} and ${y}", "plain"])
def test_escaped_text_interpolates_back_to_itself(text: str) -> None:
    escaped = escape(text)
    assert escaped == text.replace("${", "$${")
    assert Interpolator({}).string(escaped)[0] == text


def test_a_literal_dollar_brace_does_not_stop_later_references() -> None:
    result, pieces, _ = Interpolator({"A": "one"}).string("$${A} then ${A}")
    assert result == "${A} then one" and pieces == ["one"]


def test_an_empty_file_reference_asks_for_a_path() -> None:
    message = interpolation_error(Interpolator({}), "${file:}")
    assert message == "${file:} needs a path, e.g. ${file:/run/secrets/token}"


def test_a_file_of_exactly_the_size_limit_is_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "big"
    path.write_bytes(b"a" * interpolate_module._MAX_FILE_BYTES)
    result, _, secrets = Interpolator({}, allowed=[tmp_path]).string(f"${{file:{path}}}")
    assert len(result) == interpolate_module._MAX_FILE_BYTES and secrets == [result]


def test_a_file_one_byte_over_the_size_limit_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "big"
    path.write_bytes(b"a" * (interpolate_module._MAX_FILE_BYTES + 1))
    message = interpolation_error(Interpolator({}, allowed=[tmp_path]), f"${{file:{path}}}")
    assert message == (
        f"cannot read file {str(path)!r} (from ${{file:...}}): larger than 1048576 bytes"
    )


def test_a_file_that_is_not_utf8_is_refused_without_showing_its_content(tmp_path: Path) -> None:
    path = tmp_path / "latin1"
    path.write_bytes(b"s\xe9cret")
    message = interpolation_error(Interpolator({}, allowed=[tmp_path]), f"${{file:{path}}}")
    assert message == f"cannot read file {str(path)!r} (from ${{file:...}}): not valid UTF-8"


def test_a_missing_file_is_reported_with_the_system_reason(tmp_path: Path) -> None:
    path = tmp_path / "absent"
    message = interpolation_error(Interpolator({}, allowed=[tmp_path]), f"${{file:{path}}}")
    assert (
        message == f"cannot read file {str(path)!r} (from ${{file:...}}): No such file or directory"
    )


def test_a_file_is_read_once_per_interpolator_however_often_it_is_used(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("first-value\n")
    interpolator = Interpolator({}, allowed=[tmp_path])
    assert interpolator.string(f"${{file:{path}}}")[0] == "first-value"
    path.write_text("rotated-value\n")
    assert interpolator.string(f"a ${{file:{path}}}")[0] == "a first-value"
    assert Interpolator({}, allowed=[tmp_path]).string(f"${{file:{path}}}")[0] == "rotated-value"


@pytest.mark.parametrize(
    ("body", "shown"),
    [
        ("-" * 40, "-" * 40),
        ("-" * 41, "-" * 40 + "..."),
        ("1" + "x" * 60, "1" + "x" * 39 + "..."),
    ],
)
def test_an_invalid_reference_is_quoted_up_to_forty_characters(body: str, shown: str) -> None:
    message = interpolation_error(Interpolator({}), "${" + body + "}")
    assert message == (
        f"invalid reference '${{{shown}}}' "
        "(use ${VAR}, ${VAR:-default} or ${file:/path}, and $${ for a literal ${)"
    )


def test_a_reference_inside_a_default_is_refused() -> None:
    message = interpolation_error(Interpolator({"B": "b"}), "${A:-${B}}")
    assert message == "nested reference in the default of ${A:-...}"


def test_an_escaped_dollar_brace_in_a_default_is_refused_as_nested() -> None:
    # The default is taken verbatim up to the first '}', so '$${' is still a nested '${'.
    assert "nested reference" in interpolation_error(Interpolator({}), "${A:-x$${y}")


def test_an_unset_variable_suggests_the_set_name_in_its_own_spelling() -> None:
    message = interpolation_error(Interpolator({"Db_Host": "h"}), "${DB_HOST}")
    assert message == (
        "environment variable 'DB_HOST' is not set; did you mean Db_Host? "
        "(set it, or give a default: ${DB_HOST:-default})"
    )


def test_the_first_of_two_names_differing_only_in_case_is_suggested() -> None:
    message = interpolation_error(Interpolator({"Db_Hosts": "h", "DB_HOSTS": "i"}), "${DB_HOST}")
    assert "did you mean Db_Hosts?" in message


def test_the_closest_of_several_set_names_is_the_only_suggestion() -> None:
    env = {"REDIS_PORT": "1", "REDIS_PORTS": "2", "REDIS_HOST": "3"}
    message = interpolation_error(Interpolator(env), "${REDIS_PROT}")
    assert "did you mean REDIS_PORT?" in message
    assert "REDIS_PORTS" not in message and "REDIS_HOST" not in message


def test_a_name_only_loosely_alike_is_not_suggested() -> None:
    # 'db_host' and 'db_hostname' are 0.78 alike, under the 0.8 threshold.
    message = interpolation_error(Interpolator({"DB_HOSTNAME": "h"}), "${DB_HOST}")
    assert message == (
        "environment variable 'DB_HOST' is not set (set it, or give a default: ${DB_HOST:-default})"
    )


def test_a_misspelt_secret_name_is_pointed_at_a_file() -> None:
    message = interpolation_error(Interpolator({"REDIS_PASSWORD": "pw"}), "${REDIS_PASWORD}")
    assert message == (
        "environment variable 'REDIS_PASWORD' is not set; did you mean REDIS_PASSWORD? "
        "(set it, or read the secret from a file: ${file:/run/secrets/...})"
    )


def test_plain_dicts_and_lists_are_interpolated_with_their_paths() -> None:
    result = Interpolator({"A": "one", "B": "two"}).tree(
        {"k": ["${A}", {"n": "x${B}", "m": 3}], "bad": ["${C}"]}
    )
    assert result.value == {"k": ["one", {"n": "xtwo", "m": 3}], "bad": ["${C}"]}
    assert result.pieces == {("k", 0): ["one", "one"], ("k", 1, "n"): ["two", "xtwo"]}
    assert result.failed == {("bad", 0)}
    assert [path for path, _ in result.errors] == [("bad", 0)]


def node_budget_document() -> dict[str, Any]:
    # 1 (root) + 1 + 3 (list "a") + 1 ("b") + 1 + 2 (list "c") = 9 nodes, walked in this order.
    return {"a": ["x", "${A}", "z"], "b": "y", "c": ["p", "q"]}


def test_a_document_of_exactly_the_node_budget_is_accepted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(interpolate_module, "_MAX_NODES", 9)
    result = Interpolator({"A": "v"}).tree(node_budget_document())
    assert result.errors == [] and result.failed == set()
    assert result.value == {"a": ["x", "v", "z"], "b": "y", "c": ["p", "q"]}


@pytest.mark.parametrize(
    ("budget", "where", "value"),
    [
        (8, ("c", 1), {"a": ["x", "v", "z"], "b": "y", "c": ["p", None]}),
        (4, ("a", 2), {"a": ["x", "v", None], "b": None, "c": None}),
    ],
)
def test_a_document_over_the_node_budget_is_one_error_at_the_first_node_over(
    monkeypatch: pytest.MonkeyPatch, budget: int, where: tuple[Any, ...], value: Any
) -> None:
    monkeypatch.setattr(interpolate_module, "_MAX_NODES", budget)
    result = Interpolator({"A": "v"}).tree(node_budget_document())
    assert result.errors == [(where, "document too large (too many aliases?)")]
    assert result.failed == {()}
    assert result.value == value


def test_digest_follows_references_after_an_escaped_dollar_brace() -> None:
    content = b"$${literal} ${A}"
    digests = {Interpolator({"A": a}).digest(content) for a in ("1", "2", "1")}
    assert len(digests) == 2


def test_digest_accepts_undecodable_content_and_environment_values() -> None:
    # os.environ holds undecodable bytes as lone surrogates.
    first = Interpolator({"A": "\udcff"}).digest(b"\xff ${A}")
    assert first == Interpolator({"A": "\udcff"}).digest(b"\xff ${A}")
    assert first != Interpolator({"A": "x"}).digest(b"\xff ${A}")


def test_validate_reports_file_and_variable_errors_at_their_lines(tmp_path: Path) -> None:
    big = tmp_path / "checks" / "big"  # next to the checks: ${file:} may read there
    big.parent.mkdir()
    big.write_bytes(b"a" * (1 << 20) + b"b")
    write(
        tmp_path / "checks" / "c.yaml",
        f"""
        checks:
          - name: empty-path
            type: outcome
            status: ok
            message: "x ${{file:}}"
          - name: misspelt
            type: outcome
            status: ok
            message: "${{Db_HOST}}"
          - name: too-big
            type: outcome
            status: ok
            message: "${{file:{big}}}"
        """,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROBED_")}
    env["DB_HOST"] = "db.internal"
    command = [sys.executable, "-m", "probed", "validate"]
    command += ["--checks-dir", str(tmp_path / "checks"), "--plugins-dir", str(PLUGINS)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    where = tmp_path / "checks" / "c.yaml"
    assert (result.stdout + result.stderr).splitlines() == [
        f"{where}:5: checks[0].message: ${{file:}} needs a path, e.g. ${{file:/run/secrets/token}}",
        f"{where}:9: checks[1].message: environment variable 'Db_HOST' is not set; "
        "did you mean DB_HOST? (set it, or give a default: ${Db_HOST:-default})",
        f"{where}:13: checks[2].message: cannot read file {str(big)!r} (from ${{file:...}}): "
        "larger than 1048576 bytes",
        "3 error(s); 0 valid check(s)",
    ]


def test_a_file_reference_with_a_nul_in_its_path_is_a_located_error(tmp_path: Path) -> None:
    checks = tmp_path / "checks.d"
    checks.mkdir()
    (checks / "nul.yaml").write_text(
        'checks:\n  - name: a\n    type: tcp\n    address: "${file:/run/a\\0b}"\n'
    )
    done = subprocess.run(
        [sys.executable, "-m", "probed", "validate", "--checks-dir", str(checks)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert "nul.yaml:4: checks[0].address: cannot read file" in done.stderr
    assert "a path cannot contain a NUL character" in done.stderr
