"""Configuration errors as a user (or a JSON log reader) sees them: file, line, field, message.

``test_config.py`` checks the wording of most errors through ``str(error)``; here every error
is compared field by field (a JSON log carries ``line`` as a number), including the rarer paths:
unreadable and non-UTF-8 files, directories that are not there, repeated keys in ``probed.yaml``,
values that cannot be hashed, and which checks still load beside a broken one.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Annotated, Any, ClassVar

import jsonschema
import pytest
from pydantic import BaseModel, BeforeValidator, ConfigDict, SecretStr, field_validator

from probed import Check, CheckOptions, Result
from probed._yaml import load_yaml
from probed.config import (
    FileResult,
    check_file_schema,
    load_checks,
    load_settings,
    validate_check,
)
from probed.errors import ConfigError, ConfigErrors
from probed.plugins import CheckTypeInfo
from probed.settings import CheckDefaults, Settings


class NoOptions(CheckOptions):
    pass


class PingCheck(Check[NoOptions]):
    type_name: ClassVar[str] = "ping"
    options_model: ClassVar[type[CheckOptions]] = NoOptions

    async def run(self) -> Result:
        return Result.ok()


class WindowOptions(CheckOptions):
    window: float = 1.0


class WindowCheck(Check[WindowOptions]):
    """Its window must fit in the interval (a plugin using the interval argument)."""

    type_name: ClassVar[str] = "window"
    options_model: ClassVar[type[CheckOptions]] = WindowOptions

    @classmethod
    def timing_problem(cls, options: Any, interval: float, timeout: float) -> str | None:
        if options.window > interval:
            return f"window {options.window:g}s is longer than the interval {interval:g}s"
        return None

    async def run(self) -> Result:
        return Result.ok()


class NeedsModuleCheck(Check[NoOptions]):
    type_name: ClassVar[str] = "needsmod"
    options_model: ClassVar[type[CheckOptions]] = NoOptions
    requires: ClassVar[tuple[str, ...]] = ("no_such_module_q7",)

    async def run(self) -> Result:
        return Result.ok()


class Part(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str


class EchoOptions(CheckOptions):
    token: str = ""
    target: str = "x"
    quoted: str = "x"
    checked: str = "x"
    parts: list[Part] = []
    count: Annotated[int, BeforeValidator(lambda v: v)] = 1

    @field_validator("target")
    @classmethod
    def _target(cls, value: str) -> str:
        # echoes its input unquoted, as careless plugin validators do
        if value != "x":
            raise ValueError(f"cannot reach {value} now")
        return value

    @field_validator("quoted")
    @classmethod
    def _quoted(cls, value: str) -> str:
        if value != "x":
            raise ValueError(f'bad value "{value}"')
        return value

    @field_validator("checked")
    @classmethod
    def _checked(cls, value: str) -> str:
        if value != "x":
            raise AssertionError("checked must be x")  # pydantic: "Assertion failed, ..."
        return value


class EchoCheck(Check[EchoOptions]):
    type_name: ClassVar[str] = "echo"
    options_model: ClassVar[type[CheckOptions]] = EchoOptions

    async def run(self) -> Result:
        return Result.ok()


TYPES = {
    "echo": CheckTypeInfo(EchoCheck, "tests"),
    "ping": CheckTypeInfo(PingCheck, "tests"),
    "window": CheckTypeInfo(WindowCheck, "tests"),
    "needsmod": CheckTypeInfo(NeedsModuleCheck, "tests"),
}


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "checks.d").mkdir()
    return tmp_path


def write(path: str, text: str) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(textwrap.dedent(text).lstrip("\n"))
    return p


def fields(errors: Any) -> list[tuple[str, int, str, str]]:
    return [(e.file, e.line, e.field, e.message) for e in errors]


def load(**kwargs: Any) -> Any:
    extra = kwargs.pop("extra_files", ())
    discovered = kwargs.pop("discovered", ())
    previous = kwargs.pop("previous", None)
    kwargs.setdefault("checks_dirs", (Path("checks.d"),))
    return load_checks(
        Settings(**kwargs), TYPES, previous, discovered=discovered, extra_files=extra
    )


# -- files and directories ---------------------------------------------------------------------


def test_missing_and_non_directory_checks_dirs_are_errors_and_the_others_still_load(
    work: Path,
) -> None:
    write("a.d/one.yaml", "checks:\n  - {name: one, type: ping}\n")
    write("b.d/two.yaml", "checks:\n  - {name: two, type: ping}\n")
    write("afile", "")
    result = load(checks_dirs=(Path("missing"), Path("afile"), Path("a.d"), Path("b.d")))
    assert fields(result.errors) == [
        ("missing", 0, "", "checks directory does not exist"),
        ("afile", 0, "", "checks directory is not a directory"),
    ]
    assert list(result.specs) == ["one", "two"]


def test_a_checks_file_that_is_not_utf8_is_one_error_without_a_line(work: Path) -> None:
    Path("checks.d/bad.yaml").write_bytes(b"checks: \xff\n")
    write("checks.d/good.yaml", "checks:\n  - {name: good, type: ping}\n")
    result = load()
    assert fields(result.errors) == [("checks.d/bad.yaml", 0, "", "not valid UTF-8 (byte 8)")]
    assert list(result.specs) == ["good"]
    assert result.files["checks.d/bad.yaml"].path == "checks.d/bad.yaml"


def test_a_top_level_list_is_reported_at_its_own_line(work: Path) -> None:
    write("checks.d/list.yaml", "# a comment\n\n- name: a\n  type: ping\n")
    assert fields(load().errors) == [
        (
            "checks.d/list.yaml",
            3,
            "",
            "the top level must be a mapping with a 'checks:' list, got a list",
        )
    ]


def test_an_extra_file_that_cannot_be_read_is_an_error_and_others_still_load(work: Path) -> None:
    write("checks.d/a.yaml", "checks:\n  - {name: a, type: ping}\n")
    write("more.yaml", "checks:\n  - {name: more, type: ping}\n")
    result = load(extra_files=[Path("checks.d/a.yaml"), Path("missing.yaml"), Path("more.yaml")])
    error = ConfigError("missing.yaml", 0, "", "cannot read: No such file or directory")
    assert fields(result.errors) == fields([error])
    assert result.files["missing.yaml"] == FileResult("missing.yaml", (), (error,), "")
    # the checks dir's a.yaml given again is read once; the files after it still load
    assert list(result.specs) == ["a", "more"]


def test_extra_files_are_whole_checks_files_not_inline_sections(work: Path) -> None:
    write("more.yaml", "chekcs: []\n")
    assert fields(load(extra_files=[Path("more.yaml")]).errors) == [
        (
            "more.yaml",
            1,
            "chekcs",
            "unknown key 'chekcs' (did you mean 'checks'?); a checks file has 'checks:' and "
            "optionally 'defaults:'",
        )
    ]


def test_discovered_checks_are_a_file_of_their_own_per_plugin(work: Path) -> None:
    result = load(discovered=[("finder", {"name": "found", "type": "ping"})])
    assert result.files["<plugin:finder>"] == FileResult(
        "<plugin:finder>", (result.specs["found"],), (), "", spec_paths=("checks[0]",)
    )


# -- duplicates and neighbours of a broken check --------------------------------------------


def test_a_duplicate_name_is_reported_at_its_name_key_and_later_checks_still_load(
    work: Path,
) -> None:
    write(
        "checks.d/dup.yaml",
        """
        checks:
          - name: a
            type: ping
          - type: ping
            name: a
          - {name: b, type: ping}
        """,
    )
    result = load()
    assert fields(result.errors) == [
        (
            "checks.d/dup.yaml",
            5,
            "checks[1].name",
            "duplicate check name 'a': already defined at checks.d/dup.yaml:2; names must be "
            "unique across all files (this one is ignored)",
        )
    ]
    assert list(result.specs) == ["a", "b"]


def test_a_check_with_a_repeated_key_is_dropped_and_the_next_one_loads(work: Path) -> None:
    write(
        "checks.d/rep.yaml",
        """
        checks:
          - name: a
            type: ping
            type: ping
          - {name: b, type: ping}
        """,
    )
    result = load()
    assert [e.field for e in result.errors] == ["checks[0].type"]
    assert list(result.specs) == ["b"]


def test_secrets_of_every_file_are_collected(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONE_TOKEN", "first-secret-value")
    monkeypatch.setenv("TWO_TOKEN", "second-secret-value")
    write("checks.d/a.yaml", "checks:\n  - {name: a, type: echo, token: '${ONE_TOKEN}'}\n")
    write("checks.d/b.yaml", "checks:\n  - {name: b, type: echo, token: '${TWO_TOKEN}'}\n")
    assert load().secrets == {"first-secret-value", "second-secret-value"}


def test_a_file_broken_on_reload_keeps_its_old_checks_and_both_versions_secrets(
    work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OLD_TOKEN", "old-secret-value")
    monkeypatch.setenv("NEW_TOKEN", "new-secret-value")
    path = write("checks.d/a.yaml", "checks:\n  - {name: a, type: echo, token: '${OLD_TOKEN}'}\n")
    first = load()
    path.write_text("checks:\n  - {name: a, type: nope, token: '${NEW_TOKEN}'}\n")
    second = load(previous=first)
    stale = second.files["checks.d/a.yaml"]
    assert stale.stale and stale.path == "checks.d/a.yaml"
    assert stale.specs == first.files["checks.d/a.yaml"].specs
    assert stale.spec_paths == ("checks[0]",)
    assert stale.digest != first.files["checks.d/a.yaml"].digest and stale.digest
    assert stale.secrets == {"old-secret-value", "new-secret-value"}


# -- one check ---------------------------------------------------------------------------------


def test_a_check_that_is_not_a_mapping_is_one_error_at_its_line() -> None:
    for raw, kind in ((["x"], "a list"), (5, "int"), ("text", "str")):
        with pytest.raises(ConfigErrors) as caught:
            validate_check(raw, TYPES, CheckDefaults(), "f.yaml", path=("checks", 2), line=7)  # type: ignore[arg-type]
        assert fields(caught.value.errors) == [
            ("f.yaml", 7, "checks[2]", f"a check must be a mapping, got {kind}")
        ]


def test_errors_of_a_parsed_entry_without_a_line_argument_use_the_entry_line() -> None:
    doc = load_yaml("checks:\n  - name: a\n    interval: 5s\n", "f.yaml")
    with pytest.raises(ConfigErrors) as caught:
        validate_check(doc["checks"][0], TYPES, CheckDefaults(), "f.yaml")
    assert fields(caught.value.errors) == [("f.yaml", 2, "", "missing required key 'type'")]


def test_errors_of_a_plain_mapping_use_the_line_given() -> None:
    with pytest.raises(ConfigErrors) as caught:
        validate_check({"name": "a", "labels": {"team": 5}}, TYPES, CheckDefaults(), "f", line=9)
    assert fields(caught.value.errors) == [
        ("f", 9, "labels.team", "label values must be strings (quote the value in YAML)"),
        ("f", 9, "", "missing required key 'type'"),
    ]


def test_non_string_keys_are_named_in_their_field() -> None:
    with pytest.raises(ConfigErrors) as caught:
        validate_check({"name": "a", "type": "ping", 3: "x"}, TYPES, CheckDefaults(), "f")
    assert fields(caught.value.errors) == [("f", 0, "3", "keys must be strings, got 3")]


def test_a_non_string_label_name_is_reported_once_in_probed_words() -> None:
    raw = {"name": "a", "type": "ping", "labels": {1: "x"}}
    with pytest.raises(ConfigErrors) as caught:
        validate_check(raw, TYPES, CheckDefaults(), "f")
    assert fields(caught.value.errors) == [
        (
            "f",
            0,
            "labels.1",
            "invalid label name 1: use letters, digits and '_', not starting with a digit",
        )
    ]


def test_labels_that_are_not_a_mapping_keep_pydantic_s_words() -> None:
    with pytest.raises(ConfigErrors) as caught:
        validate_check({"name": "a", "type": "ping", "labels": ["x"]}, TYPES, CheckDefaults(), "f")
    [error] = caught.value.errors
    assert (error.field, error.message) == ("labels", "Input should be a valid dictionary")


def test_a_type_that_is_not_a_string_is_an_error_not_a_crash() -> None:
    with pytest.raises(ConfigErrors) as caught:
        validate_check({"name": "a", "type": ["ping"]}, TYPES, CheckDefaults(), "f")
    assert [(e.field, e.message) for e in caught.value.errors] == [
        ("type", "Input should be a valid string")
    ]


def test_an_unknown_type_with_no_types_registered_says_none() -> None:
    with pytest.raises(ConfigErrors) as caught:
        validate_check({"name": "a", "type": "ping"}, {}, CheckDefaults(), "f")
    [error] = caught.value.errors
    assert error.message.endswith("; registered types: (none)")


def test_a_type_missing_a_module_without_an_extra_says_which_module_to_install() -> None:
    with pytest.raises(ConfigErrors) as caught:
        validate_check({"name": "a", "type": "needsmod"}, TYPES, CheckDefaults(), "f")
    assert [(e.field, e.message) for e in caught.value.errors] == [
        (
            "type",
            "type 'needsmod' needs the no_such_module_q7 module: "
            "install the no_such_module_q7 module",
        )
    ]


def test_timing_is_checked_against_the_interval_and_skipped_when_options_are_invalid() -> None:
    with pytest.raises(ConfigErrors) as caught:
        validate_check(
            {"name": "a", "type": "window", "interval": "2s", "window": 3},
            TYPES,
            CheckDefaults(),
            "f",
        )
    assert [(e.field, e.message) for e in caught.value.errors] == [
        ("timeout", "window 3s is longer than the interval 2s")
    ]
    with pytest.raises(ConfigErrors) as caught:
        validate_check({"name": "a", "type": "window", "window": "x"}, TYPES, CheckDefaults(), "f")
    assert [e.field for e in caught.value.errors] == ["window"]


def test_an_interpolation_failure_drops_only_errors_under_that_field(
    monkeypatch: pytest.MonkeyPatch, work: Path
) -> None:
    monkeypatch.delenv("NOT_SET_Q7", raising=False)
    write(
        "checks.d/a.yaml",
        "checks:\n  - {name: a, type: window, window: '${NOT_SET_Q7}', interval: soon}\n",
    )
    errors = load().errors
    assert [e.field for e in errors] == ["checks[0].window", "checks[0].interval"]
    assert "NOT_SET_Q7" in errors[0].message


def test_a_four_character_secret_is_hidden_from_other_fields_messages(
    monkeypatch: pytest.MonkeyPatch, work: Path
) -> None:
    monkeypatch.setenv("TEAM_Q7", "abcd")
    write(
        "checks.d/a.yaml",
        "checks:\n  - {name: a, type: ping, labels: {team: '${TEAM_Q7}'}, interval: abcd}\n",
    )
    errors = load().errors
    assert errors and all("abcd" not in str(e) for e in errors)


def test_a_valid_check_has_its_type_and_an_empty_description_by_default() -> None:
    spec = validate_check({"name": "a", "type": "ping"}, TYPES, CheckDefaults(), "f", line=4)
    assert (spec.type, spec.description, spec.source, spec.line) == ("ping", "", "f", 4)


# -- probed.yaml -------------------------------------------------------------------------------


def test_probed_yaml_that_cannot_be_read_or_decoded_is_one_error(work: Path) -> None:
    with pytest.raises(ConfigErrors) as caught:
        load_settings(Path("nope.yaml"), {})
    assert fields(caught.value.errors) == [
        ("nope.yaml", 0, "", "cannot read: No such file or directory")
    ]
    Path("bad.yaml").write_bytes(b"listen: \xfe\n")
    with pytest.raises(ConfigErrors) as caught:
        load_settings(Path("bad.yaml"), {})
    assert fields(caught.value.errors) == [("bad.yaml", 0, "", "not valid UTF-8 (byte 8)")]


def test_probed_yaml_top_level_must_be_a_mapping_at_its_line(work: Path) -> None:
    write("p.yaml", "# settings\n- a\n")
    with pytest.raises(ConfigErrors) as caught:
        load_settings(Path("p.yaml"), {})
    assert fields(caught.value.errors) == [("p.yaml", 2, "", "the top level must be a mapping")]


def test_probed_yaml_repeated_keys_are_its_errors_except_inside_checks(work: Path) -> None:
    write(
        "p.yaml",
        """
        log_level: INFO
        log_level: DEBUG
        checks:
          - name: a
            name: b
        """,
    )
    with pytest.raises(ConfigErrors) as caught:
        load_settings(Path("p.yaml"), {})
    assert fields(caught.value.errors) == [
        ("p.yaml", 2, "log_level", "key 'log_level' is repeated in the same mapping; keep only one")
    ]


def test_probed_yaml_interpolation_errors_inside_checks_are_left_to_the_checks(
    work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOT_SET_Q8", raising=False)
    write(
        "p.yaml", "listen: 127.0.0.1:9999\nchecks:\n  - {name: a, type: ping, x: '${NOT_SET_Q8}'}\n"
    )
    settings = load_settings(Path("p.yaml"), {})
    assert settings.listen == "127.0.0.1:9999"


def test_probed_yaml_reports_every_bad_setting_and_defaults_problem_in_line_order(
    work: Path,
) -> None:
    write(
        "p.yaml",
        """
        defaults:
          interval: never
        max_concurrency: 0
        log_level: LOUD
        """,
    )
    with pytest.raises(ConfigErrors) as caught:
        load_settings(Path("p.yaml"), {})
    assert [(e.line, e.field) for e in caught.value.errors] == [
        (2, "defaults.interval"),
        (3, "max_concurrency"),
        (4, "log_level"),
    ]


def test_probed_yaml_settings_after_a_null_one_still_apply(work: Path) -> None:
    write("p.yaml", "watch: null\nhistory: 7\nlog_level: debug\ndisabled_plugins: [a]\n")
    settings = load_settings(Path("p.yaml"), {})
    assert (settings.history, settings.log_level, settings.disabled_plugins) == (7, "DEBUG", ("a",))


def test_startup_spread_accepts_zero_in_every_spelling_and_other_durations(work: Path) -> None:
    for raw, expected in (
        ("0", 0.0), ("'0'", 0.0), ("0s", 0.0), ("' 0ms '", 0.0), ("1.5", 1.5), ("250ms", 0.25),
        ("2", 2.0),
    ):  # fmt: skip
        write("p.yaml", f"startup_spread: {raw}\n")
        assert load_settings(Path("p.yaml"), {}).startup_spread == expected, raw
    write("p.yaml", "startup_spread: false\n")
    with pytest.raises(ConfigErrors):
        load_settings(Path("p.yaml"), {})


# -- error wording of plugin options -----------------------------------------------------------


def check_errors(raw: dict[str, Any], **kwargs: Any) -> list[tuple[str, str]]:
    with pytest.raises(ConfigErrors) as caught:
        validate_check({"name": "a", "type": "echo", **raw}, TYPES, CheckDefaults(), "f", **kwargs)
    return [(e.field, e.message) for e in caught.value.errors]


def test_interpolated_values_are_hidden_from_messages_quoted_or_not() -> None:
    hidden = {("target",): ["abcd"], ("quoted",): ["xyz"], ("checked",): ["no"]}
    raw = {"target": "abcd", "quoted": "xyz", "checked": "no"}
    assert check_errors(raw, hidden=hidden) == [
        ("target", "cannot reach *** now"),
        ("quoted", 'bad value "***"'),
        ("checked", "checked must be x"),  # "Assertion failed, " is dropped like "Value error, "
    ]


def test_a_short_interpolated_value_is_hidden_only_where_quoted() -> None:
    assert check_errors({"target": "ab"}, hidden={("target",): ["ab"]}) == [
        ("target", "cannot reach ab now")
    ]
    assert check_errors({"name": "A_b"}, hidden={("name",): ["A_b"]}) == [
        (
            "name",
            "invalid check name '***': use lower-case letters, digits, '_', '.' and '-', "
            "starting with a letter or digit",
        )
    ]


def test_unknown_keys_inside_a_list_of_objects_get_a_did_you_mean() -> None:
    assert check_errors({"parts": [{"nmae": "p"}]}) == [
        ("parts[0].name", "required key is missing"),
        ("parts[0].nmae", "unknown key 'nmae' (did you mean 'name'?)"),
    ]


# -- JSON Schema of checks files ---------------------------------------------------------------

DURATION = {
    "anyOf": [
        {"type": "string", "pattern": r"^\s*([0-9]+(\.[0-9]+)?(ms|s|m|h|d))+\s*$"},
        {"type": "number", "exclusiveMinimum": 0, "maximum": 315360000},
    ],
}


def _duration(low: float, high: float) -> dict[str, Any]:
    return {"anyOf": [DURATION["anyOf"][0], {"type": "number", "minimum": low, "maximum": high}]}


RESERVED = ["check", "component", "field", "instance", "job", "le", "phase", "quantile",
            "reason", "result", "stat", "status", "type", "window"]  # fmt: skip
COMMON = {
    "name": {
        "type": "string",
        "pattern": "^[a-z0-9][a-z0-9_.-]*$",
        "description": "unique across all files",
    },
    "type": {"type": "string", "description": "a registered check type"},
    "interval": {**_duration(0.01, 2592000.0), "description": "time between runs (10ms to 30d)"},
    "timeout": {
        **_duration(0.001, 2592000.0),
        "description": "must be less than interval (at least 1ms)",
    },
    "readiness": {"type": "boolean", "description": "counts toward /health/ready"},
    "public": {"type": "boolean", "description": "shown on the status page at / (false hides it)"},
    "failure_threshold": {
        "type": "integer",
        "minimum": 1,
        "description": "consecutive failures before down",
    },
    "success_threshold": {
        "type": "integer",
        "minimum": 1,
        "description": "consecutive successes before up",
    },
    "duration_histogram": {
        "type": "boolean",
        "description": "export the probed_check_duration_seconds histogram "
        "(false: a last-duration gauge)",
    },
    "labels": {
        "type": "object",
        "propertyNames": {
            "pattern": "^[a-zA-Z_][a-zA-Z0-9_]*$",
            "not": {"anyOf": [{"enum": RESERVED}, {"pattern": "^__"}]},
        },
        "additionalProperties": {"type": "string"},
        "description": "extra Prometheus labels",
    },
    "description": {"type": "string"},
}


class DocumentedOptions(CheckOptions):
    """Options of the documented check."""

    host: str


class DocumentedCheck(Check[DocumentedOptions]):
    type_name: ClassVar[str] = "documented"
    options_model: ClassVar[type[CheckOptions]] = DocumentedOptions

    async def run(self) -> Result:
        return Result.ok()


def test_the_checks_file_schema_without_types_is_exactly_the_common_keys() -> None:
    defaults_keys = ("interval", "timeout", "readiness", "public", "failure_threshold",
                     "success_threshold", "duration_histogram", "labels")  # fmt: skip
    assert check_file_schema({}) == {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "probed checks file",
        "type": ["object", "null"],
        "properties": {
            "defaults": {
                "type": "object",
                "properties": {k: COMMON[k] for k in defaults_keys},
                "additionalProperties": False,
                "description": "defaults for every check in this file",
            },
            "checks": {
                "type": ["array", "null"],
                "items": {"type": "object", "properties": COMMON, "required": ["name", "type"]},
            },
        },
        "additionalProperties": False,
        "$defs": {},
    }


def test_each_type_is_one_closed_branch_described_by_its_options_docstring() -> None:
    schema = check_file_schema({"documented": CheckTypeInfo(DocumentedCheck, "tests")})
    [branch] = schema["properties"]["checks"]["items"]["oneOf"]
    assert branch == {
        "type": "object",
        "title": "documented check",
        "properties": {
            **COMMON,
            "host": {"title": "Host", "type": "string"},
            "type": {"const": "documented", "description": "a registered check type"},
        },
        "required": ["name", "type", "host"],
        "additionalProperties": False,
        "description": "Options of the documented check.",
    }


def test_the_schema_accepts_valid_files_and_rejects_wrong_ones() -> None:
    schema = check_file_schema(TYPES)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    good = {
        "defaults": {"interval": "1m30s", "labels": {"team": "a"}},
        "checks": [{"name": "a.b-1", "type": "echo", "count": 2, "timeout": 0.5}],
    }
    assert list(validator.iter_errors(good)) == []
    assert list(validator.iter_errors(None)) == []
    for bad in (
        {"checks": [{"name": "A", "type": "ping"}]},
        {"checks": [{"name": "a", "type": "ping", "labels": {"le": "x"}}]},
        {"checks": [{"name": "a", "type": "ping", "labels": {"__x": "x"}}]},
        {"checks": [{"name": "a", "type": "ping", "interval": "soon"}]},
        {"checks": [{"name": "a", "type": "ping", "interval": 0}]},
        {"checks": [{"name": "a", "type": "ping", "failure_threshold": 0}]},
        {"checks": [{"name": "a", "type": "ping", "unknown": 1}]},
        {"checks": [{"name": "a", "type": "nope"}]},
        {"defaults": {"name": "x"}},
        {"check": []},
    ):
        assert list(validator.iter_errors(bad)), bad


# -- inline checks, defaults, reuse ------------------------------------------------------------


def test_inline_checks_of_probed_yaml_report_only_problems_inside_checks(
    work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOT_SET_Q9", raising=False)
    write(
        "p.yaml",
        """
        log_level: INFO
        log_level: INFO
        listen: ${NOT_SET_Q9}
        checks:
          - name: a
            name: a2
            type: ping
          - {name: b, type: ping}
        """,
    )
    result = load_checks(Settings(config_file=Path("p.yaml"), checks_dirs=()), TYPES)
    assert [(e.file, e.line, e.field) for e in result.errors] == [("p.yaml", 6, "checks[0].name")]
    assert list(result.specs) == ["b"]


def test_interpolated_values_are_hidden_from_defaults_errors_too(
    work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("Q_SHORT", "ab")
    write("checks.d/a.yaml", "defaults:\n  interval: '${Q_SHORT}'\nchecks: []\n")
    [error] = load().errors
    assert (error.field, error.message) == (
        "defaults.interval",
        "invalid duration '***': use forms like 500ms, 10s, 1m30s, 2h",
    )


def test_checks_do_not_run_when_their_file_defaults_failed_to_interpolate(
    work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOT_SET_Q10", raising=False)
    write(
        "checks.d/a.yaml",
        "defaults:\n  interval: '${NOT_SET_Q10}'\nchecks:\n  - {name: a, type: ping}\n",
    )
    result = load()
    assert {e.field for e in result.errors} == {"defaults.interval"}
    assert result.errors[0].message.startswith("environment variable 'NOT_SET_Q10' is not set")
    assert result.specs == {}


def test_checks_that_is_not_a_list_is_reported_at_the_checks_key(work: Path) -> None:
    write("checks.d/a.yaml", "# comment\n\nchecks: 5\n")
    assert fields(load().errors) == [
        (
            "checks.d/a.yaml",
            3,
            "checks",
            "must be a list of checks, each item starting with '- name: ...'",
        )
    ]


def test_duplicate_discovered_checks_are_reported_without_a_line(work: Path) -> None:
    result = load(
        discovered=[
            ("finder", {"name": "d", "type": "ping"}),
            ("finder", {"name": "d", "type": "ping"}),
        ]
    )
    [error] = result.errors
    assert (error.file, error.line, error.field) == ("<plugin:finder>", 0, "checks[1].name")
    assert error.message.startswith("duplicate check name 'd': already defined at <plugin:finder>")


def test_a_nested_list_entry_is_reported_at_its_own_line() -> None:
    doc = load_yaml("checks:\n  - name: ok\n  - - a\n    - b\n", "f.yaml")
    with pytest.raises(ConfigErrors) as caught:
        validate_check(doc["checks"][1], TYPES, CheckDefaults(), "f.yaml")
    assert fields(caught.value.errors) == [
        ("f.yaml", 3, "", "a check must be a mapping, got a list")
    ]


def test_a_label_name_error_does_not_hide_errors_of_later_keys() -> None:
    raw = {"name": "a", "type": "ping", "labels": {1: "x"}, "description": 5}
    with pytest.raises(ConfigErrors) as caught:
        validate_check(raw, TYPES, CheckDefaults(), "f")
    assert [e.field for e in caught.value.errors] == ["description", "labels.1"]


def test_an_unknown_type_shipped_as_a_plugin_says_which_plugins_dir_to_add(work: Path) -> None:
    with pytest.raises(ConfigErrors) as caught:
        validate_check({"name": "a", "type": "file_age"}, TYPES, CheckDefaults(), "checks.d/x.yaml")
    [error] = caught.value.errors
    assert "is it a plugin?" in error.message
    assert "plugins/file_age.py" in error.message and "--plugins-dir" in error.message


def test_files_are_validated_again_when_a_type_is_replaced_by_another_class(work: Path) -> None:
    write("checks.d/a.yaml", "checks:\n  - {name: a, type: echo, target: y}\n")
    first = load()
    assert [e.field for e in first.errors] == ["checks[0].target"]

    class LenientOptions(CheckOptions):
        target: str = "x"

    class LenientEcho(Check[LenientOptions]):
        type_name: ClassVar[str] = "echo"
        options_model: ClassVar[type[CheckOptions]] = LenientOptions

        async def run(self) -> Result:
            return Result.ok()

    types = {**TYPES, "echo": CheckTypeInfo(LenientEcho, "tests")}
    second = load_checks(Settings(checks_dirs=(Path("checks.d"),)), types, first)
    assert second.errors == () and list(second.specs) == ["a"]


def test_a_scalar_probed_yaml_is_reported_at_line_1(work: Path) -> None:
    write("p.yaml", "hello\n")
    with pytest.raises(ConfigErrors) as caught:
        load_settings(Path("p.yaml"), {})
    assert fields(caught.value.errors) == [("p.yaml", 1, "", "the top level must be a mapping")]


# -- common keys outside files (probed.testing.make_spec, tools) -------------------------------


def test_common_values_name_every_problem_and_apply_the_timeout_rule_unless_told() -> None:
    from probed.common import common_values

    raw = {"name": "a", "type": "ping", "interval": "1s", "timeout": "2s"}
    with pytest.raises(ValueError, match="timeout") as caught:
        common_values(raw)
    assert str(caught.value) == "timeout: timeout 2s must be less than interval 1s"
    assert common_values(raw, timing=False)["timeout"] == 2.0
    with pytest.raises(ValueError, match="soon") as caught:
        common_values({"interval": "soon"})
    assert str(caught.value) == (
        "interval: invalid duration 'soon': use forms like 500ms, 10s, 1m30s, 2h; "
        "check: missing required key 'name'; check: missing required key 'type'"
    )


def test_make_spec_allows_a_timeout_as_long_as_the_interval() -> None:
    from probed.testing import make_spec

    spec = make_spec(PingCheck, name="p", interval=1.0, timeout=2.0)
    assert (spec.interval, spec.timeout) == (1.0, 2.0)


def test_every_bad_label_name_is_reported_after_good_ones() -> None:
    raw = {"name": "a", "type": "ping", "labels": {"ok": "x", "le": "y", "__z": "w"}}
    with pytest.raises(ConfigErrors) as caught:
        validate_check(raw, TYPES, CheckDefaults(), "f")
    assert [e.field for e in caught.value.errors] == ["labels.le", "labels.__z"]


def test_a_label_holding_an_interpolated_secret_is_an_error_at_that_label(
    work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "LABEL_TOKEN", "t0k3"
    )  # a secret (its name says TOKEN) of the minimum length
    monkeypatch.setenv("TEAM_NAME", "payments")  # not a secret
    write(
        "checks.d/a.yaml",
        """
        checks:
          - name: a
            type: ping
            labels:
              team: ${TEAM_NAME}
              owner: "x-${LABEL_TOKEN}-y"
          - {name: b, type: ping, labels: {short: "${LABEL_TOKEN}"}}
          - {name: c, type: ping}
        """,
    )
    result = load()
    message = (
        "a label must not hold a secret: labels are published in /metrics, the API and the "
        "logs; pass the secret in an option of the check instead"
    )
    assert fields(result.errors) == [
        ("checks.d/a.yaml", 6, "checks[0].labels.owner", message),
        ("checks.d/a.yaml", 7, "checks[1].labels.short", message),
    ]
    assert list(result.specs) == ["c"]
    assert all("t0k3" not in str(e) for e in result.errors)


def test_an_unknown_type_defined_beside_the_checks_dir_names_that_plugins_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no ./plugins here
    write("site/plugins/beeper.py", 'class Beeper:\n    type_name = "beeper"\n')
    write("site/checks.d/a.yaml", "checks:\n  - {name: a, type: beeper}\n")
    [error] = load(checks_dirs=(Path("site/checks.d"),)).errors
    assert error.message.startswith(
        "unknown type 'beeper'; is it a plugin? site/plugins/beeper.py defines it: "
        "add --plugins-dir site/plugins"
    )


class VaultOptions(CheckOptions):
    password: SecretStr


class VaultCheck(Check[VaultOptions]):
    type_name: ClassVar[str] = "vault"
    options_model: ClassVar[type[CheckOptions]] = VaultOptions

    async def run(self) -> Result:
        return Result.ok()


def test_secret_options_written_in_a_file_or_discovered_are_secrets_to_redact(
    work: Path,
) -> None:
    types = {**TYPES, "vault": CheckTypeInfo(VaultCheck, "tests")}
    write("checks.d/a.yaml", "checks:\n  - {name: a, type: vault, password: in-file-pw}\n")
    result = load_checks(
        Settings(checks_dirs=(Path("checks.d"),)),
        types,
        discovered=[("finder", {"name": "d", "type": "vault", "password": "found-pw"})],
    )
    assert result.errors == ()
    assert result.files["checks.d/a.yaml"].secrets == {"in-file-pw"}
    assert result.files["<plugin:finder>"].secrets == {"found-pw"}
    assert result.secrets == {"in-file-pw", "found-pw"}
