"""Hostile configuration (issue 8): every input refused with ``FILE:LINE: field: message``.

Non-finite, huge and tiny durations, a 5,000-digit integer, a YAML alias bomb, a recursive
alias, nesting that crashes libyaml's composer, too many checks, ``*.yaml`` entries that are
not files, ``${file:}`` aimed at system files or a FIFO, and secrets in free-text keys. Each is
fed to ``probed validate`` (a real process: exit 1, no traceback, quickly), to the loader, or
to a running daemon's reload, where the valid checks keep running and the broken file keeps
its last good version.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from probed.config import LoadResult, load_checks, load_settings
from probed.errors import ConfigErrors
from probed.plugins import check_types, get_plugin_manager
from probed.settings import Settings
from probed.watch import files_now
from tests.harness import running_daemon, write

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = ROOT / "tests" / "data" / "plugins"
TYPES = check_types(get_plugin_manager(builtins=(), plugins_dirs=(PLUGINS,), entry_points=False))
VALIDATE = [sys.executable, "-m", "probed", "validate"]
GOOD = "  - {name: good, type: outcome, interval: 1s, timeout: 500ms}\n"


def billion_laughs() -> str:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        name, previous = chr(ord("a") + i), chr(ord("a") + i - 1)
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 9) + "]")
    return "\n".join(lines) + "\nchecks:\n" + GOOD


# (file name, content, expected located text) -- each file also holds nothing else valid.
HOSTILE: list[tuple[str, str, str]] = [
    ("inf.yaml", "checks:\n  - {name: inf, type: outcome,\n     interval: .inf}\n", ":3: "),
    ("nan.yaml", "checks:\n  - {name: nan, type: outcome,\n     interval: .nan}\n", ":3: "),
    (
        "digits400.yaml",
        "checks:\n  - name: d400\n    type: outcome\n    interval: 1" + "0" * 400 + "\n",
        ":4: invalid YAML at column 15: integer with 401 characters: at most 64 digits",
    ),
    (
        "string1000.yaml",
        "checks:\n  - name: s1000\n    type: outcome\n    interval: '1" + "0" * 1000 + "s'\n",
        ":4: checks[0].interval: duration '10000000000000000000...000000000s' is too long",
    ),
    (
        "tiny.yaml",
        "checks:\n  - name: tiny\n    type: outcome\n    interval: '0.0000000001ms'\n",
        ":4: checks[0].interval: duration '0.0000000001ms' is too short",
    ),
    (
        "fast.yaml",
        "checks:\n  - name: fast\n    type: outcome\n    interval: 1ms\n",
        ":4: checks[0].interval: interval 1ms is too short: at least 10ms",
    ),
    (
        "slow.yaml",
        "checks:\n  - name: slow\n    type: outcome\n    interval: 31d\n",
        ":4: checks[0].interval: interval 31d is too long: at most 30d",
    ),
    (
        "int5000.yaml",
        "checks:\n  - name: i5000\n    type: outcome\n    repeat: " + "9" * 5000 + "\n",
        ":4: invalid YAML at column 13: integer with 5000 characters: at most 64 digits",
    ),
    (
        "shadow.yaml",
        'checks:\n  - name: shadow\n    type: outcome\n    message: "${file:/etc/shadow}"\n',
        ":4: checks[0].message: cannot read file '/etc/shadow' (from ${file:...}): not under a",
    ),
    ("bomb.yaml", billion_laughs(), ":7: invalid YAML at column 20: more than 3,000,000 values"),
    (
        "cycle.yaml",
        "loop: &loop [1, *loop]\nchecks:\n" + GOOD,
        ":1: invalid YAML at column 17: alias *loop refers to a node that contains it",
    ),
    (
        "deep.yaml",
        "checks:\n  - name: deep\n    type: outcome\n    message: " + "[" * 50_000 + "]" * 50_000,
        ":4: invalid YAML at column 111: nested more than 100 levels deep",
    ),
]


def located(result: LoadResult, name: str) -> list[str]:
    return [str(e) for e in result.errors if Path(e.file).name == name]


def test_validate_reports_every_hostile_file_at_its_line_without_a_traceback(
    tmp_path: Path,
) -> None:
    checks = tmp_path / "checks.d"
    checks.mkdir()
    for name, text, _ in HOSTILE:
        (checks / name).write_text(text)
    write(checks / "valid.yaml", "checks:\n" + GOOD)
    started = time.monotonic()
    done = subprocess.run(
        [*VALIDATE, "--checks-dir", str(checks), "--plugins-dir", str(PLUGINS)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    for name, _, expected in HOSTILE:
        lines = [line for line in done.stderr.splitlines() if line.startswith(f"{checks}/{name}:")]
        assert any(expected in line for line in lines), (name, lines)
    assert done.stderr.splitlines()[-1].endswith("1 valid check(s)"), done.stderr
    # the alias bomb and the deep nesting are refused at once, not after minutes of work
    assert elapsed < 30, elapsed


@pytest.mark.parametrize(("name", "text", "expected"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_the_loader_refuses_each_hostile_file_with_one_located_error(
    tmp_path: Path, name: str, text: str, expected: str
) -> None:
    (tmp_path / name).write_text(text)
    write(tmp_path / "valid.yaml", "checks:\n" + GOOD)
    started = time.monotonic()
    result = load_checks(Settings(checks_dirs=(tmp_path,)), TYPES)
    assert time.monotonic() - started < 5
    errors = located(result, name)
    assert errors and any(expected in e for e in errors), errors
    assert list(result.specs) == ["good"]


async def test_a_reload_with_a_bomb_and_a_nan_keeps_the_last_good_checks_running(
    tmp_path: Path,
) -> None:
    checks = tmp_path / "checks.d"
    write(
        checks / "steady.yaml",
        "checks:\n  - {name: steady, type: outcome, interval: 50ms, timeout: 40ms}\n",
    )
    victim = write(
        checks / "victim.yaml",
        "checks:\n  - {name: victim, type: outcome, message: v1, interval: 50ms, timeout: 40ms}\n",
    )
    async with running_daemon(checks, builtins=(), plugins_dirs=[PLUGINS]) as r:
        await r.runs("steady", 1)
        await r.runs("victim", 1)
        victim_state = r.state("victim")
        victim.write_text(
            billion_laughs().replace(GOOD, "")
            + "  - {name: victim, type: outcome, message: v2, interval: .nan}\n"
        )
        started = time.monotonic()
        status, body = await r.post("/-/reload")
        assert time.monotonic() - started < 5
        assert status == 400, body
        answer = json.loads(body)
        assert any(
            e.startswith(f"{victim}:7: invalid YAML") and "more than 3,000,000 values" in e
            for e in answer["errors"]
        ), answer
        # a second broken version: the NaN alone, now reachable
        victim.write_text("checks:\n  - {name: victim, type: outcome, interval: .nan}\n")
        status, body = await r.post("/-/reload")
        assert status == 400, body
        assert any(
            e.startswith(f"{victim}:2: checks[0].interval: duration must be finite")
            for e in json.loads(body)["errors"]
        ), body
        # both checks keep their schedule; the victim runs its last good version
        steady_runs, victim_runs = sum(r.state("steady").runs), sum(victim_state.runs)
        await r.runs("steady", steady_runs + 3)
        await r.runs("victim", victim_runs + 3)
        assert r.state("victim") is victim_state
        assert victim_state.spec.interval == 0.05
        status, _, _ = await r.get("/health/live")
        assert status == 200


async def test_a_daemon_started_with_hostile_files_runs_every_valid_check(tmp_path: Path) -> None:
    checks = tmp_path / "checks.d"
    for name, text, _ in HOSTILE:
        (checks / name).parent.mkdir(parents=True, exist_ok=True)
        (checks / name).write_text(text)
    write(checks / "steady.yaml", "checks:\n  - {name: steady, type: outcome, interval: 50ms}\n")
    async with running_daemon(checks, builtins=(), plugins_dirs=[PLUGINS]) as r:
        await r.runs("steady", 3)
        assert [state.spec.name for state in r.daemon.store] == ["steady"]
        status, _, _ = await r.get("/health/live")
        assert status == 200


def test_a_probed_yaml_alias_bomb_or_nan_default_is_a_located_error(tmp_path: Path) -> None:
    bomb = write(tmp_path / "bomb" / "probed.yaml", billion_laughs())
    with pytest.raises(ConfigErrors) as caught:
        load_settings(bomb, {})
    assert [str(e) for e in caught.value.errors] == [
        f"{bomb}:7: invalid YAML at column 20: more than 3,000,000 values once aliases are "
        "expanded (an alias bomb?)"
    ]
    nan = write(
        tmp_path / "nan" / "probed.yaml",
        "watch_interval: 1ms\ndefaults:\n  interval: .nan\n  timeout: .inf\n",
    )
    with pytest.raises(ConfigErrors) as caught:
        load_settings(nan, {})
    assert [str(e) for e in caught.value.errors] == [
        f"{nan}:1: watch_interval: watch_interval must be at least 10ms (it is how often files "
        "are read)",
        f"{nan}:3: defaults.interval: duration must be finite, got nan",
        f"{nan}:4: defaults.timeout: duration must be finite, got inf",
    ]


# -- how many checks ----------------------------------------------------------------------------


def test_checks_past_max_checks_are_not_run_and_reported_once_per_file(tmp_path: Path) -> None:
    config = write(
        tmp_path / "probed.yaml",
        "max_checks: 3\nchecks_dirs: [checks.d]\n",
    )
    body = "".join(f"  - {{name: c{i}, type: outcome}}\n" for i in range(5))
    write(tmp_path / "checks.d" / "many.yaml", "checks:\n" + body)
    settings = load_settings(config, {})
    assert settings.max_checks == 3
    result = load_checks(settings, TYPES)
    assert list(result.specs) == ["c0", "c1", "c2"]
    assert [str(e) for e in result.errors] == [
        f"{tmp_path}/checks.d/many.yaml:5: more than 3 checks: 2 check(s) from here on ('c3' and "
        "after) are not run; raise max_checks in probed.yaml if this many are intended"
    ]


def test_the_default_check_limit_allows_the_50000_check_scale_target() -> None:
    assert Settings().max_checks == 50_000


def test_a_max_checks_that_is_not_a_positive_integer_is_a_located_error(tmp_path: Path) -> None:
    config = write(tmp_path / "probed.yaml", "listen: 127.0.0.1:9333\nmax_checks: 0\n")
    with pytest.raises(ConfigErrors) as caught:
        load_settings(config, {})
    assert f"{config}:2: max_checks: " in str(caught.value)


# -- what a checks directory holds -------------------------------------------------------------


def test_yaml_directories_symlink_loops_and_dangling_links_are_reported_by_path(
    tmp_path: Path,
) -> None:
    (tmp_path / "dir.yaml").mkdir()
    (tmp_path / "loop.yaml").symlink_to(tmp_path / "loop.yaml")
    (tmp_path / "dangling.yml").symlink_to(tmp_path / "nowhere.yaml")
    os.mkfifo(tmp_path / "fifo.yaml")
    write(tmp_path / "valid.yaml", "checks:\n" + GOOD)
    write(tmp_path / ".hidden.yaml", "not: [valid")  # hidden files stay skipped
    result = load_checks(Settings(checks_dirs=(tmp_path,)), TYPES)
    assert sorted(str(e) for e in result.errors) == [
        f"{tmp_path}/dangling.yml: dangling symbolic link to '{tmp_path}/nowhere.yaml': not read",
        f"{tmp_path}/dir.yaml: is a directory, not a checks file (checks directories are not "
        "searched recursively): not read",
        f"{tmp_path}/fifo.yaml: not a regular file: not read",
        f"{tmp_path}/loop.yaml: symbolic link loop: not read",
    ]
    assert list(result.specs) == ["good"]


def test_the_file_watcher_does_not_wait_on_a_fifo_named_yaml(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo.yaml")
    write(tmp_path / "valid.yaml", "checks:\n" + GOOD)
    seen: list[object] = []
    worker = threading.Thread(
        target=lambda: seen.append(files_now(Settings(checks_dirs=(tmp_path,)))), daemon=True
    )
    worker.start()
    worker.join(5)
    assert seen, "the watcher's digest blocked on the FIFO"


# -- ${file:} ----------------------------------------------------------------------------------


def file_ref_check(reference: str) -> str:
    return f'checks:\n  - name: ref\n    type: outcome\n    message: "{reference}"\n'


def test_a_file_reference_outside_the_allowed_dirs_names_the_file_line_path_and_fix(
    tmp_path: Path,
) -> None:
    write(tmp_path / "c.yaml", file_ref_check("${file:/etc/shadow}"))
    result = load_checks(Settings(checks_dirs=(tmp_path,)), TYPES)
    assert len(result.errors) == 1 and not result.specs
    message = str(result.errors[0])
    assert message.startswith(
        f"{tmp_path}/c.yaml:4: checks[0].message: cannot read file '/etc/shadow' (from "
        "${file:...}): not under a directory ${file:} may read (/run/secrets, "
    )
    assert message.endswith(f", {tmp_path}); add its directory to secrets_dirs in probed.yaml")


@pytest.mark.parametrize(
    ("reference", "system"),
    [("/proc/self/environ", "/proc"), ("/sys/kernel/hostname", "/sys"), ("/dev/zero", "/dev")],
)
def test_pseudo_file_systems_are_refused_even_when_listed_in_secrets_dirs(
    tmp_path: Path, reference: str, system: str
) -> None:
    write(tmp_path / "c.yaml", file_ref_check(f"${{file:{reference}}}"))
    for listed in (None, (Path(system),)):
        result = load_checks(Settings(checks_dirs=(tmp_path,), secrets_dirs=listed), TYPES)
        assert len(result.errors) == 1 and not result.specs
        message = str(result.errors[0])  # /proc/self resolves to /proc/<pid>: said in between
        assert message.startswith(
            f"{tmp_path}/c.yaml:4: checks[0].message: cannot read file {reference!r} (from "
            "${file:...}): "
        )
        assert message.endswith(
            f"{system} is never read by ${{file:}}, even if listed in secrets_dirs"
        )


def test_a_symlink_to_a_system_file_is_refused_like_the_file(tmp_path: Path) -> None:
    (tmp_path / "innocent").symlink_to("/proc/self/environ")
    write(tmp_path / "c.yaml", file_ref_check("${file:innocent}"))
    result = load_checks(Settings(checks_dirs=(tmp_path,)), TYPES)
    assert len(result.errors) == 1
    message = str(result.errors[0])
    assert "it resolves to '/proc/" in message and "/proc is never read" in message


def test_a_file_reference_to_a_fifo_is_refused_without_waiting_for_a_writer(
    tmp_path: Path,
) -> None:
    os.mkfifo(tmp_path / "pipe")
    write(tmp_path / "c.yaml", file_ref_check(f"${{file:{tmp_path}/pipe}}"))
    started = time.monotonic()
    result = load_checks(Settings(checks_dirs=(tmp_path,)), TYPES)
    assert time.monotonic() - started < 5
    assert [str(e) for e in result.errors] == [
        f"{tmp_path}/c.yaml:4: checks[0].message: cannot read file '{tmp_path}/pipe' (from "
        "${file:...}): not a regular file"
    ]


def test_relative_file_references_resolve_against_the_checks_file_not_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checks = tmp_path / "checks.d"
    write(checks / "secrets" / "token", "from-the-checks-dir\n")
    write(tmp_path / "elsewhere" / "secrets" / "token", "from-the-cwd\n")
    write(checks / "c.yaml", file_ref_check("${file:secrets/token}"))
    monkeypatch.chdir(tmp_path / "elsewhere")
    result = load_checks(Settings(checks_dirs=(checks,)), TYPES)
    assert not result.errors
    assert result.specs["ref"].options.message == "from-the-checks-dir"  # type: ignore[attr-defined]


def test_secrets_dirs_in_probed_yaml_allow_only_those_dirs_and_the_files_own(
    tmp_path: Path,
) -> None:
    write(tmp_path / "vault" / "token", "vault-token-123")
    write(tmp_path / "other" / "token", "other-token-456")
    checks = tmp_path / "checks.d"
    write(checks / "local-token", "local-token-789")
    config = write(
        tmp_path / "probed.yaml",
        "secrets_dirs: [vault]\nchecks_dirs: [checks.d]\n",
    )
    write(
        checks / "c.yaml",
        "checks:\n"
        f'  - {{name: vault, type: outcome, message: "${{file:{tmp_path}/vault/token}}"}}\n'
        '  - {name: local, type: outcome, message: "${file:local-token}"}\n'
        f'  - {{name: other, type: outcome, message: "${{file:{tmp_path}/other/token}}"}}\n',
    )
    settings = load_settings(config, {})
    assert settings.secrets_dirs == (tmp_path / "vault",)
    result = load_checks(settings, TYPES)
    assert sorted(result.specs) == ["local", "vault"]
    assert [str(e) for e in result.errors] == [
        f"{checks}/c.yaml:4: checks[2].message: cannot read file '{tmp_path}/other/token' (from "
        f"${{file:...}}): not under a directory ${{file:}} may read ({tmp_path}/vault, {checks}); "
        "add its directory to secrets_dirs in probed.yaml"
    ]
    assert "other-token-456" not in str(result.errors)


def test_a_file_in_a_sibling_dir_is_refused_by_default_and_read_once_listed_in_secrets_dirs(
    tmp_path: Path,
) -> None:
    """A checks.d author cannot send any file probed can read (an SSH key, /var/lib/...) to a
    target: by default only the allow-list is read, and ``secrets_dirs`` extends it."""
    write(tmp_path / "sibling" / "id_ed25519", "private-key-material-42")
    checks = tmp_path / "checks.d"
    write(checks / "c.yaml", file_ref_check(f"${{file:{tmp_path}/sibling/id_ed25519}}"))
    refused = load_checks(Settings(checks_dirs=(checks,)), TYPES)
    assert not refused.specs and len(refused.errors) == 1
    message = str(refused.errors[0])
    assert message.startswith(
        f"{checks}/c.yaml:4: checks[0].message: cannot read file '{tmp_path}/sibling/id_ed25519' "
        "(from ${file:...}): not under a directory ${file:} may read ("
    )
    assert message.endswith("add its directory to secrets_dirs in probed.yaml")
    assert "private-key-material-42" not in message
    config = write(tmp_path / "probed.yaml", "secrets_dirs: [sibling]\nchecks_dirs: [checks.d]\n")
    allowed = load_checks(load_settings(config, {}), TYPES)
    assert not allowed.errors
    assert allowed.specs["ref"].options.message == "private-key-material-42"  # type: ignore[attr-defined]


def test_a_symlink_next_to_the_checks_to_a_file_outside_the_allowed_dirs_is_refused(
    tmp_path: Path,
) -> None:
    write(tmp_path / "outside" / "key", "outside-key-value-7")
    checks = tmp_path / "checks.d"
    checks.mkdir()
    (checks / "key").symlink_to(tmp_path / "outside" / "key")
    write(checks / "c.yaml", file_ref_check("${file:key}"))
    result = load_checks(Settings(checks_dirs=(checks,)), TYPES)
    assert len(result.errors) == 1 and not result.specs
    message = str(result.errors[0])
    assert f"it resolves to '{tmp_path}/outside/key', not under a directory" in message


def test_the_credentials_directory_of_systemd_is_allowed_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    credentials = tmp_path / "credentials"
    write(credentials / "api-token", "credential-token-99")
    checks = tmp_path / "checks.d"
    write(checks / "c.yaml", file_ref_check(f"${{file:{credentials}/api-token}}"))
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    refused = load_checks(Settings(checks_dirs=(checks,)), TYPES)
    assert len(refused.errors) == 1 and "not under a directory" in str(refused.errors[0])
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    result = load_checks(Settings(checks_dirs=(checks,)), TYPES)
    assert not result.errors
    assert result.specs["ref"].options.message == "credential-token-99"  # type: ignore[attr-defined]
    # listing secrets_dirs replaces the default directories, $CREDENTIALS_DIRECTORY among them
    listed = load_checks(Settings(checks_dirs=(checks,), secrets_dirs=(tmp_path / "x",)), TYPES)
    assert len(listed.errors) == 1 and "not under a directory" in str(listed.errors[0])


def test_the_checks_files_own_subdirectory_and_probed_yamls_directory_are_allowed_by_default(
    tmp_path: Path,
) -> None:
    checks = tmp_path / "conf" / "checks.d"
    write(checks / "secrets" / "deep" / "token", "own-subdir-token-1")
    write(tmp_path / "conf" / "shared-token", "config-dir-token-2")
    config = write(tmp_path / "conf" / "probed.yaml", "checks_dirs: [checks.d]\n")
    write(
        checks / "c.yaml",
        "checks:\n"
        '  - {name: own, type: outcome, message: "${file:secrets/deep/token}"}\n'
        f'  - {{name: conf, type: outcome, message: "${{file:{tmp_path}/conf/shared-token}}"}}\n',
    )
    result = load_checks(load_settings(config, {}), TYPES)
    assert not result.errors
    assert result.specs["own"].options.message == "own-subdir-token-1"  # type: ignore[attr-defined]
    assert result.specs["conf"].options.message == "config-dir-token-2"  # type: ignore[attr-defined]
    # without probed.yaml, its directory is nothing special
    alone = load_checks(Settings(checks_dirs=(checks,)), TYPES)
    assert sorted(alone.specs) == ["own"] and len(alone.errors) == 1


# -- secrets in free text ----------------------------------------------------------------------


def test_a_secret_in_a_description_or_a_name_is_a_located_error(tmp_path: Path) -> None:
    write(tmp_path / "secret", "s3cr3t-description-value")
    write(tmp_path / "name-secret", "leakyname123")
    write(
        tmp_path / "c.yaml",
        "checks:\n"
        "  - name: described\n"
        "    type: outcome\n"
        f'    description: "token is ${{file:{tmp_path}/secret}}"\n'
        f'  - name: "${{file:{tmp_path}/name-secret}}"\n'
        "    type: outcome\n" + GOOD,
    )
    result = load_checks(Settings(checks_dirs=(tmp_path,)), TYPES)
    assert [str(e) for e in result.errors] == [
        f"{tmp_path}/c.yaml:4: checks[0].description: a description must not hold a secret: "
        "descriptions are published in the API; pass the secret in an option of the check "
        "instead",
        f"{tmp_path}/c.yaml:5: checks[1].name: a check name must not hold a secret: names are "
        "published in /metrics, the API and the logs; pass the secret in an option of the check "
        "instead",
    ]
    assert list(result.specs) == ["good"]
    assert "s3cr3t" not in str(result.errors) and "leakyname" not in str(result.errors)
