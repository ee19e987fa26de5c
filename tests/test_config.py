"""probed.config: probed.yaml and checks files, FILE:LINE errors, interpolation, reload."""

from __future__ import annotations

import difflib
import json
import os
import textwrap
from pathlib import Path
from typing import Any, ClassVar, Literal

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, SecretStr, field_validator

from probed import Check, CheckOptions, Result
from probed._durations import Duration, format_duration, parse_duration
from probed._interpolate import InterpolationError, Interpolator, escape
from probed.config import (
    FileResult,
    LoadResult,
    check_file_schema,
    load_checks,
    load_settings,
    validate_check,
)
from probed.errors import ConfigErrors
from probed.options import MAX_DURATION
from probed.plugins import CheckTypeInfo
from probed.settings import CheckDefaults, Settings

# -- test-only check types ---------------------------------------------------------------------


class TlsOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    verify: bool = True
    server_name: str | None = None


class WebOptions(CheckOptions):
    url: str
    method: Literal["GET", "HEAD"] = "GET"
    headers: dict[str, str] = {}
    password: SecretStr | None = None
    slow_after: Duration | None = None
    tls: TlsOptions | None = None
    port: int = 80

    @field_validator("url")
    @classmethod
    def _scheme(cls, value: str) -> str:
        # Deliberately echoes its input, as careless plugin validators do.
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"url {value!r} must start with http:// or https://")
        return value


class WebCheck(Check[WebOptions]):
    type_name: ClassVar[str] = "web"
    options_model: ClassVar[type[CheckOptions]] = WebOptions
    description: ClassVar[str] = "test web check"

    async def run(self) -> Result:
        return Result.ok()


class NoOptions(CheckOptions):
    pass


class NeedsDriverCheck(Check[NoOptions]):
    type_name: ClassVar[str] = "fakedb"
    options_model: ClassVar[type[CheckOptions]] = NoOptions
    requires: ClassVar[tuple[str, ...]] = ("no_such_module_xyz",)
    extra: ClassVar[str | None] = "fake"

    async def run(self) -> Result:
        return Result.ok()


class PingCheck(Check[NoOptions]):
    type_name: ClassVar[str] = "ping"
    options_model: ClassVar[type[CheckOptions]] = NoOptions

    async def run(self) -> Result:
        return Result.ok()


TYPES = {
    "web": CheckTypeInfo(WebCheck, "tests"),
    "fakedb": CheckTypeInfo(NeedsDriverCheck, "tests"),
    "ping": CheckTypeInfo(PingCheck, "tests"),
}


# -- helpers -----------------------------------------------------------------------------------


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temporary working directory with an empty checks.d, so sources are relative."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "checks.d").mkdir()
    return tmp_path


