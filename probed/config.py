"""Configuration loading, by noun (this module re-exports the entry points):

- :mod:`probed.settings`: ``probed.yaml`` into :class:`~probed.settings.Settings`;
- :mod:`probed.checkfile`: check files (and the ``checks:`` of ``probed.yaml``) into
  :class:`~probed.spec.CheckSpec`;
- :mod:`probed.common`: the common keys of a check, declared once;
- :mod:`probed.schema`: the JSON Schema of a checks file;
- :mod:`probed._document`: reading one file (YAML with lines, repeated keys, ``${...}``),
  shared by both pipelines.
"""

from __future__ import annotations

from probed.checkfile import FileResult, LoadResult, load_checks, validate_check
from probed.common import COMMON_KEYS, RESERVED_LABELS
from probed.schema import check_file_schema
from probed.settings import load_settings

__all__ = [
    "COMMON_KEYS",
    "RESERVED_LABELS",
    "FileResult",
    "LoadResult",
    "check_file_schema",
    "load_checks",
    "load_settings",
    "validate_check",
]
