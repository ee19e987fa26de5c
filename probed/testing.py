"""Helpers for testing check types, built-in or your own plugin's.

::

    from probed.testing import run_check

    async def test_my_check_passes():
        result = await run_check(MyCheck, url="http://127.0.0.1:8080/")
        assert result.status is Status.OK

``run_check`` validates the options with the type's model and runs the check through the same
wrapper the daemon uses, so timeouts and exceptions behave exactly as in production.
"""

from __future__ import annotations

from typing import Any

from probed.check import Check, Result
from probed.common import COMMON_KEYS, common_values
from probed.runner import execute
from probed.spec import CheckSpec

__all__ = ["make_spec", "run_check"]


def make_spec(
    check_type: type[Check[Any]],
    *,
    name: str = "test",
    interval: float | str = 10.0,
    timeout: float | str = 5.0,
    **values: Any,
) -> CheckSpec:
    """Build a :class:`CheckSpec` for ``check_type`` as a check file would.

    :param values: any other common key (``labels``, ``readiness``, ``failure_threshold``...,
        see :data:`probed.common.COMMON_KEYS`) and the type's options, as they would appear
        in YAML; the options are validated by the type's model.
    :raises ValueError: a common key's value is invalid.
    """
    common = {k: values.pop(k) for k in COMMON_KEYS if k in values}
    common.update(name=name, type=check_type.type_name, interval=interval, timeout=timeout)
    return CheckSpec(
        **common_values(common, timing=False),
        options=check_type.options_model.model_validate(values),
    )


async def run_check(
    check_type: type[Check[Any]], *, timeout: float = 5.0, **options: Any
) -> Result:
    """Validate ``options``, run one check of ``check_type`` once as the daemon would, close it.

    :param check_type: the ``Check`` subclass.
    :param timeout: the run's timeout in seconds.
    :param options: the type-specific options, as they would appear in YAML.
    :return: the result, with ``duration`` and ``timestamp`` filled.
    """
    spec = make_spec(check_type, timeout=timeout, interval=max(timeout * 2, 1.0), **options)
    check = check_type(spec)
    try:
        return await execute(check, timeout)
    finally:
        await check.close()
