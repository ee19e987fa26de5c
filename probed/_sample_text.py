"""The text of one sample's labels and value, in both exposition formats.

Used by :mod:`probed.exposition` (which re-exports :func:`escape_label`, :func:`format_value`
and :func:`identity_labels`, their public home).
"""

from __future__ import annotations

import math
from collections.abc import Collection

from probed.logs import current_redactor
from probed.spec import CheckSpec

__all__ = ["escape_label", "format_value", "identity_labels", "series_labels"]


def escape_label(value: str) -> str:
    """Escape a label value for both exposition formats."""
    if "\\" in value or '"' in value or "\n" in value:
        value = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return value


def format_value(value: float) -> str:
    """Format a sample value the way Prometheus parses it."""
    if value == math.inf:
        return "+Inf"
    if value == -math.inf:
        return "-Inf"
    if value != value:
        return "NaN"
    if isinstance(value, int) or value.is_integer():
        return str(int(value)) if abs(value) < 1e15 else repr(float(value))
    return repr(value)


def identity_labels(spec: CheckSpec, skip: Collection[str] = ()) -> str:
    """``check="..",type="..",<own labels>`` for a check, built once per spec.

    :param skip: own label names left out.
    """
    parts = [f'check="{escape_label(spec.name)}"', f'type="{escape_label(spec.type)}"']
    # Label values are public: a known secret or a secret-shaped value (a URL password) is
    # masked here too, even though validation refuses secret references in labels.
    redact = current_redactor()
    parts.extend(f'{k}="{escape_label(redact(v))}"' for k, v in spec.labels if k not in skip)
    return ",".join(parts)


def series_labels(spec: CheckSpec, keep: Collection[str]) -> str:
    """``check=".."`` and the own labels named in ``keep`` (``check_labels: info``)."""
    parts = [f'check="{escape_label(spec.name)}"']
    if any(k in keep for k, _ in spec.labels):
        redact = current_redactor()
        parts.extend(f'{k}="{escape_label(redact(v))}"' for k, v in spec.labels if k in keep)
    return ",".join(parts)
