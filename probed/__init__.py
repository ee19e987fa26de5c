"""probed: a pluggable health-check and synthetic-monitoring daemon.

Plugin authors import only from here::

    from probed import Check, CheckOptions, Result, Status, hookimpl
"""

from probed._durations import Duration, format_duration, parse_duration
from probed.check import (
    AbsolutePath,
    Check,
    CheckOptions,
    MetricDef,
    Reason,
    Regex,
    Result,
    Sample,
    Status,
)
from probed.errors import ConfigError, ConfigErrors, PluginError, ProbedError
from probed.hookspecs import hookimpl
from probed.spec import CheckSpec

__version__ = "0.1.0"

__all__ = [
    "AbsolutePath",
    "Check",
    "CheckOptions",
    "CheckSpec",
    "ConfigError",
    "ConfigErrors",
    "Duration",
    "MetricDef",
    "PluginError",
    "ProbedError",
    "Reason",
    "Regex",
    "Result",
    "Sample",
    "Status",
    "__version__",
    "format_duration",
    "hookimpl",
    "parse_duration",
]
