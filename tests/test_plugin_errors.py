"""Plugin authors' mistakes, as the real CLI reports them: one ``probed:`` line, exit code.

One test per row of the table "When a plugin is wrong" in docs/plugins.md; each runs ``probed``
as a subprocess with a drop-in plugin in a temporary ``--plugins-dir`` (and, for the clash with
an installed package, a tiny dist-info on ``PYTHONPATH``), and asserts the text, the exit code
and that no Python traceback appears.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "plugins.md"

TYPE_PLUGIN = """
from typing import ClassVar
from probed import Check, CheckOptions, Result, hookimpl

class {cls}Options(CheckOptions):
    host: str = "127.0.0.1"
    port: int = 25

class {cls}Check(Check[{cls}Options]):
    type_name: ClassVar[str] = "{type_name}"
    options_model = {cls}Options

    async def run(self) -> Result:
        return Result.ok("fine")

@hookimpl
def probed_register_check_types():
    return [{cls}Check]
"""

CHECK_FILE = """
checks:
  - name: mail
    type: mailer
    host: 127.0.0.1
    helo_name: probe.example
"""

# What each row prints (also quoted in the docs table).
UNKNOWN_HOOK = (
    "unknown hook 'probed_check_state_change' (did you mean 'probed_check_state_changed'?)"
)
WRONG_PARAMETER = (
    "probed_check_result(spec, outcome) has parameter(s) 'outcome' the hook does not pass"
)
EXPECTED_PARAMETERS = "probed_check_result passes: spec, result"
COLLISION = "check type 'mailer' is registered twice"
UNDECLARED_OPTION = "unknown key 'helo_name': type 'mailer' (plugin 'mailer') declares the options"
UNMARKED = "function probed_startup() is not marked @hookimpl, so probed never calls it"
REGISTER_RAISES = "probed_register_check_types raised KeyError: 'oops'"
IMPORT_FAILURE = "failed to import: ModuleNotFoundError: No module named 'no_such_module'"


def probed(
    *args: str, cwd: Path, pythonpath: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROBED_")}
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(pythonpath), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "probed", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def plugin_dir(tmp_path: Path, **files: str) -> Path:
    directory = tmp_path / "plugins"
    directory.mkdir()
    for name, text in files.items():
        (directory / f"{name}.py").write_text(textwrap.dedent(text))
    return directory


def assert_one_line(result: subprocess.CompletedProcess[str], code: int, *texts: str) -> str:
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    assert result.returncode == code, output
    lines = [line for line in result.stderr.splitlines() if line.startswith("probed:")]
    assert len(lines) == 1, result.stderr
    for text in texts:
        assert text in lines[0], lines[0]
    return lines[0]


# Every command reads plugins the same way; once and gate exit 3 (Nagios UNKNOWN).
COMMANDS = [
    (["run", "--listen", "127.0.0.1:0"], 1),
    (["validate"], 1),
    (["once"], 3),
    (["gate", "--for", "1s", "--every", "1s"], 3),
    (["plugins"], 1),
    (["schema"], 1),
]


HOOK_MISTAKES = {
    # a misspelled hook name: did-you-mean
    "notify": (
        "@hookimpl\ndef probed_check_state_change(spec, old, new, result):\n    pass\n",
        (UNKNOWN_HOOK,),
    ),
    # a parameter the hook does not pass: the ones it does, instead of pluggy's traceback
    "audit": (
        "@hookimpl\ndef probed_check_result(spec, outcome):\n    pass\n",
        (WRONG_PARAMETER, EXPECTED_PARAMETERS),
    ),
}


@pytest.mark.parametrize("plugin", sorted(HOOK_MISTAKES))
@pytest.mark.parametrize(("command", "code"), COMMANDS, ids=[c[0][0] for c in COMMANDS])
def test_a_hook_mistake_is_one_line_naming_plugin_file_and_fix_from_every_command(
    tmp_path: Path, command: list[str], code: int, plugin: str
) -> None:
    source, texts = HOOK_MISTAKES[plugin]
    plugins = plugin_dir(tmp_path, **{plugin: "from probed import hookimpl\n\n" + source})
    result = probed(*command, "--plugins-dir", str(plugins), cwd=tmp_path)
    line = assert_one_line(result, code, *texts)
    assert line.startswith(f"probed: plugin {plugin!r} (drop-in file {plugins / plugin}.py):")
    assert "PluginValidationError" not in line


def test_two_drop_in_files_registering_one_type_name_both(tmp_path: Path) -> None:
    plugins = plugin_dir(
        tmp_path,
        mailer=TYPE_PLUGIN.format(cls="Mailer", type_name="mailer"),
        mail=TYPE_PLUGIN.format(cls="Mail", type_name="mailer"),
    )
    for command, code in (["validate"], 1), (["once"], 3):
        result = probed(*command, "--plugins-dir", str(plugins), cwd=tmp_path)
        line = assert_one_line(result, code, COLLISION)
        assert f"plugin 'mail' (drop-in file {plugins / 'mail.py'})" in line
        assert f"plugin 'mailer' (drop-in file {plugins / 'mailer.py'})" in line
        assert "--disable-plugin" in line


def test_drop_in_file_and_installed_package_registering_one_type_name_both(
    tmp_path: Path,
) -> None:
    site = tmp_path / "site"
    (site / "probed_mailer").mkdir(parents=True)
    (site / "probed_mailer" / "__init__.py").write_text(
        TYPE_PLUGIN.format(cls="Packaged", type_name="mailer")
    )
    dist = site / "probed_mailer-1.4.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: probed-mailer\nVersion: 1.4.0\n")
    (dist / "entry_points.txt").write_text("[probed]\nmailer_pkg = probed_mailer\n")
    plugins = plugin_dir(tmp_path, mailer=TYPE_PLUGIN.format(cls="Mailer", type_name="mailer"))
    result = probed("validate", "--plugins-dir", str(plugins), cwd=tmp_path, pythonpath=site)
    line = assert_one_line(result, 1, COLLISION)
    assert "plugin 'mailer_pkg' (installed package probed-mailer 1.4.0)" in line
    assert f"plugin 'mailer' (drop-in file {plugins / 'mailer.py'})" in line


def test_option_missing_from_the_options_model_names_the_declared_options(
    tmp_path: Path,
) -> None:
    plugins = plugin_dir(tmp_path, mailer=TYPE_PLUGIN.format(cls="Mailer", type_name="mailer"))
    checks = tmp_path / "checks.d"
    checks.mkdir()
    (checks / "mail.yaml").write_text(CHECK_FILE)
    args = ["--plugins-dir", str(plugins), "--checks-dir", str(checks)]
    for command, code in (["validate"], 1), (["once"], 3):
        result = probed(*command, *args, cwd=tmp_path)
        output = result.stdout + result.stderr
        assert "Traceback" not in output and result.returncode == code, output
        where = f"{checks / 'mail.yaml'}:6: checks[0].helo_name: "
        assert f"{where}{UNDECLARED_OPTION} host, port; remove the key, or add it to " in output
        assert "MailerOptions (its options_model)" in output
        assert "did you mean 'name'" not in output


def test_probed_function_without_hookimpl_is_a_warning(tmp_path: Path) -> None:
    plugins = plugin_dir(
        tmp_path,
        startup="""
        def probed_startup(settings):
            print("never")
        """,
    )
    result = probed("validate", "--plugins-dir", str(plugins), cwd=tmp_path)
    line = assert_one_line(result, 0, UNMARKED)
    assert line.startswith("probed: warning: plugin 'startup' (drop-in file")
    assert "put @hookimpl" in line


def test_plugin_that_fails_to_import_names_file_line_and_error(tmp_path: Path) -> None:
    plugins = plugin_dir(tmp_path, broken="import os\nimport no_such_module\n")
    for command, code in (["validate"], 1), (["once"], 3), (["plugins"], 1):
        result = probed(*command, "--plugins-dir", str(plugins), cwd=tmp_path)
        line = assert_one_line(result, code, IMPORT_FAILURE)
        assert f"plugin 'broken': {plugins / 'broken.py'}: failed" in line and "(line 2)" in line


def test_every_row_text_is_quoted_in_the_docs_table() -> None:
    docs = DOCS.read_text()
    for text in (
        UNKNOWN_HOOK,
        WRONG_PARAMETER,
        COLLISION,
        UNMARKED,
        IMPORT_FAILURE,
        REGISTER_RAISES,
        "(installed package probed-broken 0.3.0)",
        "unknown key 'log_formt' (did you mean 'log_format'?)",
    ):
        assert text in docs, f"docs/plugins.md does not quote {text!r}"
    assert UNDECLARED_OPTION in docs


def test_installed_package_that_fails_to_import_names_distribution_and_fix(
    tmp_path: Path,
) -> None:
    site = tmp_path / "site"
    (site / "probed_broken").mkdir(parents=True)
    (site / "probed_broken" / "__init__.py").write_text("raise RuntimeError('boom')\n")
    dist = site / "probed_broken-0.3.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: probed-broken\nVersion: 0.3.0\n")
    (dist / "entry_points.txt").write_text("[probed]\nbroken = probed_broken\n")
    for command, code in (["validate"], 1), (["once"], 3):
        result = probed(*command, cwd=tmp_path, pythonpath=site)
        line = assert_one_line(
            result, code, "plugin 'broken' (installed package probed-broken 0.3.0)"
        )
        assert "failed to import: RuntimeError: boom" in line
        assert "--disable-plugin broken" in line
    disabled = probed("validate", "--disable-plugin", "broken", cwd=tmp_path, pythonpath=site)
    assert disabled.returncode == 0, disabled.stderr


def test_an_invalid_probed_yaml_makes_once_and_gate_exit_3(tmp_path: Path) -> None:
    config = tmp_path / "probed.yaml"
    config.write_text("log_formt: json\n")
    for command, code in (["validate"], 1), (["once"], 3), (["gate", "--for", "1s"], 3):
        result = probed(*command, "--config", str(config), cwd=tmp_path)
        output = result.stdout + result.stderr
        assert result.returncode == code and "Traceback" not in output, output
        assert "unknown key 'log_formt' (did you mean 'log_format'?)" in output


def test_register_check_types_that_raises_is_one_line_naming_the_plugin(tmp_path: Path) -> None:
    plugins = plugin_dir(
        tmp_path,
        raiser="""
        from probed import hookimpl

        @hookimpl
        def probed_register_check_types():
            raise KeyError("oops")
        """,
    )
    for command, code in (["validate"], 1), (["once"], 3):
        result = probed(*command, "--plugins-dir", str(plugins), cwd=tmp_path)
        line = assert_one_line(result, code, REGISTER_RAISES)
        assert line.startswith(f"probed: plugin 'raiser' (drop-in file {plugins / 'raiser.py'})")
