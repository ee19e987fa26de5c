"""probed.yaml keys written empty (``listen:``) or ``null`` mean "not set", never a crash."""

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
