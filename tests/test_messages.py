"""Messages people read (issue 13, findings 7 and 8): each says what is wrong and what to do.

Most run the command line as users do (``probed validate``, ``probed once``) in a subprocess.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from probed._interpolate import InterpolationError, Interpolator
from tests.harness import write

PROBED = [sys.executable, "-m", "probed"]
ROOT = Path(__file__).parent.parent


def probed(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("PROBED_")}
    full_env.update(env or {})
    return subprocess.run(
        [*PROBED, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout
    )


# -- unset environment variables -----------------------------------------------------------------


def test_unset_secret_variable_suggests_the_set_name_and_a_file_never_a_default(
    tmp_path: Path,
) -> None:
    secret = "Redis-s3cret-value-42"
    write(
        tmp_path / "checks.d" / "cache.yaml",
        """
        checks:
          - name: cache
            type: redis
            url: redis://:${REDIS_PASWORD}@127.0.0.1:6379/0
        """,
    )
    env = {"REDIS_PASSWORD": secret}
    result = probed("validate", "--checks-dir", "checks.d", cwd=tmp_path, env=env)
    assert result.returncode == 1
    assert (
        "checks.d/cache.yaml:4: checks[0].url: environment variable 'REDIS_PASWORD' is not set; "
        "did you mean REDIS_PASSWORD? (set it, or read the secret from a file: "
        "${file:/run/secrets/...})"
    ) in result.stderr
    assert ":-default" not in result.stderr
    assert secret not in result.stdout + result.stderr


def test_unset_plain_variable_suggests_the_set_name_and_a_default() -> None:
    interpolator = Interpolator({"LISTEN_HOST": "10.1.2.3", "HOME": "/root"})
    with pytest.raises(InterpolationError) as info:
        interpolator.string("${LISTEN_HSOT}:9333")
    assert str(info.value) == (
        "environment variable 'LISTEN_HSOT' is not set; did you mean LISTEN_HOST? "
        "(set it, or give a default: ${LISTEN_HSOT:-default})"
    )
    assert "10.1.2.3" not in str(info.value)


@pytest.mark.parametrize("name", ["API_TOKEN", "DB_PASSWORD", "SIGNING_KEY", "CLIENT_SECRET"])
def test_unset_secret_variable_is_never_advised_a_default(name: str) -> None:
    with pytest.raises(InterpolationError) as info:
        Interpolator({}).string(f"${{{name}}}")
    message = str(info.value)
    assert ":-default" not in message and "did you mean" not in message
    assert "${file:" in message


# -- postgres expect_role ------------------------------------------------------------------------


def test_postgres_expect_role_master_says_which_words_to_use(tmp_path: Path) -> None:
    write(
        tmp_path / "checks.d" / "db.yaml",
        """
        checks:
          - name: db
            type: postgres
            dsn: postgresql://probe@127.0.0.1:5432/postgres
            expect_role: master
          - name: db-standby
            type: postgres
            dsn: postgresql://probe@127.0.0.1:5432/postgres
            expect_role: replca
        """,
    )
    result = probed("validate", "--checks-dir", "checks.d", cwd=tmp_path)
    assert result.returncode == 1
    assert (
        "checks.d/db.yaml:5: checks[0].expect_role: 'master' is not a role; "
        "use 'primary' (master) or 'replica' (standby)"
    ) in result.stderr
    assert (
        "checks.d/db.yaml:9: checks[1].expect_role: 'replca' is not a role (did you mean "
        "'replica'?); use 'primary' (master) or 'replica' (standby)"
    ) in result.stderr
    assert "Input should be" not in result.stderr


# -- redis INFO fields ---------------------------------------------------------------------------


def test_misspelt_redis_info_field_fails_validation_with_did_you_mean(tmp_path: Path) -> None:
    path = write(
        tmp_path / "checks.d" / "cache.yaml",
        """
        checks:
          - name: cache
            type: redis
            url: redis://127.0.0.1:6379/0
            info_fields:
              used_memry: {warn_above: 512MB}
        """,
    )
    result = probed("validate", "--checks-dir", "checks.d", cwd=tmp_path)
    assert result.returncode == 1
    assert (
        "checks.d/cache.yaml:5: checks[0].info_fields: unknown INFO field 'used_memry' "
        "(did you mean 'used_memory'?)"
    ) in result.stderr
    path.write_text(path.read_text() + "    allow_unknown_info_fields: true\n")
    allowed = probed("validate", "--checks-dir", "checks.d", cwd=tmp_path)
    assert allowed.returncode == 0, allowed.stderr
