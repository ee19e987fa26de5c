"""What happens to each run's result: redact, fold into state, log a status change, tell plugins.

The scheduler hands every finished run to :meth:`ResultHandler.handle`. Folding (thresholds,
counters, history) is :meth:`probed.state.CheckState.record`'s business; this unit only orders
the steps and decides what is worth a log line.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

from probed.check import Result, Status
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
        """Fold ``result`` into ``job``'s state, log and notify a status change, notify plugins."""
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
