"""What one check is configured with: :class:`CheckSpec` (its common keys, its options, where it
was defined) and :class:`CheckOptions`, the base of every check type's options model."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict

from probed.common import CommonKeys

__all__ = ["CheckOptions", "CheckSpec"]


class CheckOptions(BaseModel):
    """Base for a check type's options model: frozen, and unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True, slots=True)
class CheckSpec(CommonKeys):
    """One check as configured: its common keys (see :class:`~probed.common.CommonKeys`:
    name, type, interval, timeout, readiness, thresholds, labels, ...), its type's options,
    and where it was defined.

    Two specs compare equal when the configuration is the same, which is how a reload decides
    that a check is unchanged and keeps its state and schedule.
    """

    options: CheckOptions = field(kw_only=True)
    source: str = field(default="", compare=False)
    line: int = field(default=0, compare=False)

    @property
    def where(self) -> str:
        """``file:line`` where the check is defined, for messages."""
        return f"{self.source}:{self.line}" if self.source else "<built-in>"

    def public_options(self) -> dict[str, Any]:
        """Options as JSON-able data with secret fields masked."""
        return self.options.model_dump(mode="json")
