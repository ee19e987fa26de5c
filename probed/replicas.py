"""Replica ownership: N probed replicas (a Kubernetes StatefulSet) split the checks between them.

Each replica loads and validates every check, then runs only those it *owns*. A check is owned
by the ``redundancy`` replicas (R, default 1) with the highest rendezvous weight (highest random
weight hashing) of the pair (check name, replica ordinal). The weight is a stable 64-bit hash
(BLAKE2b of the UTF-8 name, mixed with the ordinal by SplitMix64), the same in every process,
on every machine and across restarts, so every replica agrees on the owners without talking
to the others. Going from N to N+1 replicas moves about 1/(N+1) of the checks, all of them to
the new replica; going down moves only the checks of the replicas removed.

Rules:

- with R > 1 every owned check gets a ``replica`` label (the ordinal) on all its series, so
  the R copies are distinct series (contrib/prometheus/rules/probed-replicas.rules.yml keeps
  the best of them); with R = 1 the series are exactly those of an unsharded daemon;
- a ``heartbeat`` check is owned by one replica whatever R is: its pings reach one pod, so
  the R-1 others would only report pings they never saw;
- checks not owned are neither run nor exported nor listed by ``/api/v1/checks``, and do not
  count toward readiness; ``probed validate`` still validates all of them;
- a reload computes ownership again (a changed ``replicas:`` section moves checks).

Not to be confused with split scrapes (:mod:`probed.shards`, ``/metrics?shard=I&shards=N``):
those split the *scrape* of one daemon that runs every check; replicas split the *running*
of checks between daemons.
"""

from __future__ import annotations

import hashlib
import heapq
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Annotated, Any, Final

from annotated_types import Ge, Le
from pydantic import BaseModel, BeforeValidator, ConfigDict, model_validator

from probed.errors import ConfigError, ConfigErrors
from probed.spec import CheckSpec

__all__ = [
    "MAX_REPLICAS",
    "REPLICA_LABEL",
    "Replicas",
    "ReplicasFile",
    "ordinal_from_env",
    "owned_specs",
    "owners",
    "resolve_replicas",
    "weight",
]

MAX_REPLICAS: Final = 1024
REPLICA_LABEL: Final = "replica"
SINGLE_OWNER_TYPES: Final = frozenset({"heartbeat"})
"""Check types run by exactly one replica whatever the redundancy (pings reach one pod)."""
ORDINAL_ENV: Final = ("POD_NAME", "HOSTNAME")
"""Environment variables read, in order, for a name ending in ``-<ordinal>``."""

_MASK: Final = (1 << 64) - 1
_GOLDEN: Final = 0x9E3779B97F4A7C15
_ORDINAL_RE: Final = re.compile(r"-(\d{1,6})$")


@dataclass(frozen=True, slots=True)
class Replicas:
    """This daemon is replica ``ordinal`` of ``count``; each check runs on ``redundancy`` of them.

    :param source: where the ordinal came from, for messages (``probed.yaml``,
        ``--replica-ordinal``, ``POD_NAME=probed-2``...).
    :param missing: why the ordinal is unknown (``ordinal`` is ``None``): ``probed validate``
        still checks everything else; ``probed run`` refuses to start with this error.
    """

    count: int
    ordinal: int | None
    redundancy: int = 1
    source: str = field(default="", compare=False)
    missing: ConfigError | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not 1 <= self.count <= MAX_REPLICAS:
            raise ValueError(f"count must be between 1 and {MAX_REPLICAS}, got {self.count}")
        if self.ordinal is not None and not 0 <= self.ordinal < self.count:
            raise ValueError(
                f"ordinal must be between 0 and count-1 ({self.count - 1}), got {self.ordinal}"
                + (f" (from {self.source})" if self.source else "")
            )
        if not 1 <= self.redundancy <= self.count:
            raise ValueError(
                f"redundancy must be between 1 and count ({self.count}), got {self.redundancy}"
            )

    def owners(self, name: str, check_type: str = "") -> tuple[int, ...]:
        """The ordinals that run the check ``name`` (of type ``check_type``), best first."""
        r = 1 if check_type in SINGLE_OWNER_TYPES else self.redundancy
        return owners(name, self.count, r)

    def owns(self, name: str, check_type: str = "") -> bool:
        """True if this replica runs the check ``name``."""
        return self.ordinal in self.owners(name, check_type)

    @property
    def labelled(self) -> bool:
        """True if owned checks get a ``replica`` label (R > 1)."""
        return self.redundancy > 1


def _splitmix64(value: int) -> int:
    value = (value + _GOLDEN) & _MASK
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK
    return value ^ (value >> 31)


