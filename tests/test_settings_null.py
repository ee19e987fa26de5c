"""probed.yaml and checks files: empty or null keys mean "not set", oversized files are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from probed.errors import ConfigErrors
from probed.settings import SettingsFile, load_settings

DEFAULTS = load_settings(None, {})


@pytest.mark.parametrize("key", sorted(SettingsFile.model_fields))
def test_a_settings_key_set_to_null_keeps_the_default(tmp_path: Path, key: str) -> None:
    config = tmp_path / "probed.yaml"
    config.write_text(f"{key}: null\n")
    settings = load_settings(config, {})
    if key in {"listen", "log_level", "log_format"}:
        assert getattr(settings, key) == getattr(DEFAULTS, key)


def test_a_bad_listen_value_is_still_an_error_naming_the_line(tmp_path: Path) -> None:
    config = tmp_path / "probed.yaml"
    config.write_text("log_level: info\nlisten: nope\n")
    with pytest.raises(ConfigErrors) as caught:
        load_settings(config, {})
    assert [str(e) for e in caught.value.errors] == [
        f"{config}:2: listen: expected HOST:PORT such as 127.0.0.1:9333 or [::1]:9333, got 'nope'"
    ]


def test_an_oversized_checks_file_is_refused_and_the_other_files_still_load(
    tmp_path: Path,
) -> None:
    """A huge file dropped into checks.d is never read whole (bounded input)."""
    import subprocess
    import sys

    from probed._document import MAX_FILE_BYTES

    checks = tmp_path / "checks.d"
    checks.mkdir()
    (checks / "ok.yaml").write_text(
        "checks:\n  - {name: fine, type: tcp, address: '127.0.0.1:1'}\n"
    )
    with (checks / "huge.yaml").open("wb") as handle:  # sparse: no disk, no memory
        handle.truncate(MAX_FILE_BYTES + 1)
    done = subprocess.run(
        [sys.executable, "-m", "probed", "validate", "--checks-dir", str(checks)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"{checks / 'huge.yaml'}: file is larger than 64 MiB" in done.stderr
    assert "1 valid check(s)" in done.stdout + done.stderr
