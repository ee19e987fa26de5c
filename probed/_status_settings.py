"""``status_page:`` in ``probed.yaml``: :class:`StatusPage` (as held) and :class:`StatusPageFile`
(as written, validated with located errors by :mod:`probed.settings`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Final

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictInt

from probed._status_history import MAX_RUNS
from probed.common import LABEL_RE
from probed.options import Duration

__all__ = ["StatusPage", "StatusPageFile"]

MIN_REFRESH: Final = 1.0
MAX_REFRESH: Final = 3600.0
MAX_TITLE: Final = 200


@dataclass(frozen=True, slots=True)
class StatusPage:
    """The built-in status page at ``/`` (:mod:`probed.status_page`).

    :param enabled: serve the page (off: ``/`` answers the plain-text index, and checks keep
        no run history for it).
    :param group_by: the label whose value groups the checks (checks without it: "other").
    :param title: the page's heading and title.
    :param history: runs kept per check for uptime and the latency chart (9 bytes a run).
    :param refresh: seconds between the page's live updates.
    """

    enabled: bool = True
    group_by: str = "group"
    title: str = "probed"
    history: int = 100
    refresh: float = 5.0

    @property
    def kept(self) -> int:
        """Runs each check keeps for the page: ``history`` while enabled, else none."""
        return self.history if self.enabled else 0


def _label(value: str) -> str:
    if not LABEL_RE.fullmatch(value):
        raise ValueError(f"{value!r} is not a label name (letters, digits and '_')")
    return value


def _refresh(value: float) -> float:
    if not MIN_REFRESH <= value <= MAX_REFRESH:
        raise ValueError("refresh must be between 1s and 1h")
    return value


class StatusPageFile(BaseModel):
    """``status_page:`` as written; a key not given keeps :class:`StatusPage`'s default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: StrictBool | None = None
    group_by: Annotated[str, AfterValidator(_label)] | None = None
    title: Annotated[str, Field(min_length=1, max_length=MAX_TITLE)] | None = None
    history: Annotated[StrictInt, Field(ge=1, le=MAX_RUNS)] | None = None
    refresh: Annotated[Duration, AfterValidator(_refresh)] | None = None

    def settings(self) -> StatusPage:
        """The page's settings: the keys given over the defaults."""
        given: dict[str, Any] = {
            k: getattr(self, k) for k in self.model_fields_set if getattr(self, k) is not None
        }
        return StatusPage(**given)
