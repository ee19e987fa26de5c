"""Where :data:`Duration` used to live: it is now in :mod:`probed.options` (re-exported here)."""

from probed.options import Duration, format_duration, parse_duration

__all__ = ["Duration", "format_duration", "parse_duration"]
