"""probed: a pluggable health-check and synthetic-monitoring daemon.

A check type needs nothing but this package::

    from probed import Check, CheckOptions, Field, Result, Status, hookimpl

``Field`` is pydantic's, re-exported: an option with a default and a description (shown by
``probed schema``) is ``timeout_ms: int = Field(500, description="...")``. Options models are
pydantic models, so a plugin may still use anything of pydantic (``field_validator``,
``model_validator``) by importing it from ``pydantic``.

Option types (``Duration``, ``Size``, ``Percent``, ``Regex``, ``AbsolutePath``) come from
:mod:`probed.options`, warn/fail pairs (``WarnFail``, ``check_order``, ``Limit``, ``evaluate``)
from :mod:`probed.thresholds`; both are re-exported here. Blocking calls go through
:func:`run_blocking` (probed's bounded, per-type thread pools); a long blocking loop checks
:func:`blocking_cancelled` and stops once the run has timed out.
"""

from pydantic import Field

from probed.check import (
    Check,
    CheckOptions,
    MetricDef,
    Reason,
    Result,
    Sample,
    Status,
)
from probed.errors import ConfigError, ConfigErrors, PluginError, ProbedError
from probed.hookspecs import hookimpl
from probed.options import (
    AbsolutePath,
    Duration,
    Percent,
    Regex,
    Size,
    format_duration,
    format_size,
    parse_duration,
    parse_size,
)
from probed.spec import CheckSpec
from probed.threads import blocking_cancelled, run_blocking
from probed.thresholds import Limit, WarnFail, check_order, evaluate

__version__ = "0.1.0"

__all__ = [
    "AbsolutePath",
    "Check",
    "CheckOptions",
    "CheckSpec",
    "ConfigError",
    "ConfigErrors",
    "Duration",
    "Field",
    "Limit",
    "MetricDef",
    "Percent",
    "PluginError",
    "ProbedError",
    "Reason",
    "Regex",
    "Result",
    "Sample",
    "Size",
    "Status",
    "WarnFail",
    "__version__",
    "blocking_cancelled",
    "check_order",
    "evaluate",
    "format_duration",
    "format_size",
    "hookimpl",
    "parse_duration",
    "parse_size",
    "run_blocking",
]
