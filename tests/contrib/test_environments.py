"""production.env and staging.env: same keys, placeholders for every secret, a format that
systemd, docker and compose all read, and only variables probed or its checks really use."""

from __future__ import annotations

import re
from pathlib import Path

from tests.contrib._tools import CONTRIB, ROOT

ENV_DIR = CONTRIB / "environments"
ENV_FILES = {name: ENV_DIR / f"{name}.env" for name in ("production", "staging")}
# No quotes, no spaces, no inline comments: systemd strips quotes, docker does not.
LINE = re.compile(r"(?P<key>[A-Z][A-Z0-9_]*)=(?P<value>[^\s\"'#]*)")
SECRET = re.compile(r"PASSWORD|TOKEN|SECRET|DSN|_KEY$")


def _parse(path: Path) -> dict[str, str]:
    values = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        match = LINE.fullmatch(line)
        assert match, f"{path.name}:{number}: not KEY=value without quotes or spaces: {line!r}"
        assert match["key"] not in values, f"{path.name}:{number}: {match['key']} set twice"
        values[match["key"]] = match["value"]
    return values


ENVS = {name: _parse(path) for name, path in ENV_FILES.items()}


def test_environments_have_the_same_keys() -> None:
    assert ENVS["production"].keys() == ENVS["staging"].keys()


def test_every_secret_is_a_placeholder() -> None:
    for name, values in ENVS.items():
        secrets = {k: v for k, v in values.items() if SECRET.search(k)}
        assert secrets, name
        for key, value in secrets.items():
            assert "CHANGE-ME" in value, f"{name}: {key} must be a CHANGE-ME placeholder"


def test_every_difference_is_documented() -> None:
    readme = (ENV_DIR / "README.md").read_text()
    differing = {k for k in ENVS["production"] if ENVS["production"][k] != ENVS["staging"][k]}
    assert differing
    for key in differing:
        assert f"`{key}`" in readme, f"{key} differs but README.md does not say why"


def test_probed_options_are_real_command_line_options() -> None:
    import click

    from probed import cli

    group = cli.cli
    assert isinstance(group, click.Group)
    envvars = {
        param.envvar
        for command in group.commands.values()
        for param in command.params
        if isinstance(param.envvar, str)
    }
    for name, values in ENVS.items():
        for key in values:
            if key.startswith("PROBED_"):
                assert key in envvars, f"{name}: {key} is not read by any probed command"


def test_every_check_variable_is_used_by_a_shipped_check_file() -> None:
    texts = "\n".join(p.read_text() for p in (ROOT / "checks.d").glob("*.yaml"))
    for key in ENVS["production"]:
        if key.startswith(("PROBED_", "SENTRY_")):
            continue
        assert f"${{{key}" in texts, f"{key} is set but no checks.d file references it"
