"""What a plugin author subclasses and returns: ``Check``, ``Result``, ``Status`` and friends.

A check type is a class with a ``type_name``, an ``Options`` pydantic model (validated from the
YAML, and the source of its JSON Schema) and ``async def run()`` returning a :class:`Result`.
The daemon owns timing, timeouts and exception handling: ``run`` only probes and describes what
it saw.
"""

from __future__ import annotations

import enum
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar, Final, Generic, Literal, TypeVar

# Option types used to live here; re-exported for plugins that import them from probed.check.
# CheckOptions lives beside CheckSpec, which a Check is built from (so no import cycle).
from probed.options import AbsolutePath, Regex
from probed.spec import CheckOptions, CheckSpec

__all__ = [
    "AbsolutePath",
    "Check",
    "CheckOptions",
    "MetricDef",
    "Reason",
    "Regex",
    "Result",
    "Sample",
    "Status",
]


class Status(enum.IntEnum):
    """Outcome of one run, ordered like Nagios exit codes (worse is larger, unknown last)."""

    OK = 0
    WARN = 1
    FAIL = 2
    UNKNOWN = 3

    @property
    def passed(self) -> bool:
        """True for ``ok`` and ``warn``: the target answered acceptably."""
        return self is Status.OK or self is Status.WARN

    @property
    def label(self) -> str:
        """Lower-case name used in metrics, logs and the API (``ok``, ``warn``, ...)."""
        return _STATUS_LABELS[self]

    @classmethod
    def parse(cls, text: str) -> Status:
        """Parse ``ok``/``warn``/``fail``/``unknown`` (case-insensitive)."""
        try:
            return cls[text.strip().upper()]
        except KeyError:
            raise ValueError(
                f"unknown status {text!r}; expected ok, warn, fail or unknown"
            ) from None


_STATUS_LABELS: Final = {
    Status.OK: "ok",
    Status.WARN: "warn",
    Status.FAIL: "fail",
    Status.UNKNOWN: "unknown",
}


class Reason:
    """Well-known values for :attr:`Result.reason`, the bounded ``reason`` metric label.

    Plugins may use their own short reasons; anything that is not ``[a-z][a-z0-9_]{0,31}`` is
    reported as ``other`` so a plugin cannot blow up label cardinality.
    """

    TIMEOUT: Final = "timeout"
    CONNECTION_REFUSED: Final = "connection_refused"
    CONNECTION_RESET: Final = "connection_reset"
    UNREACHABLE: Final = "unreachable"
    DNS: Final = "dns"
    TLS: Final = "tls"
    CERT_EXPIRY: Final = "cert_expiry"
    STATUS: Final = "status"
    ASSERTION: Final = "assertion"
    AUTH: Final = "auth"
    PROTOCOL: Final = "protocol"
    THRESHOLD: Final = "threshold"
    BODY_SIZE: Final = "body_size"
    EXCEPTION: Final = "exception"
    NOT_SERVING: Final = "not_serving"
    LATE: Final = "late"
    OTHER: Final = "other"


_REASON_RE: Final = re.compile(r"[a-z][a-z0-9_]{0,31}")


def clean_reason(reason: str) -> str:
    """Return ``reason`` if it is a valid bounded label value, else ``other``."""
    return reason if _REASON_RE.fullmatch(reason) else Reason.OTHER


@dataclass(frozen=True, slots=True)
class MetricDef:
    """A type-specific metric a check type exports, declared once on the class.

    ``name`` is the full Prometheus name (it must start with ``probed_``); ``labels`` are label
    names beyond the check's own identity labels, filled from :class:`Sample`.
    """

    name: str
    help: str
    kind: Literal["gauge", "counter"] = "gauge"
    labels: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Sample:
    """One labelled value of a declared metric, for metrics with extra labels."""

    name: str
    value: float
    labels: tuple[str, ...] = ()


NO_NUMBERS: Final[Mapping[str, float]] = MappingProxyType({})
"""The ``phases`` and ``values`` of a :class:`Result` that sets none: one shared read-only
empty mapping (not a new dict per result: every check keeps its last result)."""


