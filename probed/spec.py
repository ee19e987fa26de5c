"""``CheckSpec``: the validated, immutable description of one configured check."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from probed.check import CheckOptions

__all__ = ["CheckSpec"]


@dataclass(frozen=True, slots=True)
class CheckSpec:
    """One check as configured: common settings, identity labels and type options.

    Two specs compare equal when the configuration is the same, which is how a reload decides
    that a check is unchanged and keeps its state and schedule.
    """

    name: str
    type: str
    interval: float
    timeout: float
    options: CheckOptions
    readiness: bool = True
    failure_threshold: int = 3
    success_threshold: int = 1
    labels: tuple[tuple[str, str], ...] = ()
    description: str = ""
    source: str = field(default="", compare=False)
    line: int = field(default=0, compare=False)

    @property
    def where(self) -> str:
        """``file:line`` where the check is defined, for messages."""
        return f"{self.source}:{self.line}" if self.source else "<built-in>"

    def public_options(self) -> dict[str, Any]:
        """Options as JSON-able data with secret fields masked."""
        return self.options.model_dump(mode="json")
