"""The exception tree. Every error probed raises on purpose derives from :class:`ProbedError`::

    ProbedError
    ├── ConfigError      one problem in a config or check file (file, line, field, message)
    │   └── ConfigErrors several problems at once; ``.errors`` lists each ConfigError
    └── PluginError      a plugin cannot be loaded or conflicts with another

Failures of *targets* are never exceptions: they are :class:`probed.Result` values.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["ConfigError", "ConfigErrors", "PluginError", "ProbedError"]


class ProbedError(Exception):
    """Base of every error raised on purpose by probed."""


class ConfigError(ProbedError):
    """One configuration problem, printed as ``FILE:LINE: path.to.field: message``."""

    def __init__(self, file: str, line: int, field: str, message: str) -> None:
        self.file = file
        self.line = line
        self.field = field
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ConfigError) and str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))

    def __reduce__(self) -> tuple[type[ConfigError], tuple[str, int, str, str]]:
        # Exceptions pickle as ``cls(*args)``, and args here is the one formatted line: a
        # loaded configuration with errors is pickled (probed._gc.compact, probed._forkload).
        return (type(self), (self.file, self.line, self.field, self.message))


class ConfigErrors(ProbedError):  # noqa: N818 - a collection of ConfigError, named as such
    """Several configuration problems; ``errors`` holds each one."""

    def __init__(self, errors: Sequence[ConfigError]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(str(e) for e in self.errors))


class PluginError(ProbedError):
    """A plugin failed to load, implements an unknown hook, or clashes with another plugin."""