@dataclass(frozen=True, slots=True)
class Result:
    """What one run of a check saw.

    :param status: ok, warn, fail or unknown.
    :param reason: short, bounded machine reason for anything but ok (see :class:`Reason`).
    :param message: one human sentence for the operator reading logs or the API.
    :param phases: phase name to seconds (``resolve``, ``connect``, ``tls``, ...).
    :param values: unlabelled values of the metrics the check type declares, by metric name.
    :param samples: labelled values of declared metrics.
    :param duration: seconds the run took; set by the daemon.
    :param timestamp: wall-clock end of the run (Unix seconds); set by the daemon.
    """

    status: Status
    reason: str = ""
    message: str = ""
    phases: Mapping[str, float] = field(default_factory=lambda: NO_NUMBERS)
    values: Mapping[str, float] = field(default_factory=lambda: NO_NUMBERS)
    samples: tuple[Sample, ...] = ()
    duration: float = 0.0
    timestamp: float = 0.0

    @classmethod
    def ok(cls, message: str = "", **kwargs: Any) -> Result:
        """A passing result."""
        return cls(Status.OK, "", message, **kwargs)

    @classmethod
    def warn(cls, reason: str, message: str, **kwargs: Any) -> Result:
        """A degraded but passing result."""
        return cls(Status.WARN, reason, message, **kwargs)

    @classmethod
    def fail(cls, reason: str, message: str, **kwargs: Any) -> Result:
        """A failing result."""
        return cls(Status.FAIL, reason, message, **kwargs)

    @classmethod
    def unknown(cls, reason: str, message: str, **kwargs: Any) -> Result:
        """The check could not tell."""
        return cls(Status.UNKNOWN, reason, message, **kwargs)


OptionsT = TypeVar("OptionsT", bound=CheckOptions)


class Check(ABC, Generic[OptionsT]):
    """Base class of every check type.

    Subclasses set the class attributes and implement :meth:`run`. One instance exists per
    configured check and lives as long as its configuration is unchanged, so it may keep
    expensive things (an SSL context, a compiled regex) built in ``__init__`` or :meth:`setup`.

    Class attributes:

    - ``type_name``: the ``type:`` value in check files, ``[a-z][a-z0-9_]*``.
    - ``options_model``: a :class:`CheckOptions` subclass for the type-specific keys.
    - ``metrics``: the type-specific metrics :class:`Result` values may fill.
    - ``requires``: importable modules the type needs, and ``extra`` the pip extra providing
      them; a check configured without them is a validation error naming the extra.
    - ``description``: one line shown by ``probed plugins``.
    - ``blocking``: ``True`` runs :meth:`run` in a worker thread of the type's bounded pool
      (:func:`probed.run_blocking`), on an event loop of its own, so blocking calls in it
      (``time.sleep``, a blocking driver) cannot stall the daemon. Same timeout, phases and
      result rules; a run past its timeout is abandoned (its thread finishes on its own).
      :meth:`setup` and :meth:`close` still run on the daemon's loop: do not share
      loop-bound objects (an ``aiohttp`` session) between them and a blocking ``run``.

    Instance attributes, set by ``__init__`` before :meth:`setup` and :meth:`run`:

    - ``self.options``: the validated instance of ``options_model`` (typed as the class
      parameter, ``Check[MyOptions]``): the type-specific keys of the check's YAML entry, with
      option types already converted (a ``Duration`` is seconds, a ``Size`` bytes).
    - ``self.spec``: the whole :class:`CheckSpec` (``name``, ``interval``, ``timeout`` in
      seconds, ``labels``, ``source`` file and ``line``...); ``self.spec.options`` is
      ``self.options``.

    Override ``__init__`` only to add attributes, calling ``super().__init__(spec)`` first.
    """

    type_name: ClassVar[str]
    options_model: ClassVar[type[CheckOptions]] = CheckOptions
    metrics: ClassVar[tuple[MetricDef, ...]] = ()
    requires: ClassVar[tuple[str, ...]] = ()
    extra: ClassVar[str | None] = None
    description: ClassVar[str] = ""
    blocking: ClassVar[bool] = False

    def __init__(self, spec: CheckSpec) -> None:
        self.spec = spec
        self.options: OptionsT = spec.options  # type: ignore[assignment]
        # Set by the daemon's runner once setup() succeeded. Assigned here, with the rest: on
        # CPython 3.11 an instance has room for one attribute first assigned after __init__;
        # a second turns its attributes into a dict of its own (~460 bytes a check).
        self._probed_ready = False

    @classmethod
    def timing_problem(cls, options: Any, interval: float, timeout: float) -> str | None:
        """Why ``options`` cannot work within the check's ``timeout``/``interval``, or None.

        ``probed validate`` and every (re)load report the answer as an error on ``timeout``,
        so a check that could never pass is caught before it runs. Override when options
        imply a minimum run time (a measurement window, a number of packets).
        """
        return None

    async def setup(self) -> None:
        """Prepare once before the first run (optional)."""

    @abstractmethod
    async def run(self) -> Result:
        """Probe the target once and describe what was seen.

        Raise or hang as you like: the daemon turns an exception into a ``fail`` with reason
        ``exception`` and cancels the run at the check's ``timeout``. Do not block the event
        loop: use :func:`probed.run_blocking` for blocking calls, or set ``blocking = True``.
        """

    async def close(self) -> None:
        """Release resources when the check is removed or changed (optional)."""
