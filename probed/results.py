"""What happens to each run's result: redact, fold into state, log a status change, tell plugins.

The scheduler hands every finished run to :meth:`ResultHandler.handle`. Folding (thresholds,
counters, history) is :meth:`probed.state.CheckState.record`'s business; this unit only orders
the steps and decides what is worth a log line.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from numbers import Real

from probed.check import NO_NUMBERS, Reason, Result, Sample, Status
from probed.notify import Notifier
from probed.scheduler import Job

__all__ = ["ResultHandler"]

log = logging.getLogger("probed")


class ResultHandler:
    """Handles finished runs for one daemon.

    :param notifier: calls the ``probed_check_result`` and ``probed_check_state_changed`` hooks.
    :param redact: masks the running configuration's secrets in a message; looked up for
        every result, so a reload's new secrets apply to the next run.
    """

    def __init__(self, notifier: Notifier, redact: Callable[[], Callable[[str], str]]) -> None:
        self._notifier = notifier
        self._redact = redact
        self._notify_results = False

    def hooks_changed(self) -> None:
        """Look again whether any plugin wants every result (the hot path skips the call if not)."""
        self._notify_results = self._notifier.has_impls("probed_check_result")

    def handle(self, job: Job, result: Result) -> None:
        """Fold ``result`` into ``job``'s state, log and notify a status change, notify plugins.

        A malformed result (a status that is not a :class:`Status`, a message that is not
        text, a value that is not a number) becomes a ``fail`` saying so before it reaches the
        state, so no reader (``/metrics``, the API) ever trips over it. One whose fields raise
        when read raises here, before the state changes: the scheduler counts and logs that.
        """
        result = checked(result, job.spec.type)
        if result.message:
            message = self._redact()(result.message)
            if message is not result.message:
                result = replace(result, message=message)
        transition = job.state.record(result)
        if transition is not None:
            spec = job.spec
            # Going down or degrading is worth a warning; recovering (to ok) is news.
            log.log(
                logging.INFO if transition.new is Status.OK else logging.WARNING,
                "check %s is now %s (was %s)%s",
                spec.name,
                transition.new.label,
                transition.old.label,
                f": {result.message}" if result.message else "",
                extra={
                    "fields": {
                        "event": "check_state_changed",
                        "check": spec.name,
                        "type": spec.type,
                        "old": transition.old.label,
                        "new": transition.new.label,
                        "reason": result.reason,
                        "message": result.message,
                    }
                },
            )
            self._notifier.fire(
                "probed_check_state_changed",
                spec=spec,
                old=transition.old,
                new=transition.new,
                result=result,
            )
        if self._notify_results:
            self._notifier.fire("probed_check_result", spec=job.spec, result=result)


def _numbers(mapping: object, what: str) -> dict[str, float]:
    if not isinstance(mapping, Mapping):
        raise TypeError(f"{what} is a {type(mapping).__name__}, not a mapping")
    out: dict[str, float] = {}
    for key, value in mapping.items():
        if not isinstance(key, str) or not isinstance(value, Real):
            raise TypeError(f"{what} has {type(key).__name__} {type(value).__name__} items")
        out[key] = float(value)
    return out


def _samples(samples: object) -> tuple[Sample, ...]:
    if not isinstance(samples, tuple | list):
        raise TypeError(f"samples is a {type(samples).__name__}, not a tuple")
    for sample in samples:
        if not (
            isinstance(sample, Sample)
            and isinstance(sample.name, str)
            and isinstance(sample.value, Real)
            and isinstance(sample.labels, tuple)
            and all(isinstance(label, str) for label in sample.labels)
        ):
            raise TypeError(f"a sample is malformed: {sample!r:.80}")
    return tuple(samples)


def _plain(mapping: object) -> bool:
    """True for what checks return: a ``dict`` of names to floats (or the shared empty one),
    which :func:`checked` would only copy into an equal dict."""
    if mapping is NO_NUMBERS:
        return True
    if type(mapping) is not dict:
        return False
    for key, value in mapping.items():
        if type(key) is not str or type(value) is not float:
            return False
    return True


def checked(result: Result, type_name: str) -> Result:
    """``result`` if well-formed, else a ``fail`` naming what the check type got wrong."""
    try:
        if not isinstance(result.status, Status):
            raise TypeError(f"status is {result.status!r:.40}, not a Status")
        if not isinstance(result.reason, str) or not isinstance(result.message, str):
            raise TypeError("reason and message must be text")
        samples = result.samples
        if (
            type(samples) is tuple
            and not samples
            and _plain(result.phases)
            and _plain(result.values)
        ):
            return result  # the common case, checked without copying
        phases = _numbers(result.phases, "phases")
        values = _numbers(result.values, "values")
        samples = _samples(result.samples)
    except TypeError as exc:
        return Result(
            Status.FAIL,
            Reason.EXCEPTION,
            f"check type {type_name!r} returned a malformed result: {exc}",
            duration=result.duration,
            timestamp=result.timestamp,
        )
    if phases == result.phases and values == result.values and samples == result.samples:
        return result
    return replace(result, phases=phases, values=values, samples=samples)