def _name_hash(name: str) -> int:
    digest = hashlib.blake2b(name.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def weight(name: str, ordinal: int) -> int:
    """The rendezvous weight of replica ``ordinal`` for the check ``name`` (64-bit, stable)."""
    return _splitmix64(_name_hash(name) ^ ((ordinal + 1) * _GOLDEN & _MASK))


def owners(name: str, count: int, redundancy: int = 1) -> tuple[int, ...]:
    """The ``redundancy`` ordinals of ``count`` with the highest weight for ``name``, best
    first (a tie, which needs a 64-bit collision, goes to the higher ordinal)."""
    base = _name_hash(name)
    weights = ((_splitmix64(base ^ ((o + 1) * _GOLDEN & _MASK)), o) for o in range(count))
    return tuple(o for _, o in heapq.nlargest(redundancy, weights))


def ordinal_from_env(env: Mapping[str, str] | None = None) -> tuple[int, str] | None:
    """The ordinal at the end of ``POD_NAME`` or ``HOSTNAME`` (``probed-2`` is 2) and where it
    came from, or ``None`` if neither ends in ``-<digits>``."""
    env = os.environ if env is None else env
    for key in ORDINAL_ENV:
        value = env.get(key, "")
        match = _ORDINAL_RE.search(value)
        if match:
            return int(match.group(1)), f"{key}={value}"
    return None


def owned_specs(
    specs: Mapping[str, CheckSpec], replicas: Replicas
) -> tuple[dict[str, CheckSpec], list[ConfigError]]:
    """The specs this replica runs (in their order), with the ``replica`` label when R > 1,
    and an error for each owned check whose own labels already use ``replica`` (its value
    is replaced, so the R copies stay distinct series)."""
    out: dict[str, CheckSpec] = {}
    if replicas.missing is not None:
        raise ConfigErrors([replicas.missing])
    errors: list[ConfigError] = []
    label = str(replicas.ordinal)
    for name, spec in specs.items():
        if not replicas.owns(name, spec.type):
            continue
        if replicas.labelled:
            given = dict(spec.labels)
            if REPLICA_LABEL in given:
                errors.append(
                    ConfigError(
                        spec.source or "<built-in>",
                        spec.line,
                        f"{name}.labels.{REPLICA_LABEL}",
                        "label 'replica' is set by probed when replicas.redundancy > 1 "
                        "(the replica ordinal); rename this label",
                    )
                )
            given[REPLICA_LABEL] = label
            spec = replace(spec, labels=tuple(sorted(given.items())))
        out[name] = spec
    return out, errors


def _no_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("must be a whole number, not true/false")
    return value


Count = Annotated[int, Ge(1), Le(MAX_REPLICAS), BeforeValidator(_no_bool)]
Ordinal = Annotated[int, Ge(0), Le(MAX_REPLICAS - 1), BeforeValidator(_no_bool)]


class ReplicasFile(BaseModel):
    """``replicas:`` in ``probed.yaml``: ``count`` (N), ``ordinal`` (default: from
    ``POD_NAME``/``HOSTNAME``), ``redundancy`` (R, default 1)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    count: Count | None = None
    ordinal: Ordinal | None = None
    redundancy: Count | None = None

    @model_validator(mode="after")
    def _fits(self) -> ReplicasFile:
        if self.count is not None:
            if self.ordinal is not None and self.ordinal >= self.count:
                raise ValueError(
                    f"ordinal must be less than count ({self.count}), got {self.ordinal}"
                )
            if self.redundancy is not None and self.redundancy > self.count:
                raise ValueError(
                    f"redundancy must be at most count ({self.count}), got {self.redundancy}"
                )
        return self

    def values(self) -> dict[str, int]:
        """The keys given (a partial section: the command line may give the rest)."""
        return {k: v for k, v in self.model_dump().items() if v is not None}


def resolve_replicas(
    given: Mapping[str, Any],
    file: str,
    line: int,
    env: Mapping[str, str] | None = None,
) -> Replicas | None:
    """:class:`Replicas` from the merged ``replicas:`` keys (file, then command line and
    ``PROBED_REPLICA*``), the ordinal from ``POD_NAME``/``HOSTNAME`` when not given; ``None``
    when nothing is given.

    An ordinal found nowhere is not an error here (``probed validate`` runs outside the
    pods); it is kept in :attr:`Replicas.missing` for ``probed run`` and reloads.

    :raises ConfigErrors: one ``FILE:LINE: replicas...`` error naming what is wrong.
    """
    if not any(given.get(k) is not None for k in ("count", "ordinal", "redundancy")):
        return None

    def fail(field: str, message: str) -> ConfigError:
        return ConfigError(file, line, field, message)

    count = given.get("count")
    if count is None:
        raise ConfigErrors(
            [
                fail(
                    "replicas.count",
                    "required when replicas.ordinal or replicas.redundancy is set "
                    "(--replicas, PROBED_REPLICAS)",
                )
            ]
        )
    ordinal = given.get("ordinal")
    source = "replicas.ordinal, --replica-ordinal or PROBED_REPLICA_ORDINAL"
    missing = None
    if ordinal is None:
        found = ordinal_from_env(env)
        if found is None:
            names = " nor ".join(ORDINAL_ENV)
            missing = fail(
                "replicas.ordinal",
                f"not set, and neither {names} ends in -<ordinal> (a StatefulSet pod name "
                "such as probed-2); set replicas.ordinal, --replica-ordinal or "
                "PROBED_REPLICA_ORDINAL",
            )
        else:
            ordinal, source = found
    try:
        return Replicas(
            int(count),
            None if ordinal is None else int(ordinal),
            int(given.get("redundancy") or 1),
            source,
            missing,
        )
    except ValueError as exc:
        raise ConfigErrors([fail("replicas", str(exc))]) from None


def spread(names: Iterable[str], count: int, redundancy: int = 1) -> list[int]:
    """How many of ``names`` each of ``count`` replicas runs (for docs and tests)."""
    runs = [0] * count
    for name in names:
        for o in owners(name, count, redundancy):
            runs[o] += 1
    return runs