def write(path: Path | str, text: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def settings(**kwargs: Any) -> Settings:
    kwargs.setdefault("checks_dirs", (Path("checks.d"),))
    return Settings(**kwargs)


def load(previous: LoadResult | None = None, **kwargs: Any) -> LoadResult:
    return load_checks(settings(**kwargs), TYPES, previous)


def errors_of(result: LoadResult) -> list[str]:
    return [str(e) for e in result.errors]


# -- a valid file ------------------------------------------------------------------------------


def test_valid_file_builds_specs_with_merged_labels_source_and_line(work: Path) -> None:
    write(
        "checks.d/api.yaml",
        """
        defaults:
          interval: 30s
          labels: {team: payments, tier: low}
        checks:
          - name: payments-api
            type: web
            interval: 10s
            timeout: 3s
            readiness: false
            failure_threshold: 5
            success_threshold: 2
            labels: {tier: critical}
            description: "the payments API"
            url: https://payments.internal/healthz
          - name: payments-db.1
            type: ping
        """,
    )
    result = load(defaults=CheckDefaults(labels=(("env", "prod"), ("team", "core"))))
    assert result.errors == ()
    api, db = result.specs["payments-api"], result.specs["payments-db.1"]
    assert list(result.specs) == ["payments-api", "payments-db.1"]
    assert (api.interval, api.timeout, api.readiness) == (10.0, 3.0, False)
    assert (api.failure_threshold, api.success_threshold) == (5, 2)
    assert api.labels == (("env", "prod"), ("team", "payments"), ("tier", "critical"))
    assert api.description == "the payments API"
    assert isinstance(api.options, WebOptions)
    assert api.options.url == "https://payments.internal/healthz"
    assert (api.source, api.line, api.where) == ("checks.d/api.yaml", 5, "checks.d/api.yaml:5")
    assert (db.interval, db.timeout, db.readiness, db.failure_threshold) == (30.0, 10.0, True, 3)
    assert db.labels == (("env", "prod"), ("team", "payments"), ("tier", "low"))
    assert db.line == 15


def test_default_timeout_is_capped_at_80_percent_of_interval(work: Path) -> None:
    write(
        "checks.d/a.yaml",
        """
        checks:
          - {name: fast, type: ping, interval: 5s}
          - {name: slow, type: ping, interval: 1m30s}
          - {name: tiny, type: ping, interval: 500ms}
        """,
    )
    specs = load().specs
    assert (specs["fast"].interval, specs["fast"].timeout) == (5.0, 4.0)
    assert (specs["slow"].interval, specs["slow"].timeout) == (90.0, 10.0)
    assert specs["tiny"].timeout == pytest.approx(0.4)


def test_yml_files_are_read_sorted_and_hidden_files_skipped(work: Path) -> None:
    write("checks.d/b.yml", "checks: [{name: b, type: ping}]")
    write("checks.d/a.yaml", "checks: [{name: a, type: ping}]")
    write("checks.d/.#a.yaml", "not: [valid")
    write("checks.d/notes.txt", "checks: [{name: c, type: ping}]")
    result = load()
    assert result.errors == ()
    assert list(result.specs) == ["a", "b"]
    assert list(result.files) == ["checks.d/a.yaml", "checks.d/b.yml"]


def test_empty_file_and_file_without_checks_are_fine(work: Path) -> None:
    write("checks.d/empty.yaml", "")
    write("checks.d/comments.yaml", "# nothing yet\n")
    write("checks.d/defaults-only.yaml", "defaults: {interval: 10s}\n")
    write("checks.d/null.yaml", "checks:\n")
    result = load()
    assert result.errors == ()
    assert result.specs == {}
    assert len(result.files) == 4


def test_yaml_anchors_and_merge_keys_work(work: Path) -> None:
    write(
        "checks.d/a.yaml",
        """
        checks:
          - &base
            name: one
            type: web
            url: http://127.0.0.1/
            interval: 20s
          - <<: *base
            name: two
            urll: x
        """,
    )
    result = load()
    assert errors_of(result) == [
        "checks.d/a.yaml:9: checks[1].urll: unknown key 'urll' (did you mean 'url'?)"
    ]
    assert result.specs["one"].interval == 20.0


# -- errors, each with FILE:LINE: field: message -------------------------------------------------


def test_unknown_option_key_names_file_line_field_and_suggests(work: Path) -> None:
    write(
        "checks.d/api.yaml",
        """
        checks:
          - name: payments-api
            type: web
            urll: https://payments.internal/
        """,
    )
    assert errors_of(load()) == [
        "checks.d/api.yaml:2: checks[0].url: required key is missing",
        "checks.d/api.yaml:4: checks[0].urll: unknown key 'urll' (did you mean 'url'?)",
    ]


def test_unknown_common_and_nested_keys_get_did_you_mean(work: Path) -> None:
    write(
        "checks.d/api.yaml",
        """
        checks:
          - name: a
            type: web
            url: http://127.0.0.1/
            intervall: 10s
            tls:
              verfy: false
            zzz: 1
        """,
    )
    assert errors_of(load()) == [
        "checks.d/api.yaml:5: checks[0].intervall: unknown key 'intervall' "
        "(did you mean 'interval'?)",
        "checks.d/api.yaml:7: checks[0].tls.verfy: unknown key 'verfy' (did you mean 'verify'?)",
        "checks.d/api.yaml:8: checks[0].zzz: unknown key 'zzz': type 'web' (plugin 'tests') "
        "declares the options headers, method, password, port, slow_after, tls, url; remove the "
        "key, or add it to WebOptions (its options_model)",
    ]


def test_every_error_of_a_file_is_reported_and_valid_siblings_load(work: Path) -> None:
    write(
        "checks.d/mixed.yaml",
        """
        checks:
          - name: good-1
            type: ping
          - name: Bad Name
            type: ping
          - name: bad-values
            type: web
            url: ftp://example
            method: POST
            failure_threshold: 0
            success_threshold: true
            readiness: maybe
            interval: 10x
          - name: good-2
            type: ping
        """,
    )
    result = load()
    assert list(result.specs) == ["good-1", "good-2"]
    assert errors_of(result) == [
        "checks.d/mixed.yaml:4: checks[1].name: invalid check name 'Bad Name': use lower-case "
        "letters, digits, '_', '.' and '-', starting with a letter or digit",
        "checks.d/mixed.yaml:8: checks[2].url: url 'ftp://example' must start with http:// or "
        "https://",
        "checks.d/mixed.yaml:9: checks[2].method: Input should be 'GET' or 'HEAD'",
        "checks.d/mixed.yaml:10: checks[2].failure_threshold: Input should be greater than or "
        "equal to 1",
        "checks.d/mixed.yaml:11: checks[2].success_threshold: expected a whole number, not "
        "true/false",
        "checks.d/mixed.yaml:12: checks[2].readiness: Input should be a valid boolean, unable to "
        "interpret input",
        "checks.d/mixed.yaml:13: checks[2].interval: invalid duration '10x': use forms like "
        "500ms, 10s, 1m30s, 2h",
    ]


def test_yaml_syntax_error_gives_line_and_column(work: Path) -> None:
    write(
        "checks.d/bad.yaml",
        """
        checks:
          - name: a
            type: ping
           oops: [1, 2
        """,
    )
    write("checks.d/good.yaml", "checks: [{name: g, type: ping}]")
    result = load()
    (error,) = result.errors
    assert str(error).startswith("checks.d/bad.yaml:4: invalid YAML at column 4: ")
    assert list(result.specs) == ["g"]


def test_non_mapping_top_level_and_bad_sections_are_errors(work: Path) -> None:
    write("checks.d/a-list.yaml", "- name: a\n  type: ping\n")
    write("checks.d/b-scalar.yaml", "hello\n")
    write("checks.d/c-sections.yaml", "chekcs: []\ndefaults: 5\n")
    write("checks.d/d-checks.yaml", "checks: {name: a}\n")
    write("checks.d/e-item.yaml", "checks:\n  - just-a-string\n")
    assert errors_of(load()) == [
        "checks.d/a-list.yaml:1: the top level must be a mapping with a 'checks:' list, got a list",
        "checks.d/b-scalar.yaml:1: the top level must be a mapping with a 'checks:' list, "
        "got a str",
        "checks.d/c-sections.yaml:1: chekcs: unknown key 'chekcs' (did you mean 'checks'?); "
        "a checks file has 'checks:' and optionally 'defaults:'",
        "checks.d/c-sections.yaml:2: defaults: must be a mapping (interval, timeout, readiness, "
        "labels...)",
        "checks.d/d-checks.yaml:1: checks: must be a list of checks, each item starting with "
        "'- name: ...'",
        "checks.d/e-item.yaml:2: checks[0]: a check must be a mapping, got str",
    ]


def test_missing_name_or_type_is_reported_at_the_item(work: Path) -> None:
    write("checks.d/a.yaml", "checks:\n  - interval: 10s\n  - name: x\n")
    assert errors_of(load()) == [
        "checks.d/a.yaml:2: checks[0]: missing required key 'name'",
        "checks.d/a.yaml:2: checks[0]: missing required key 'type'",
        "checks.d/a.yaml:3: checks[1]: missing required key 'type'",
    ]


def test_unknown_type_lists_registered_types_with_hint(work: Path) -> None:
    write("checks.d/a.yaml", "checks:\n  - name: a\n    type: wbe\n  - name: b\n    type: zz\n")
    assert errors_of(load()) == [
        "checks.d/a.yaml:3: checks[0].type: unknown type 'wbe' (did you mean 'web'?); "
        "registered types: fakedb, ping, web",
        "checks.d/a.yaml:5: checks[1].type: unknown type 'zz'; registered types: fakedb, ping, web",
    ]


def test_type_with_missing_driver_names_the_extra(work: Path) -> None:
    write("checks.d/db.yaml", "checks:\n  - name: db\n    type: fakedb\n")
    assert errors_of(load()) == [
        "checks.d/db.yaml:3: checks[0].type: type 'fakedb' needs the no_such_module_xyz module: "
        "pip install 'probed[fake]'"
    ]


def test_timeout_must_be_below_interval(work: Path) -> None:
    write(
        "checks.d/a.yaml",
        """
        defaults: {interval: 20s}
        checks:
          - {name: a, type: ping, interval: 10s, timeout: 10s}
          - {name: b, type: ping, timeout: 1m}
          - {name: c, type: ping, interval: 10s, timeout: 9s}
        """,
    )
    result = load()
    assert errors_of(result) == [
        "checks.d/a.yaml:3: checks[0].timeout: timeout 10s must be less than interval 10s",
        "checks.d/a.yaml:4: checks[1].timeout: timeout 1m must be less than the default "
        "interval 20s",
    ]
    assert list(result.specs) == ["c"]


def test_label_names_and_values_are_checked(work: Path) -> None:
    write(
        "checks.d/a.yaml",
        """
        checks:
          - name: a
            type: ping
            labels:
              check: x
              __meta: y
              1st: z
              version: 1.10
              ok_name: fine
        """,
    )
    assert errors_of(load()) == [
        "checks.d/a.yaml:5: checks[0].labels.check: label name 'check' is reserved by probed; "
        "reserved names: check, component, field, instance, job, le, phase, quantile, reason, "
        "result, stat, status, type, window",
        "checks.d/a.yaml:6: checks[0].labels.__meta: label name '__meta' is reserved: names "
        "starting with '__' belong to Prometheus",
        "checks.d/a.yaml:7: checks[0].labels.1st: invalid label name '1st': use letters, digits "
        "and '_', not starting with a digit",
        "checks.d/a.yaml:8: checks[0].labels.version: label values must be strings (quote the "
        "value in YAML)",
    ]


def test_invalid_file_defaults_are_reported_and_keep_that_files_checks_out(work: Path) -> None:
    write(
        "checks.d/a.yaml",
        """
        defaults:
          interval: soon
          labels: {job: x}
          colour: red
        checks:
          - {name: a, type: ping}
        """,
    )
    result = load()
    assert errors_of(result) == [
        "checks.d/a.yaml:2: defaults.interval: invalid duration 'soon': use forms like 500ms, "
        "10s, 1m30s, 2h",
        "checks.d/a.yaml:3: defaults.labels.job: label name 'job' is reserved by probed; reserved "
        "names: check, component, field, instance, job, le, phase, quantile, reason, result, "
        "stat, status, type, window",
        "checks.d/a.yaml:4: defaults.colour: unknown key 'colour'",
    ]
    assert result.specs == {}


def test_repeated_yaml_key_is_an_error(work: Path) -> None:
    write(
        "checks.d/a.yaml",
        """
        checks:
          - name: a
            type: web
            url: http://127.0.0.1/a
            url: http://127.0.0.1/b
        """,
    )
    result = load()
    assert errors_of(result) == [
        "checks.d/a.yaml:5: checks[0].url: key 'url' is repeated in the same mapping; keep only one"
    ]
    assert result.specs == {}


def test_duplicate_names_across_files_first_wins(work: Path) -> None:
    write("checks.d/a.yaml", "checks:\n  - name: api\n    type: ping\n    interval: 7s\n")
    write(
        "checks.d/b.yaml",
        "checks:\n  - name: other\n    type: ping\n  - name: api\n    type: ping\n",
    )
    result = load()
    assert errors_of(result) == [
        "checks.d/b.yaml:4: checks[1].name: duplicate check name 'api': already defined at "
        "checks.d/a.yaml:2; names must be unique across all files (this one is ignored)"
    ]
    assert result.specs["api"].interval == 7.0
    assert list(result.specs) == ["api", "other"]


def test_duplicate_names_in_one_file_first_wins(work: Path) -> None:
    write("checks.d/a.yaml", "checks:\n  - {name: x, type: ping}\n  - {name: x, type: ping}\n")
    result = load()
    assert errors_of(result) == [
        "checks.d/a.yaml:3: checks[1].name: duplicate check name 'x': already defined at "
        "checks.d/a.yaml:2; names must be unique across all files (this one is ignored)"
    ]
    assert result.specs["x"].line == 2


def test_missing_checks_directory_is_an_error(work: Path) -> None:
    result = load(checks_dirs=(Path("nope.d"),))
    assert errors_of(result) == ["nope.d: checks directory does not exist"]


# -- interpolation -------------------------------------------------------------------------------


def test_env_and_file_references_are_resolved(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_HOST", "127.0.0.1")
    monkeypatch.setenv("API_TOKEN", "tok-123456")
    monkeypatch.setenv("EMPTY", "")
    monkeypatch.delenv("UNSET_PORT", raising=False)
    write("checks.d/secret.txt", "s3cr3t-from-file\n")
    write(
        "checks.d/a.yaml",
        f"""
        checks:
          - name: a
            type: web
            url: http://${{API_HOST}}:${{UNSET_PORT:-8080}}/?t=${{API_TOKEN}}&x=$${{literal}}
            password: ${{file:{work}/checks.d/secret.txt}}
            headers:
              X-Empty: "[${{EMPTY}}]"
              X-Default-For-Empty: ${{EMPTY:-dflt}}
            description: costs $$5 and ${{API_HOST}}
        """,
    )
    result = load()
    assert result.errors == ()
    options = result.specs["a"].options
    assert isinstance(options, WebOptions)
    assert options.url == "http://127.0.0.1:8080/?t=tok-123456&x=${literal}"
    assert options.password is not None
    assert options.password.get_secret_value() == "s3cr3t-from-file"
    assert options.headers == {"X-Empty": "[]", "X-Default-For-Empty": "dflt"}
    assert result.specs["a"].description == "costs $$5 and 127.0.0.1"
    # File contents and secret-looking variables are secrets; API_HOST and short values are not.
    assert result.secrets == {"s3cr3t-from-file", "tok-123456"}
    assert result.files["checks.d/a.yaml"].secrets == result.secrets


def test_interpolated_values_cannot_inject_yaml(
    work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INJECT", "http://127.0.0.1/\ninterval: 1s\n- name: evil")
    write("checks.d/a.yaml", "checks:\n  - {name: a, type: web, url: '${INJECT}'}\n")
    result = load()
    assert result.errors == ()
    assert result.specs["a"].interval == 30.0
    assert result.specs["a"].options.url == "http://127.0.0.1/\ninterval: 1s\n- name: evil"  # type: ignore[attr-defined]


def test_missing_variable_and_unreadable_file_are_errors_at_their_line(
    work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PG_PASSWORD", raising=False)
    for name in list(os.environ):  # no "did you mean" from this machine's environment
        if difflib.SequenceMatcher(None, "pg_password", name.lower()).ratio() >= 0.6:
            monkeypatch.delenv(name)
    write(
        "checks.d/a.yaml",
        f"""
        checks:
          - name: a
            type: web
            url: http://127.0.0.1/
            headers:
              Authorization: Bearer ${{PG_PASSWORD}}
          - name: b
            type: web
            url: http://127.0.0.1/
            password: ${{file:{work}/checks.d/missing-secret}}
          - name: c
            type: web
            url: http://127.0.0.1/${{not valid}}
          - name: d
            type: web
            url: http://127.0.0.1/${{oops
          - name: fine
            type: ping
        """,
    )
    result = load()
    assert errors_of(result) == [
        "checks.d/a.yaml:6: checks[0].headers.Authorization: environment variable 'PG_PASSWORD' "
        "is not set (set it, or read the secret from a file: ${file:/run/secrets/...})",
        "checks.d/a.yaml:10: checks[1].password: cannot read file "
        f"'{work}/checks.d/missing-secret' (from ${{file:...}}): No such file or directory",
        "checks.d/a.yaml:13: checks[2].url: invalid reference '${not valid}' (use ${VAR}, "
        "${VAR:-default} or ${file:/path}, and $${ for a literal ${)",
        "checks.d/a.yaml:16: checks[3].url: unterminated '${' (use ${VAR}, ${VAR:-default} or "
        "${file:/path}, and $${ for a literal ${)",
    ]
    # A check whose value could not be resolved must not run with the raw "${...}" text.
    assert list(result.specs) == ["fine"]


def test_interpolated_values_never_appear_in_error_messages(
    work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DB_TOKEN", "hunter2-very-secret")
    monkeypatch.setenv("SHORT", "ab")
    monkeypatch.setenv("PLAIN_URL", "ftp://plain-host-value")
    write("checks.d/token.txt", "file-secret-value")
    write(
        "checks.d/a.yaml",
        f"""
        checks:
          - name: a
            type: web
            url: ftp://${{DB_TOKEN}}@h
            interval: ${{file:{work}/checks.d/token.txt}}
            port: ${{SHORT}}
          - name: b
            type: web
            url: ${{PLAIN_URL}}
            timeout: ${{DB_TOKEN}}
        """,
    )
    result = load()
    text = "\n".join(errors_of(result))
    for value in ("hunter2-very-secret", "file-secret-value", "'ab'", "plain-host-value"):
        assert value not in text
    assert errors_of(result)[:2] == [
        "checks.d/a.yaml:4: checks[0].url: url '***' must start with http:// or https://",
        "checks.d/a.yaml:5: checks[0].interval: invalid duration '***': use forms like 500ms, "
        "10s, 1m30s, 2h",
    ]
    assert len(result.errors) == 5
    assert {"hunter2-very-secret", "file-secret-value"} <= result.secrets


def test_secret_file_strips_exactly_one_trailing_newline(work: Path) -> None:
    write("checks.d/two-newlines.txt", "value-with-newline\n\n")
    (work / "checks.d" / "crlf.txt").write_bytes(b"crlf-value\r\n")
    write(
        "checks.d/a.yaml",
        f"""
        checks:
          - name: a
            type: web
            url: http://127.0.0.1/
            headers:
              A: "${{file:{work}/checks.d/two-newlines.txt}}"
              B: "${{file:{work}/checks.d/crlf.txt}}"
        """,
    )
    options = load().specs["a"].options
    assert options.headers == {"A": "value-with-newline\n", "B": "crlf-value"}  # type: ignore[attr-defined]


# -- reload --------------------------------------------------------------------------------------


def test_reload_keeps_last_good_version_of_a_broken_file(work: Path) -> None:
    write("checks.d/a.yaml", "checks:\n  - {name: a1, type: ping, interval: 10s}\n")
    write("checks.d/b.yaml", "checks:\n  - {name: b1, type: ping}\n")
    write("checks.d/c.yaml", "checks:\n  - {name: c1, type: ping}\n")
    first = load()
    assert first.errors == ()

    write(
        "checks.d/a.yaml",
        "checks:\n  - {name: a1, type: ping, interval: 20s}\n  - {name: a2, type: nope}\n",
    )
    write("checks.d/b.yaml", "checks:\n  - {name: b2, type: ping}\n")
    (work / "checks.d/c.yaml").unlink()
    second = load(first)

    assert errors_of(second) == [
        "checks.d/a.yaml:3: checks[1].type: unknown type 'nope'; registered types: fakedb, "
        "ping, web"
    ]
    assert list(second.specs) == ["a1", "b2"]
    assert second.specs["a1"].interval == 10.0  # the last good version keeps running
    assert second.files["checks.d/a.yaml"].stale
    assert "checks.d/c.yaml" not in second.files

    # Fixing the file brings in the new version.
    write("checks.d/a.yaml", "checks:\n  - {name: a1, type: ping, interval: 20s}\n")
    third = load(second)
    assert third.errors == ()
    assert third.specs["a1"].interval == 20.0
    assert not third.files["checks.d/a.yaml"].stale


def test_reload_reuses_unchanged_files_without_revalidating(work: Path) -> None:
    write("checks.d/a.yaml", "checks:\n  - {name: a, type: ping}\n")
    write("checks.d/b.yaml", "checks:\n  - {name: b, type: ping}\n")
    first = load()
    write("checks.d/b.yaml", "checks:\n  - {name: b, type: ping, interval: 5s}\n")
    second = load(first)
    assert second.files["checks.d/a.yaml"] is first.files["checks.d/a.yaml"]
    assert second.specs["a"] is first.specs["a"]
    assert second.files["checks.d/b.yaml"] is not first.files["checks.d/b.yaml"]
    assert second.specs["b"].interval == 5.0


def test_reload_revalidates_when_a_referenced_variable_changes(
    work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHECK_URL", "http://127.0.0.1/one")
    write("checks.d/a.yaml", "checks:\n  - {name: a, type: web, url: '${CHECK_URL}'}\n")
    first = load()
    monkeypatch.setenv("CHECK_URL", "http://127.0.0.1/two")
    second = load(first)
    assert second.specs["a"].options.url == "http://127.0.0.1/two"  # type: ignore[attr-defined]


def test_reload_sees_a_rotated_secret_file(work: Path) -> None:
    write("checks.d/token", "first-token\n")
    write(
        "checks.d/a.yaml",
        "checks:\n  - {name: a, type: web, url: http://127.0.0.1/,\n"
        f"     password: '${{file:{work}/checks.d/token}}'}}\n",
    )
    first = load()
    write("checks.d/token", "second-token\n")
    second = load(first)
    assert second.specs["a"].options.password.get_secret_value() == "second-token"  # type: ignore[attr-defined]
    assert "second-token" in second.secrets


def test_reload_revalidates_when_settings_defaults_change(work: Path) -> None:
    write("checks.d/a.yaml", "checks:\n  - {name: a, type: ping}\n")
    first = load()
    second = load(first, defaults=CheckDefaults(interval=60.0))
    assert second.specs["a"].interval == 60.0


def test_new_file_with_errors_on_reload_loads_its_valid_checks(work: Path) -> None:
    first = load()
    write("checks.d/new.yaml", "checks:\n  - {name: ok, type: ping}\n  - {name: bad, type: x}\n")
    second = load(first)
    assert list(second.specs) == ["ok"]
    assert len(second.errors) == 1


# -- other sources: probed.yaml inline checks, extra files, discovered -------------------------


def test_inline_extra_and_discovered_checks_load_in_order(work: Path) -> None:
    write(
        "probed.yaml",
        """
        listen: 127.0.0.1:9999
        defaults: {interval: 15s, labels: {site: lab}}
        checks:
          - {name: inline, type: ping}
          - {name: inline-bad, type: ping, colour: red}
        """,
    )
    write("checks.d/a.yaml", "checks:\n  - {name: from-dir, type: ping}\n")
    write("embedded.yaml", "checks:\n  - {name: embedded, type: ping}\n")
    conf = load_settings(Path("probed.yaml"), {"checks_dirs": (Path("checks.d"),)})
    discovered = [
        ("consul", {"name": "found", "type": "ping"}),
        ("consul", {"name": "found-bad", "type": "web"}),
        ("other", {"name": "inline", "type": "ping"}),
    ]
    result = load_checks(conf, TYPES, discovered=discovered, extra_files=[Path("embedded.yaml")])
    assert list(result.specs) == ["inline", "from-dir", "embedded", "found"]
    assert result.specs["inline"].interval == 15.0
    assert result.specs["inline"].labels == (("site", "lab"),)
    assert result.specs["found"].source == "<plugin:consul>"
    assert errors_of(result) == [
        "probed.yaml:5: checks[1].colour: unknown key 'colour': type 'ping' (plugin 'tests') "
        "declares no options of its own; remove the key, or give the type an options_model",
        "<plugin:consul>: checks[1].url: required key is missing",
        "<plugin:other>: checks[0].name: duplicate check name 'inline': already defined at "
        "probed.yaml:4; names must be unique across all files (this one is ignored)",
    ]


def test_validate_check_accepts_plain_mappings() -> None:
    spec = validate_check(
        {"name": "x", "type": "web", "url": "http://127.0.0.1/", "labels": {"a": "b"}},
        TYPES,
        CheckDefaults(labels=(("z", "1"),)),
        "<test>",
    )
    assert spec.labels == (("a", "b"), ("z", "1"))
    with pytest.raises(ConfigErrors) as info:
        validate_check({"name": "x", "type": "web"}, TYPES, CheckDefaults(), "<test>")
    assert [str(e) for e in info.value.errors] == ["<test>: url: required key is missing"]


# -- probed.yaml -------------------------------------------------------------------------------


def test_load_settings_reads_file_and_overrides_win(work: Path) -> None:
    write(
        "etc/probed.yaml",
        """
        listen: "[::1]:9400"
        checks_dirs: [checks.d, /abs/checks]
        plugins_dirs: plugins
        log_format: text
        log_level: debug
        disabled_plugins: [probed.checks.icmp]
        max_concurrency: 64
        startup_spread: 0
        history: 20
        hook_timeout: 2s
        watch: false
        watch_interval: 500ms
        defaults:
          interval: 1m
          timeout: 5s
          readiness: false
          failure_threshold: 2
          success_threshold: 2
          labels: {env: prod}
        plugins:
          sentry: {dsn: x}
          empty:
        """,
    )
    conf = load_settings(Path("etc/probed.yaml"), {"log_level": "WARNING"})
    assert conf.config_file == Path("etc/probed.yaml")
    assert conf.listen == "[::1]:9400"
    assert conf.host_port == ("::1", 9400)
    assert conf.checks_dirs == (Path("etc/checks.d"), Path("/abs/checks"))
    assert conf.plugins_dirs == (Path("etc/plugins"),)
    assert (conf.log_format, conf.log_level) == ("text", "WARNING")
    assert conf.disabled_plugins == ("probed.checks.icmp",)
    assert (conf.max_concurrency, conf.startup_spread, conf.history) == (64, 0.0, 20)
    assert (conf.hook_timeout, conf.watch, conf.watch_interval) == (2.0, False, 0.5)
    assert conf.defaults == CheckDefaults(
        interval=60.0,
        timeout=5.0,
        readiness=False,
        failure_threshold=2,
        success_threshold=2,
        labels=(("env", "prod"),),
    )
    assert conf.plugins == {"sentry": {"dsn": "x"}, "empty": {}}
    assert type(conf.plugins["sentry"]) is dict


def test_load_settings_without_file_uses_defaults_and_overrides() -> None:
    conf = load_settings(None, {"listen": "127.0.0.1:1"})
    assert conf == Settings(listen="127.0.0.1:1")


def test_load_settings_reports_every_error_with_line(work: Path) -> None:
    write(
        "probed.yaml",
        """
        listen: localhost
        log_formt: json
        log_level: loud
        max_concurrency: 0
        defaults:
          intreval: 5s
          labels: {status: x}
          timeout: 5s
          interval: 5s
        checks:
          - {name: not-validated-here, type: nope}
        """,
    )
    with pytest.raises(ConfigErrors) as info:
        load_settings(Path("probed.yaml"), {})
    assert [str(e) for e in info.value.errors] == [
        "probed.yaml:1: listen: expected HOST:PORT such as 127.0.0.1:9333 or [::1]:9333, "
        "got 'localhost'",
        "probed.yaml:2: log_formt: unknown key 'log_formt' (did you mean 'log_format'?)",
        "probed.yaml:3: log_level: unknown log level 'loud'; use one of DEBUG, INFO, WARNING, "
        "ERROR, CRITICAL",
        "probed.yaml:4: max_concurrency: Input should be greater than or equal to 1",
        "probed.yaml:6: defaults.intreval: unknown key 'intreval' (did you mean 'interval'?)",
        "probed.yaml:7: defaults.labels.status: label name 'status' is reserved by probed; "
        "reserved names: check, component, field, instance, job, le, phase, quantile, reason, "
        "result, stat, status, type, window",
        "probed.yaml:8: defaults.timeout: timeout 5s must be less than interval 5s",
    ]


def test_load_settings_errors_do_not_show_interpolated_values(
    work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LISTEN_SECRET_TOKEN", "not-an-address-secret")
    write("probed.yaml", "listen: ${LISTEN_SECRET_TOKEN}\n")
    with pytest.raises(ConfigErrors) as info:
        load_settings(Path("probed.yaml"), {})
    assert str(info.value) == (
        "probed.yaml:1: listen: expected HOST:PORT such as 127.0.0.1:9333 or [::1]:9333, got '***'"
    )


def test_load_settings_file_problems(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigErrors, match=r"^missing\.yaml: cannot read: No such file"):
        load_settings(Path("missing.yaml"), {})
    write("list.yaml", "- a\n")
    with pytest.raises(ConfigErrors, match=r"^list\.yaml:1: the top level must be a mapping$"):
        load_settings(Path("list.yaml"), {})
    write("syntax.yaml", "listen: [\n")
    with pytest.raises(ConfigErrors, match=r"^syntax\.yaml:2: invalid YAML at column 1: "):
        load_settings(Path("syntax.yaml"), {})
    monkeypatch.delenv("LISTEN_ADDR", raising=False)
    write("interp.yaml", "listen: ${LISTEN_ADDR}\n")
    with pytest.raises(ConfigErrors) as info:
        load_settings(Path("interp.yaml"), {})
    assert str(info.value) == (
        "interp.yaml:1: listen: environment variable 'LISTEN_ADDR' is not set "
        "(set it, or give a default: ${LISTEN_ADDR:-default})"
    )
    monkeypatch.setenv("LISTEN_ADDR", "127.0.0.1:7777")
    assert load_settings(Path("interp.yaml"), {}).listen == "127.0.0.1:7777"
    write("empty.yaml", "")
    assert load_settings(Path("empty.yaml"), {}) == Settings(config_file=Path("empty.yaml"))


# -- JSON Schema -------------------------------------------------------------------------------


def test_check_file_schema_accepts_valid_files_and_rejects_typos() -> None:
    schema = check_file_schema(TYPES)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    json.dumps(schema)  # plain JSON
    good = {
        "defaults": {"interval": "30s", "labels": {"team": "x"}},
        "checks": [
            {
                "name": "a",
                "type": "web",
                "url": "http://127.0.0.1/",
                "interval": "1m30s",
                "slow_after": "500ms",
                "tls": {"verify": False},
            },
            {"name": "b", "type": "ping", "timeout": 3},
        ],
    }
    assert list(validator.iter_errors(good)) == []
    for bad in (
        {"checks": [{"name": "a", "type": "web", "urll": "x"}]},
        {"checks": [{"name": "A B", "type": "ping"}]},
        {"checks": [{"name": "a", "type": "ping", "interval": "10x"}]},
        {"checks": [{"name": "a", "type": "ping", "labels": {"check": "x"}}]},
        {"checks": [{"name": "a", "type": "web", "url": "u", "tls": {"verfy": True}}]},
        {"chekcs": []},
    ):
        assert list(validator.iter_errors(bad)), bad
    web = next(
        v for v in schema["properties"]["checks"]["items"]["oneOf"] if v["title"] == "web check"
    )
    assert web["description"] == "test web check"
    assert web["required"] == ["name", "type", "url"]


# -- properties ----------------------------------------------------------------------------------


@given(st.text())
def test_parse_duration_never_crashes_on_text(text: str) -> None:
    try:
        seconds = parse_duration(text)
    except ValueError:
        return
    assert seconds > 0


_UNIT: dict[str, float] = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


@given(
    st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=10_000), st.sampled_from(["ms", "s", "m", "h", "d"])
        ),
        min_size=1,
        max_size=5,
    ).filter(lambda parts: 0 < sum(n * _UNIT[u] for n, u in parts) <= MAX_DURATION)
)
def test_parse_duration_sums_its_parts(parts: list[tuple[int, str]]) -> None:
    unit = _UNIT
    text = "".join(f"{n}{u}" for n, u in parts)
    assert parse_duration(text) == pytest.approx(sum(n * unit[u] for n, u in parts))


# format_duration prints fractions with 6 significant digits ("{:g}"), so only values with at
# most 6 are exact: whole milliseconds below 1000s, and whole seconds of any size.
@given(st.integers(min_value=1, max_value=999_999))
def test_format_duration_round_trips_milliseconds_below_1000s(millis: int) -> None:
    seconds = millis / 1000
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds)


@given(st.integers(min_value=1, max_value=int(MAX_DURATION)))
def test_format_duration_round_trips_whole_seconds(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


@given(st.text())
def test_interpolation_never_crashes_on_arbitrary_strings(text: str) -> None:
    interpolator = Interpolator({"A": "x", "TOKEN": "secret-value"})
    try:
        value, pieces, secrets = interpolator.string(text)
    except InterpolationError:
        return
    assert isinstance(value, str)
    assert set(secrets) <= set(pieces)


@given(st.text())
def test_escaped_text_interpolates_to_itself(text: str) -> None:
    value, pieces, _ = Interpolator({}).string(escape(text))
    assert value == text
    assert pieces == []


@given(st.text(alphabet=st.characters(blacklist_characters="$")))
def test_text_without_dollar_is_unchanged(text: str) -> None:
    assert Interpolator({}).string(text) == (text, [], [])


def test_file_result_and_load_result_are_frozen() -> None:
    result = FileResult("f", (), (), "d")
    with pytest.raises(AttributeError):
        result.path = "g"  # type: ignore[misc]
